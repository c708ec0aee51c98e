//! The console protocol the host side reads (tests/coreguest/README.md):
//! `CORE-BEGIN <name>`, `CORE-PASS <name>`, `CORE-FAIL <name>: <message>`,
//! `CORE-BENCH <json>`, `CORE-UNLOADED`, `CORE-END`. Other lines are notes.

use sysboot::console;

pub fn begin(name: &str) {
    console::log(&format!("CORE-BEGIN {name}"));
}

pub fn pass(name: &str) {
    console::log(&format!("CORE-PASS {name}"));
}

/// A failure: the message is flattened to one line.
pub fn fail(name: &str, message: &str) {
    let flat: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    console::log(&format!("CORE-FAIL {name}: {}", flat.join(" | ")));
}

pub fn bench(json: &str) {
    console::log(&format!("CORE-BENCH {json}"));
}

pub fn unloaded() {
    console::log("CORE-UNLOADED");
}

pub fn end() {
    console::log("CORE-END");
}

pub fn note(text: &str) {
    console::log(&format!("core: {text}"));
}

/// `note!` with format arguments.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::proto::note(&format!($($arg)*))
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
