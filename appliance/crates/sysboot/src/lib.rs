//! Early-boot helpers shared by the appliance's PID 1 and the kernel-test guest program.
//!
//! Everything here runs before there is a userspace to lean on: no udev, no `modprobe`,
//! no `mount` binary. The crate knows nothing about snapshots, HTTP or the repository.
//!
//! | module      | what it holds                                                     |
//! |-------------|-------------------------------------------------------------------|
//! | [`mounts`]  | the table of early pseudo-filesystem mounts                       |
//! | [`modules`] | a `modules.dep` index and `finit_module`/`delete_module` wrappers |
//! | [`cmdline`] | kernel command line parsing                                       |
//! | [`power`]   | sync and power off / reboot                                       |
//! | [`console`] | line logging to `/dev/console`                                    |

pub mod cmdline;
pub mod console;
mod error;
pub mod modules;
pub mod mounts;
pub mod power;

pub use error::Error;
