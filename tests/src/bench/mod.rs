//! Data-plane benchmark of `meshgw-bench` (declared from the bin with
//! `#[path]`): `dataplane` drives a load generator, HAProxy, wrk and curl
//! against real meshgw processes and measures them from /proc;
//! `instructions` counts each proxy's instructions per request with callgrind,
//! `syscalls` its system calls, context switches and CPU time with perf.

pub mod dataplane;
pub mod instructions;
pub mod loadgen;
pub mod perfstat;
pub mod procs;
pub mod report;
pub mod tools;
