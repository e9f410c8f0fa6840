//! MongoDB wire protocol server for the local gateway: drivers, `mongosh` and tools work unchanged.
//!
//! Must not depend on the node daemon (`fluence-node`) or its storage
//! engine (`fluence-store`): data is reached only through
//! `fluence_client::Client`, which encrypts before anything leaves the
//! machine.
//!
//! - [`wire`]: message framing (header, OP_MSG with document sequences and
//!   CRC-32C checksums, OP_QUERY for the legacy handshake, OP_REPLY).
//! - [`server`]: the TCP listener, one bounded task per connection;
//!   [`serve_with`] takes [`ServeOptions`] (SCRAM-SHA-256 credentials).
//! - [`auth`]: SCRAM-SHA-256; [`session`]: per-connection state.
//! - `commands`: command dispatch; collection `c` of database `d` is the
//!   Fluence dataset `"d.c"`.
//! - [`error`]: MongoDB error codes and names.

pub mod auth;
mod commands;
mod cursors;
pub mod error;
pub mod server;
pub mod session;
pub mod wire;

pub use auth::{Credentials, CredentialsError};
pub use commands::{MAX_WIRE_VERSION, MONGODB_VERSION};
pub use cursors::{CURSORS_MAX, CURSORS_PER_CONNECTION_MAX, CURSOR_IDLE_TIMEOUT};
pub use error::CommandError;
pub use server::{serve, serve_with, ServeOptions, CONNECTIONS_MAX};
