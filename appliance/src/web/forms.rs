//! The forms (POST): each checks the CSRF token, calls the same operation as its REST
//! call, queues a flash message saying what happened (or why not), and redirects.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use ipnet::IpNet;
use serde::Deserialize;
use snapcore::jobs::{ExportFormat, JobId};
use snapcore::{DiffStorage, Take};

use super::pages::{layout, message};
use super::views::{bytes, MessagePage};
use super::{render, url_encode, WebSession};
use crate::api::failure::ApiPath;
use crate::api::{ApiError, AppState};
use crate::services::exports::{self, parse_client, ExportError, ExportSource, ExportSpec};
use crate::services::nfs::NfsConfig;
use crate::services::ops::RestoreTo;
use crate::services::target::{FileArea, TargetConfig};
use crate::services::web::FlashKind;
use crate::services::{unix_now, Level, Services};

/// A form with only the CSRF token.
#[derive(Debug, Default, Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// A posted form's fields, in order (keys may repeat, e.g. several checked devices).
pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// The first value of `key`, trimmed ("" when absent).
    pub fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every non-empty value of `key`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }
}

type Posted = Result<Form<Vec<(String, String)>>, FormRejection>;

/// The form's fields when its CSRF token belongs to the session; else the page to send.
fn checked(
    state: &AppState,
    session: &WebSession,
    posted: Posted,
) -> Result<FormData, Box<Response>> {
    let fields = match posted {
        Ok(Form(fields)) => FormData(fields),
        Err(rejection) => {
            let err = ApiError::BadRequest(rejection.body_text());
            return Err(Box::new(message(state, session, &err)));
        }
    };
    if state
        .services
        .csrf
        .verify(&session.token, fields.get("csrf"))
    {
        return Ok(fields);
    }
    let page = MessagePage {
        layout: layout(state, session, "This form has expired", ""),
        text: "Its security token does not belong to your session (the appliance restarted, \
               or you logged in again). Go back, reload the page and submit it again."
            .to_owned(),
    };
    let mut response = render(&page);
    *response.status_mut() = StatusCode::FORBIDDEN;
    Err(Box::new(response))
}

/// Runs core work off the async threads.
async fn run<T, F>(state: &AppState, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&Services) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let services = state.services.clone();
    crate::api::failure::blocking(move || work(&services)).await
}

/// Flash and redirect.
fn done(
    state: &AppState,
    session: &WebSession,
    kind: FlashKind,
    text: String,
    to: &str,
) -> Response {
    session.flash(state, kind, text);
    Redirect::to(to).into_response()
}

/// The outcome of a form that changes a setting: back to `to` with `said(value)`, or with
/// `failed: reason`.
fn settled<T>(
    state: &AppState,
    session: &WebSession,
    result: Result<T, ApiError>,
    said: impl FnOnce(T) -> String,
    failed: &str,
    to: &str,
) -> Response {
    let (kind, text) = match result {
        Ok(value) => (FlashKind::Success, said(value)),
        Err(e) => (FlashKind::Error, format!("{failed}: {e}")),
    };
    done(state, session, kind, text, to)
}

/// The outcome of a form that starts a job: to the job's page, or back with the reason.
fn job_started(
    state: &AppState,
    session: &WebSession,
    what: &str,
    result: Result<JobId, ApiError>,
    back: &str,
) -> Response {
    match result {
        Ok(id) => done(
            state,
            session,
            FlashKind::Success,
            format!("{what} started as job {id}."),
            &format!("/jobs/{id}"),
        ),
        Err(e) => done(
            state,
            session,
            FlashKind::Error,
            format!("{what} could not start: {e}"),
            back,
        ),
    }
}

/// The difference storage chosen in a form: a scratch device (`scratch`, with
/// `overwrite`), or a file (`scratch_file` with `scratch_size_mib`).
fn storage(form: &FormData) -> Result<DiffStorage, ApiError> {
    let file = form.get("scratch_file");
    if !file.is_empty() {
        let mib: u64 = form.get("scratch_size_mib").parse().map_err(|_| {
            ApiError::BadRequest("give the size of the difference storage file in MiB".into())
        })?;
        return Ok(DiffStorage::file(file, mib.saturating_mul(1 << 20)));
    }
    let device = form.get("scratch");
    if device.is_empty() {
        return Err(ApiError::BadRequest(
            "choose a scratch disk for the difference storage".into(),
        ));
    }
    Ok(DiffStorage::Device {
        device: device.to_owned(),
        overwrite: form.get("overwrite") == "on",
    })
}

/// `POST /backups`: starts a backup.
pub async fn start_backup(
    State(state): State<AppState>,
    session: WebSession,
    posted: Posted,
) -> Response {
    let form = match checked(&state, &session, posted) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let device = form.get("device").to_owned();
    let full = form.get("mode") == "full";
    let back = match form.get("back") {
        b if b.starts_with("/disks/") => b.to_owned(),
        _ => "/backups".to_owned(),
    };
    let what = format!("Backup of {device}");
    let result = match storage(&form) {
        Ok(storage) => run(&state, move |s| Ok(s.start_backup(&device, storage, full)?)).await,
        Err(e) => Err(e),
    };
    job_started(&state, &session, &what, result, &back)
}

/// `POST /backups/{id}/restore`.
pub async fn restore(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<String>,
    posted: Posted,
) -> Response {
    let form = match checked(&state, &session, posted) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let back = format!("/backups/{}", url_encode(&id));
    let to = if form.get("destination") == "device" {
        RestoreTo::Device(form.get("device").to_owned())
    } else {
        RestoreTo::File(form.get("name").to_owned())
    };
    let what = format!("Restore of {id}");
    let result = run(&state, move |s| Ok(s.start_restore(&id, &to)?)).await;
    job_started(&state, &session, &what, result, &back)
}

/// `POST /backups/{id}/verify`.
pub async fn verify(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<String>,
    posted: Posted,
) -> Response {
    if let Err(r) = checked(&state, &session, posted) {
        return *r;
    }
    let back = format!("/backups/{}", url_encode(&id));
    let what = format!("Verification of {id}");
    let result = run(&state, move |s| Ok(s.start_verify(&id)?)).await;
    job_started(&state, &session, &what, result, &back)
}

/// `POST /backups/{id}/export`.
pub async fn export(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<String>,
    posted: Posted,
) -> Response {
    let form = match checked(&state, &session, posted) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let back = format!("/backups/{}", url_encode(&id));
    let format = if form.get("format") == "qcow2" {
        ExportFormat::Qcow2
    } else {
        ExportFormat::Raw
    };
    let name = Some(form.get("name").to_owned()).filter(|n| !n.is_empty());
    let what = format!("Export of {id}");
    let result = run(&state, move |s| {
        Ok(s.start_export(&id, format, name.as_deref())?)
    })
    .await;
    job_started(&state, &session, &what, result, &back)
}

/// `POST /backups/{id}/delete`.
pub async fn delete_backup(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<String>,
    posted: Posted,
) -> Response {
    if let Err(r) = checked(&state, &session, posted) {
        return *r;
    }
    let shown = id.clone();
    match run(&state, move |s| Ok(s.delete_backup(&id)?)).await {
        Ok(()) => done(
            &state,
            &session,
            FlashKind::Success,
            format!("Backup {shown} deleted."),
            "/backups",
        ),
        Err(e) => done(
            &state,
            &session,
            FlashKind::Error,
            format!("Backup {shown} was not deleted: {e}"),
            &format!("/backups/{}", url_encode(&shown)),
        ),
    }
}

/// `POST /files/{area}/{name}/delete`.
pub async fn delete_file(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath((area, name)): ApiPath<(FileArea, String)>,
    posted: Posted,
) -> Response {
    if let Err(r) = checked(&state, &session, posted) {
        return *r;
    }
    let shown = name.clone();
    let result = run(&state, move |s| Ok(s.delete_file(area, &name)?)).await;
    let failed = format!("{shown} was not deleted");
    settled(
        &state,
        &session,
        result,
        |()| format!("{shown} deleted."),
        &failed,
        "/backups",
    )
}

/// `POST /jobs/{id}/cancel`.
pub async fn cancel_job(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<u64>,
    posted: Posted,
) -> Response {
    if let Err(r) = checked(&state, &session, posted) {
        return *r;
    }
    let (kind, text) = match state.services.jobs.cancel(JobId(id)) {
        Ok(info) if info.state.is_finished() && !info.cancel_requested => {
            (FlashKind::Info, format!("Job {id} had already finished."))
        }
        Ok(_) => (FlashKind::Success, format!("Job {id}: cancel requested.")),
        Err(e) => (FlashKind::Error, ApiError::from(e).to_string()),
    };
    done(&state, &session, kind, text, &format!("/jobs/{id}"))
}

/// `POST /snapshots`: creates a snapshot held until destroyed, and takes it unless the
/// form asks to take it later (from its page).
pub async fn create_snapshot(
    State(state): State<AppState>,
    session: WebSession,
    posted: Posted,
) -> Response {
    let form = match checked(&state, &session, posted) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let devices = form.all("devices");
    let take = if form.get("later").is_empty() {
        Take::Now
    } else {
        Take::Later
    };
    let result = match storage(&form) {
        Ok(storage) => {
            run(&state, move |s| {
                let names: Vec<&str> = devices.iter().map(String::as_str).collect();
                Ok(s.hold_snapshot(&names, &storage, take)?)
            })
            .await
        }
        Err(e) => Err(e),
    };
    let (done_what, failed_what) = match take {
        Take::Now => ("taken", "taken"),
        Take::Later => ("created (not taken yet)", "created"),
    };
    match result {
        Ok(info) => {
            let next = match take {
                Take::Now => "",
                Take::Later => " Take it when the disks are in the state you want.",
            };
            done(
                &state,
                &session,
                FlashKind::Success,
                format!(
                    "Snapshot {done_what}: {} of difference storage ready.{next}",
                    bytes(info.storage.total_bytes)
                ),
                &format!("/snapshots/{}", info.id),
            )
        }
        Err(e) => done(
            &state,
            &session,
            FlashKind::Error,
            format!("The snapshot was not {failed_what}: {e}"),
            "/snapshots",
        ),
    }
}

/// `POST /snapshots/{id}/take`: the point in time of a snapshot created for later.
pub async fn take_snapshot(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<String>,
    posted: Posted,
) -> Response {
    if let Err(r) = checked(&state, &session, posted) {
        return *r;
    }
    let shown = id.clone();
    match run(&state, move |s| Ok(s.take_snapshot(&id)?)).await {
        Ok(_) => done(
            &state,
            &session,
            FlashKind::Success,
            format!("Snapshot {shown} taken; its images are readable."),
            &format!("/snapshots/{shown}"),
        ),
        Err(e) => done(
            &state,
            &session,
            FlashKind::Error,
            format!("Snapshot {shown} was not taken: {e}"),
            &format!("/snapshots/{shown}"),
        ),
    }
}

/// `POST /snapshots/{id}/destroy`.
pub async fn destroy_snapshot(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<String>,
    posted: Posted,
) -> Response {
    if let Err(r) = checked(&state, &session, posted) {
        return *r;
    }
    let shown = id.clone();
    match run(&state, move |s| Ok(s.destroy_snapshot(&id)?)).await {
        Ok(()) => done(
            &state,
            &session,
            FlashKind::Success,
            format!("Snapshot {shown} released."),
            "/snapshots",
        ),
        Err(e) => done(
            &state,
            &session,
            FlashKind::Error,
            format!("Snapshot {shown} was not released: {e}"),
            &format!("/snapshots/{shown}"),
        ),
    }
}

fn target_config(form: &FormData) -> Result<TargetConfig, ApiError> {
    match form.get("kind") {
        "device" if !form.get("device").is_empty() => Ok(TargetConfig::Device {
            device: form.get("device").to_owned(),
        }),
        "directory" if !form.get("path").is_empty() => Ok(TargetConfig::Directory {
            path: form.get("path").into(),
        }),
        "s3" if !form.get("s3_endpoint").is_empty() => Ok(TargetConfig::S3(s3target::S3Config {
            endpoint: form.get("s3_endpoint").trim().to_owned(),
            region: form.get("s3_region").trim().to_owned(),
            bucket: form.get("s3_bucket").trim().to_owned(),
            prefix: form.get("s3_prefix").trim().to_owned(),
            access_key: form.get("s3_access_key").trim().to_owned(),
            secret_key: form.get("s3_secret_key").to_owned(),
            path_style: form.get("s3_path_style") == "on",
            verify_tls: form.get("s3_verify_tls") == "on",
            ca_cert_pem: None,
        })),
        "nfs" if !form.get("nfs_server").is_empty() => Ok(TargetConfig::Nfs(NfsConfig {
            server: form.get("nfs_server").trim().to_owned(),
            export: form.get("nfs_export").trim().to_owned(),
            port: match form.get("nfs_port").trim() {
                "" => None,
                p => Some(p.parse().map_err(|_| {
                    ApiError::BadRequest(format!("the NFS port {p:?} is not a port number"))
                })?),
            },
            version: Some(form.get("nfs_version").trim().to_owned()).filter(|v| !v.is_empty()),
        })),
        _ => Err(ApiError::BadRequest(
            "choose a disk with a filesystem, give a directory, an NFS server or an S3 endpoint"
                .into(),
        )),
    }
}

/// `POST /settings/target`: tests and saves the target.
pub async fn set_target(
    State(state): State<AppState>,
    session: WebSession,
    posted: Posted,
) -> Response {
    let form = match checked(&state, &session, posted) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let result = match target_config(&form) {
        Ok(config) => {
            run(&state, move |s| {
                let (resolved, space) = s.targets.set(config)?;
                s.events.record(
                    Level::Info,
                    "target",
                    format!("backup target set to {}", resolved.config.describe()),
                );
                Ok((resolved, space))
            })
            .await
        }
        Err(e) => Err(e),
    };
    settled(
        &state,
        &session,
        result,
        |(resolved, space)| {
            format!(
                "Backups now go to {} ({} free).",
                resolved.config.describe(),
                bytes(space.free_bytes)
            )
        },
        "The target was not changed",
        "/settings",
    )
}

/// `POST /settings/target/test`: tests without saving.
pub async fn test_target(
    State(state): State<AppState>,
    session: WebSession,
    posted: Posted,
) -> Response {
    let form = match checked(&state, &session, posted) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let result = match target_config(&form) {
        Ok(config) => run(&state, move |s| Ok(s.targets.test(&config)?)).await,
        Err(e) => Err(e),
    };
    settled(
        &state,
        &session,
        result,
        |(resolved, space)| {
            format!(
                "{} works: writable, {} free of {}.",
                resolved.config.describe(),
                bytes(space.free_bytes),
                bytes(space.total_bytes)
            )
        },
        "The test failed",
        "/settings",
    )
}

/// `POST /settings/target/reset`: back to the default target.
pub async fn reset_target(
    State(state): State<AppState>,
    session: WebSession,
    posted: Posted,
) -> Response {
    if let Err(r) = checked(&state, &session, posted) {
        return *r;
    }
    let result = run(&state, |s| Ok(s.targets.reset()?)).await;
    settled(
        &state,
        &session,
        result,
        |()| "The default target applies again.".to_owned(),
        "The setting was not reset",
        "/settings",
    )
}

/// `POST /settings/password`.
pub async fn change_password(
    State(state): State<AppState>,
    session: WebSession,
    posted: Posted,
) -> Response {
    let form = match checked(&state, &session, posted) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let current = form.get("current").to_owned();
    let new = form.get("new").to_owned();
    if new != form.get("confirm") {
        return done(
            &state,
            &session,
            FlashKind::Error,
            "The new password and its confirmation differ.".to_owned(),
            "/settings",
        );
    }
    let st = state.clone();
    let keep = session.token.clone();
    let result = crate::api::failure::blocking(move || {
        crate::api::settings::change_password(&st, &current, &new, Some(&keep))
    })
    .await;
    settled(
        &state,
        &session,
        result,
        |()| "Password changed; every other login session has ended.".to_owned(),
        "The password was not changed",
        "/settings",
    )
}

/// `POST /settings/config-disk`: formats the chosen disk and moves the settings onto it
/// (the form must confirm that the disk's content is lost).
pub async fn make_config_disk(
    State(state): State<AppState>,
    session: WebSession,
    posted: Posted,
) -> Response {
    let form = match checked(&state, &session, posted) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let device = form.get("device").to_owned();
    let overwrite = !form.get("overwrite").is_empty();
    let result = if device.is_empty() {
        Err(ApiError::BadRequest("choose a disk".to_owned()))
    } else if form.get("confirm").is_empty() {
        Err(ApiError::BadRequest(
            "tick the box that says everything on the disk is lost".to_owned(),
        ))
    } else {
        let st = state.clone();
        crate::api::failure::blocking(move || {
            crate::api::settings::make_config_disk(&st, &device, overwrite)
        })
        .await
    };
    settled(
        &state,
        &session,
        result,
        |view| {
            format!(
                "Settings are now kept on {}: they survive power-offs.",
                view.device.unwrap_or_default()
            )
        },
        "No config disk was made, nothing was written",
        "/settings#config-disk",
    )
}

/// `POST /settings/certificate`: installs a pasted certificate chain and key for HTTPS.
pub async fn install_certificate(
    State(state): State<AppState>,
    session: WebSession,
    posted: Posted,
) -> Response {
    let form = match checked(&state, &session, posted) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let (certificate, key) = (
        form.get("certificate").to_owned(),
        form.get("key").to_owned(),
    );
    let st = state.clone();
    let result = crate::api::failure::blocking(move || {
        crate::api::settings::install_certificate(&st, &certificate, &key)
    })
    .await;
    settled(
        &state,
        &session,
        result,
        |info| {
            format!(
                "Certificate for {} installed (SHA-256 {}): new connections use it.",
                info.subject, info.fingerprint_sha256
            )
        },
        "The certificate was not installed, the current one stays",
        "/settings",
    )
}

/// `POST /settings/certificate/regenerate`: a new self-signed certificate for HTTPS.
pub async fn regenerate_certificate(
    State(state): State<AppState>,
    session: WebSession,
    posted: Posted,
) -> Response {
    if let Err(r) = checked(&state, &session, posted) {
        return *r;
    }
    let st = state.clone();
    let result =
        crate::api::failure::blocking(move || crate::api::settings::regenerate_certificate(&st))
            .await;
    settled(
        &state,
        &session,
        result,
        |info| {
            format!(
                "New self-signed certificate, SHA-256 {}: your browser will ask to trust it again.",
                info.fingerprint_sha256
            )
        },
        "No new certificate was made",
        "/settings",
    )
}

/// `POST /settings/tokens`: the new token's secret is shown once, in the flash message.
pub async fn create_token(
    State(state): State<AppState>,
    session: WebSession,
    posted: Posted,
) -> Response {
    let form = match checked(&state, &session, posted) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let (kind, text) = match state.services.tokens.create(form.get("name"), unix_now()) {
        Ok((record, secret)) => {
            state.services.events.record(
                Level::Info,
                "system",
                format!("API token {} ({}) created", record.id, record.name),
            );
            (
                FlashKind::Info,
                format!(
                    "API token \u{201c}{}\u{201d} created. Copy it now, it is not shown again: {secret}",
                    record.name
                ),
            )
        }
        Err(e) => (FlashKind::Error, format!("No token was created: {e}")),
    };
    done(&state, &session, kind, text, "/settings")
}

/// `POST /settings/tokens/{id}/revoke`.
pub async fn revoke_token(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(id): ApiPath<String>,
    posted: Posted,
) -> Response {
    if let Err(r) = checked(&state, &session, posted) {
        return *r;
    }
    let (kind, text) = match state.services.tokens.revoke(&id) {
        Ok(record) => (
            FlashKind::Success,
            format!("API token \u{201c}{}\u{201d} revoked.", record.name),
        ),
        Err(e) => (FlashKind::Error, e.to_string()),
    };
    done(&state, &session, kind, text, "/settings")
}

/// The allowed clients typed in a form: addresses or networks separated by commas or
/// whitespace; a bare address is that one host (`/32`, `/128`).
pub fn parse_allow(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(parse_client)
        .collect()
}

/// The export described by the create form.
fn export_spec(form: &FormData) -> Result<ExportSpec, String> {
    let source = match form.get("kind") {
        "device" if !form.get("device").is_empty() => ExportSource::Device {
            device: form.get("device").to_owned(),
        },
        "snapshot" => {
            let (snapshot, device) = form
                .get("image")
                .split_once('/')
                .ok_or("choose a taken snapshot image to export")?;
            ExportSource::Snapshot {
                snapshot: snapshot.to_owned(),
                device: device.to_owned(),
            }
        }
        "backup" if !form.get("backup").is_empty() => ExportSource::Backup {
            backup: form.get("backup").to_owned(),
        },
        "device" => return Err("choose the disk to export".into()),
        "backup" => return Err("choose the backup to export".into()),
        _ => return Err("choose what to export: a disk, a snapshot image or a backup".into()),
    };
    let allow = parse_allow(form.get("allow"))?;
    if allow.is_empty() {
        return Err(ExportError::NoClients.to_string());
    }
    Ok(ExportSpec {
        name: form.get("name").to_owned(),
        source,
        read_only: form.get("read_only") == "on",
        allow,
        tls: form.get("tls") == "on",
    })
}

/// `POST /exports`: creates an NBD export (its source must open now).
pub async fn create_export(
    State(state): State<AppState>,
    session: WebSession,
    posted: Posted,
) -> Response {
    let form = match checked(&state, &session, posted) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let result = match export_spec(&form) {
        Ok(spec) => run(&state, move |s| Ok(exports::create(s, spec)?)).await,
        Err(text) => Err(ApiError::BadRequest(text)),
    };
    settled(
        &state,
        &session,
        result,
        |view| {
            let tls = if view.spec.tls {
                "TLS required"
            } else {
                "without TLS"
            };
            format!(
                "Export {} created: {}, {tls}.",
                view.spec.name, view.description
            )
        },
        "The export was not created",
        "/exports",
    )
}

/// `POST /exports/{name}/delete`: removes an export; connected clients' requests fail.
pub async fn delete_export(
    State(state): State<AppState>,
    session: WebSession,
    ApiPath(name): ApiPath<String>,
    posted: Posted,
) -> Response {
    if let Err(r) = checked(&state, &session, posted) {
        return *r;
    }
    let shown = name.clone();
    let result = run(&state, move |s| {
        s.exports.remove(&name)?;
        s.events
            .record(Level::Info, "exports", format!("NBD export {name} removed"));
        Ok(())
    })
    .await;
    let failed = format!("Export {shown} was not removed");
    settled(
        &state,
        &session,
        result,
        |()| format!("Export {shown} removed."),
        &failed,
        "/exports",
    )
}
