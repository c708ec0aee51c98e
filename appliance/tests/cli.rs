//! The daemon verbs of the CLI against a real `appliance serve` in host mode (a temporary
//! state directory and socket, HTTPS on a loopback port chosen by the kernel).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_appliance");

/// A running daemon, stopped (SIGTERM) when dropped.
struct Daemon {
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        Self::start_in(tempfile::tempdir().expect("temp dir"))
    }

    /// Starts the daemon with `dir/target` as its target directory.
    fn start_in(dir: tempfile::TempDir) -> Daemon {
        let socket = dir.path().join("api.sock");
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log");
        // A target directory of its own, so the daemon leaves the host's
        // /var/backups alone.
        let state = dir.path().join("state");
        let target = dir.path().join("target");
        std::fs::create_dir_all(&state).expect("state dir");
        std::fs::create_dir_all(&target).expect("target dir");
        let target = target.canonicalize().expect("target path");
        let setting = serde_json::json!({ "kind": "directory", "path": target });
        std::fs::write(state.join("target.json"), setting.to_string()).expect("target.json");
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(&state)
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start appliance serve");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let log = std::fs::read_to_string(dir.path().join("serve.log"));
                panic!("serve exited with {status}: {log:?}");
            }
            if socket.exists() && cli(&socket, &["health"]).status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "serve did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        Daemon { child, socket, dir }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid with SIGTERM touches no memory.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let _ = self.child.wait();
    }
}

fn cli(socket: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .expect("run appliance")
}

/// `--json` prints the daemon's JSON: on success the answer, on an API error the
/// `{code, message}` body plus `error: <message> (<code>)` on stderr and exit 1.
fn json_or_api_error(out: &Output) -> Value {
    let value: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out:?}"));
    if !out.status.success() {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let code = value["code"].as_str().expect("error code");
        let message = value["message"].as_str().expect("error message");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim(), format!("error: {message} ({code})"));
    }
    value
}

#[test]
fn verbs_against_a_host_mode_daemon() {
    let daemon = Daemon::start();
    let socket = &daemon.socket;

    let devices = cli(socket, &["devices", "--json"]);
    let value = json_or_api_error(&devices);
    if devices.status.success() {
        let list = value.as_array().expect("devices is a list");
        for d in list {
            assert!(d["name"].is_string() && d["id"].is_string(), "{d}");
        }
        let table = cli(socket, &["devices"]);
        assert!(table.status.success(), "{table:?}");
        let text = String::from_utf8_lossy(&table.stdout);
        assert!(text.starts_with("NAME"), "{text}");
        assert_eq!(text.lines().count(), list.len() + 1, "{text}");
    }

    let backups = cli(socket, &["backups", "--json"]);
    let value = json_or_api_error(&backups);
    if backups.status.success() {
        assert!(value["backups"].is_array(), "{value}");
        let repository = value["repository"].as_str().expect("repository");
        assert!(
            repository.starts_with(&*daemon.dir.path().to_string_lossy()),
            "{repository}"
        );
    }

    let jobs = cli(socket, &["jobs", "--json"]);
    assert!(jobs.status.success(), "{jobs:?}");
    assert_eq!(json_or_api_error(&jobs), Value::Array(Vec::new()));
    let snapshots = cli(socket, &["snapshot", "list", "--json"]);
    assert!(snapshots.status.success(), "{snapshots:?}");
    assert!(json_or_api_error(&snapshots).is_array());

    // An API error: a job that does not exist.
    let missing = cli(socket, &["job", "999999", "--json"]);
    assert!(!missing.status.success());
    let value = json_or_api_error(&missing);
    assert_eq!(value["code"], "job_not_found", "{value}");
    let plain = cli(socket, &["job", "999999"]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(plain.stdout.is_empty());
    assert!(String::from_utf8_lossy(&plain.stderr).starts_with("error: "));
}

/// A repository on the target holding one full backup of `data`; returns its id.
fn seed_backup(target: &Path, data: &[u8]) -> String {
    let repo =
        repo::Repository::open_local(target.join("blksnap-repo"), repo::InitOptions::default())
            .expect("repository");
    let request = repo::BackupRequest::new(repo::DiskIdentity {
        name: Some("vdz".into()),
        serial: Some("prod0".into()),
        model: None,
        size_bytes: data.len() as u64,
    });
    let result = repo
        .backup_full(data, &request, &repo::JobCtl::new())
        .expect("backup");
    result.id().to_string()
}

/// The job verbs with `--wait` on a backup seeded into the target: verify, restore to a
/// file (identical bytes), export (identical raw file), and the job list.
#[test]
fn jobs_started_and_waited_for() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("target");
    std::fs::create_dir_all(&target).expect("target dir");
    let data: Vec<u8> = (0..6u32 << 20).map(|i| (i % 251) as u8).collect();
    let id = seed_backup(&target, &data);
    let daemon = Daemon::start_in(dir);
    let socket = &daemon.socket;

    let listed = cli(socket, &["backups"]);
    assert!(listed.status.success(), "{listed:?}");
    let text = String::from_utf8_lossy(&listed.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("backup row");
    assert!(row.contains("full") && row.contains("vdz (prod0)"), "{row}");

    let verify = cli(socket, &["verify", &id, "--wait"]);
    assert!(verify.status.success(), "{verify:?}");
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(text.contains(" done: "), "{text}");
    assert!(text.contains("ok: true"), "{text}");

    let verify = cli(socket, &["verify", &id, "--wait", "--json"]);
    assert!(verify.status.success(), "{verify:?}");
    let job: Value = serde_json::from_slice(&verify.stdout).expect("job JSON");
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["kind"], "verify", "{job}");
    assert_eq!(job["result"]["ok"], true, "{job}");
    let verify_id = job["id"].as_u64().expect("job id");

    let restore = cli(socket, &["restore", &id, "--to", "file:r.img", "--wait"]);
    assert!(restore.status.success(), "{restore:?}");
    let restored = target.join("blksnap-files/restores/r.img");
    assert!(std::fs::read(&restored).expect("restored file") == data);

    let export = cli(
        socket,
        &[
            "export", &id, "--format", "raw", "--name", "e.raw", "--wait",
        ],
    );
    assert!(export.status.success(), "{export:?}");
    let text = String::from_utf8_lossy(&export.stdout);
    assert!(
        text.contains("download: /api/v1/files/exports/e.raw"),
        "{text}"
    );
    let exported = target.join("blksnap-files/exports/e.raw");
    assert!(std::fs::read(&exported).expect("exported file") == data);

    // Without --wait: the started job, then `job ID` on it.
    let started = cli(socket, &["verify", &id, "--json"]);
    assert!(started.status.success(), "{started:?}");
    let job: Value = serde_json::from_slice(&started.stdout).expect("job JSON");
    let n = job["id"].as_u64().expect("job id").to_string();
    let waited = cli(socket, &["job", &n, "--wait", "--json"]);
    assert!(waited.status.success(), "{waited:?}");
    let job: Value = serde_json::from_slice(&waited.stdout).expect("job JSON");
    assert_eq!(job["state"], "done", "{job}");

    let jobs = cli(socket, &["jobs", "--json"]);
    let list: Value = serde_json::from_slice(&jobs.stdout).expect("jobs JSON");
    let kinds: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|j| j["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["verify", "verify", "restore", "export", "verify"]);
    let shown = cli(socket, &["job", &verify_id.to_string()]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.starts_with(&format!("job {verify_id}: verify done")),
        "{text}"
    );

    // A backup that does not exist: the API's error, exit 1.
    let missing = cli(socket, &["verify", "nosuch", "--wait"]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.trim_end().ends_with(')'),
        "{stderr}"
    );
}

/// With no daemon, the verbs do the work in their own process with the settings of
/// `--state-dir`: the catalogue, verify, restore and export of a seeded backup, with the
/// same results; the verbs that need a daemon (jobs, snapshots) say so.
#[test]
fn without_a_daemon_the_verbs_work_in_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("target");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&target).expect("target dir");
    std::fs::create_dir_all(&state).expect("state dir");
    let target = target.canonicalize().expect("target path");
    let setting = serde_json::json!({ "kind": "directory", "path": target });
    std::fs::write(state.join("target.json"), setting.to_string()).expect("target.json");
    let data: Vec<u8> = (0..5u32 << 20).map(|i| (i % 241) as u8).collect();
    let id = seed_backup(&target, &data);
    let absent = dir.path().join("absent.sock");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(&absent)
            .arg("--state-dir")
            .arg(&state)
            .output()
            .expect("run the CLI")
    };

    let listed = run(&["backups", "--json"]);
    assert!(listed.status.success(), "{listed:?}");
    let catalogue: Value = serde_json::from_slice(&listed.stdout).expect("catalogue JSON");
    assert!(catalogue.to_string().contains(&id), "{catalogue}");
    let plain = run(&["backups"]);
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(
        stderr.contains("no daemon at") && stderr.contains("working in this process"),
        "{stderr}"
    );

    // Job verbs wait for their job even without --wait: it cannot outlive the process.
    let verify = run(&["verify", &id, "--json"]);
    assert!(verify.status.success(), "{verify:?}");
    let job: Value = serde_json::from_slice(&verify.stdout).expect("job JSON");
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["result"]["ok"], true, "{job}");

    let restore = run(&["restore", &id, "--to", "file:local.img"]);
    assert!(restore.status.success(), "{restore:?}");
    let restored = target.join("blksnap-files/restores/local.img");
    assert!(std::fs::read(&restored).expect("restored file") == data);

    let export = run(&["export", &id, "--format", "qcow2", "--name", "local.qcow2"]);
    assert!(export.status.success(), "{export:?}");
    let exported = target.join("blksnap-files/exports/local.qcow2");
    let compare = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&restored)
        .arg(&exported)
        .output()
        .expect("qemu-img compare");
    assert!(compare.status.success(), "{compare:?}");

    let missing = run(&["verify", "nosuch"]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("error: ") && stderr.contains("nosuch"),
        "{stderr}"
    );

    for verb in [&["jobs"][..], &["snapshot", "list"][..]] {
        let out = run(verb);
        assert_eq!(out.status.code(), Some(1), "{verb:?}");
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: no appliance daemon answers at")
                && stderr.contains("live in a running daemon"),
            "{verb:?}: {stderr}"
        );
    }
    // Nothing is left behind: no private socket in the temp directory.
    let pid_sockets = std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("cli-"))
        .count();
    assert_eq!(pid_sockets, 0, "private sockets left in the temp directory");
}
