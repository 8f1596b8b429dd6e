//! etcd-backed store. (to be written)
