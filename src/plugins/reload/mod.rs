//! *reload*: turns on the server's check of the Corefile for changes.
//!
//! Not a link of the chain. The server does the work (see [`Server::reload`]): every INTERVAL,
//! moved once per loaded configuration by a random amount within half of JITTER either way, it
//! parses the Corefile and compares a SHA-512 of the parse (imports included, comments and
//! spacing not) with the last one it tried; when they differ it builds the new configuration
//! aside and swaps it in, or logs the error and keeps serving the old one.
//!
//! [`Server::reload`]: crate::server::Server::reload

mod setup;
pub use setup::{Config, parse};

pub const NAME: &str = "reload";
