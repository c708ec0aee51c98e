//! Line logging to the system console.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

/// Writes `line` and a newline to `/dev/console`; falls back to stderr when the console
/// cannot be opened (no devtmpfs yet, or not running as root).
pub fn log(line: &str) {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    let console = OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open("/dev/console");
    let written = match console {
        Ok(mut file) => file.write_all(text.as_bytes()).is_ok(),
        Err(_) => false,
    };
    if !written {
        // Nothing better to do when stderr is gone too.
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}
