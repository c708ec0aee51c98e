//! Early-boot helpers shared by the appliance's PID 1 and the test guest programs.
//!
//! Everything here runs before there is a userspace to lean on: no udev, no `modprobe`,
//! no `mount` binary. The crate knows nothing about snapshots, HTTP or the repository.
//!
//! | module        | what it holds                                                     |
//! |---------------|-------------------------------------------------------------------|
//! | [`mounts`]    | the table of early pseudo-filesystem mounts                       |
//! | [`modules`]   | a `modules.dep` index and `finit_module`/`delete_module` wrappers |
//! | [`cmdline`]   | kernel command line parsing                                       |
//! | [`power`]     | sync and power off / reboot                                       |
//! | [`console`]   | line logging to `/dev/console`                                    |
//! | [`testguest`] | the test guests' console protocol and start-up (`tests/` only)    |

pub mod cmdline;
pub mod console;
mod error;
pub mod modules;
pub mod mounts;
pub mod power;
pub mod testguest;

pub use error::Error;
