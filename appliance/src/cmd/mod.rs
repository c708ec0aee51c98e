//! The CLI verbs that drive the running daemon over its root-only local socket with the
//! same REST API as the web UI, so jobs started here show there too. Every verb takes
//! `--json` (the daemon's JSON as sent) and otherwise prints a table or a line.
//!
//! With no daemon answering on the socket, a verb does the work itself: the process
//! starts the daemon's services and API on a private socket ([`LocalDaemon`]) and talks
//! to that, waiting for any job it starts (a job cannot outlive the process). Snapshots
//! held on request and the job list live in a daemon only, so `snapshot ...`, `jobs` and
//! `job` need one.

pub mod args;
mod http;
mod render;
mod wait;

use std::process::ExitCode;

use serde_json::{json, Value};

pub use args::Verb;
use args::{Format, SnapshotVerb, StorageArgs};
use http::{request, Failure, Reply};

use crate::cli::ClientArgs;
use crate::serve::local::LocalDaemon;

/// Runs one verb; failures are printed here (`error: <message> (<code>)`, exit 1).
pub fn run(mut verb: Verb) -> ExitCode {
    let json = client_of(&verb).json;
    let outcome = match in_process(&mut verb) {
        // Kept until the verb is done; dropping it stops the in-process services.
        Ok(local) => {
            let outcome = dispatch(verb);
            drop(local);
            outcome
        }
        Err(failure) => Err(failure),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report(json);
            ExitCode::FAILURE
        }
    }
}

/// When no daemon answers on the verb's socket: the in-process API, with the verb
/// pointed at it and told to wait for its job. `None` when a daemon answers.
fn in_process(verb: &mut Verb) -> Result<Option<LocalDaemon>, Failure> {
    let client = client_of(verb);
    if std::os::unix::net::UnixStream::connect(&client.socket).is_ok() {
        return Ok(None);
    }
    let socket = client.socket.display().to_string();
    if let Some(what) = daemon_only(verb) {
        return Err(Failure::NoDaemon {
            socket,
            cause: format!("{what} live in a running daemon"),
        });
    }
    let state_dir = client.state_dir.clone();
    let private_dir = std::env::temp_dir();
    let local = LocalDaemon::start(&state_dir, &private_dir).map_err(|err| {
        Failure::Other(format!(
            "no daemon at {socket}, and working without one failed: {err:#}"
        ))
    })?;
    if !client.json {
        eprintln!("appliance: no daemon at {socket}; working in this process");
    }
    let client = client_of_mut(verb);
    client.socket = local.socket().to_path_buf();
    if let Some(wait) = wait_of_mut(verb) {
        wait.wait = true;
    }
    Ok(Some(local))
}

/// What a verb needs a daemon for, if it does.
fn daemon_only(verb: &Verb) -> Option<&'static str> {
    match verb {
        Verb::Snapshot(_) => Some("snapshots held on request"),
        Verb::Jobs(_) | Verb::Job(_) => Some("jobs"),
        Verb::ConfigDisk(_) => Some("the settings it keeps"),
        _ => None,
    }
}

fn client_of_mut(verb: &mut Verb) -> &mut ClientArgs {
    match verb {
        Verb::Devices(c) | Verb::Backups(c) | Verb::Jobs(c) => c,
        Verb::Snapshot(SnapshotVerb::Create(a)) => &mut a.client,
        Verb::Snapshot(SnapshotVerb::List(c)) => c,
        Verb::Snapshot(SnapshotVerb::Destroy(a) | SnapshotVerb::Take(a)) => &mut a.client,
        Verb::Backup(a) => &mut a.client,
        Verb::Restore(a) => &mut a.client,
        Verb::Verify(a) => &mut a.client,
        Verb::Export(a) => &mut a.client,
        Verb::Job(a) => &mut a.client,
        Verb::ConfigDisk(a) => &mut a.client,
    }
}

fn wait_of_mut(verb: &mut Verb) -> Option<&mut args::WaitArgs> {
    match verb {
        Verb::Backup(a) => Some(&mut a.wait),
        Verb::Restore(a) => Some(&mut a.wait),
        Verb::Verify(a) => Some(&mut a.wait),
        Verb::Export(a) => Some(&mut a.wait),
        _ => None,
    }
}

fn client_of(verb: &Verb) -> &ClientArgs {
    match verb {
        Verb::Devices(c) | Verb::Backups(c) | Verb::Jobs(c) => c,
        Verb::Snapshot(SnapshotVerb::Create(a)) => &a.client,
        Verb::Snapshot(SnapshotVerb::List(c)) => c,
        Verb::Snapshot(SnapshotVerb::Destroy(a) | SnapshotVerb::Take(a)) => &a.client,
        Verb::Backup(a) => &a.client,
        Verb::Restore(a) => &a.client,
        Verb::Verify(a) => &a.client,
        Verb::Export(a) => &a.client,
        Verb::Job(a) => &a.client,
        Verb::ConfigDisk(a) => &a.client,
    }
}

/// Prints a reply: as sent with `--json`, else through `render`.
fn show(client: &ClientArgs, reply: &Reply, render: fn(&Value) -> String) {
    if client.json {
        println!("{}", reply.raw);
    } else {
        print!("{}", render(&reply.value));
    }
}

fn get(client: &ClientArgs, path: &str) -> Result<Reply, Failure> {
    request(&client.socket, "GET", path, None)
}

fn post(client: &ClientArgs, path: &str, body: &Value) -> Result<Reply, Failure> {
    request(&client.socket, "POST", path, Some(body))
}

fn dispatch(verb: Verb) -> Result<(), Failure> {
    match verb {
        Verb::Devices(c) => show(&c, &get(&c, "/api/v1/devices")?, render::devices),
        Verb::Backups(c) => show(&c, &get(&c, "/api/v1/backups")?, render::backups),
        Verb::Jobs(c) => show(&c, &get(&c, "/api/v1/jobs")?, render::jobs),
        Verb::Snapshot(SnapshotVerb::List(c)) => {
            show(&c, &get(&c, "/api/v1/snapshots")?, render::snapshots);
        }
        Verb::Snapshot(SnapshotVerb::Create(a)) => {
            let storage = storage(&a.storage)?
                .ok_or_else(|| Failure::Other("give --scratch or --scratch-file".into()))?;
            let body = json!({ "devices": a.devices, "storage": storage, "take": !a.later });
            show(
                &a.client,
                &post(&a.client, "/api/v1/snapshots", &body)?,
                render::snapshot,
            );
        }
        Verb::ConfigDisk(a) => {
            let reply = match &a.format {
                Some(device) => post(
                    &a.client,
                    "/api/v1/settings/config-disk",
                    &json!({ "device": device, "overwrite": a.overwrite }),
                )?,
                None => get(&a.client, "/api/v1/settings/config-disk")?,
            };
            show(&a.client, &reply, render::config_disk);
        }
        Verb::Snapshot(SnapshotVerb::Take(a)) => {
            let path = format!("/api/v1/snapshots/{}/take", segment(&a.id));
            show(
                &a.client,
                &post(&a.client, &path, &json!({}))?,
                render::snapshot,
            );
        }
        Verb::Snapshot(SnapshotVerb::Destroy(a)) => {
            let path = format!("/api/v1/snapshots/{}", segment(&a.id));
            request(&a.client.socket, "DELETE", &path, None)?;
            if a.client.json {
                println!("{}", json!({ "destroyed": a.id }));
            } else {
                println!("snapshot {} destroyed", a.id);
            }
        }
        Verb::Backup(a) => {
            let storage = match storage(&a.storage)? {
                Some(storage) => storage,
                None => default_scratch(&a.client)?,
            };
            let mode = if a.full { "full" } else { "auto" };
            let body = json!({ "device": a.device, "storage": storage, "mode": mode });
            let reply = post(&a.client, "/api/v1/backups", &body)?;
            wait::started(&a.client, a.wait.wait, &reply)?;
        }
        Verb::Restore(a) => {
            let destination = match a.to.strip_prefix("file:") {
                Some(name) => json!({ "kind": "file", "name": name }),
                None => json!({ "kind": "device", "device": a.to }),
            };
            let path = format!("/api/v1/backups/{}/restore", segment(&a.backup));
            let reply = post(&a.client, &path, &json!({ "destination": destination }))?;
            wait::started(&a.client, a.wait.wait, &reply)?;
        }
        Verb::Verify(a) => {
            let path = format!("/api/v1/backups/{}/verify", segment(&a.backup));
            let reply = post(&a.client, &path, &json!({}))?;
            wait::started(&a.client, a.wait.wait, &reply)?;
        }
        Verb::Export(a) => {
            let format = match a.format {
                Format::Raw => "raw",
                Format::Qcow2 => "qcow2",
            };
            let mut body = json!({ "format": format });
            if let Some(name) = &a.name {
                body["name"] = json!(name);
            }
            let path = format!("/api/v1/backups/{}/export", segment(&a.backup));
            let reply = post(&a.client, &path, &body)?;
            wait::started(&a.client, a.wait.wait, &reply)?;
        }
        Verb::Job(a) => {
            if a.cancel {
                let path = format!("/api/v1/jobs/{}/cancel", a.id);
                show(&a.client, &post(&a.client, &path, &json!({}))?, render::job);
            } else if a.wait.wait {
                wait::until_finished(&a.client, a.id)?;
            } else {
                let path = format!("/api/v1/jobs/{}", a.id);
                show(&a.client, &get(&a.client, &path)?, render::job);
            }
        }
    }
    Ok(())
}

/// The difference storage named on the command line, as the API's `storage` object.
fn storage(args: &StorageArgs) -> Result<Option<Value>, Failure> {
    if let Some(path) = &args.scratch_file {
        let mib = args.scratch_size_mib.unwrap_or(0);
        if mib == 0 {
            return Err(Failure::Other(
                "--scratch-size must be at least 1 MiB".into(),
            ));
        }
        return Ok(Some(json!({
            "kind": "file",
            "path": path.display().to_string(),
            "size_bytes": mib.saturating_mul(1 << 20),
        })));
    }
    Ok(args
        .scratch
        .as_ref()
        .map(|device| json!({ "kind": "device", "device": device, "overwrite": args.overwrite })))
}

/// Without --scratch a backup uses the unused disk with serial `scratch0`.
fn default_scratch(client: &ClientArgs) -> Result<Value, Failure> {
    let devices = get(client, "/api/v1/devices")?.value;
    let found = devices.as_array().and_then(|list| {
        list.iter()
            .find(|d| d["kind"] == "disk" && d["serial"] == "scratch0" && d["in_use"].is_null())
    });
    match found.and_then(|d| d["id"].as_str()) {
        Some(id) => Ok(json!({ "kind": "device", "device": id, "overwrite": false })),
        None => Err(Failure::Other(
            "no unused disk with serial scratch0 for the difference storage; give --scratch \
             DEVICE or --scratch-file PATH --scratch-size MIB"
                .into(),
        )),
    }
}

/// Percent-encodes a path segment (ids are plain, but a typo must not change the path).
fn segment(id: &str) -> String {
    let mut out = String::new();
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
