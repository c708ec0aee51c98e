//! NBD exports of the booted appliance (the ISO, TCG) with Debian's real clients on the
//! host: libnbd-bin's nbdcopy and nbdinfo, and qemu-img. The guest sees the host as
//! 10.0.2.2, so that is the address the exports allow.
//!
//! Disks: `prod0` (64 MiB of pattern A, written on the host), `scratch0` (blank:
//! difference storage), `backup0` (empty ext4: the default target).
//!
//! One boot, in order:
//! 1. the CA certificate comes from `/api/v1/nbd/ca-certificate`; bad export requests
//!    get 4xx with clear messages;
//! 2. prod0 is exported read-write ("in front of"); while nbdcopy writes pattern B over
//!    it through the appliance, a full backup is taken mid-way: the restored image is
//!    page for page B up to the snapshot instant and A after it (a point in time, with
//!    both parts present), and its SHA-256 is the job's;
//! 3. the backup exported read-only (served from the repository) reads back identical to
//!    the restored image (nbdcopy, and `qemu-img compare` over TLS), refuses writes, and
//!    serves as the disk of a second VM (QEMU's NBD driver over TLS) that hashes it;
//! 4. a snapshot created with `"take": false` cannot be exported until taken; a write
//!    between its creation and `POST .../take` is in its image and a write after the take
//!    is not (read back over its read-only export); it cannot be taken twice, nor
//!    destroyed while exported, and its difference storage cannot be exported;
//! 5. a plain client is refused by a TLS export, a client not on the allow-list is
//!    refused, and no kernel defect shows in the serial log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use appliance_tests::build::InitramfsSpec;
use appliance_tests::data::noise;
use appliance_tests::qemu::{self, Boot, DiskSpec, Vm, VmConfig};
use appliance_tests::rest::{self, done, sha256_file, Client};
use appliance_tests::{build, logcheck, paths};
use serde_json::{json, Value};

const NAME: &str = "nbd-vm";
const PASSWORD: &str = "Nbd-Password-42";
const BOOT_TIMEOUT: Duration = Duration::from_secs(420);
const JOB_TIMEOUT: Duration = Duration::from_secs(600);
const DISK: usize = 64 << 20;
const PAGE: usize = 4096;
/// The host as the guest sees it (QEMU user networking).
const HOST_IN_GUEST: &str = "10.0.2.2";
/// What the writer has produced before the backup starts.
const WRITTEN_BEFORE_BACKUP: usize = 12 << 20;
/// What step 4 writes at the start of prod0 around the take.
const SNAP_WRITE: usize = 1 << 20;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("start a client");
    println!("nbd: {cmd:?}: {}", out.status);
    out
}

/// Where the host reaches the NBD server, and the certificate directory.
struct Nbd {
    port: u16,
    certs: PathBuf,
}

impl Nbd {
    fn tls_uri(&self, export: &str) -> String {
        format!(
            "nbds://127.0.0.1:{}/{export}?tls-certificates={}",
            self.port,
            self.certs.display()
        )
    }

    fn plain_uri(&self, export: &str) -> String {
        format!("nbd://127.0.0.1:{}/{export}", self.port)
    }

    /// `qemu-img compare` of `a` and `b`, each an export name or (`file:`) a raw file.
    fn qemu_compare(&self, a: &str, b: &str) -> Output {
        let opts = |what: &str| {
            match what.strip_prefix("file:") {
            Some(path) => format!("driver=raw,file.driver=file,file.filename={path}"),
            None => format!(
                "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={},export={what},tls-creds=tls0",
                self.port
            ),
        }
        };
        run(Command::new("qemu-img")
            .arg("compare")
            .arg("--object")
            .arg(format!(
                "tls-creds-x509,id=tls0,endpoint=client,dir={}",
                self.certs.display()
            ))
            .arg("--image-opts")
            .arg(opts(a))
            .arg(opts(b)))
    }
}

fn boot(dir: &Path, prod: &Path) -> (Vm, Client, u16) {
    let root = paths::workspace_root();
    build::run(Command::new("make").arg("-C").arg(root.join("images"))).expect("make -C images");
    let scratch = dir.join("scratch0.img");
    qemu::disk_image(&scratch, 256 << 20).expect("scratch0");
    let backup = dir.join("backup0.img");
    qemu::disk_image(&backup, 512 << 20).expect("backup0");
    build::run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "backup0"])
            .arg(&backup),
    )
    .expect("mkfs.ext4 backup0");
    let https = qemu::free_port();
    let nbd = qemu::free_port();
    let mut cfg = VmConfig::new(NAME, Boot::Cdrom(root.join("images/out/appliance.iso")));
    cfg.memory_mb = 1536;
    cfg.disks = vec![
        DiskSpec::raw(prod, "prod0"),
        DiskSpec::raw(&scratch, "scratch0"),
        DiskSpec::raw(&backup, "backup0"),
    ];
    cfg.hostfwd.push((https, 443));
    cfg.hostfwd.push((nbd, 10809));
    cfg.fw_cfg.push((
        "opt/appliance/config".to_owned(),
        format!("password={PASSWORD}"),
    ));
    let started = Instant::now();
    let vm = Vm::start(cfg).expect("start the VM");
    let base = format!("https://127.0.0.1:{https}");
    rest::wait_healthy(&base, BOOT_TIMEOUT, vm.log_path());
    println!(
        "nbd: appliance up after {:.1} s; serial log {}",
        started.elapsed().as_secs_f64(),
        vm.log_path().display()
    );
    (vm, Client::login(&base, PASSWORD, "nbd"), nbd)
}

/// Checks that `image` is B up to some page and A after it, except inside a window of
/// at most `window` bytes (the request the server was serving at the instant); returns
/// the byte offset where A starts.
fn point_in_time_boundary(image: &[u8], a: &[u8], b: &[u8], window: usize) -> usize {
    let pages = image.len() / PAGE;
    let mut first_a = None;
    let mut last_b = None;
    for p in 0..pages {
        let r = p * PAGE..(p + 1) * PAGE;
        let page = &image[r.clone()];
        let is_b = page == &b[r.clone()];
        let is_a = page == &a[r];
        assert!(
            is_a || is_b,
            "page {p} (offset {}) is neither the old nor the new content",
            p * PAGE
        );
        if is_a && !is_b && first_a.is_none() {
            first_a = Some(p);
        }
        if is_b && !is_a {
            last_b = Some(p);
        }
    }
    let first_a = first_a.expect("the backup holds no old content: it was not taken mid-way");
    let last_b = last_b.expect("the backup holds no new content: it was not taken mid-way");
    assert!(
        last_b < first_a || (last_b - first_a) * PAGE < window,
        "new content at page {last_b} after old content at page {first_a}: not one instant"
    );
    first_a * PAGE
}

#[test]
fn nbd_exports_with_real_clients() {
    for tool in ["nbdcopy", "nbdinfo", "qemu-img", "python3"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "{tool} is missing: run scripts/install-deps.sh");
    }
    let dir = paths::artifacts_dir(NAME);
    let a = noise(DISK, 1);
    let b = noise(DISK, 2);
    let prod = dir.join("prod0.img");
    std::fs::write(&prod, &a).expect("prod0.img");
    let b_file = dir.join("pattern-b.img");
    std::fs::write(&b_file, &b).expect("pattern-b.img");
    let (vm, api, nbd_port) = boot(&dir, &prod);
    let certs = dir.join("certs");
    let _ = std::fs::remove_dir_all(&certs);
    std::fs::create_dir_all(&certs).expect("certs dir");
    api.download("/api/v1/nbd/ca-certificate", &certs.join("ca-cert.pem"));
    let nbd = Nbd {
        port: nbd_port,
        certs,
    };
    let timer = Instant::now();

    // 1. Bad requests are refused with a reason, and create nothing.
    let source = json!({"kind": "device", "device": "prod0"});
    for (body, status, code, words) in [
        (
            json!({"name": "x", "source": source, "allow": []}),
            400,
            "invalid_argument",
            "at least one allowed client",
        ),
        (
            json!({"name": "x", "source": source, "allow": ["10.0.2"]}),
            400,
            "bad_request",
            "not an IP address",
        ),
        (
            json!({"name": "a/b", "source": source, "allow": [HOST_IN_GUEST]}),
            400,
            "invalid_argument",
            "export name",
        ),
        (
            json!({"name": "x", "source": {"kind": "device", "device": "nope"}, "allow": [HOST_IN_GUEST]}),
            400,
            "export_source_unusable",
            "nope",
        ),
        (
            json!({"name": "x", "source": {"kind": "backup", "backup": "no-such"}, "allow": [HOST_IN_GUEST]}),
            400,
            "export_source_unusable",
            "no-such",
        ),
    ] {
        let reply = api.call("POST", "/api/v1/exports", Some(body.clone()));
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        let err = reply.json();
        assert_eq!(err["code"], code, "{body}: {err}");
        assert!(
            err["message"].as_str().unwrap_or("").contains(words),
            "{body}: {err}"
        );
    }
    assert_eq!(api.ok("GET", "/api/v1/exports", None, 200), json!([]));

    // 2. prod0 in front of its consumer: nbdcopy writes B over A through the appliance,
    //    and a backup starts once 12 MiB are written.
    let created = api.ok(
        "POST",
        "/api/v1/exports",
        Some(json!({"name": "prod0", "source": source, "allow": [HOST_IN_GUEST]})),
        201,
    );
    assert_eq!(created["read_only"], false);
    assert_eq!(created["tls"], true);
    assert_eq!(created["allow"], json!(["10.0.2.2/32"]));
    let dup = api.call(
        "POST",
        "/api/v1/exports",
        Some(json!({"name": "prod0", "source": source, "allow": [HOST_IN_GUEST]})),
    );
    assert_eq!(dup.status, 409, "{}", dup.body);
    let info = run(Command::new("nbdinfo")
        .arg("--size")
        .arg(nbd.tls_uri("prod0")));
    assert!(info.status.success(), "{}", text(&info));
    assert_eq!(text(&info).trim(), DISK.to_string());

    // The writer: B in 1 MiB pieces, 150 ms apart, into nbdcopy's stdin.
    let mut copy = Command::new("nbdcopy")
        .arg("--requests=1")
        .arg("--connections=1")
        .arg("-")
        .arg(nbd.tls_uri("prod0"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nbdcopy");
    let mut stdin = copy.stdin.take().expect("nbdcopy stdin");
    let (fed_tx, fed_rx) = std::sync::mpsc::channel();
    let feed = b.clone();
    let feeder = std::thread::spawn(move || {
        for (i, piece) in feed.chunks(1 << 20).enumerate() {
            stdin.write_all(piece).expect("feed nbdcopy");
            let _ = fed_tx.send((i + 1) << 20);
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    let deadline = Instant::now() + paths::scaled(Duration::from_secs(120));
    while fed_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the writer stalled")
        < WRITTEN_BEFORE_BACKUP
    {
        assert!(Instant::now() < deadline, "the writer is too slow");
    }
    let job = api.ok(
        "POST",
        "/api/v1/backups",
        Some(json!({"device": "prod0", "storage": {"kind": "device", "device": "scratch0"}, "mode": "full"})),
        202,
    );
    let backup_started = Instant::now();
    feeder.join().expect("feeder");
    let copied = copy.wait_with_output().expect("nbdcopy ends");
    assert!(copied.status.success(), "nbdcopy: {}", text(&copied));
    println!(
        "nbd: the writer finished {:.1} s after the backup started",
        backup_started.elapsed().as_secs_f64()
    );
    let job = api.wait_job(job["id"].as_u64().expect("job id"), JOB_TIMEOUT);
    let report = done(&job).clone();
    let backup_id = report["backup_id"].as_str().expect("backup id").to_owned();
    let backup_sha = report["image_sha256"].as_str().expect("sha").to_owned();
    // Everything the consumer wrote is on the disk.
    let live = nbd.qemu_compare("prod0", &format!("file:{}", b_file.display()));
    assert!(live.status.success(), "{}", text(&live));

    let job = api.ok(
        "POST",
        &format!("/api/v1/backups/{backup_id}/restore"),
        Some(json!({"destination": {"kind": "file", "name": "nbd-restore.img"}})),
        202,
    );
    done(&api.wait_job(job["id"].as_u64().expect("job id"), JOB_TIMEOUT));
    let restored = dir.join("nbd-restore.img");
    let _ = std::fs::remove_file(&restored);
    api.download("/api/v1/files/restores/nbd-restore.img", &restored);
    assert_eq!(sha256_file(&restored), backup_sha);
    let image = std::fs::read(&restored).expect("restored image");
    let boundary = point_in_time_boundary(&image, &a, &b, 4 << 20);
    println!(
        "nbd: the backup holds the first {} MiB of the new content and the old after it",
        boundary as f64 / (1 << 20) as f64
    );
    // What was fed before the backup started was written before its snapshot (nbdcopy
    // holds back at most a few requests of it).
    assert!(
        boundary >= WRITTEN_BEFORE_BACKUP - (4 << 20),
        "the snapshot misses writes made before the backup started"
    );

    // 3. The backup, exported read-only from the repository.
    let created = api.ok(
        "POST",
        "/api/v1/exports",
        Some(json!({"name": "prod0-backup", "source": {"kind": "backup", "backup": backup_id}, "allow": [HOST_IN_GUEST]})),
        201,
    );
    assert_eq!(created["read_only"], true);
    let from_repo = dir.join("nbd-backup-export.img");
    let _ = std::fs::remove_file(&from_repo);
    let out = run(Command::new("nbdcopy")
        .arg(nbd.tls_uri("prod0-backup"))
        .arg(&from_repo));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sha256_file(&from_repo), backup_sha);
    let cmp = nbd.qemu_compare("prod0-backup", &format!("file:{}", restored.display()));
    assert!(cmp.status.success(), "{}", text(&cmp));
    assert!(text(&cmp).contains("Images are identical"));
    let write = run(Command::new("nbdcopy")
        .arg(&b_file)
        .arg(nbd.tls_uri("prod0-backup")));
    assert!(!write.status.success());
    assert!(text(&write).contains("read-only"), "{}", text(&write));
    consumer_vm_reads_the_backup(&dir, &nbd, &backup_sha);
    let delete = api.call("DELETE", &format!("/api/v1/backups/{backup_id}"), None);
    assert_eq!(delete.status, 409, "{}", delete.body);
    assert!(delete.json()["message"]
        .as_str()
        .unwrap_or("")
        .contains("exported as prod0-backup"));

    // 4. A snapshot created for later holds the disk as it was when taken: a write
    //    between creation and take is in its image, a write after the take is not.
    let snap = api.ok(
        "POST",
        "/api/v1/snapshots",
        Some(json!({"devices": ["prod0"], "storage": {"kind": "device", "device": "scratch0"}, "take": false})),
        201,
    );
    assert_eq!(snap["state"], "created", "{snap}");
    assert!(snap["devices"][0]["image"].is_null(), "{snap}");
    let snap_id = snap["id"].as_str().expect("snapshot id").to_owned();
    let snap_source = json!({"kind": "snapshot", "snapshot": snap_id, "device": "prod0"});
    let untaken = api.call(
        "POST",
        "/api/v1/exports",
        Some(json!({"name": "prod0-snap", "source": snap_source, "allow": [HOST_IN_GUEST]})),
    );
    assert_eq!(untaken.status, 400, "{}", untaken.body);
    assert!(untaken.body.contains("not taken yet"), "{}", untaken.body);
    let before_take = noise(SNAP_WRITE, 3);
    let after_take = noise(SNAP_WRITE, 4);
    let write_head = |name: &str, data: &[u8]| {
        let file = dir.join(name);
        std::fs::write(&file, data).expect("write pattern");
        let out = run(Command::new("nbdcopy").arg(&file).arg(nbd.tls_uri("prod0")));
        assert!(out.status.success(), "{}", text(&out));
    };
    write_head("pattern-c.img", &before_take);
    let taken = api.ok(
        "POST",
        &format!("/api/v1/snapshots/{snap_id}/take"),
        None,
        200,
    );
    assert_eq!(taken["state"], "taken", "{taken}");
    assert!(taken["devices"][0]["image"]
        .as_str()
        .is_some_and(|i| i.starts_with("/dev/blksnap-image")));
    let again = api.call("POST", &format!("/api/v1/snapshots/{snap_id}/take"), None);
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.json()["code"], "invalid_state");
    write_head("pattern-d.img", &after_take);
    api.ok(
        "POST",
        "/api/v1/exports",
        Some(json!({"name": "prod0-snap", "source": snap_source, "allow": [HOST_IN_GUEST]})),
        201,
    );
    let snap_file = dir.join("snapshot-read.img");
    let out = run(Command::new("nbdcopy")
        .arg(nbd.tls_uri("prod0-snap"))
        .arg(&snap_file));
    assert!(out.status.success(), "{}", text(&out));
    let mut expected = b.clone();
    expected[..SNAP_WRITE].copy_from_slice(&before_take);
    let image = std::fs::read(&snap_file).expect("snapshot image");
    assert!(
        image == expected,
        "the snapshot image is not the disk at the take"
    );
    // The snapshot's difference storage cannot be exported while it is in use.
    let storage = api.call(
        "POST",
        "/api/v1/exports",
        Some(json!({"name": "scratch", "source": {"kind": "device", "device": "scratch0"}, "allow": [HOST_IN_GUEST]})),
    );
    assert_eq!(storage.status, 400, "{}", storage.body);
    assert!(
        storage.body.contains("difference storage of a snapshot"),
        "{}",
        storage.body
    );
    let busy = api.call("DELETE", &format!("/api/v1/snapshots/{snap_id}"), None);
    assert_eq!(busy.status, 409, "{}", busy.body);
    assert_eq!(busy.json()["code"], "exported");

    // 5. Refusals: a plain client on a TLS export, a client not on the allow-list.
    let plain = run(Command::new("nbdinfo")
        .env("LIBNBD_DEBUG", "1")
        .arg(nbd.plain_uri("prod0")));
    assert!(!plain.status.success());
    assert!(
        text(&plain).contains("this export requires TLS"),
        "{}",
        text(&plain)
    );
    api.ok(
        "POST",
        "/api/v1/exports",
        Some(json!({"name": "elsewhere", "source": source, "read_only": true, "allow": ["10.0.2.99"]})),
        201,
    );
    let other = run(Command::new("nbdinfo")
        .env("LIBNBD_DEBUG", "1")
        .arg(nbd.tls_uri("elsewhere")));
    assert!(!other.status.success());
    assert!(
        text(&other).contains("client 10.0.2.2 is not allowed to use this export"),
        "{}",
        text(&other)
    );
    let list = api.ok("GET", "/api/v1/exports", None, 200);
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["elsewhere", "prod0", "prod0-backup", "prod0-snap"]);
    assert!(list
        .as_array()
        .expect("list")
        .iter()
        .all(|e| e["connections"] == 0));

    // Cleaning up in the right order works.
    for name in ["prod0-snap", "prod0-backup", "elsewhere", "prod0"] {
        api.ok("DELETE", &format!("/api/v1/exports/{name}"), None, 204);
    }
    api.ok("DELETE", &format!("/api/v1/snapshots/{snap_id}"), None, 204);
    let events = api.ok("GET", "/api/v1/events", None, 200);
    let said: Vec<String> = events_text(&events);
    assert!(
        said.iter()
            .any(|e| e.contains("NBD client 10.0.2.2 refused: not allowed to use export elsewhere")),
        "{said:?}"
    );
    println!(
        "nbd: checks took {:.1} s after boot",
        timer.elapsed().as_secs_f64()
    );
    logcheck::assert_clean(&vm.serial_log(), vm.log_path());
}

/// A second VM (the harness's tiny /init) whose disk is the backup export, attached the
/// way a VM is booted straight from a backup: QEMU's NBD block driver over TLS. The guest
/// hashes the whole disk.
fn consumer_vm_reads_the_backup(dir: &Path, nbd: &Nbd, backup_sha: &str) {
    let kver = paths::kernel_release();
    let init =
        build::cargo_bin("appliance-tests", "harness-init", true).expect("build harness-init");
    let initrd = build::initramfs(&InitramfsSpec {
        out: dir.join("consumer-initramfs.cpio.zst"),
        kver: kver.clone(),
        init,
        modules_list: build::appliance_modules_list(),
        ..InitramfsSpec::default()
    })
    .expect("build the consumer's initramfs");
    let mut cfg = VmConfig::new(
        "nbd-consumer",
        Boot::Kernel {
            kernel: paths::kernel_image(&kver),
            initrd,
            append: "console=ttyS0,115200 panic=-1 harness.disks=1 harness.sha256=frombackup"
                .into(),
        },
    );
    cfg.extra_args = vec![
        "-object".into(),
        format!(
            "tls-creds-x509,id=tls0,endpoint=client,dir={}",
            nbd.certs.display()
        ),
        "-drive".into(),
        format!(
            "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={},export=prod0-backup,tls-creds=tls0,if=none,id=nbd0,read-only=on",
            nbd.port
        ),
        "-device".into(),
        "virtio-blk-pci,drive=nbd0,serial=frombackup".into(),
    ];
    let started = Instant::now();
    let mut vm = Vm::start(cfg).expect("start the consumer VM");
    vm.wait_for_serial(
        "HARNESS-INIT: done",
        paths::scaled(Duration::from_secs(300)),
    )
    .unwrap_or_else(|e| panic!("the consumer VM: {e}; see {}", vm.log_path().display()));
    let _ = vm.wait_exit(Duration::from_secs(60));
    let log = vm.serial_log();
    let line = format!("HARNESS-INIT: sha256 frombackup {backup_sha}");
    assert!(
        log.contains(&line),
        "the consumer VM read something else than the backup; see {}",
        vm.log_path().display()
    );
    logcheck::assert_clean(&log, vm.log_path());
    println!(
        "nbd: a VM read its whole disk from the backup export ({:.1} s with boot)",
        started.elapsed().as_secs_f64()
    );
}

fn events_text(events: &Value) -> Vec<String> {
    let list = events["events"].as_array().or_else(|| events.as_array());
    list.map(|l| {
        l.iter()
            .filter_map(|e| e["message"].as_str().map(str::to_owned))
            .collect()
    })
    .unwrap_or_default()
}
