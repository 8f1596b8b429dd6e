//! Embedded single-node store. (to be written)
