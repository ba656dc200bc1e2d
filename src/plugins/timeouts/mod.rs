//! *timeouts*: the read, write and idle timeouts of a server block's TCP connections, the number
//! of queries one connection may carry, and (clusterdns's own) how many connections a listen
//! address and one client address may hold.
//!
//! Not a link of the chain: the server reads [`Timeouts`] when it sets up the TCP side of each
//! listen address (see [`crate::server::TcpSettings`]).

mod setup;
pub use setup::{MAX_TIMEOUT, MIN_TIMEOUT, Timeouts, parse};

pub const NAME: &str = "timeouts";
