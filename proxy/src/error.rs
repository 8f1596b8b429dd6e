//! Errors of the data plane: where a failure happened ([`Hop`]), what it was
//! ([`Reason`]), whether another target may succeed ([`ProxyError::retryable`]),
//! and how it is shown to an HTTP caller ([`ProxyError::to_response`]).

use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::route::{RouteAnswer, RouteStatus};

/// Name of the response header that says why the mesh answered instead of the service.
pub const ERROR_HEADER: &str = "x-meshgw-error";

/// The hop of a request's path where a failure happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// This sidecar (the caller's own), e.g. a bad `Host` or no instance anywhere.
    LocalSidecar,
    /// The local cluster's gateway (`gateway.forward`).
    LocalGateway,
    /// The gateway of the named peer cluster.
    PeerGateway(String),
    /// The sidecar in front of the destination instance.
    DestinationSidecar,
    /// The destination application itself.
    App,
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hop::LocalSidecar => f.write_str("local-sidecar"),
            Hop::LocalGateway => f.write_str("local-gateway"),
            Hop::PeerGateway(c) => write!(f, "peer-gateway:{c}"),
            Hop::DestinationSidecar => f.write_str("destination-sidecar"),
            Hop::App => f.write_str("app"),
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No healthy instance of the service where it was looked for.
    NoInstance,
    /// The service is not exported to this cluster.
    NotExported,
    /// No tunnel to the target cluster is up.
    PeerUnreachable,
    /// A connection (or its handshake) did not complete in `timeouts.connect`.
    ConnectTimeout,
    /// No byte moved either way for `timeouts.idle`.
    IdleTimeout,
    /// No response head within `timeouts.request`.
    RequestTimeout,
    /// The connection was refused or reset while connecting.
    Refused,
    /// The TLS handshake failed (e.g. the peer presented the wrong SPIFFE ID).
    Tls(String),
    /// The service name is not known to the catalog at all.
    UnknownService,
    /// The `Host`/`:authority` is not `name.namespace.mesh[:port]`.
    BadHost(String),
    /// A gateway could not read our route header, or we could not read its answer.
    BadHeader(String),
    /// Another I/O or protocol error.
    Io(String),
}

impl Reason {
    /// Returns the short machine-readable code used in the `x-meshgw-error` header.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::NoInstance => "no_instance",
            Reason::NotExported => "not_exported",
            Reason::PeerUnreachable => "peer_unreachable",
            Reason::ConnectTimeout => "connect_timeout",
            Reason::IdleTimeout => "idle_timeout",
            Reason::RequestTimeout => "request_timeout",
            Reason::Refused => "refused",
            Reason::Tls(_) => "tls",
            Reason::UnknownService => "unknown_service",
            Reason::BadHost(_) => "bad_host",
            Reason::BadHeader(_) => "bad_header",
            Reason::Io(_) => "io",
        }
    }

    fn is_timeout(&self) -> bool {
        matches!(
            self,
            Reason::ConnectTimeout | Reason::IdleTimeout | Reason::RequestTimeout
        )
    }
}

/// A data-plane failure: where it happened, why, and whether bytes of the
/// caller's request had already left this sidecar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{hop}: {} ({detail})", reason.code())]
pub struct ProxyError {
    /// Where it happened.
    pub hop: Hop,
    /// What happened.
    pub reason: Reason,
    /// Free text: the address, the gateway's own words, the OS error.
    pub detail: String,
    /// Whether any of the caller's bytes were sent before the failure (then a retry could duplicate them).
    pub sent: bool,
}

impl ProxyError {
    /// Creates an error raised before any of the caller's bytes were sent.
    pub fn new(hop: Hop, reason: Reason, detail: impl Into<String>) -> Self {
        ProxyError {
            hop,
            reason,
            detail: detail.into(),
            sent: false,
        }
    }

    /// Returns the error marked as raised after the caller's bytes were sent.
    pub fn after_send(mut self) -> Self {
        self.sent = true;
        self
    }

    /// Returns the error for a gateway's non-`Ok` answer to our route header.
    ///
    /// The answer's reason names the hop as `gateway <cluster>: ...`; when it
    /// does not, a missing tunnel is blamed on the local gateway and anything
    /// else on the peer gateway of `target_cluster`.
    pub fn from_answer(answer: &RouteAnswer, local_cluster: &str, target_cluster: &str) -> Self {
        let named = answer
            .reason
            .strip_prefix("gateway ")
            .and_then(|r| r.split_once(':'))
            .map(|(c, _)| c.trim());
        let hop = match (named, answer.status) {
            (Some(c), _) if c == local_cluster => Hop::LocalGateway,
            (Some(c), _) => Hop::PeerGateway(c.to_owned()),
            (None, RouteStatus::PeerUnreachable | RouteStatus::BadHeader) => Hop::LocalGateway,
            (None, _) => Hop::PeerGateway(target_cluster.to_owned()),
        };
        let reason = match answer.status {
            RouteStatus::NoInstance => Reason::NoInstance,
            RouteStatus::NotExported => Reason::NotExported,
            RouteStatus::PeerUnreachable => Reason::PeerUnreachable,
            RouteStatus::Timeout => Reason::ConnectTimeout,
            RouteStatus::BadHeader | RouteStatus::Ok => Reason::BadHeader(answer.reason.clone()),
        };
        ProxyError::new(hop, reason, answer.reason.clone())
    }

    /// Returns whether another target may succeed: the failure happened while
    /// connecting, before any of the caller's bytes were sent, and is not a
    /// property of the request itself.
    pub fn retryable(&self) -> bool {
        !self.sent
            && matches!(
                self.reason,
                Reason::NoInstance
                    | Reason::NotExported
                    | Reason::PeerUnreachable
                    | Reason::ConnectTimeout
                    | Reason::Refused
                    | Reason::Tls(_)
                    | Reason::Io(_)
            )
    }

    /// Returns the HTTP status a caller sees: 400 for a bad `Host`, 504 for
    /// timeouts, 503 otherwise.
    pub fn status(&self) -> StatusCode {
        match self.reason {
            Reason::BadHost(_) => StatusCode::BAD_REQUEST,
            ref r if r.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Returns the response shown to an HTTP caller of `service` (`ns/name`, or
    /// the raw host when it could not be parsed): the status, an
    /// `x-meshgw-error: <code>; service=<service>; hop=<hop>` header and a
    /// plain-text body with the next step.
    pub fn to_response(&self, service: &str) -> Response<Full<Bytes>> {
        let header = format!(
            "{}; service={service}; hop={}",
            self.reason.code(),
            self.hop
        );
        let body = format!(
            "meshgw: request to {service} failed at {}: {} ({}).\nNext step: {}\n",
            self.hop,
            self.reason.code(),
            self.detail,
            self.next_step(service)
        );
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = self.status();
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&header) {
            headers.insert(ERROR_HEADER, v);
        }
        resp
    }

    fn next_step(&self, service: &str) -> String {
        match &self.reason {
            Reason::NoInstance => format!(
                "no healthy instance of {service} is reachable from {}: check that it is registered and passing its health checks (`meshgw status`)",
                self.hop
            ),
            Reason::NotExported => format!(
                "add an [[exports]] rule for {service} on the gateway of the cluster that runs it"
            ),
            Reason::PeerUnreachable => {
                "no tunnel to the target cluster is up: check `meshgw status` on the local gateway"
                    .into()
            }
            Reason::ConnectTimeout => format!(
                "a connect at {} did not complete in time: check that the next hop named above runs and that no firewall drops the traffic",
                self.hop
            ),
            Reason::IdleTimeout => "the connection was idle longer than timeouts.idle".into(),
            Reason::RequestTimeout => {
                format!(
                    "{service} did not answer within timeouts.request: check its latency or raise the timeout"
                )
            }
            Reason::Refused => format!("{} refused the connection: is it listening?", self.hop),
            Reason::Tls(_) => format!(
                "the TLS handshake with {} failed: check that its certificate carries the expected SPIFFE ID and chains to the mesh root",
                self.hop
            ),
            Reason::UnknownService => format!(
                "{service} is not in the catalog: check its spelling (name.namespace.mesh) and that it is registered"
            ),
            Reason::BadHost(_) => {
                "address the service as name.namespace.mesh[:port] in the Host header".into()
            }
            Reason::BadHeader(_) => {
                "the gateway and this sidecar disagree on the route header: upgrade the older one"
                    .into()
            }
            Reason::Io(_) => format!(
                "the connection to {} failed: retry, and check its logs",
                self.hop
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_status_header_and_body() {
        use http_body_util::BodyExt;
        let e = ProxyError::new(
            Hop::PeerGateway("gcp-eu".into()),
            Reason::NoInstance,
            "none healthy",
        );
        let r = e.to_response("default/payments");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            r.headers()[ERROR_HEADER],
            "no_instance; service=default/payments; hop=peer-gateway:gcp-eu"
        );
        assert_eq!(
            r.headers()[http::header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("default/payments"), "{body}");
        assert!(body.contains("no_instance"), "{body}");
        assert!(body.contains("Next step: no healthy instance"), "{body}");
    }

    #[test]
    fn timeouts_are_504_and_bad_host_400() {
        let t = ProxyError::new(
            Hop::DestinationSidecar,
            Reason::ConnectTimeout,
            "10.0.0.1:15006",
        );
        assert_eq!(t.to_response("a/b").status(), StatusCode::GATEWAY_TIMEOUT);
        let h = ProxyError::new(Hop::LocalSidecar, Reason::BadHost("x".into()), "x");
        assert_eq!(h.to_response("x").status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn only_connect_failures_before_sending_are_retryable() {
        let refused = ProxyError::new(Hop::DestinationSidecar, Reason::Refused, "");
        assert!(refused.retryable());
        assert!(!refused.clone().after_send().retryable());
        assert!(!ProxyError::new(Hop::LocalSidecar, Reason::BadHost("x".into()), "").retryable());
        assert!(!ProxyError::new(Hop::App, Reason::RequestTimeout, "").retryable());
    }

    #[test]
    fn gateway_answers_name_their_hop() {
        let a = |status, reason: &str| RouteAnswer {
            status,
            reason: reason.into(),
        };
        let e = ProxyError::from_answer(
            &a(RouteStatus::NoInstance, "gateway b: none healthy"),
            "a",
            "b",
        );
        assert_eq!(
            (e.hop, e.reason),
            (Hop::PeerGateway("b".into()), Reason::NoInstance)
        );
        let e = ProxyError::from_answer(
            &a(RouteStatus::PeerUnreachable, "gateway a: no tunnel to b"),
            "a",
            "b",
        );
        assert_eq!(
            (e.hop, e.reason),
            (Hop::LocalGateway, Reason::PeerUnreachable)
        );
        let e = ProxyError::from_answer(&a(RouteStatus::PeerUnreachable, "no tunnel"), "a", "b");
        assert_eq!(e.hop, Hop::LocalGateway);
        let e = ProxyError::from_answer(&a(RouteStatus::Timeout, "slow"), "a", "b");
        assert_eq!(
            (e.hop, e.reason),
            (Hop::PeerGateway("b".into()), Reason::ConnectTimeout)
        );
    }
}
