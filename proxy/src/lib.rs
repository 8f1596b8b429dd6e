//! meshgw data plane (sidecar outbound/inbound proxying). Not built yet: see issue 3.
#![forbid(unsafe_code)]
