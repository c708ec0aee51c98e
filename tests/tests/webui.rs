//! The web UI and the REST resources against ONE booted appliance (the ISO, TCG), shared
//! by every check here; the checks take turns (one lock) so each sees the appliance as
//! it left it.
//!
//! Disks: `prod0` (ext4 with files, 64 MiB), `scratch0` (blank), `backup0` (an empty
//! ext4 filesystem made on the host: the default target, mounted by the appliance).
//!
//! - every documented call but health and login answers 401 without credentials (the
//!   paths come from the served OpenAPI document);
//! - REST: full backup of prod0 → job to 100 % → restore to a file, verify, export to
//!   qcow2; the checksums of the job results, the manifest, the downloaded restore and a
//!   host-side SHA-256 of prod0's image file all agree; `qemu-img compare` accepts the
//!   downloaded qcow2;
//! - headless chromium (`tests/browser/run.mjs`, playwright-core): log in, back up,
//!   watch the progress bar reach done, restore; screenshots in `tests/artifacts/webui/`;
//! - schemathesis (in `target/venv`) against the served document with a bearer token:
//!   no 5xx, no response that breaks the schema;
//! - the repository in a real S3 server (Garage) and on a real NFS export (NFS-Ganesha),
//!   both on the host;
//! - a certificate from a CA made with openssl replaces the self-signed one at run time,
//!   and curl then verifies the appliance strictly.
//!
//! Nothing writes to prod0 during the run (the appliance only reads it through
//! snapshots), so the host can hash its image file before boot.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use appliance_tests::ganesha::{self, Ganesha};
use appliance_tests::garage::{self, Garage};
use appliance_tests::qemu::{self, Boot, DiskSpec, Vm, VmConfig};
use appliance_tests::rest::{self, call, done, sha256_file, Client};
use appliance_tests::{build, paths};
use serde_json::{json, Value};

const NAME: &str = "webui-vm";
const PASSWORD: &str = "Webui-Password-7";
const BOOT_TIMEOUT: Duration = Duration::from_secs(420);
const JOB_TIMEOUT: Duration = Duration::from_secs(600);
/// The schemathesis release the fuzz run installs.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// The booted appliance every check uses.
struct Appliance {
    base: String,
    /// SHA-256 of prod0's image file, taken before boot.
    prod_sha256: String,
    prod_image: PathBuf,
    dir: PathBuf,
}

/// The appliance, booted on first use. QEMU lives on a thread of its own that never ends
/// (QEMU dies with the test process: parent-death signal).
fn appliance() -> &'static Appliance {
    static APPLIANCE: OnceLock<Appliance> = OnceLock::new();
    APPLIANCE.get_or_init(boot)
}

/// One check at a time.
fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

fn boot() -> Appliance {
    let root = paths::workspace_root();
    let started = Instant::now();
    build::run(Command::new("make").arg("-C").arg(root.join("images"))).expect("make -C images");
    println!(
        "webui: make -C images took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let iso = root.join("images/out/appliance.iso");
    let dir = paths::artifacts_dir(NAME);
    let prod = prod_disk(&dir);
    let prod_sha256 = sha256_file(&prod);
    let scratch = dir.join("scratch0.img");
    qemu::disk_image(&scratch, 256 << 20).expect("scratch0");
    let backup = dir.join("backup0.img");
    qemu::disk_image(&backup, 768 << 20).expect("backup0");
    build::run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "backup0"])
            .arg(&backup),
    )
    .expect("mkfs.ext4 backup0");

    let port = qemu::free_port();
    let mut cfg = VmConfig::new(NAME, Boot::Cdrom(iso));
    cfg.memory_mb = 1536;
    cfg.disks = vec![
        DiskSpec::raw(&prod, "prod0"),
        DiskSpec::raw(&scratch, "scratch0"),
        DiskSpec::raw(&backup, "backup0"),
    ];
    cfg.hostfwd.push((port, 443));
    cfg.fw_cfg.push((
        "opt/appliance/config".to_owned(),
        format!("password={PASSWORD}"),
    ));
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("webui-vm".into())
        .spawn(move || {
            let vm = Vm::start(cfg);
            let vm = match vm {
                Ok(vm) => vm,
                Err(err) => {
                    let _ = ready_tx.send(Err(err.to_string()));
                    return;
                }
            };
            let log = vm.log_path().to_path_buf();
            let _ = ready_tx.send(Ok(log));
            // Keep QEMU (and this thread, its parent-death anchor) alive until the test
            // process ends.
            loop {
                if vm.try_status().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .expect("VM thread");
    let log = ready_rx
        .recv()
        .expect("VM thread answers")
        .unwrap_or_else(|err| panic!("start the VM: {err}"));
    let base = format!("https://127.0.0.1:{port}");
    rest::wait_healthy(&base, BOOT_TIMEOUT, &log);
    println!(
        "webui: appliance up after {:.1} s; serial log {}",
        started.elapsed().as_secs_f64(),
        log.display()
    );
    Appliance {
        base,
        prod_sha256,
        prod_image: prod,
        dir,
    }
}

/// prod0: ext4 with a few files, made on the host.
fn prod_disk(dir: &Path) -> PathBuf {
    let tree = dir.join("prod0-tree");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("data")).expect("tree");
    std::fs::write(tree.join("README"), "production data for the web UI test\n").expect("file");
    let blob: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(tree.join("data/blob.bin"), &blob).expect("file");
    let img = dir.join("prod0.img");
    let _ = std::fs::remove_file(&img);
    build::run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "prod0", "-d"])
            .arg(&tree)
            .arg(&img)
            .arg("64M"),
    )
    .expect("mkfs.ext4 -d prod0");
    img
}

// --- the checks ----------------------------------------------------------------------------

#[test]
fn every_documented_call_needs_credentials() {
    let app = appliance();
    let _turn = turn();
    let api = Client::login(&app.base, PASSWORD, "webui");
    let doc = api.ok("GET", "/api/v1/openapi.json", None, 200);
    let paths = doc["paths"].as_object().expect("paths");
    let mut guarded = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{area}", "exports")
            .replace("{name}", "x.img")
            .replace("{id}", "1");
        for method in item.as_object().expect("path item").keys() {
            let method = method.to_uppercase();
            let public = path == "/api/v1/health" || path == "/api/v1/auth/login";
            for token in [None, Some("0123456789abcdef"), Some("apt_0123")] {
                let reply = call(&app.base, &method, &concrete, Some("{}"), token)
                    .unwrap_or_else(|| panic!("{method} {path}: no answer"));
                if public {
                    assert_ne!(reply.status, 401, "{method} {path} is public");
                    break;
                }
                assert_eq!(
                    reply.status, 401,
                    "{method} {concrete} with {token:?}: {reply:?}"
                );
                assert_eq!(reply.json()["code"], "unauthorized");
            }
            if !public {
                guarded += 1;
            }
        }
    }
    println!("webui: {guarded} documented calls answer 401 without valid credentials");
    assert!(guarded >= 30, "only {guarded} calls documented");
}

#[test]
fn rest_backup_restore_verify_export() {
    let app = appliance();
    let _turn = turn();
    let api = Client::login(&app.base, PASSWORD, "webui");

    let devices = api.ok("GET", "/api/v1/devices", None, 200);
    let prod = devices
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["serial"] == "prod0" && d["kind"] == "disk")
        .unwrap_or_else(|| panic!("no prod0 in {devices}"));
    assert_eq!(prod["fs_type"], "ext4");
    assert_eq!(prod["size_bytes"], 64 << 20);
    let one = api.ok("GET", "/api/v1/devices/prod0", None, 200);
    assert_eq!(one["id"], prod["id"]);

    let target = api.ok("GET", "/api/v1/target", None, 200);
    assert_eq!(target["ok"], true, "{target}");
    assert_eq!(target["config"]["kind"], "device", "{target}");
    assert_eq!(target["config"]["device"], "serial:backup0");
    assert!(
        target["free_bytes"].as_u64().unwrap_or(0) > 64 << 20,
        "{target}"
    );

    // Wrong devices are 4xx with a code, never 5xx, before any job starts.
    let bad = api.call(
        "POST",
        "/api/v1/backups",
        Some(json!({"device": "prod0", "storage": {"kind": "device", "device": "prod0"}})),
    );
    assert_eq!(bad.status, 409, "{bad:?}");
    assert_eq!(bad.json()["code"], "storage_is_snapshotted");
    for (device, scratch) in [("nope", "scratch0"), ("prod0", "nope")] {
        let unknown = api.call(
            "POST",
            "/api/v1/backups",
            Some(json!({"device": device, "storage": {"kind": "device", "device": scratch}})),
        );
        assert_eq!(unknown.status, 404, "{unknown:?}");
        assert_eq!(unknown.json()["code"], "unknown_device");
    }

    // Full backup.
    let job = api.ok(
        "POST",
        "/api/v1/backups",
        Some(json!({"device": "prod0", "storage": {"kind": "device", "device": "scratch0"}, "mode": "full"})),
        202,
    );
    let job = api.wait_job(job["id"].as_u64().expect("job id"), JOB_TIMEOUT);
    let report = done(&job);
    assert_eq!(report["kind"], "backup");
    assert_eq!(report["mode"], "full");
    let backup_id = report["backup_id"].as_str().expect("backup id").to_owned();
    let backup_sha = report["image_sha256"]
        .as_str()
        .expect("image sha")
        .to_owned();
    println!("webui: backup {backup_id}: image sha256 {backup_sha}");
    assert_eq!(
        backup_sha, app.prod_sha256,
        "the backup read something else than prod0"
    );

    let catalogue = api.ok("GET", "/api/v1/backups", None, 200);
    assert!(catalogue["backups"]
        .as_array()
        .expect("backups")
        .iter()
        .any(|b| b["backup_id"] == backup_id.as_str()));
    let manifest = api.ok("GET", &format!("/api/v1/backups/{backup_id}"), None, 200);
    assert_eq!(manifest["image_sha256"], backup_sha.as_str());
    assert_eq!(manifest["disk"]["serial"], "prod0");

    // Restore to a file, download it, hash it on the host.
    let job = api.ok(
        "POST",
        &format!("/api/v1/backups/{backup_id}/restore"),
        Some(json!({"destination": {"kind": "file", "name": "rest-restore.img"}})),
        202,
    );
    let job = api.wait_job(job["id"].as_u64().expect("job id"), JOB_TIMEOUT);
    let report = done(&job);
    assert_eq!(report["image_sha256"], backup_sha.as_str());
    let restored = app.dir.join("rest-restore.img");
    let _ = std::fs::remove_file(&restored);
    api.download("/api/v1/files/restores/rest-restore.img", &restored);
    assert_eq!(
        sha256_file(&restored),
        app.prod_sha256,
        "downloaded restore differs"
    );
    println!("webui: restored image downloaded; its SHA-256 equals prod0.img's");

    // Verify.
    let job = api.ok(
        "POST",
        &format!("/api/v1/backups/{backup_id}/verify"),
        None,
        202,
    );
    let job = api.wait_job(job["id"].as_u64().expect("job id"), JOB_TIMEOUT);
    let report = done(&job);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["image_sha256_ok"], true, "{report}");

    // Export to qcow2, download it, compare with prod0 on the host.
    let job = api.ok(
        "POST",
        &format!("/api/v1/backups/{backup_id}/export"),
        Some(json!({"format": "qcow2", "name": "rest-export.qcow2"})),
        202,
    );
    let job = api.wait_job(job["id"].as_u64().expect("job id"), JOB_TIMEOUT);
    done(&job);
    assert_eq!(job["download"], "/api/v1/files/exports/rest-export.qcow2");
    let exported = app.dir.join("rest-export.qcow2");
    let _ = std::fs::remove_file(&exported);
    api.download("/api/v1/files/exports/rest-export.qcow2", &exported);
    let compare = Command::new("qemu-img")
        .args(["compare", "-f", "raw", "-F", "qcow2"])
        .arg(&app.prod_image)
        .arg(&exported)
        .output()
        .expect("qemu-img compare");
    assert!(
        compare.status.success(),
        "qemu-img compare: {}",
        String::from_utf8_lossy(&compare.stdout)
    );
    // The browser check may have left its own restore beside these.
    let files = api.ok("GET", "/api/v1/files", None, 200);
    for (area, name) in [
        ("restores", "rest-restore.img"),
        ("exports", "rest-export.qcow2"),
    ] {
        assert!(
            files
                .as_array()
                .expect("files")
                .iter()
                .any(|f| f["area"] == area && f["name"] == name),
            "{area}/{name} not listed: {files}"
        );
    }

    // The events tell the story.
    let events = api.ok("GET", "/api/v1/events", None, 200);
    let text = events.to_string();
    for needle in ["backup of", "finished", "released"] {
        assert!(text.contains(needle), "no {needle:?} event in {text}");
    }
}

#[test]
fn browser_backup_and_restore() {
    let app = appliance();
    let _turn = turn();
    let root = paths::workspace_root();
    let browser = root.join("tests/browser");
    if !browser.join("node_modules/playwright-core").is_dir() {
        build::run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&browser),
        )
        .expect("npm ci in tests/browser");
    }
    let shots = root.join("tests/artifacts/webui");
    if let Ok(old) = std::fs::read_dir(&shots) {
        for entry in old.flatten() {
            if entry.path().extension().is_some_and(|e| e == "png") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let out = Command::new("node")
        .arg(browser.join("run.mjs"))
        .arg(&app.base)
        .arg(PASSWORD)
        .arg(&shots)
        .stdin(Stdio::null())
        .output()
        .expect("node tests/browser/run.mjs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stderr}");
    assert!(out.status.success(), "the browser run failed:\n{stderr}");
    let seen: Value = serde_json::from_slice(&out.stdout).expect("browser summary");
    println!("webui: browser saw {seen}");
    let summary = seen["restore_summary"].as_str().unwrap_or_default();
    assert!(summary.contains("SHA-256"), "{seen}");
    let api = Client::login(&app.base, PASSWORD, "webui");
    let restore = api.ok(
        "GET",
        &format!("/api/v1/jobs/{}", seen["restore_job"]),
        None,
        200,
    );
    assert_eq!(done(&restore)["image_sha256"], app.prod_sha256.as_str());
    for name in [
        "01-login",
        "02-dashboard",
        "09-backup-job-finished",
        "13-restore-job-finished",
        "16-exports",
    ] {
        assert!(shots.join(format!("{name}.png")).is_file(), "no {name}.png");
    }
}

#[test]
fn schemathesis_finds_no_server_errors() {
    let app = appliance();
    let _turn = turn();
    let root = paths::workspace_root();
    let venv = paths::target_dir().join("venv");
    let st = venv.join("bin/schemathesis");
    if !st.is_file() {
        build::run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).expect("venv");
        build::run(Command::new(venv.join("bin/pip")).args(["install", "-q", SCHEMATHESIS]))
            .expect("pip install schemathesis");
    }
    let api = Client::login(&app.base, PASSWORD, "webui");
    // A spec file on the host: schemathesis loads it, the calls go to the appliance.
    let spec = app.dir.join("openapi.json");
    api.download("/api/v1/openapi.json", &spec);
    let out = Command::new("bash")
        .arg(root.join("tests/fuzz-api.sh"))
        .arg(&spec)
        .arg(&app.base)
        .arg(&api.token)
        .env("SCHEMATHESIS", &st)
        .current_dir(&app.dir)
        .stdin(Stdio::null())
        .output()
        .expect("tests/fuzz-api.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(app.dir.join("schemathesis.log"), &text).expect("log");
    // The summary on success; everything (the errors come before the summary) otherwise.
    let shown = if out.status.success() { 40 } else { usize::MAX };
    let tail: Vec<&str> = text.lines().rev().take(shown).collect();
    for line in tail.iter().rev() {
        println!("schemathesis: {line}");
    }
    assert!(
        out.status.success(),
        "schemathesis found problems; see {}",
        app.dir.join("schemathesis.log").display()
    );
    // The appliance still answers afterwards.
    let health = call(&app.base, "GET", "/api/v1/health", None, None).expect("health");
    assert_eq!(health.status, 200);
}

// --- HTTPS certificate ---------------------------------------------------------------------

/// A certificate from the admin's own CA (made with openssl on the host) replaces the
/// self-signed one while the appliance runs: curl then verifies the appliance strictly
/// (`--cacert`, no `-k`) at 127.0.0.1, a key that does not match is refused with the old
/// certificate still served, and a new self-signed one can be made again.
#[test]
fn a_provided_https_certificate_is_served_at_once() {
    let app = appliance();
    let _turn = turn();
    let api = Client::login(&app.base, PASSWORD, "webui");
    let dir = app.dir.join("certificate");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("certificate dir");
    let openssl = |args: &[&str]| {
        build::run(Command::new("openssl").args(args).current_dir(&dir)).expect("openssl")
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "30",
        "-subj",
        "/CN=Webui Test CA",
    ]);
    for name in ["leaf", "other"] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            "/CN=appliance.test",
        ]);
    }
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:appliance.test\n",
    )
    .expect("san.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "30",
        "-extfile",
        "san.ext",
    ]);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect(name);
    let strict_health = || {
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "--cacert"])
            .arg(dir.join("ca.pem"))
            .arg(format!("{}/api/v1/health", app.base))
            .stdin(Stdio::null())
            .output()
            .expect("curl")
    };
    let before = strict_health();
    assert!(
        !before.status.success(),
        "the self-signed certificate was trusted"
    );

    let refused = api.call(
        "PUT",
        "/api/v1/settings/certificate",
        Some(json!({"certificate": read("leaf.pem"), "key": read("other.key")})),
    );
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(
        refused.json()["message"],
        "the private key does not match the certificate"
    );
    assert!(!strict_health().status.success());

    let installed = api.ok(
        "PUT",
        "/api/v1/settings/certificate",
        Some(json!({"certificate": read("leaf.pem"), "key": read("leaf.key")})),
        200,
    );
    assert_eq!(installed["subject"], "CN=appliance.test", "{installed}");
    assert_eq!(installed["issuer"], "CN=Webui Test CA");
    assert_eq!(installed["self_signed"], false);
    assert_eq!(installed["names"], json!(["127.0.0.1", "appliance.test"]));
    let fingerprint = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(dir.join("leaf.pem"))
        .output()
        .expect("openssl fingerprint");
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout).into_owned();
    assert!(
        fingerprint.trim().ends_with(
            installed["fingerprint_sha256"]
                .as_str()
                .expect("fingerprint")
        ),
        "{fingerprint} vs {installed}"
    );
    let after = strict_health();
    assert!(
        after.status.success(),
        "curl --cacert: {}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(String::from_utf8_lossy(&after.stdout).contains("\"status\":\"ok\""));
    assert_eq!(
        api.ok("GET", "/api/v1/settings/certificate", None, 200),
        installed
    );

    let fresh = api.ok("DELETE", "/api/v1/settings/certificate", None, 200);
    assert_eq!(fresh["self_signed"], true, "{fresh}");
    assert!(!strict_health().status.success());
}

// --- S3 target -----------------------------------------------------------------------------

/// The repository in a real S3 server (Garage on the host): configured over REST, a full
/// and an incremental backup of prod0, the incremental restored and downloaded with
/// prod0's SHA-256; then the default target again, whose catalogue is untouched.
#[test]
fn s3_target_backup_and_restore() {
    let app = appliance();
    let _turn = turn();
    let api = Client::login(&app.base, PASSWORD, "webui");
    let garage = Garage::start(&paths::artifacts_dir("webui-garage"), "appliance-vm");
    let local_before = api.ok("GET", "/api/v1/backups", None, 200);

    let setting = json!({
        "kind": "s3",
        "endpoint": format!("http://10.0.2.2:{}", garage.port),
        "region": garage::REGION,
        "bucket": garage.bucket,
        "prefix": "vm-appliance",
        "access_key": garage::ACCESS_KEY,
        "secret_key": garage::SECRET_KEY,
        "path_style": true,
    });
    // A wrong secret is refused before it is saved.
    let mut wrong = setting.clone();
    wrong["secret_key"] = json!("1".repeat(64));
    let refused = api.call("PUT", "/api/v1/target", Some(wrong));
    assert!(
        (400..500).contains(&refused.status) && refused.body.contains("access denied"),
        "{refused:?}"
    );
    let target = api.ok("PUT", "/api/v1/target", Some(setting), 200);
    assert!(
        !target.to_string().contains(garage::SECRET_KEY),
        "the secret came back: {target}"
    );
    // The setting as shown (secret masked) can be sent back: it keeps the stored secret.
    let shown = target["config"].clone();
    assert_eq!(shown["secret_key"], "********", "{shown}");
    let again = api.ok("PUT", "/api/v1/target", Some(shown), 200);
    assert_eq!(again["ok"], true, "{again}");

    let backup = |mode: &str| {
        let job = api.ok(
            "POST",
            "/api/v1/backups",
            Some(json!({"device": "prod0", "storage": {"kind": "device", "device": "scratch0"}, "mode": mode})),
            202,
        );
        done(&api.wait_job(job["id"].as_u64().expect("job id"), JOB_TIMEOUT)).clone()
    };
    let full = backup("full");
    assert_eq!(full["mode"], "full", "{full}");
    assert_eq!(full["image_sha256"], app.prod_sha256.as_str(), "{full}");
    let inc = backup("auto");
    assert_eq!(inc["mode"], "incremental", "{inc}");
    println!(
        "webui: S3 full backup read {} bytes, incremental {} bytes",
        full["read_bytes"], inc["read_bytes"]
    );
    let inc_id = inc["backup_id"].as_str().expect("backup id").to_owned();
    let catalogue = api.ok("GET", "/api/v1/backups", None, 200);
    assert_eq!(
        catalogue["backups"].as_array().map(Vec::len),
        Some(2),
        "{catalogue}"
    );

    let job = api.ok(
        "POST",
        &format!("/api/v1/backups/{inc_id}/restore"),
        Some(json!({"destination": {"kind": "file", "name": "s3-restore.img"}})),
        202,
    );
    done(&api.wait_job(job["id"].as_u64().expect("job id"), JOB_TIMEOUT));
    let restored = app.dir.join("s3-restore.img");
    let _ = std::fs::remove_file(&restored);
    api.download("/api/v1/files/restores/s3-restore.img", &restored);
    assert_eq!(
        sha256_file(&restored),
        app.prod_sha256,
        "the restore from S3 differs from prod0"
    );
    let _ = std::fs::remove_file(&restored);
    let _ = api.call("DELETE", "/api/v1/files/restores/s3-restore.img", None);

    // Back to the default target: its catalogue is as it was.
    let reset = api.call("DELETE", "/api/v1/target", None);
    assert!(reset.status < 300, "{reset:?}");
    let local_after = api.ok("GET", "/api/v1/backups", None, 200);
    assert_eq!(local_after["backups"], local_before["backups"]);
    println!("webui: S3 target: full + incremental backup, restore bit-exact");
}

/// The repository on an NFS export (NFS-Ganesha on the host): an unreachable server is
/// refused in seconds; the appliance mounts the export, a full backup of prod0 lands in
/// the host directory the server exports, and its restore (written to the export too)
/// has prod0's SHA-256; then the default target again.
#[test]
fn nfs_target_backup_and_restore() {
    let app = appliance();
    let _turn = turn();
    let api = Client::login(&app.base, PASSWORD, "webui");
    let nfs = Ganesha::start(&paths::artifacts_dir("webui-ganesha"));

    // Nothing listens on this port: a clear 400, quickly, and nothing saved.
    let closed = qemu::free_port();
    let started = Instant::now();
    let refused = api.call(
        "PUT",
        "/api/v1/target",
        Some(
            json!({"kind": "nfs", "server": "10.0.2.2", "export": ganesha::EXPORT, "port": closed}),
        ),
    );
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused
            .body
            .contains(&format!("cannot reach the NFS server 10.0.2.2:{closed}")),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the refusal took {:?}",
        started.elapsed()
    );

    let target = api.ok(
        "PUT",
        "/api/v1/target",
        Some(json!({"kind": "nfs", "server": "10.0.2.2", "export": ganesha::EXPORT, "port": nfs.port})),
        200,
    );
    assert_eq!(target["ok"], true, "{target}");
    let job = api.ok(
        "POST",
        "/api/v1/backups",
        Some(json!({"device": "prod0", "storage": {"kind": "device", "device": "scratch0"}, "mode": "full"})),
        202,
    );
    let full = done(&api.wait_job(job["id"].as_u64().expect("job id"), JOB_TIMEOUT)).clone();
    assert_eq!(full["image_sha256"], app.prod_sha256.as_str(), "{full}");
    let id = full["backup_id"].as_str().expect("backup id").to_owned();
    // The repository is on the server: its manifest is in the exported host directory.
    let manifest = nfs
        .exported
        .join("blksnap-repo/backups")
        .join(&id)
        .join("manifest.json");
    assert!(manifest.is_file(), "no {}", manifest.display());

    let job = api.ok(
        "POST",
        &format!("/api/v1/backups/{id}/restore"),
        Some(json!({"destination": {"kind": "file", "name": "nfs-restore.img"}})),
        202,
    );
    done(&api.wait_job(job["id"].as_u64().expect("job id"), JOB_TIMEOUT));
    let on_server = nfs.exported.join("blksnap-files/restores/nfs-restore.img");
    assert_eq!(
        sha256_file(&on_server),
        app.prod_sha256,
        "the restore on the NFS export differs from prod0"
    );
    let reset = api.call("DELETE", "/api/v1/target", None);
    assert!(reset.status < 300, "{reset:?}");
    println!("webui: NFS target: full backup on the export, restore bit-exact");
}
