//! Data-plane benchmark of `meshgw-bench` (declared from the bin with
//! `#[path]`): `dataplane` drives a load generator, HAProxy, wrk and curl
//! against real meshgw processes and measures them from /proc.

pub mod dataplane;
pub mod loadgen;
pub mod procs;
pub mod tools;
