//! The guest's disks (found by serial through snapcore's own scanner), mounts, and
//! helpers around the job manager.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount, MsFlags};
use snapcore::jobs::{BackupReport, JobInfo, JobResult, JobSpec, JobState};
use snapcore::{Device, JobManager, JobManagerConfig, Scanner};

/// Waits until disks with every serial in `wanted` are listed.
pub fn disks(wanted: &[&str]) -> Result<BTreeMap<String, Device>> {
    let start = Instant::now();
    loop {
        let devs = Scanner::system().scan()?;
        let found: BTreeMap<String, Device> = devs
            .into_iter()
            .filter(|d| d.kind == snapcore::devices::DeviceKind::Disk)
            .filter_map(|d| d.serial.clone().map(|s| (s, d)))
            .collect();
        if wanted.iter().all(|s| found.contains_key(*s)) {
            return Ok(found);
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!(
                "disks {wanted:?} did not all appear (found {:?})",
                found.keys().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Mounts the ext4 filesystem on `dev` at `at` (created).
pub fn mount_ext4(dev: &Path, at: &str) -> Result<()> {
    std::fs::create_dir_all(at).with_context(|| format!("mkdir {at}"))?;
    mount(Some(dev), at, Some("ext4"), MsFlags::empty(), None::<&str>)
        .with_context(|| format!("mount {} on {at}", dev.display()))?;
    Ok(())
}

pub fn unmount(at: &str) -> Result<()> {
    nix::unistd::sync();
    umount(at).with_context(|| format!("umount {at}"))?;
    Ok(())
}

/// A job manager on the real machine.
pub fn manager() -> JobManager {
    JobManager::new(JobManagerConfig {
        tool_version: "coreguest".to_owned(),
        ..JobManagerConfig::default()
    })
}

/// Submits a job and waits (up to 20 minutes) for it to finish.
pub fn run_job(jm: &JobManager, spec: JobSpec) -> Result<JobInfo> {
    let id = jm.submit(spec)?;
    let info = jm.wait(id, Some(Duration::from_secs(1200)))?;
    if !info.state.is_finished() {
        bail!("job {id} did not finish: {info:?}");
    }
    Ok(info)
}

/// The job's error message, or "".
pub fn err_of(info: &JobInfo) -> String {
    info.error
        .as_ref()
        .map(|e| format!("{}: {}", e.code, e.message))
        .unwrap_or_default()
}

/// Requires the job to be done; returns its backup report.
pub fn backup_done(info: &JobInfo) -> Result<BackupReport> {
    if info.state != JobState::Done {
        bail!(
            "job {} ({}) ended {:?}: {}; log: {}",
            info.id,
            info.description,
            info.state,
            err_of(info),
            info.log.join(" / ")
        );
    }
    match &info.result {
        Some(JobResult::Backup(b)) => Ok((**b).clone()),
        other => bail!("job {} has no backup result: {other:?}", info.id),
    }
}

/// Requires the job to have failed with `code`; returns the message.
pub fn failed_with(info: &JobInfo, code: &str) -> Result<String> {
    match &info.error {
        Some(e) if info.state == JobState::Failed && e.code == code => Ok(e.message.clone()),
        _ => bail!(
            "job {} should have failed with {code}; it ended {:?}: {}",
            info.id,
            info.state,
            err_of(info)
        ),
    }
}
