//! The meshgw edge gateway.
//!
//! [`app::run`] wires one gateway: the catalog store ([`store`]), the QUIC
//! [`tunnel`]s to peers with one catalog sync session each ([`control`]), the
//! local [`exports`] each session filters and sends, the per-peer [`imports`]
//! writers, cluster-wide [`housekeeping`] (stale imports), the gRPC catalog
//! API and the [`admin`] server; [`rotate`] presents rotated certificates
//! without a restart. [`cli`] holds the `meshgw` subcommands.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod backoff;
pub mod cli;
pub mod control;
pub mod exports;
pub mod forward;
pub mod housekeeping;
pub mod imports;
pub mod metrics;
pub mod peers;
pub mod rotate;
pub mod shared;
pub mod store;
pub mod trust;
pub mod tunnel;
