//! Kernel defects in a serial log.
//!
//! `BUG:`, `WARNING:`, `Oops` and `general protection` are matched as written; `leak` in
//! any case (kmemleak reports, "memory leak" messages from the module).

use std::path::Path;

const EXACT: &[&str] = &["BUG:", "WARNING:", "Oops", "general protection"];

/// The lines of `log` that report kernel defects, in order.
pub fn kernel_defects(log: &str) -> Vec<String> {
    log.lines()
        .filter(|line| {
            EXACT.iter().any(|word| line.contains(word)) || line.to_lowercase().contains("leak")
        })
        .map(|line| line.trim_end().to_owned())
        .collect()
}

/// Panics, listing them, when `log` reports kernel defects; `log_path` is named in the
/// message so the whole log can be read.
pub fn assert_clean(log: &str, log_path: &Path) {
    let defects = kernel_defects(log);
    if !defects.is_empty() {
        panic!(
            "kernel defects in {}:\n{}",
            log_path.display(),
            defects.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_defect_lines() {
        let log = "[    0.1] ok\n[ 1.0] BUG: kernel NULL pointer dereference\n\
                   [ 2.0] WARNING: CPU: 0 PID: 1 at x.c:1\n[ 3.0] Oops: 0002 [#1]\n\
                   [ 4.0] general protection fault\n[ 5.0] blksnap: Memory LEAK of 3 chunks\n\
                   [ 6.0] warning: not a defect\n";
        let found = kernel_defects(log);
        assert_eq!(found.len(), 5);
        assert!(found[0].contains("BUG:"));
        assert!(found[4].contains("LEAK"));
    }

    #[test]
    fn clean_log_passes() {
        assert!(kernel_defects("[ 0.0] Linux version 6.1\n[ 1.0] bug fixed\n").is_empty());
        assert_clean("all good\n", Path::new("/dev/null"));
    }

    #[test]
    #[should_panic(expected = "kernel defects")]
    fn dirty_log_panics() {
        assert_clean("Oops\n", Path::new("/x"));
    }
}
