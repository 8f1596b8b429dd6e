//! meshgw data plane.
//!
//! - [`route`]: the route header a sidecar sends its gateway, and gateways
//!   send each other, before a proxied connection becomes an opaque pipe.
#![forbid(unsafe_code)]

pub mod route;
