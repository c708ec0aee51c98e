//! A small NBD server (the Network Block Device protocol of the NBD project's
//! `doc/proto.md`), enough for qemu, libnbd (`nbdinfo`, `nbdcopy`, `nbdsh`) and the Linux
//! client:
//!
//! - fixed newstyle negotiation with `NBD_FLAG_FIXED_NEWSTYLE` and `NBD_FLAG_NO_ZEROES`;
//!   options `EXPORT_NAME`, `ABORT`, `LIST`, `STARTTLS`, `INFO`, `GO` (others, such as
//!   `STRUCTURED_REPLY`, get `NBD_REP_ERR_UNSUP`, and clients fall back to simple replies);
//! - transmission with simple replies: `READ`, `WRITE`, `DISC`, `FLUSH`, `TRIM`,
//!   `WRITE_ZEROES`, each with `FUA`; `EPERM` for a write to a read-only export, `EINVAL`
//!   for a read out of range, `ENOSPC` for a write out of range;
//! - TLS (X.509, rustls) after `NBD_OPT_STARTTLS`; which export needs TLS and which client
//!   may use it is the [`Catalog`]'s decision.
//!
//! The crate knows nothing about snapshots, repositories or HTTP: exports are [`Backend`]s.

#![warn(missing_docs)]

mod backend;
#[allow(missing_docs)]
pub mod proto;
mod server;

pub use backend::{Backend, FileBackend};
pub use server::{run, serve_connection, Catalog, Export, NbdError, Refusal, ServerConfig, Stream};
pub use tokio_rustls::TlsAcceptor;

#[cfg(test)]
mod tests;
