//! Mapping etcd-client errors to [`StoreError`]s that name the next step.

use tonic::Code;

use crate::error_text::join;
use crate::store::{LeaseId, StoreError};

/// Returns whether `e` means the endpoint could not be reached or could not
/// serve (no leader), so another endpoint may do better.
pub(crate) fn is_unreachable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_)
        | etcd_client::Error::IoError(_)
        | etcd_client::Error::EndpointError(_) => true,
        etcd_client::Error::GRpcStatus(s) => {
            matches!(
                s.code(),
                Code::Unavailable | Code::Cancelled | Code::Unknown
            ) && !s.message().contains("lease not found")
        }
        _ => false,
    }
}

/// An etcd client error in words: the gRPC code and message, or the
/// transport error and its causes — not tonic's debug dump of them.
pub(crate) fn describe(e: &etcd_client::Error) -> String {
    use std::error::Error as _;
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            join(format!("{:?}: {}", s.code(), s.message()), s.source())
        }
        etcd_client::Error::TransportError(t) => crate::error_text::chain(t),
        other => other.to_string(),
    }
}

/// Maps an error from the endpoint `ep`.
pub(crate) fn map(e: etcd_client::Error, ep: &str) -> StoreError {
    if let etcd_client::Error::LeaseKeepAliveError(m) = &e
        && m.contains("lease not found")
    {
        return StoreError::LeaseNotFound(0);
    }
    if let etcd_client::Error::GRpcStatus(s) = &e {
        let msg = s.message();
        if msg.contains("requested lease not found") {
            return StoreError::LeaseNotFound(0);
        }
        if s.code() == Code::PermissionDenied || s.code() == Code::Unauthenticated {
            return StoreError::Other(format!(
                "etcd at {ep} refused the request: {msg}; check the store username, password and roles"
            ));
        }
        if s.code() == Code::InvalidArgument || s.code() == Code::FailedPrecondition {
            return StoreError::Other(format!("etcd at {ep} rejected the request: {msg}"));
        }
    }
    if is_unreachable(&e) {
        return StoreError::Unavailable(format!(
            "etcd at {ep} unreachable: {} — is etcd running? check store.endpoints",
            describe(&e)
        ));
    }
    StoreError::Other(format!(
        "etcd at {ep}: {}; check etcd's log and health (etcdctl endpoint health)",
        describe(&e)
    ))
}

/// Puts the lease id into a `LeaseNotFound` mapped without it.
pub(crate) fn with_lease(e: StoreError, id: LeaseId) -> StoreError {
    match e {
        StoreError::LeaseNotFound(_) => StoreError::LeaseNotFound(id),
        e => e,
    }
}
