//! A per-scenario deadline. When a scenario hangs (typically in I/O the
//! module never completes), the watchdog reports it, asks the kernel to dump
//! blocked tasks to the console (sysrq `w`) and powers off without syncing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::proto;

static ARMED: Mutex<Option<(String, Instant)>> = Mutex::new(None);

/// Starts the watchdog thread; each armed scenario gets `limit`.
pub fn start(limit: Duration) {
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(1));
            let expired = {
                let armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
                match &*armed {
                    Some((name, since)) if since.elapsed() > limit => Some(name.clone()),
                    _ => None,
                }
            };
            if let Some(name) = expired {
                fire(&name, limit);
            }
        });
    if let Err(e) = spawned {
        proto::PROTO.note(&format!("watchdog not started: {e}"));
    }
}

pub fn arm(name: &str) {
    *ARMED.lock().unwrap_or_else(|e| e.into_inner()) = Some((name.to_owned(), Instant::now()));
}

pub fn disarm() {
    *ARMED.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

fn fire(name: &str, limit: Duration) -> ! {
    proto::PROTO.time_out(
        name,
        &format!(
            "timed out after {} s (watchdog); blocked tasks follow in the kernel log",
            limit.as_secs()
        ),
    )
}
