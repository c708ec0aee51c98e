//! What the test guests share (`tests/ktest`, `tests/coreguest`): programs that run as
//! `/init` of a QEMU VM, test something, report on the serial console and power off.
//!
//! Each guest speaks the same line protocol under its own prefix `P` and note tag `t`
//! ([`KTEST`], [`CORE`]); the host reads it with `appliance_tests::guest`.
//! The formats are documented for users in `tests/KTEST.md` and
//! `tests/coreguest/README.md`:
//!
//! | line                      | meaning                                            |
//! |---------------------------|----------------------------------------------------|
//! | `P-BEGIN <name>`          | a scenario starts                                  |
//! | `P-PASS <name>`           | it passed                                          |
//! | `P-FAIL <name>: <message>`| it failed; the message is flattened to one line    |
//! | `P-BENCH <json>`          | one benchmark record                               |
//! | `P-UNLOADED`              | the module under test was unloaded at the end      |
//! | `P-END`                   | the program is done and powers off                 |
//! | `t: <text>`               | a note for people reading the log                  |

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{cmdline, console, mounts};

/// One line of the protocol, before it is given the guest's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// `P-BEGIN <name>`.
    Begin(&'a str),
    /// `P-PASS <name>`.
    Pass(&'a str),
    /// `P-FAIL <name>: <message>`.
    Fail(&'a str, &'a str),
    /// `P-BENCH <json>`.
    Bench(&'a str),
    /// `P-UNLOADED`.
    Unloaded,
    /// `P-END`.
    End,
    /// `t: <text>`.
    Note(&'a str),
}

/// The kernel-test guest's protocol (`tests/ktest`, `tests/KTEST.md`).
pub const KTEST: Protocol = Protocol::new("KTEST", "ktest");

/// The supervisor-core guest's protocol (`tests/coreguest`, its README).
pub const CORE: Protocol = Protocol::new("CORE", "core");

/// A guest's protocol: its line prefix and its note tag.
#[derive(Debug, Clone, Copy)]
pub struct Protocol {
    prefix: &'static str,
    tag: &'static str,
}

impl Protocol {
    /// Lines `<prefix>-BEGIN ...`, notes `<tag>: ...`; the kernel command line keys the
    /// guest reads are `<tag>.<key>` by convention.
    pub const fn new(prefix: &'static str, tag: &'static str) -> Protocol {
        Protocol { prefix, tag }
    }

    /// The line prefix without its dash, e.g. `KTEST`.
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// The note tag, e.g. `ktest`.
    pub fn tag(&self) -> &'static str {
        self.tag
    }

    /// The text of `line` as this guest prints it (without the newline).
    pub fn format(&self, line: Line<'_>) -> String {
        let p = self.prefix;
        match line {
            Line::Begin(name) => format!("{p}-BEGIN {name}"),
            Line::Pass(name) => format!("{p}-PASS {name}"),
            Line::Fail(name, message) => {
                let flat: Vec<&str> = message
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                format!("{p}-FAIL {name}: {}", flat.join(" | "))
            }
            Line::Bench(json) => format!("{p}-BENCH {json}"),
            Line::Unloaded => format!("{p}-UNLOADED"),
            Line::End => format!("{p}-END"),
            Line::Note(text) => format!("{}: {text}", self.tag),
        }
    }

    fn say(&self, line: Line<'_>) {
        console::log(&self.format(line));
    }

    /// `P-BEGIN <name>`.
    pub fn begin(&self, name: &str) {
        self.say(Line::Begin(name));
    }

    /// `P-PASS <name>`.
    pub fn pass(&self, name: &str) {
        self.say(Line::Pass(name));
    }

    /// `P-FAIL <name>: <message>`, the message's lines joined with ` | `.
    pub fn fail(&self, name: &str, message: &str) {
        self.say(Line::Fail(name, message));
    }

    /// `P-BENCH <json>`.
    pub fn bench(&self, json: &str) {
        self.say(Line::Bench(json));
    }

    /// `P-UNLOADED`.
    pub fn unloaded(&self) {
        self.say(Line::Unloaded);
    }

    /// `P-END`.
    pub fn end(&self) {
        self.say(Line::End);
    }

    /// `t: <text>`.
    pub fn note(&self, text: &str) {
        self.say(Line::Note(text));
    }

    /// The start of a guest's `main`: a panic hook that prints
    /// `t: panic in thread <name>: <info>`, the early mounts (a failure is reported as
    /// `P-FAIL boot: mounts: ...` and the guest goes on), and the kernel command line
    /// (empty when it cannot be read).
    pub fn start(&self) -> BTreeMap<String, String> {
        let proto = *self;
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            proto.note(&format!(
                "panic in thread {}: {info}",
                thread.name().unwrap_or("?")
            ));
        }));
        if let Err(e) = mounts::mount_early() {
            self.fail("boot", &format!("mounts: {e}"));
        }
        cmdline::read().unwrap_or_default()
    }

    /// Reports how scenario `name` ended, `elapsed` after it began (`outcome` is what
    /// `catch_unwind` of it gave): `t: <name> took <s> s` and `P-PASS`, or `P-FAIL` with
    /// the error (`{:#}`, so an `anyhow` chain is printed whole) or the panic message.
    /// Returns whether it passed.
    pub fn report<E: Display>(
        &self,
        name: &str,
        outcome: std::thread::Result<Result<(), E>>,
        elapsed: Duration,
    ) -> bool {
        let secs = elapsed.as_secs_f64();
        match outcome {
            Ok(Ok(())) => {
                self.note(&format!("{name} took {secs:.1} s"));
                self.pass(name);
                true
            }
            Ok(Err(e)) => {
                self.fail(name, &format!("{e:#} (after {secs:.1} s)"));
                false
            }
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "non-string panic".to_owned());
                self.fail(name, &format!("panicked: {msg}"));
                false
            }
        }
    }

    /// What a guest's watchdog does when `name` hangs: `P-FAIL <name>: <message>`, a
    /// dump of blocked tasks to the kernel log (sysrq `w`), three seconds for it to
    /// reach the console, `P-END`, and power off without syncing (the sync could hang
    /// on the same stuck I/O). Never returns.
    pub fn time_out(&self, name: &str, message: &str) -> ! {
        self.fail(name, message);
        let _ = std::fs::write("/proc/sys/kernel/sysrq", "1");
        let _ = std::fs::write("/proc/sysrq-trigger", "w");
        std::thread::sleep(Duration::from_secs(3));
        self.end();
        let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
        std::process::exit(1)
    }
}

/// Waits up to `timeout` for `path` to exist (a device node devtmpfs creates once a
/// module is loaded: there is no udev to ask); whether it appeared.
pub fn wait_for_path(path: &Path, timeout: Duration) -> bool {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_the_prefix() {
        assert_eq!(KTEST.format(Line::Begin("cbt")), "KTEST-BEGIN cbt");
        assert_eq!(KTEST.format(Line::Pass("cbt")), "KTEST-PASS cbt");
        assert_eq!(KTEST.format(Line::Bench("{}")), "KTEST-BENCH {}");
        assert_eq!(KTEST.format(Line::Unloaded), "KTEST-UNLOADED");
        assert_eq!(KTEST.format(Line::End), "KTEST-END");
        assert_eq!(KTEST.format(Line::Note("hello")), "ktest: hello");
        assert_eq!(CORE.format(Line::End), "CORE-END");
        assert_eq!(CORE.format(Line::Note("x")), "core: x");
    }

    #[test]
    fn failures_are_one_line() {
        assert_eq!(
            KTEST.format(Line::Fail("boot", "a\n   b  \n\n c")),
            "KTEST-FAIL boot: a | b | c"
        );
        assert_eq!(KTEST.format(Line::Fail("x", "")), "KTEST-FAIL x: ");
    }

    #[test]
    fn wait_for_path_gives_up() {
        assert!(wait_for_path(Path::new("/"), Duration::ZERO));
        assert!(!wait_for_path(
            Path::new("/nonexistent/sysboot-test"),
            Duration::from_millis(30)
        ));
    }
}
