//! Helpers for tests that need real infrastructure (behind the `test-util` feature).
//!
//! - [`EtcdCluster`]: starts 1 or 3 real `etcd` processes on free local ports,
//!   and kills or restarts members to exercise failure handling.

mod etcd;

pub use self::etcd::EtcdCluster;
