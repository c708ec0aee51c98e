//! This guest's console protocol (tests/KTEST.md): `sysboot::testguest` with the line
//! prefix `KTEST` (`KTEST-BEGIN <name>`, ...) and notes `ktest: <text>` for people
//! reading the log.

use sysboot::testguest::{self, Protocol};

pub static PROTO: Protocol = testguest::KTEST;

/// A note (`ktest: <text>`) with format arguments.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::proto::PROTO.note(&format!($($arg)*))
    };
}
