//! A gRPC call's outcome for outlier detection. gRPC answers HTTP 200 and
//! puts the call's status in `grpc-status`: in the head of a trailers-only
//! answer, else in the trailers. It is mapped to the HTTP status an HTTP
//! answer would have carried (as Envoy maps it), so UNAVAILABLE (503),
//! INTERNAL, UNKNOWN and DATA_LOSS (500) and DEADLINE_EXCEEDED (504) count
//! as server errors, and OK and the caller's own mistakes do not.

use http::HeaderMap;

/// Returns whether the headers are a gRPC answer's (`content-type: application/grpc…`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Returns the `grpc-status` code in `headers` (a head or trailers), if
/// it is there and a number.
pub fn code(headers: &HeaderMap) -> Option<u32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// Maps a gRPC status code to an HTTP status.
pub fn to_http(code: u32) -> u16 {
    match code {
        0 => 200,          // OK
        1 => 499,          // CANCELLED: the caller went away
        3 | 9 | 11 => 400, // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
        4 => 504,          // DEADLINE_EXCEEDED
        5 | 12 => 404,     // NOT_FOUND, UNIMPLEMENTED
        6 | 10 => 409,     // ALREADY_EXISTS, ABORTED
        7 => 403,          // PERMISSION_DENIED
        8 => 429,          // RESOURCE_EXHAUSTED
        14 => 503,         // UNAVAILABLE
        16 => 401,         // UNAUTHENTICATED
        _ => 500,          // UNKNOWN, INTERNAL, DATA_LOSS, and codes not defined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn server_side_codes_map_to_5xx_and_the_callers_do_not() {
        for (code, server) in [
            (0, false),
            (1, false),
            (2, true),
            (3, false),
            (4, true),
            (5, false),
            (7, false),
            (8, false),
            (12, false),
            (13, true),
            (14, true),
            (15, true),
            (16, false),
            (99, true),
        ] {
            assert_eq!(
                to_http(code) >= 500,
                server,
                "grpc-status {code} -> {}",
                to_http(code)
            );
        }
        assert_eq!(to_http(14), 503);
    }

    #[test]
    fn reads_grpc_status_and_the_content_type() {
        assert_eq!(code(&headers(&[("grpc-status", "14")])), Some(14));
        assert_eq!(code(&headers(&[("grpc-status", "0")])), Some(0));
        assert_eq!(code(&headers(&[("grpc-status", "x")])), None);
        assert_eq!(code(&headers(&[])), None);
        assert!(is_grpc(&headers(&[(
            "content-type",
            "application/grpc+proto"
        )])));
        assert!(!is_grpc(&headers(&[("content-type", "text/plain")])));
    }
}
