//! A parsed trust bundle and chain validation against it.

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};

use crate::error::IdentityError;

/// Trust anchors parsed from a bundle of root certificates.
#[derive(Debug, Clone)]
pub(crate) struct Bundle {
    anchors: Vec<TrustAnchor<'static>>,
}

impl Bundle {
    /// Parses `certs` as trust anchors; `name` names the bundle in errors.
    pub(crate) fn new(name: &str, certs: &[CertificateDer<'_>]) -> Result<Self, IdentityError> {
        if certs.is_empty() {
            return Err(IdentityError::EmptyBundle {
                name: name.to_owned(),
            });
        }
        let anchors = certs
            .iter()
            .map(|cert| {
                webpki::anchor_from_trusted_cert(cert)
                    .map(|anchor| anchor.to_owned())
                    .map_err(|reason| IdentityError::BadTrustAnchor {
                        name: name.to_owned(),
                        reason,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Bundle { anchors })
    }

    /// Validates `end_entity` (with `intermediates`) for `usage` at `now`;
    /// returns webpki's reason on failure.
    pub(crate) fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: KeyUsage,
    ) -> Result<(), String> {
        let cert = EndEntityCert::try_from(end_entity).map_err(|e| explain(&e))?;
        cert.verify_for_usage(
            super::algorithms().all,
            &self.anchors,
            intermediates,
            now,
            usage,
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| explain(&e))
    }
}

/// Returns webpki's error name with a hint for the common cases.
fn explain(error: &webpki::Error) -> String {
    let hint = match error {
        webpki::Error::UnknownIssuer => "no certificate in the bundle issued this chain",
        webpki::Error::InvalidSignatureForPublicKey => {
            "a CA in the bundle has the issuer's name but not its key: was the root re-created?"
        }
        webpki::Error::CertExpired { .. } => "the certificate has expired: re-issue it",
        webpki::Error::CertNotValidYet { .. } => "the certificate is not valid yet: check clocks",
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the certificate is not issued for this use (server or client auth)"
        }
        _ => return format!("{error:?}"),
    };
    let name = format!("{error:?}");
    let name = name.split([' ', '(']).next().unwrap_or_default();
    format!("{name} ({hint})")
}
