//! Free loopback ports.

use std::net::{SocketAddr, TcpListener, UdpSocket};

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
pub fn tcp() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free TCP port")
}

/// Returns a UDP port on 127.0.0.1 that was free a moment ago.
pub fn udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
}
