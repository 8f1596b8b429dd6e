//! Errors of the catalog API server and client, and how store errors become gRPC statuses.

use tonic::Status;

use crate::store::StoreError;

/// Errors from [`super::serve`] and [`super::client::connect`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The gRPC server stopped with an error.
    #[error("catalog API server failed: {0}")]
    Serve(#[source] tonic::transport::Error),
    /// The address given to the client is not `host:port` or an `http(s)://` URI.
    #[error(
        "invalid catalog API address {addr:?}: {reason}; expected host:port, e.g. 127.0.0.1:7070"
    )]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The client could not connect (TCP, TLS or HTTP/2).
    #[error(
        "cannot connect to the gateway catalog API at {addr}: {detail}; is the gateway running, is its API port reachable, and do both sides trust each other's certificates?"
    )]
    Connect {
        /// The address dialled.
        addr: String,
        /// The transport error and its causes, e.g. the rejected SPIFFE ID.
        detail: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
}

/// Returns the gRPC status for a store error, telling the caller what to do next.
pub(crate) fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Unavailable(m) => Status::unavailable(format!(
            "catalog store unavailable ({m}); the gateway keeps serving its last view: retry with backoff"
        )),
        StoreError::LeaseNotFound(id) => Status::not_found(format!(
            "lease {id:x} expired or was revoked: register again"
        )),
        e @ StoreError::Compacted { .. } => Status::out_of_range(e.to_string()),
        e => Status::internal(format!("catalog store error: {e}")),
    }
}
