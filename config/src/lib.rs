//! meshgw configuration. (to be written)
#![forbid(unsafe_code)]
