//! The ACPI power button (QEMU `system_powerdown`, a press on real hardware): input
//! event devices named "Power Button" are read in a thread each; a key press sends
//! SIGPWR to init, which shuts down.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::log;

/// `EV_KEY` from `<linux/input-event-codes.h>`.
const EV_KEY: u16 = 1;
/// `KEY_POWER`.
const KEY_POWER: u16 = 116;
/// `struct input_event` on 64-bit: a 16-byte timeval, type, code, value.
const EVENT_SIZE: usize = 24;

/// Starts a watcher thread for every power button; logs what it found.
pub fn watch() {
    let devices = power_buttons();
    if devices.is_empty() {
        log("power button: none found (is the `button` module loaded?)");
        return;
    }
    let mut watching = Vec::new();
    for dev in devices {
        match File::open(&dev) {
            Ok(file) => {
                let name = dev.display().to_string();
                let spawned = std::thread::Builder::new()
                    .name("power-button".to_owned())
                    .spawn(move || read_events(file));
                match spawned {
                    Ok(_) => watching.push(name),
                    Err(err) => log(&format!("power button: {name}: {err}")),
                }
            }
            Err(err) => log(&format!("power button: {}: {err}", dev.display())),
        }
    }
    if !watching.is_empty() {
        log(&format!("power button: watching {}", watching.join(", ")));
    }
}

/// `/dev/input/eventN` of every input device named "Power Button".
fn power_buttons() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/class/input") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            if !name.starts_with("event") {
                return None;
            }
            let label = std::fs::read_to_string(entry.path().join("device/name")).ok()?;
            (label.trim() == "Power Button").then(|| Path::new("/dev/input").join(&name))
        })
        .collect();
    found.sort();
    found
}

fn read_events(mut file: File) {
    let mut buf = [0u8; EVENT_SIZE];
    loop {
        if file.read_exact(&mut buf).is_err() {
            return;
        }
        if is_power_press(&buf) {
            log("power button pressed");
            if let Err(err) = kill(Pid::this(), Signal::SIGPWR) {
                log(&format!("power button: cannot signal init: {err}"));
            }
        }
    }
}

/// Whether one `struct input_event` is a press of KEY_POWER.
pub fn is_power_press(event: &[u8; EVENT_SIZE]) -> bool {
    let kind = u16::from_ne_bytes([event[16], event[17]]);
    let code = u16::from_ne_bytes([event[18], event[19]]);
    let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
    kind == EV_KEY && code == KEY_POWER && value == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u16, code: u16, value: i32) -> [u8; EVENT_SIZE] {
        let mut buf = [0u8; EVENT_SIZE];
        buf[16..18].copy_from_slice(&kind.to_ne_bytes());
        buf[18..20].copy_from_slice(&code.to_ne_bytes());
        buf[20..24].copy_from_slice(&value.to_ne_bytes());
        buf
    }

    #[test]
    fn recognises_press_only() {
        assert!(is_power_press(&event(EV_KEY, KEY_POWER, 1)));
        assert!(!is_power_press(&event(EV_KEY, KEY_POWER, 0)), "release");
        assert!(!is_power_press(&event(0, 0, 0)), "EV_SYN");
        assert!(!is_power_press(&event(EV_KEY, 115, 1)), "another key");
    }
}
