//! Why `meshgw status` could not talk to a gateway, in words that say what to
//! check next: nothing listening, not the API port, the gateway's certificate
//! not trusted here, this certificate refused by the gateway, or the gateway
//! answering with an error of its own.

use std::error::Error;

use meshgw_federation::error_text::join;
use rustls::AlertDescription as Alert;

/// What went wrong reaching the gateway's API, found in an error's chain.
#[derive(Debug, PartialEq, Eq)]
pub enum Cause {
    /// Connection refused: nothing listens at the address.
    NotListening,
    /// The gateway sent a certificate-related TLS alert: it refused this side's certificate.
    CertificateRefused(String),
    /// The other end does not speak the API's TLS (plain HTTP, another ALPN, …).
    NotTheApi(String),
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
    let cause = match e.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) if about_certificates(*alert) => {
            Cause::CertificateRefused(format!("{alert:?}"))
        }
        rustls::Error::AlertReceived(alert) => Cause::NotTheApi(format!("TLS alert {alert:?}")),
        // Our verifiers' reasons (wrong SPIFFE ID, …) travel as `Other`.
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))
        | rustls::Error::Other(o) => Cause::GatewayNotTrusted(o.0.to_string()),
        rustls::Error::InvalidCertificate(c) => Cause::GatewayNotTrusted(format!("{c:?}")),
        other @ (rustls::Error::NoApplicationProtocol
        | rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. }
        | rustls::Error::PeerIncompatible(_)
        | rustls::Error::PeerMisbehaved(_)) => Cause::NotTheApi(other.to_string()),
        _ => return None,
    };
    Some(cause)
}

/// Alerts a TLS server sends when it rejects the client's certificate.
fn about_certificates(alert: Alert) -> bool {
    matches!(
        alert,
        Alert::BadCertificate
            | Alert::UnsupportedCertificate
            | Alert::CertificateRevoked
            | Alert::CertificateExpired
            | Alert::CertificateUnknown
            | Alert::UnknownCA
            | Alert::AccessDenied
            | Alert::DecryptError
            | Alert::CertificateRequired
    )
}

/// The whole chain of `err` as one line (a gRPC status as code and message).
pub fn chain(err: &(dyn Error + 'static)) -> String {
    match err.downcast_ref::<tonic::Status>() {
        Some(s) => join(format!("{:?}: {}", s.code(), s.message()), s.source()),
        None => meshgw_federation::error_text::chain(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_refused_connection_and_tls_errors_inside_io_errors() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(cause(&refused), Cause::NotListening);
        let alert = std::io::Error::other(rustls::Error::AlertReceived(Alert::UnknownCA));
        assert_eq!(cause(&alert), Cause::CertificateRefused("UnknownCA".into()));
        let alpn =
            std::io::Error::other(rustls::Error::AlertReceived(Alert::NoApplicationProtocol));
        assert!(matches!(cause(&alpn), Cause::NotTheApi(_)));
        let plain = std::io::Error::other(rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(matches!(cause(&plain), Cause::NotTheApi(_)));
        let bad = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(
            cause(&bad),
            Cause::GatewayNotTrusted("UnknownIssuer".into())
        );
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
