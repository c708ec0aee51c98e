//! Supervising the daemon: start `appliance serve`, reap every child, log a crash and
//! restart the daemon (with a growing delay when it keeps crashing), and turn signals
//! into a shutdown reason.

use std::collections::VecDeque;
use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::AsFd;

use super::configdisk::StateDir;
use super::log;
use crate::serve::EXIT_POWEROFF;

/// Crashes counted for the restart delay.
const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// The longest delay before a restart.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// The signals init handles; blocked in every thread and read from a signalfd.
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGPWR,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGQUIT,
    ] {
        set.add(sig);
    }
    set
}

/// Why the appliance shuts down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `POST /api/v1/shutdown`.
    Api,
    /// A signal to init (SIGPWR also from the power button watcher; SIGINT from
    /// ctrl-alt-del).
    Signal(Signal),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Api => write!(f, "requested over the API"),
            Reason::Signal(Signal::SIGPWR) => write!(f, "power button or SIGPWR"),
            Reason::Signal(Signal::SIGINT) => write!(f, "ctrl-alt-del or SIGINT"),
            Reason::Signal(sig) => write!(f, "{sig} received"),
        }
    }
}

/// The daemon supervisor.
pub struct Supervisor {
    signals: SignalFd,
    daemon: Option<Pid>,
    restart_at: Option<Instant>,
    crashes: VecDeque<Instant>,
    exe: PathBuf,
    state: StateDir,
    /// Set once shutdown began: an exiting daemon is expected, not restarted.
    stopping: bool,
}

impl Supervisor {
    /// Takes the signalfd of [`handled_signals`] (already blocked).
    pub fn new(signals: SignalFd, state: StateDir) -> Self {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/init"));
        Supervisor {
            signals,
            daemon: None,
            restart_at: None,
            crashes: VecDeque::new(),
            exe,
            state,
            stopping: false,
        }
    }

    /// Opens the signalfd for the blocked [`handled_signals`].
    pub fn signalfd() -> nix::Result<SignalFd> {
        SignalFd::with_flags(
            &handled_signals(),
            SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
        )
    }

    /// Starts the daemon and supervises it until a shutdown is asked for.
    pub fn run(&mut self) -> Reason {
        self.start_daemon();
        loop {
            let timeout = self
                .restart_at
                .map(|at| at.saturating_duration_since(Instant::now()));
            self.wait_for_signal(timeout);
            if self.restart_at.is_some_and(|at| at <= Instant::now()) {
                self.restart_at = None;
                self.start_daemon();
            }
            if let Some(reason) = self.drain_signals() {
                return reason;
            }
        }
    }

    /// Stops the daemon: SIGTERM, up to `grace` for it to exit, then SIGKILL.
    pub fn stop_daemon(&mut self, grace: Duration) {
        self.stopping = true;
        self.restart_at = None;
        let Some(pid) = self.daemon else {
            log("shutdown: daemon already stopped");
            return;
        };
        log(&format!("shutdown: stopping the daemon (pid {pid})"));
        let _ = kill(pid, Signal::SIGTERM);
        if self.wait_daemon_gone(grace) {
            log("shutdown: daemon stopped");
            return;
        }
        log("shutdown: the daemon did not stop in time; killing it");
        let _ = kill(pid, Signal::SIGKILL);
        if !self.wait_daemon_gone(Duration::from_secs(5)) {
            log("shutdown: the daemon is still there; going on");
        }
    }

    /// Sends `sig` to every other process, then waits up to `grace` for them to go.
    pub fn signal_all(&mut self, sig: Signal, grace: Duration) -> bool {
        // kill(-1) reaches every process but init itself.
        match kill(Pid::from_raw(-1), sig) {
            Err(Errno::ESRCH) => return true,
            Err(err) => log(&format!("shutdown: kill(-1, {sig}): {err}")),
            Ok(()) => {}
        }
        let deadline = Instant::now() + grace;
        loop {
            self.reap_all();
            if matches!(
                waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
                Err(Errno::ECHILD)
            ) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.wait_for_signal(Some(left.min(Duration::from_millis(200))));
            let _ = self.read_pending();
        }
    }

    fn wait_daemon_gone(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            self.reap_all();
            if self.daemon.is_none() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.wait_for_signal(Some(left));
            let _ = self.read_pending();
        }
    }

    fn start_daemon(&mut self) {
        let mut cmd = Command::new(&self.exe);
        cmd.arg0("appliance")
            .arg("serve")
            .arg("--boot-config")
            .arg("--supervised")
            .arg("--state-dir")
            .arg(&self.state.path);
        if !self.state.persistent() {
            cmd.arg("--ephemeral-state");
        }
        match cmd.spawn() {
            Ok(child) => {
                // The child is reaped through waitpid(-1) below, not through `child`.
                let pid = Pid::from_raw(child.id() as i32);
                log(&format!("daemon started (pid {pid})"));
                self.daemon = Some(pid);
            }
            Err(err) => {
                log(&format!("cannot start the daemon: {err}"));
                self.schedule_restart();
            }
        }
    }

    fn schedule_restart(&mut self) {
        let now = Instant::now();
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW)
        {
            self.crashes.pop_front();
        }
        let delay = restart_delay(self.crashes.len());
        log(&format!("restarting the daemon in {} s", delay.as_secs()));
        self.restart_at = Some(now + delay);
    }

    fn wait_for_signal(&self, timeout: Option<Duration>) {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::try_from(d.as_millis().min(i32::MAX as u128) as i32)
                .unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
        // EINTR and friends just mean "look again".
        let _ = poll(&mut fds, timeout);
    }

    /// Reads every pending signal; returns a shutdown reason if one came.
    fn drain_signals(&mut self) -> Option<Reason> {
        let mut reason = None;
        for sig in self.read_pending() {
            match sig {
                Signal::SIGCHLD => {}
                Signal::SIGHUP | Signal::SIGUSR1 => {
                    log(&format!("{sig} ignored"));
                }
                other => {
                    reason.get_or_insert(Reason::Signal(other));
                }
            }
        }
        if let Some(exit) = self.reap_all() {
            reason.get_or_insert(exit);
        }
        reason
    }

    fn read_pending(&mut self) -> Vec<Signal> {
        let mut out = Vec::new();
        while let Ok(Some(info)) = self.signals.read_signal() {
            if let Ok(sig) = Signal::try_from(info.ssi_signo as i32) {
                out.push(sig);
            }
        }
        out
    }

    /// Reaps every exited child; handles the daemon's exit. Returns [`Reason::Api`]
    /// when the daemon asked for a power off.
    fn reap_all(&mut self) -> Option<Reason> {
        let mut reason = None;
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => status,
            };
            let Some(pid) = status.pid() else { continue };
            if self.daemon != Some(pid) {
                continue;
            }
            self.daemon = None;
            if self.stopping {
                log(&format!("daemon (pid {pid}) ended: {}", describe(status)));
                continue;
            }
            match status {
                WaitStatus::Exited(_, code) if code == i32::from(EXIT_POWEROFF) => {
                    log("daemon stopped for a power off");
                    reason = Some(Reason::Api);
                }
                WaitStatus::Exited(_, 0) => {
                    log(&format!("daemon (pid {pid}) exited"));
                    self.schedule_restart();
                }
                WaitStatus::Exited(_, code) => {
                    log(&format!("daemon (pid {pid}) crashed: exit status {code}"));
                    self.schedule_restart();
                }
                WaitStatus::Signaled(_, sig, core) => {
                    log(&format!(
                        "daemon (pid {pid}) crashed: killed by {sig}{}",
                        if core { " (core dumped)" } else { "" }
                    ));
                    self.schedule_restart();
                }
                _ => {}
            }
        }
        reason
    }
}

fn describe(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {sig}"),
        other => format!("{other:?}"),
    }
}

/// The wait before restart number `crashes` within the window: 1 s, 2 s, 4 s ... 30 s.
pub fn restart_delay(crashes: usize) -> Duration {
    let exp = crashes.saturating_sub(1).min(5) as u32;
    (Duration::from_secs(1) * 2u32.pow(exp)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_cap() {
        assert_eq!(restart_delay(1), Duration::from_secs(1));
        assert_eq!(restart_delay(2), Duration::from_secs(2));
        assert_eq!(restart_delay(4), Duration::from_secs(8));
        assert_eq!(restart_delay(50), MAX_DELAY);
    }
}
