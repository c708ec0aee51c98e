//! This guest's console protocol (tests/coreguest/README.md): `sysboot::testguest` with
//! the line prefix `CORE` (`CORE-BEGIN <name>`, ...) and notes `core: <text>`.

use sysboot::testguest::{self, Protocol};

pub static PROTO: Protocol = testguest::CORE;

/// A note (`core: <text>`) with format arguments.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::proto::PROTO.note(&format!($($arg)*))
    };
}

/// Fails the scenario with a message unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            anyhow::bail!($($arg)*);
        }
    };
}
