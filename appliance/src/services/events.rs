//! Recent events for the dashboard and `GET /api/v1/events`: job state changes, snapshot
//! events (storage appended, low space, corruption), target changes.
//!
//! The core keeps its own state; [`Watcher::observe`] compares successive views of jobs and
//! snapshots and turns the differences into [`Event`]s. The daemon calls it once a second.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use snapcore::jobs::{JobInfo, JobState};
use snapcore::session::{SessionInfo, SessionState};

/// Events kept; older ones are dropped.
pub const KEEP: usize = 500;

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    /// `info` / `warning` / `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Increasing from 1.
    pub id: u64,
    pub time_unix: u64,
    pub level: Level,
    /// `job`, `snapshot`, `target`, `system`.
    pub source: &'static str,
    pub message: String,
}

/// The ring of recent events.
#[derive(Debug, Default)]
pub struct EventLog {
    inner: Mutex<(u64, VecDeque<Event>)>,
}

impl EventLog {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an event; returns its id.
    pub fn record(&self, level: Level, source: &'static str, message: impl Into<String>) -> u64 {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0 += 1;
        let id = inner.0;
        inner.1.push_back(Event {
            id,
            time_unix: crate::services::unix_now(),
            level,
            source,
            message: message.into(),
        });
        while inner.1.len() > KEEP {
            inner.1.pop_front();
        }
        id
    }

    /// Events with an id greater than `after`, oldest first, at most `limit`.
    pub fn since(&self, after: u64, limit: usize) -> Vec<Event> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .1
            .iter()
            .filter(|e| e.id > after)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The newest `n` events, newest first.
    pub fn latest(&self, n: usize) -> Vec<Event> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.1.iter().rev().take(n).cloned().collect()
    }
}

/// What the watcher saw last time.
#[derive(Debug, Default)]
pub struct Watcher {
    jobs: BTreeMap<u64, JobState>,
    sessions: BTreeMap<String, (SessionState, usize)>,
}

impl Watcher {
    /// Records the differences between the last view and this one.
    pub fn observe(&mut self, log: &EventLog, jobs: &[JobInfo], sessions: &[SessionInfo]) {
        for job in jobs {
            let before = self.jobs.insert(job.id.0, job.state);
            if before == Some(job.state) {
                continue;
            }
            let (level, what) = match job.state {
                JobState::Queued => (Level::Info, "queued".to_owned()),
                JobState::Running => (Level::Info, "started".to_owned()),
                JobState::Done => (Level::Info, "finished".to_owned()),
                JobState::Cancelled => (Level::Warning, "was cancelled".to_owned()),
                JobState::Failed => (
                    Level::Error,
                    format!(
                        "failed: {}",
                        job.error
                            .as_ref()
                            .map_or("unknown error", |e| e.message.as_str())
                    ),
                ),
            };
            log.record(
                level,
                "job",
                format!("job {} ({}) {what}", job.id, job.description),
            );
        }
        self.jobs.retain(|id, _| jobs.iter().any(|j| j.id.0 == *id));

        for s in sessions {
            let (state_before, seen) = self
                .sessions
                .get(&s.id)
                .copied()
                .unwrap_or((SessionState::Created, 0));
            if !self.sessions.contains_key(&s.id) {
                let names: Vec<&str> = s.devices.iter().map(|d| d.device.name.as_str()).collect();
                log.record(
                    Level::Info,
                    "snapshot",
                    format!("snapshot {} of {} created", short(&s.id), names.join(", ")),
                );
            }
            for line in s.events.iter().skip(seen) {
                let level = if line.contains("low free space") {
                    Level::Warning
                } else {
                    Level::Info
                };
                log.record(
                    level,
                    "snapshot",
                    format!("snapshot {}: {}", short(&s.id), strip_offset(line)),
                );
            }
            if s.state == SessionState::Failed && state_before != SessionState::Failed {
                let why = s.error.as_ref().map_or("failed", |e| e.message.as_str());
                log.record(
                    Level::Error,
                    "snapshot",
                    format!("snapshot {}: {why}", short(&s.id)),
                );
            }
            self.sessions
                .insert(s.id.clone(), (s.state, s.events.len()));
        }
        let gone: Vec<String> = self
            .sessions
            .keys()
            .filter(|id| !sessions.iter().any(|s| &s.id == *id))
            .cloned()
            .collect();
        for id in gone {
            self.sessions.remove(&id);
            log.record(
                Level::Info,
                "snapshot",
                format!("snapshot {} released", short(&id)),
            );
        }
    }
}

/// The first block of a uuid.
fn short(id: &str) -> &str {
    id.split('-').next().unwrap_or(id)
}

/// `+1.2s text` → `text`.
fn strip_offset(line: &str) -> &str {
    match line.split_once(' ') {
        Some((first, rest)) if first.starts_with('+') && first.ends_with('s') => rest,
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest() {
        let log = EventLog::new();
        for i in 0..(KEEP + 10) {
            log.record(Level::Info, "system", format!("e{i}"));
        }
        let all = log.since(0, usize::MAX);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].id, 11);
        assert_eq!(log.latest(1)[0].message, format!("e{}", KEEP + 9));
        assert!(log.since(u64::MAX, 10).is_empty());
    }

    #[test]
    fn offsets_are_stripped() {
        assert_eq!(strip_offset("+1.5s low free space"), "low free space");
        assert_eq!(strip_offset("plain text"), "plain text");
        assert_eq!(short("0011-22"), "0011");
    }
}
