//! The runtime layer: the I/O every feature module shares and none of them owns (layer: runtime,
//! on top of [`crate::core`]): watch errors fit for logs ([`watch`]).

pub mod watch;
