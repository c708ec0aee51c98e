//! The pages (GET): each gathers its data from [`crate::services`] off the async threads,
//! converts it with the API's views (so the UI shows what the API returns) and renders.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::views::*;
use super::{render, WebSession};
use crate::api::failure::ApiPath;
use crate::api::model::{
    BackupView, DeviceView, EventView, FileView, JobView, SnapshotView, TokenView,
};
use crate::api::{targets, ApiError, AppState, VERSION};
use crate::services::Services;

/// The frame of a page, with the session's pending flash messages.
pub fn layout(state: &AppState, session: &WebSession, title: &str, nav: &'static str) -> Layout {
    Layout {
        title: title.to_owned(),
        nav,
        csrf: session.csrf.clone(),
        flash: state
            .services
            .flash
            .take(&session.token)
            .into_iter()
            .map(FlashView::from)
            .collect(),
        version: VERSION,
        persistent: state.services.persistent(),
    }
}

/// A page saying something went wrong (404 for unknown things, else the error's status).
pub fn message(state: &AppState, session: &WebSession, err: &ApiError) -> Response {
    let heading = if err.status() == StatusCode::NOT_FOUND {
        "Not found".to_owned()
    } else {
        "Something went wrong".to_owned()
    };
    let page = MessagePage {
        layout: layout(state, session, &heading, ""),
        text: format!("{err} ({})", err.code()),
    };
    let mut response = render(&page);
    *response.status_mut() = err.status();
    response
}

async fn gather<T, F>(state: &AppState, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&Services) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let services = state.services.clone();
    crate::api::failure::blocking(move || work(&services)).await
}

fn device_views(services: &Services) -> Result<Vec<DeviceView>, ApiError> {
    Ok(services
        .jobs
        .devices()?
        .iter()
        .map(DeviceView::from)
        .collect())
}

/// Whole disks that can be backed up or snapshotted (prod0 preselected).
pub fn source_choices(devices: &[DeviceView]) -> Vec<DeviceChoice> {
    let mut out: Vec<DeviceChoice> = devices
        .iter()
        .filter(|d| d.fs_type.as_deref() != Some("blksnap_scratch"))
        .map(|d| DeviceChoice {
            id: d.id.clone(),
            label: choice_label(d),
            selected: d.serial.as_deref() == Some("prod0") && d.kind == "disk",
        })
        .collect();
    if !out.iter().any(|c| c.selected) {
        if let Some(first) = out.first_mut() {
            first.selected = true;
        }
    }
    out
}

/// Unused disks that can hold difference storage (scratch0 preselected).
pub fn scratch_choices(devices: &[DeviceView]) -> Vec<DeviceChoice> {
    devices
        .iter()
        .filter(|d| d.kind == "disk" && d.in_use.is_none())
        .filter(|d| {
            d.fs_type.is_none() && d.partition_table.is_none()
                || d.fs_type.as_deref() == Some("blksnap_scratch")
        })
        .map(|d| DeviceChoice {
            id: d.id.clone(),
            label: choice_label(d),
            selected: d.serial.as_deref() == Some("scratch0"),
        })
        .collect()
}

fn choice_label(d: &DeviceView) -> String {
    let mut label = format!("{} — {}", d.name, bytes(d.size_bytes));
    if let Some(serial) = &d.serial {
        label.push_str(&format!(", serial {serial}"));
    }
    if let Some(fs) = &d.fs_type {
        label.push_str(&format!(", {fs}"));
    }
    label
}

/// Disks and partitions that could become the config disk (not in use, big enough):
/// blank ones first; the others say what they hold.
fn config_disk_choices(devices: &[DeviceView]) -> Vec<DeviceChoice> {
    let mut candidates: Vec<&DeviceView> = devices
        .iter()
        .filter(|d| {
            d.in_use.is_none()
                && d.partitions.is_empty()
                && d.size_bytes >= crate::services::config_disk::MIN_BYTES
        })
        .collect();
    let holds_data = |d: &DeviceView| d.fs_type.is_some() || d.partition_table.is_some();
    candidates.sort_by_key(|d| holds_data(d));
    candidates
        .into_iter()
        .map(|d| DeviceChoice {
            id: d.id.clone(),
            label: if holds_data(d) {
                format!("{} (holds data: needs the box below)", choice_label(d))
            } else {
                format!("{} (blank)", choice_label(d))
            },
            selected: false,
        })
        .collect()
}

fn job_rows(services: &Services) -> Vec<JobRow> {
    let mut jobs: Vec<JobRow> = services
        .jobs
        .list()
        .iter()
        .map(|j| JobRow::from(&JobView::from(j)))
        .collect();
    jobs.reverse();
    jobs
}

fn snapshot_rows(services: &Services) -> Vec<SnapshotRow> {
    services
        .jobs
        .list_snapshots()
        .iter()
        .map(|s| {
            let job = services.jobs.snapshot(&s.id).ok().and_then(|(_, j)| j);
            SnapshotRow::from(&SnapshotView::new(s, job.map(|j| j.0)))
        })
        .collect()
}

/// `GET /`: disks, active snapshots, running jobs, last backups, target free space.
pub async fn dashboard(State(state): State<AppState>, session: WebSession) -> Response {
    let data = gather(&state, |s| {
        let disks: Vec<DiskRow> = match device_views(s) {
            Ok(d) => d.iter().map(DiskRow::from).collect(),
            Err(_) => Vec::new(),
        };
        let (backups, backups_error) = match s.catalogue() {
            Ok((cat, _)) => (
                cat.backups
                    .iter()
                    .rev()
                    .take(5)
                    .map(|m| BackupRow::from(&BackupView::from(m)))
                    .collect(),
                String::new(),
            ),
            Err(e) => (Vec::new(), ApiError::from(e).to_string()),
        };
        let jobs: Vec<JobRow> = job_rows(s).into_iter().take(6).collect();
        Ok((
            s.jobs.kernel().available(),
            disks,
            snapshot_rows(s),
            jobs,
            backups,
            backups_error,
            TargetBox::from(&targets::status(s)),
            s.events
                .latest(8)
                .iter()
                .map(|e| EventRow::from(&EventView::from(e)))
                .collect(),
        ))
    })
    .await;
    match data {
        Ok((module_loaded, disks, snapshots, jobs, backups, backups_error, target, events)) => {
            render(&DashboardPage {
                layout: layout(&state, &session, "Dashboard", "dashboard"),
                module_loaded,
                disks,
                snapshots,
                jobs,
                backups,
                backups_error,
                target,
                events,
            })
        }
        Err(e) => message(&state, &session, &e),
    }
}

/// `GET /disks`.
pub async fn disks(State(state): State<AppState>, session: WebSession) -> Response {
    let data = gather(&state, device_views).await;
    let (disks, error) = match data {
        Ok(d) => (d.iter().map(DiskRow::from).collect(), String::new()),
        Err(e) => (Vec::new(), e.to_string()),
    };
    render(&DisksPage {
        layout: layout(&state, &session, "Disks", "disks"),
        disks,
        error,
    })
}

/// `GET /disks/{id}`: one disk, a backup form, its backups.
pub async fn disk(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let data = gather(&state, move |s| {
        let device = DeviceView::from(&s.jobs.device(&id)?);
        let all = device_views(s)?;
        let backups: Vec<BackupRow> = match s.catalogue() {
            Ok((cat, _)) => cat
                .backups
                .iter()
                .rev()
                .filter(|m| m.disk.serial.is_some() && m.disk.serial == device.serial)
                .map(|m| BackupRow::from(&BackupView::from(m)))
                .collect(),
            Err(_) => Vec::new(),
        };
        Ok((device, scratch_choices(&all), backups))
    })
    .await;
    match data {
        Ok((device, scratch, backups)) => {
            let facts = disk_facts(&device);
            let title = format!("Disk {}", device.name);
            render(&DiskPage {
                layout: layout(&state, &session, &title, "disks"),
                disk: DiskRow::from(&device),
                facts,
                scratch,
                backups,
            })
        }
        Err(e) => message(&state, &session, &e),
    }
}

fn disk_facts(d: &DeviceView) -> Vec<(String, String)> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".to_owned());
    vec![
        ("Stable id".into(), d.id.clone()),
        ("Device node".into(), d.path.clone()),
        ("Major:minor".into(), d.dev.clone()),
        ("Kind".into(), d.kind.clone()),
        (
            "Size".into(),
            format!("{} ({} bytes)", bytes(d.size_bytes), d.size_bytes),
        ),
        (
            "Logical sector".into(),
            format!("{} bytes", d.logical_sector_size),
        ),
        ("Model".into(), opt(&d.model)),
        ("Serial".into(), opt(&d.serial)),
        ("WWN".into(), opt(&d.wwn)),
        ("Filesystem".into(), opt(&d.fs_type)),
        ("Label".into(), opt(&d.fs_label)),
        ("Partition table".into(), opt(&d.partition_table)),
        ("Partitions".into(), d.partitions.join(", ")),
        ("Mounted at".into(), d.mount_points.join(", ")),
        ("In use".into(), opt(&d.in_use)),
        (
            "Read-only".into(),
            if d.read_only { "yes" } else { "no" }.into(),
        ),
    ]
}

/// `GET /snapshots`: live snapshots and the form to take one.
pub async fn snapshots(State(state): State<AppState>, session: WebSession) -> Response {
    let data = gather(&state, |s| Ok((snapshot_rows(s), device_views(s)?))).await;
    match data {
        Ok((snapshots, devices)) => render(&SnapshotsPage {
            layout: layout(&state, &session, "Snapshots", "snapshots"),
            snapshots,
            devices: source_choices(&devices),
            scratch: scratch_choices(&devices),
        }),
        Err(e) => message(&state, &session, &e),
    }
}

/// `GET /snapshots/{id}`.
pub async fn snapshot(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<String>,
) -> Response {
    match state.services.jobs.snapshot(&id) {
        Ok((info, job)) => render(&SnapshotPage {
            layout: layout(&state, &session, "Snapshot", "snapshots"),
            snapshot: SnapshotRow::from(&SnapshotView::new(&info, job.map(|j| j.0))),
        }),
        Err(e) => message(&state, &session, &e.into()),
    }
}

/// `GET /jobs`: every job with live progress bars.
pub async fn jobs(State(state): State<AppState>, session: WebSession) -> Response {
    render(&JobsPage {
        layout: layout(&state, &session, "Jobs", "jobs"),
        jobs: job_rows(&state.services),
    })
}

/// `GET /jobs/{id}`: one job with its progress, log and result.
pub async fn job(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<u64>,
) -> Response {
    match state.services.jobs.get(snapcore::jobs::JobId(id)) {
        Ok(info) => {
            let title = format!("Job {id}");
            render(&JobPage {
                layout: layout(&state, &session, &title, "jobs"),
                job: JobRow::from(&JobView::from(&info)),
            })
        }
        Err(e) => message(&state, &session, &e.into()),
    }
}

/// `GET /backups`: the catalogue, the backup form, restored and exported files.
pub async fn backups(State(state): State<AppState>, session: WebSession) -> Response {
    let data = gather(&state, |s| {
        let devices = device_views(s).unwrap_or_default();
        let (backups, repository, error) = match s.catalogue() {
            Ok((cat, resolved)) => (
                cat.backups
                    .iter()
                    .rev()
                    .map(|m| BackupRow::from(&BackupView::from(m)))
                    .collect(),
                resolved.repo_dir().display().to_string(),
                String::new(),
            ),
            Err(e) => (Vec::new(), String::new(), ApiError::from(e).to_string()),
        };
        let files = s
            .files()
            .map(|files| {
                files
                    .into_iter()
                    .map(|f| {
                        FileRow::from(&FileView::new(
                            f.area,
                            f.name,
                            f.size_bytes,
                            f.modified_unix,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok((devices, backups, repository, error, files))
    })
    .await;
    match data {
        Ok((devices, backups, repository, error, files)) => render(&BackupsPage {
            layout: layout(&state, &session, "Backups", "backups"),
            backups,
            repository,
            error,
            devices: source_choices(&devices),
            scratch: scratch_choices(&devices),
            files,
        }),
        Err(e) => message(&state, &session, &e),
    }
}

/// `GET /backups/{id}`: one backup and its restore, verify, export and delete forms.
pub async fn backup(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let data = gather(&state, move |s| {
        let manifest = s.manifest(&id)?;
        Ok((
            BackupView::from(&manifest),
            device_views(s).unwrap_or_default(),
        ))
    })
    .await;
    match data {
        Ok((view, devices)) => {
            let row = BackupRow::from(&view);
            let facts = vec![
                ("Backup id".to_owned(), view.backup_id.clone()),
                ("Kind".to_owned(), view.kind.clone()),
                (
                    "Parent".to_owned(),
                    view.parent.clone().unwrap_or_else(|| "—".into()),
                ),
                ("Created".to_owned(), row.created.clone()),
                (
                    "Image size".to_owned(),
                    format!("{} ({} bytes)", bytes(view.image_size), view.image_size),
                ),
                (
                    "Chunks".to_owned(),
                    format!(
                        "{} of {}",
                        view.chunk_count,
                        bytes(u64::from(view.chunk_size))
                    ),
                ),
                ("Read".to_owned(), bytes(view.read_bytes)),
                (
                    "New chunks".to_owned(),
                    format!("{} ({} stored)", view.new_chunks, bytes(view.stored_bytes)),
                ),
                (
                    "Image SHA-256".to_owned(),
                    view.image_sha256
                        .clone()
                        .unwrap_or_else(|| "— (incremental)".into()),
                ),
                ("Written by".to_owned(), view.tool_version.clone()),
            ];
            let restore_targets = devices
                .iter()
                .filter(|d| d.in_use.is_none() && d.size_bytes >= view.image_size)
                .map(|d| DeviceChoice {
                    id: d.id.clone(),
                    label: choice_label(d),
                    selected: false,
                })
                .collect();
            let title = format!("Backup {}", view.backup_id);
            render(&BackupPage {
                layout: layout(&state, &session, &title, "backups"),
                backup: row,
                facts,
                devices: restore_targets,
            })
        }
        Err(e) => message(&state, &session, &e),
    }
}

/// `GET /settings`: target, password, API tokens.
pub async fn settings(State(state): State<AppState>, session: WebSession) -> Response {
    let data = gather(&state, |s| {
        Ok((
            TargetBox::from(&targets::status(s)),
            device_views(s).unwrap_or_default(),
        ))
    })
    .await;
    match data {
        Ok((target, devices)) => {
            let tokens: Vec<TokenRow> = state
                .services
                .tokens
                .list()
                .iter()
                .map(|t| TokenRow::from(&TokenView::from(t)))
                .collect();
            let choices = devices
                .iter()
                .filter(|d| d.fs_type.is_some() && d.fs_type.as_deref() != Some("blksnap_scratch"))
                .map(|d| DeviceChoice {
                    id: d.id.clone(),
                    label: choice_label(d),
                    selected: target.device == d.id,
                })
                .collect();
            render(&SettingsPage {
                layout: layout(&state, &session, "Settings", "settings"),
                target,
                devices: choices,
                tokens,
                certificate: state.https.get().map(|h| CertificateBox::from(&h.info())),
                config_disk: crate::services::config_disk::view(&state.services),
                config_choices: config_disk_choices(&devices),
            })
        }
        Err(e) => message(&state, &session, &e),
    }
}

/// Taken snapshot images that can be exported, as `snapshot id/device id`.
fn image_choices(services: &Services) -> Vec<DeviceChoice> {
    services
        .jobs
        .list_snapshots()
        .iter()
        .flat_map(|s| {
            s.devices.iter().filter_map(move |d| {
                let image = d.image.as_ref()?;
                Some(DeviceChoice {
                    id: format!("{}/{}", s.id, d.device.id),
                    label: format!(
                        "{} ({}) in snapshot {} — {}",
                        d.device.label(),
                        d.device.name,
                        s.id,
                        image.display()
                    ),
                    selected: false,
                })
            })
        })
        .collect()
}

/// `GET /exports`: the NBD exports, the form to add one, and the CA certificate.
pub async fn exports(
    State(state): State<AppState>,
    session: WebSession,
    headers: HeaderMap,
) -> Response {
    let host = host_part(headers.get(header::HOST).and_then(|v| v.to_str().ok()));
    let data = gather(&state, |s| {
        let views = crate::services::exports::views(s);
        let devices: Vec<DeviceChoice> = device_views(s)
            .unwrap_or_default()
            .iter()
            .filter(|d| d.fs_type.as_deref() != Some("blksnap_scratch"))
            .map(|d| DeviceChoice {
                id: d.id.clone(),
                label: choice_label(d),
                selected: false,
            })
            .collect();
        let (backups, backups_error) = match s.catalogue() {
            Ok((cat, _)) => (
                cat.backups
                    .iter()
                    .rev()
                    .map(|m| {
                        let row = BackupRow::from(&BackupView::from(m));
                        DeviceChoice {
                            label: format!(
                                "{} — {} {}, {}, {}",
                                row.id, row.kind, row.disk, row.size, row.created
                            ),
                            id: row.id,
                            selected: false,
                        }
                    })
                    .collect(),
                String::new(),
            ),
            Err(e) => (Vec::new(), ApiError::from(e).to_string()),
        };
        Ok((views, devices, image_choices(s), backups, backups_error))
    })
    .await;
    match data {
        Ok((views, devices, images, backups, backups_error)) => render(&ExportsPage {
            layout: layout(&state, &session, "Exports", "exports"),
            exports: views.iter().map(|v| ExportRow::new(v, &host)).collect(),
            devices,
            images,
            backups,
            backups_error,
            ca_available: state.services.nbd_ca.get().is_some(),
            host,
        }),
        Err(e) => message(&state, &session, &e),
    }
}
