//! Why `meshgw status` could not talk to a gateway, in words that say what to
//! check next: nothing listening, no answer, the gateway's certificate not
//! trusted here, or this certificate refused by the gateway.

use std::error::Error;
use std::fmt::Write;

/// What went wrong reaching the gateway's API, found in an error's chain.
#[derive(Debug, PartialEq, Eq)]
pub enum Cause {
    /// Connection refused: nothing listens at the address.
    NotListening,
    /// The gateway sent a TLS alert: it refused this side's certificate.
    CertificateRefused(String),
    /// This side did not accept the gateway's certificate (chain or SPIFFE ID).
    GatewayNotTrusted(String),
    /// The gateway answered the call with an error of its own (e.g. its store is down).
    Answered(String),
    /// Anything else (the text of the error chain).
    Other,
}

/// Finds the cause in `err` and its sources, looking inside I/O errors
/// (which hide the TLS error they wrap from `source()`).
pub fn cause(err: &(dyn Error + 'static)) -> Cause {
    // A status the server sent carries no source; a transport failure does.
    if let Some(s) = err.downcast_ref::<tonic::Status>()
        && s.source().is_none()
        && s.code() != tonic::Code::Unknown
    {
        return Cause::Answered(format!("{:?}: {}", s.code(), s.message()));
    }
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(c) = tls_cause(e) {
            return c;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(c) = io
                .get_ref()
                .and_then(|inner| tls_cause(inner as &(dyn Error + 'static)))
            {
                return c;
            }
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Cause::NotListening;
            }
        }
        cur = e.source();
    }
    Cause::Other
}

fn tls_cause(e: &(dyn Error + 'static)) -> Option<Cause> {
    match e.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => {
            Some(Cause::CertificateRefused(format!("{alert:?}")))
        }
        // Our verifiers' reasons (wrong SPIFFE ID, …) travel as `Other`.
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))
        | rustls::Error::Other(o) => Some(Cause::GatewayNotTrusted(o.0.to_string())),
        other => Some(Cause::GatewayNotTrusted(other.to_string())),
    }
}

/// The whole chain of `err` as one line.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = match err.downcast_ref::<tonic::Status>() {
        Some(s) => format!("{:?}: {}", s.code(), s.message()),
        None => err.to_string(),
    };
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            let _ = write!(out, ": {s}");
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_refused_connection_and_tls_errors_inside_io_errors() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(cause(&refused), Cause::NotListening);
        let alert = std::io::Error::other(rustls::Error::AlertReceived(
            rustls::AlertDescription::UnknownCA,
        ));
        assert_eq!(cause(&alert), Cause::CertificateRefused("UnknownCA".into()));
        let bad = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(matches!(cause(&bad), Cause::GatewayNotTrusted(_)));
        let other = std::io::Error::other("something else");
        assert_eq!(cause(&other), Cause::Other);
        let answered = tonic::Status::unavailable("catalog store unavailable");
        assert_eq!(
            cause(&answered),
            Cause::Answered("Unavailable: catalog store unavailable".into())
        );
        assert_eq!(chain(&answered), "Unavailable: catalog store unavailable");
    }
}
