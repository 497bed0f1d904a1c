//! The runtime layer: the I/O every feature module shares and none of them owns, on top of
//! [`crate::core`]: connecting to the apiserver ([`connect`](mod@connect)), the shutdown flag and the signals
//! that set it ([`shutdown`]), publishing events ([`events`]), watch errors fit for logs
//! ([`watch`]).

pub mod connect;
pub mod events;
pub mod shutdown;
pub mod watch;

pub use connect::{ConnectError, connect, load_config};
pub use shutdown::{shutdown_signal, stopped};
