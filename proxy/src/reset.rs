//! Ending a broken proxied TCP connection with a reset, not a FIN.
//!
//! A pipe that fails half-way (the far side reset, a tunnel went down, a TLS
//! session ended without `close_notify`) must not look like a clean end of
//! stream to the peer: a client reading to EOF would take a truncated reply
//! for a whole one. So the broken pipe's TCP connections end with an RST,
//! and each hop that reads it does the same, up to the application.

use tokio::net::TcpStream;

/// Makes `tcp` end with an RST when it is dropped (`SO_LINGER` zero; a zero
/// linger never blocks the drop).
pub fn reset_on_drop(tcp: &TcpStream) {
    if let Err(e) = tcp.set_zero_linger() {
        tracing::debug!(error = %e, "cannot set SO_LINGER 0: the connection ends with a FIN");
    }
}
