//! The console protocol the host side reads (tests/KTEST.md):
//! `KTEST-BEGIN <name>`, `KTEST-PASS <name>`, `KTEST-FAIL <name>: <message>`,
//! `KTEST-BENCH <json>`, `KTEST-UNLOADED`, `KTEST-END`. Other lines are notes
//! for people reading the log.

use sysboot::console;

pub fn begin(name: &str) {
    console::log(&format!("KTEST-BEGIN {name}"));
}

pub fn pass(name: &str) {
    console::log(&format!("KTEST-PASS {name}"));
}

/// A failure: the message is flattened to one line.
pub fn fail(name: &str, message: &str) {
    let flat: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    console::log(&format!("KTEST-FAIL {name}: {}", flat.join(" | ")));
}

pub fn bench(json: &str) {
    console::log(&format!("KTEST-BENCH {json}"));
}

pub fn unloaded() {
    console::log("KTEST-UNLOADED");
}

pub fn end() {
    console::log("KTEST-END");
}

/// A note for the reader of the log: `ktest: <text>`.
pub fn note(text: &str) {
    console::log(&format!("ktest: {text}"));
}

/// `note!` with format arguments.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::proto::note(&format!($($arg)*))
    };
}
