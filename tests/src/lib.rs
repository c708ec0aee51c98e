//! Host-side QEMU harness for the appliance's integration tests.
//!
//! | module       | what it holds                                                         |
//! |--------------|-----------------------------------------------------------------------|
//! | [`paths`]    | the workspace, artifact directories, the kernel to boot               |
//! | [`build`]    | building binaries, the module and initramfs images (serialised)       |
//! | [`qemu`]     | VM configuration, start, serial log polling, guaranteed kill          |
//! | [`qmp`]      | QEMU Machine Protocol commands (power button, status)                 |
//! | [`guest`]    | booting a test guest (tests/ktest, tests/coreguest), its result lines |
//! | [`logcheck`] | kernel defects in a serial log                                        |
//! | [`data`]     | deterministic test bytes                                              |
//! | [`ganesha`]  | a real NFS server (NFS-Ganesha, NFSv4) on 127.0.0.1 for NFS targets    |
//! | [`garage`]   | a real S3 server (Garage 2.5.0) on 127.0.0.1 for the S3 tests         |
//! | [`rest`]     | the appliance's REST API over curl: calls, login, jobs, downloads     |
//!
//! VM tests are slow (TCG): at most two VMs run at once across all test processes
//! (see [`qemu::Vm::start`]). Every timeout the harness takes is multiplied by the
//! environment variable `APPLIANCE_TIMEOUT_FACTOR` (a float, default 1).

pub mod build;
pub mod data;
mod error;
pub mod ganesha;
pub mod garage;
pub mod guest;
mod lock;
pub mod logcheck;
pub mod paths;
pub mod qemu;
pub mod qmp;
pub mod rest;

pub use error::{Error, Result};
