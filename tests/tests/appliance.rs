//! Whole-appliance tests: boot the real images (`make -C images`) in QEMU and use the
//! appliance the way users do, over HTTPS through a forwarded port.
//!
//! Boots (each one VM; the harness runs at most two at once):
//! - ISO under SeaBIOS with prod0/scratch0/backup0: health, 401s, login, cookie,
//!   lockout, daemon crash and restart, clean shutdown through the API;
//! - ISO under OVMF: the ACPI power button (QMP `system_powerdown`) powers off cleanly;
//! - qcow2 twice on one overlay: the APPLIANCE-CONFIG partition keeps the generated
//!   password and the TLS certificate across boots;
//! - ISO twice with a blank disk: the config disk is made over REST, and the settings
//!   (changed password, API token, certificate) are there at the next boot.
//!
//! Plus one host-mode check without a VM: `appliance serve` on a loopback port and the
//! `appliance health` CLI over the local socket.
//!
//! HTTPS calls go through `curl -k` (the certificate is self-signed).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use appliance_tests::qemu::{self, Boot, DiskSpec, Vm, VmConfig};
use appliance_tests::{build, logcheck, paths};
use serde_json::Value;

/// Boot to a healthy API under TCG takes about a minute; leave room for a loaded host.
const BOOT_TIMEOUT: Duration = Duration::from_secs(420);
/// From a shutdown request to QEMU's exit.
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(120);
/// The admin password the tests pass through fw_cfg.
const PASSWORD: &str = "Test-Password-42";
/// The fw_cfg item the appliance reads its boot configuration from.
const FW_CFG_NAME: &str = "opt/appliance/config";

// --- images and disks ---------------------------------------------------------------------

/// `images/out/appliance.iso` and `.qcow2`, built (or brought up to date) once per test
/// process with `make -C images`.
fn images() -> &'static (PathBuf, PathBuf) {
    static IMAGES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dir = paths::workspace_root().join("images");
        let started = Instant::now();
        build::run(Command::new("make").arg("-C").arg(&dir)).expect("make -C images");
        println!(
            "images: make -C images took {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let iso = dir.join("out/appliance.iso");
        let qcow2 = dir.join("out/appliance.qcow2");
        assert!(iso.is_file(), "{} missing after make", iso.display());
        assert!(qcow2.is_file(), "{} missing after make", qcow2.display());
        (iso, qcow2)
    })
}

/// A raw disk holding a real ext4 filesystem with a few files (made on the host with
/// `mkfs.ext4 -d`), like a production disk.
fn prod_disk(dir: &Path) -> PathBuf {
    let tree = dir.join("prod0-tree");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("etc")).expect("prod tree");
    std::fs::create_dir_all(tree.join("data")).expect("prod tree");
    std::fs::write(tree.join("etc/hostname"), "production\n").expect("file");
    std::fs::write(tree.join("README"), "a production filesystem\n").expect("file");
    let block: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(tree.join("data/blob.bin"), &block).expect("file");
    let img = dir.join("prod0.img");
    let _ = std::fs::remove_file(&img);
    build::run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "prod0", "-d"])
            .arg(&tree)
            .arg(&img)
            .arg("64M"),
    )
    .expect("mkfs.ext4 -d for prod0");
    img
}

/// prod0 (ext4 with files), scratch0 and backup0 (sparse, empty).
fn demo_disks(dir: &Path) -> Vec<DiskSpec> {
    let prod = prod_disk(dir);
    let scratch = dir.join("scratch0.img");
    let backup = dir.join("backup0.img");
    qemu::disk_image(&scratch, 256 << 20).expect("scratch0");
    qemu::disk_image(&backup, 512 << 20).expect("backup0");
    vec![
        DiskSpec::raw(prod, "prod0"),
        DiskSpec::raw(scratch, "scratch0"),
        DiskSpec::raw(backup, "backup0"),
    ]
}

// --- HTTPS over the forwarded port ---------------------------------------------------------

/// One HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.headers.lines().find_map(|line| {
            line.to_ascii_lowercase()
                .starts_with(&prefix)
                .then(|| line[prefix.len()..].trim().to_owned())
        })
    }
}

/// The appliance's API at a forwarded host port (HTTPS, or plain HTTP with http=1).
struct Api {
    base: String,
}

impl Api {
    fn new(port: u16) -> Api {
        Api {
            base: format!("https://127.0.0.1:{port}"),
        }
    }

    /// `None` when the connection fails (not up yet, or gone).
    fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> Option<Reply> {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-k", "-i", "--max-time", "60", "-X", method]);
        if let Some(token) = token {
            cmd.arg("-H").arg(format!("Authorization: Bearer {token}"));
        }
        if let Some(body) = body {
            cmd.args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ]);
        }
        cmd.arg(format!("{}{path}", self.base));
        let output = cmd.stdin(Stdio::null()).output().expect("run curl");
        if !output.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some(Reply {
            status,
            headers: head.to_owned(),
            body: body.to_owned(),
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> Reply {
        self.try_call(method, path, body, token)
            .unwrap_or_else(|| panic!("{method} {path}: no answer from {}", self.base))
    }

    fn login(&self, password: &str) -> Reply {
        let body = serde_json::json!({"username": "admin", "password": password}).to_string();
        self.call("POST", "/api/v1/auth/login", Some(&body), None)
    }

    /// Logs in and returns the token, asserting success.
    fn token(&self, password: &str) -> String {
        let reply = self.login(password);
        assert_eq!(reply.status, 200, "login failed: {reply:?}");
        reply.json()["token"]
            .as_str()
            .expect("token in the login answer")
            .to_owned()
    }

    /// Polls the health call until it answers 200; returns seconds since QEMU started.
    fn wait_healthy(&self, vm: &Vm) -> f64 {
        let deadline = Instant::now() + paths::scaled(BOOT_TIMEOUT);
        loop {
            if let Some(reply) = self.try_call("GET", "/api/v1/health", None, None) {
                if reply.status == 200 {
                    let body = reply.json();
                    assert_eq!(body["status"], "ok");
                    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
                    return vm.elapsed().as_secs_f64();
                }
            }
            if vm.try_status().is_some() {
                panic!(
                    "VM {} exited before the API was up; see {}",
                    vm.name(),
                    vm.log_path().display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "API not up within {:?}; see {}",
                BOOT_TIMEOUT,
                vm.log_path().display()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

// --- VM plumbing ---------------------------------------------------------------------------

/// A VM with user networking forwarding a free host port to the appliance's 443.
fn start(mut cfg: VmConfig) -> (Vm, Api) {
    let port = qemu::free_port();
    cfg.hostfwd.push((port, 443));
    let vm = Vm::start(cfg).expect("start VM");
    (vm, Api::new(port))
}

/// Waits for the VM to power off by itself and checks the exit and the kernel log.
fn wait_poweroff(vm: &mut Vm) -> String {
    let status = vm
        .wait_exit(POWEROFF_TIMEOUT)
        .expect("the appliance powers off by itself");
    let log = vm.serial_log();
    assert!(status.success(), "QEMU exited with {status}");
    assert!(
        log.contains("reboot: Power down"),
        "no clean power off; see {}",
        vm.log_path().display()
    );
    logcheck::assert_clean(&log, vm.log_path());
    log
}

/// Asks for a shutdown over the API and waits for the power off (see [`wait_poweroff`]).
fn shut_down(api: &Api, token: &str, vm: &mut Vm) -> String {
    let reply = api.call("POST", "/api/v1/shutdown", None, Some(token));
    assert_eq!(reply.status, 202, "{reply:?}");
    wait_poweroff(vm)
}

/// Asserts that `needles` appear in `log` in this order.
fn assert_in_order(log: &str, needles: &[&str], log_path: &Path) {
    let mut from = 0;
    for needle in needles {
        match log[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => panic!(
                "{needle:?} missing (or out of order) in {}",
                log_path.display()
            ),
        }
    }
}

fn fw_cfg(text: &str) -> (String, String) {
    (FW_CFG_NAME.to_owned(), text.to_owned())
}

// --- the boots -------------------------------------------------------------------------------

/// ISO under SeaBIOS with the three demo disks: the REST essentials, a daemon crash and
/// restart, the login lockout, then a clean shutdown through the API.
#[test]
fn iso_bios_api_crash_restart_and_shutdown() {
    let name = "appliance_iso_bios";
    let (iso, _) = images();
    let dir = paths::artifacts_dir(name);
    let mut cfg = VmConfig::new(name, Boot::Cdrom(iso.clone()));
    cfg.disks = demo_disks(&dir);
    cfg.fw_cfg
        .push(fw_cfg(&format!("password={PASSWORD}\ndebug=1\nhttp=1\n")));
    let http_port = qemu::free_port();
    cfg.hostfwd.push((http_port, 80));
    let (mut vm, api) = start(cfg);
    let ready = api.wait_healthy(&vm);
    println!("appliance ISO/BIOS: boot to API ready in {ready:.1} s");

    let log = vm.serial_log();
    assert_in_order(
        &log,
        &[
            "appliance-init: modules: blksnap loaded",
            "boot configuration: fw_cfg present, password given, network DHCP, http on",
            "appliance-init: network: eth0 10.0.2.15/24 (DHCP, gateway 10.0.2.2)",
            "config disk: none labelled APPLIANCE-CONFIG; settings are kept in memory",
            "appliance: settings are kept in memory",
            "web UI and REST API at https://10.0.2.15/",
        ],
        vm.log_path(),
    );

    // http=1: the same API over plain HTTP on port 80.
    let plain = Api {
        base: format!("http://127.0.0.1:{http_port}"),
    };
    let health = plain.call("GET", "/api/v1/health", None, None);
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(
        plain.call("POST", "/api/v1/shutdown", None, None).status,
        401
    );
    assert!(vm
        .serial_log()
        .contains("plain HTTP on 0.0.0.0:80 (boot key http=1)"));

    // Without credentials only health and login answer.
    for (method, path) in [
        ("POST", "/api/v1/shutdown"),
        ("GET", "/api/v1/shutdown"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/debug/crash"),
        ("GET", "/api/v1/devices"),
        ("GET", "/"),
    ] {
        let reply = api.call(method, path, None, None);
        assert_eq!(reply.status, 401, "{method} {path}: {reply:?}");
        assert_eq!(reply.json()["code"], "unauthorized", "{method} {path}");
        let forged = api.call(method, path, None, Some("0123456789abcdef"));
        assert_eq!(forged.status, 401, "{method} {path} with a forged token");
    }

    // Wrong password, then the right one: token and a strict session cookie.
    let wrong = api.login("not-the-password");
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["code"], "bad_credentials");
    let reply = api.login(PASSWORD);
    assert_eq!(reply.status, 200, "{reply:?}");
    let token = reply.json()["token"].as_str().expect("token").to_owned();
    let cookie = reply.header("set-cookie").expect("session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(
            cookie.contains(attribute),
            "cookie {cookie} lacks {attribute}"
        );
    }
    let unknown = api.call("GET", "/api/v1/no-such-call", None, Some(&token));
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["code"], "not_found");

    // A daemon crash is logged on the console and the daemon comes back.
    let crash = api.call("POST", "/api/v1/debug/crash", None, Some(&token));
    assert_eq!(crash.status, 202, "{crash:?}");
    vm.wait_for_serial("crashed: killed by SIGABRT", Duration::from_secs(60))
        .expect("init logs the crash");
    vm.wait_for_serial("restarting the daemon", Duration::from_secs(10))
        .expect("init restarts the daemon");
    api.wait_healthy(&vm);
    let log = vm.serial_log();
    assert_eq!(
        log.matches("appliance: ready (version").count(),
        2,
        "the daemon should have started twice; see {}",
        vm.log_path().display()
    );
    assert!(log.contains("using the stored TLS certificate"));
    // Sessions die with the daemon; the password hash does not.
    let stale = api.call("GET", "/api/v1/no-such-call", None, Some(&token));
    assert_eq!(stale.status, 401, "a session survived the daemon restart");
    let token = api.token(PASSWORD);

    // Repeated failures lock the client out, even for the right password.
    for _ in 0..5 {
        assert_eq!(api.login("guess").status, 401);
    }
    let locked = api.login(PASSWORD);
    assert_eq!(locked.status, 429, "{locked:?}");
    assert_eq!(locked.json()["code"], "too_many_requests");
    assert!(locked.header("retry-after").is_some());

    // Clean shutdown through the API, with a token from before the lockout.
    let started = Instant::now();
    let shutdown = api.call("POST", "/api/v1/shutdown", None, Some(&token));
    assert_eq!(shutdown.status, 202, "{shutdown:?}");
    assert_eq!(shutdown.json()["status"], "shutting_down");
    let log = wait_poweroff(&mut vm);
    println!(
        "appliance ISO/BIOS: shutdown request to power off in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_in_order(
        &log,
        &[
            "appliance: shutdown requested over the API",
            "appliance: stopping: closing the listeners",
            "appliance: stopped",
            "appliance-init: daemon stopped for a power off",
            "appliance-init: shutdown: requested over the API",
            "appliance-init: shutdown: released 0 of 0 snapshot(s)",
            "appliance-init: shutdown: syncing disks and powering off",
            "reboot: Power down",
        ],
        vm.log_path(),
    );
}

/// ISO under OVMF with a static address from fw_cfg: the ACPI power button (QEMU
/// `system_powerdown`) shuts down cleanly.
#[test]
fn iso_uefi_power_button() {
    let name = "appliance_iso_uefi";
    let (iso, _) = images();
    let dir = paths::artifacts_dir(name);
    let scratch = dir.join("scratch0.img");
    qemu::disk_image(&scratch, 64 << 20).expect("scratch0");
    let mut cfg = VmConfig::new(name, Boot::Cdrom(iso.clone()));
    cfg.uefi = true;
    cfg.disks.push(DiskSpec::raw(scratch, "scratch0"));
    // A static address (the one QEMU's user network forwards to) instead of DHCP.
    cfg.fw_cfg.push(fw_cfg(&format!(
        "password={PASSWORD} ip=10.0.2.15/24,10.0.2.2"
    )));
    let (mut vm, api) = start(cfg);
    let ready = api.wait_healthy(&vm);
    println!("appliance ISO/UEFI: boot to API ready in {ready:.1} s");
    api.token(PASSWORD);
    let log = vm.serial_log();
    assert!(
        log.contains("appliance-init: network: eth0 10.0.2.15/24 (static, gateway 10.0.2.2)"),
        "no static address; see {}",
        vm.log_path().display()
    );
    assert!(
        log.contains("appliance-init: power button: watching /dev/input/event"),
        "no power button found; see {}",
        vm.log_path().display()
    );

    vm.powerdown().expect("QMP system_powerdown");
    let log = wait_poweroff(&mut vm);
    assert_in_order(
        &log,
        &[
            "appliance-init: power button pressed",
            "appliance-init: shutdown: power button or SIGPWR",
            "appliance-init: shutdown: stopping the daemon",
            "appliance: SIGTERM received",
            "appliance: stopped",
            "appliance-init: shutdown: daemon stopped",
            "appliance-init: shutdown: released 0 of 0 snapshot(s)",
            "appliance-init: shutdown: syncing disks and powering off",
            "reboot: Power down",
        ],
        vm.log_path(),
    );
}

/// The generated admin password printed on the console.
fn generated_password(log: &str) -> Option<String> {
    log.lines()
        .find_map(|line| {
            line.split("generated admin password (shown only now): ")
                .nth(1)
        })
        .map(|rest| rest.trim().to_owned())
}

/// The qcow2 image, booted twice from one overlay: its APPLIANCE-CONFIG partition keeps
/// the generated password and the certificate; the second boot prints no password.
#[test]
fn qcow2_config_disk_keeps_settings_across_boots() {
    let name = "appliance_qcow2";
    let (_, qcow2) = images();
    let dir = paths::artifacts_dir(name);
    let overlay = dir.join("boot.qcow2");
    qemu::qcow2_overlay(qcow2, &overlay).expect("overlay");

    // First boot: no password configured, so one is generated and shown once.
    let (mut vm, api) = start(VmConfig::new(name, Boot::Disk(overlay.clone())));
    let ready = api.wait_healthy(&vm);
    println!("appliance qcow2 (first boot): boot to API ready in {ready:.1} s");
    let log = vm.serial_log();
    assert_in_order(
        &log,
        &[
            "(APPLIANCE-CONFIG) mounted on /var/lib/appliance",
            "appliance: settings are kept in /var/lib/appliance",
            "appliance: generated admin password (shown only now): ",
            "created a self-signed TLS certificate",
        ],
        vm.log_path(),
    );
    let password = generated_password(&log).expect("generated password on the console");
    let fingerprint = log
        .lines()
        .find_map(|l| l.split("SHA-256 fingerprint ").nth(1))
        .expect("fingerprint")
        .trim()
        .to_owned();
    let token = api.token(&password);
    let log = shut_down(&api, &token, &mut vm);
    assert_in_order(
        &log,
        &[
            "appliance-init: shutdown: requested over the API",
            "appliance-init: shutdown: config disk /dev/",
            " unmounted",
            "appliance-init: shutdown: syncing disks and powering off",
            "reboot: Power down",
        ],
        vm.log_path(),
    );
    drop(vm);

    // Second boot of the same disk: the stored password and certificate are used.
    let (mut vm, api) = start(VmConfig::new(name, Boot::Disk(overlay)));
    let ready = api.wait_healthy(&vm);
    println!("appliance qcow2 (second boot): boot to API ready in {ready:.1} s");
    let log = vm.serial_log();
    assert!(
        generated_password(&log).is_none(),
        "a second password was generated"
    );
    assert!(
        log.contains(&format!(
            "using the stored TLS certificate, SHA-256 fingerprint {fingerprint}"
        )),
        "the certificate changed; see {}",
        vm.log_path().display()
    );
    let token = api.token(&password);
    shut_down(&api, &token, &mut vm);
}

/// The ISO with a blank disk: the config disk is made over REST (refusals first), and the
/// settings made before and after it (a changed password, an API token, the certificate)
/// are there at the next boot, which finds the disk by its label.
#[test]
fn iso_config_disk_made_over_rest_keeps_settings() {
    let name = "appliance_config_disk";
    let (iso, _) = images();
    let dir = paths::artifacts_dir(name);
    let cfg0 = dir.join("cfg0.img");
    qemu::disk_image(&cfg0, 16 << 20).expect("cfg0");
    let data0 = dir.join("data0.img");
    qemu::disk_image(&data0, 16 << 20).expect("data0");
    build::run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "data0"])
            .arg(&data0),
    )
    .expect("mkfs.ext4 data0");
    let config = |name: &str| {
        let mut cfg = VmConfig::new(name, Boot::Cdrom(iso.clone()));
        cfg.disks = vec![
            DiskSpec::raw(data0.clone(), "data0"),
            DiskSpec::raw(cfg0.clone(), "cfg0"),
        ];
        cfg.fw_cfg.push(fw_cfg(&format!("password={PASSWORD}")));
        cfg
    };
    const NEW_PASSWORD: &str = "Kept-On-Disk-99";

    let (mut vm, api) = start(config(name));
    api.wait_healthy(&vm);
    let token = api.token(PASSWORD);
    let post = |body: &str| {
        api.call(
            "POST",
            "/api/v1/settings/config-disk",
            Some(body),
            Some(&token),
        )
    };
    let where_now = api.call("GET", "/api/v1/settings/config-disk", None, Some(&token));
    assert_eq!(where_now.json()["persistent"], false, "{where_now:?}");
    let has_data = post(r#"{"device":"data0"}"#);
    assert_eq!(has_data.status, 409, "{has_data:?}");
    assert_eq!(has_data.json()["code"], "storage_has_data");
    assert!(has_data.body.contains("ext4"), "{has_data:?}");
    let unknown = post(r#"{"device":"nope"}"#);
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let made = post(r#"{"device":"cfg0"}"#);
    assert_eq!(made.status, 200, "{made:?}");
    assert_eq!(made.json()["persistent"], true);
    assert!(made.body.contains("cfg0"), "{made:?}");
    let again = post(r#"{"device":"data0","overwrite":true}"#);
    assert_eq!(again.status, 409, "{again:?}");
    assert_eq!(again.json()["code"], "config_disk_exists");
    // One setting changed after the move, one token made after it.
    let change = serde_json::json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let changed = api.call(
        "POST",
        "/api/v1/settings/password",
        Some(&change.to_string()),
        Some(&token),
    );
    assert_eq!(changed.status, 204, "{changed:?}");
    let created = api.call(
        "POST",
        "/api/v1/settings/tokens",
        Some(r#"{"name":"kept"}"#),
        Some(&token),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let api_token = created.json()["token"].as_str().expect("token").to_owned();
    let log = vm.serial_log();
    let fingerprint = log
        .lines()
        .find_map(|l| l.split("SHA-256 fingerprint ").nth(1))
        .expect("fingerprint")
        .trim()
        .to_owned();
    let log = shut_down(&api, &token, &mut vm);
    assert_in_order(
        &log,
        &[
            "config disk: none labelled APPLIANCE-CONFIG; settings are kept in memory",
            "appliance: settings moved onto the new config disk vd",
            "appliance-init: shutdown: config disk /dev/vd",
            " unmounted",
            "reboot: Power down",
        ],
        vm.log_path(),
    );
    drop(vm);

    // The next boot mounts it by its label; fw_cfg's password no longer counts.
    let (mut vm, api) = start(config(&format!("{name}-2")));
    api.wait_healthy(&vm);
    let log = vm.serial_log();
    assert_in_order(
        &log,
        &[
            "(APPLIANCE-CONFIG) mounted on /var/lib/appliance",
            "appliance: settings are kept in /var/lib/appliance",
            &format!("using the stored TLS certificate, SHA-256 fingerprint {fingerprint}"),
        ],
        vm.log_path(),
    );
    assert_eq!(api.login(PASSWORD).status, 401);
    let token = api.token(NEW_PASSWORD);
    let devices = api.call("GET", "/api/v1/devices", None, Some(&api_token));
    assert_eq!(devices.status, 200, "the API token was lost: {devices:?}");
    let where_now = api.call("GET", "/api/v1/settings/config-disk", None, Some(&token));
    assert_eq!(where_now.json()["persistent"], true, "{where_now:?}");
    assert!(where_now.json()["device"]
        .as_str()
        .is_some_and(|d| d.contains("/dev/vd")));
    shut_down(&api, &token, &mut vm);
}

/// Host mode: `appliance serve` on loopback ports (HTTPS and plain HTTP) with a state
/// directory, and `appliance health` over the local socket; SIGTERM stops it cleanly.
#[test]
fn host_mode_serve_and_cli_health() {
    // The release binary `make -C images` built (and put in the images): building it
    // here again would fight the Makefile over SOURCE_DATE_EPOCH, which ring's build
    // script watches.
    images();
    let bin = paths::target_dir().join("release/appliance");
    assert!(
        bin.is_file(),
        "{} missing after make -C images",
        bin.display()
    );
    let dir = paths::artifacts_dir("appliance_host_mode");
    let state = dir.join("state");
    let _ = std::fs::remove_dir_all(&state);
    let socket = dir.join("api.sock");
    let https_port = qemu::free_port();
    let http_port = qemu::free_port();
    let stderr_path = dir.join("serve.log");
    let stderr = std::fs::File::create(&stderr_path).expect("log file");
    let mut child = Command::new(&bin)
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{https_port}"))
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{http_port}"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start appliance serve");
    let api = Api::new(https_port);
    let deadline = Instant::now() + paths::scaled(Duration::from_secs(60));
    while api.try_call("GET", "/api/v1/health", None, None).is_none() {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "serve exited; see {}",
            stderr_path.display()
        );
        assert!(Instant::now() < deadline, "serve did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(&stderr_path).expect("serve log");
    let password = generated_password(&log).expect("generated password");
    assert!(log.contains(&format!("https://127.0.0.1:{https_port}/")));
    api.token(&password);

    // Plain HTTP serves the same API.
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .arg(format!("http://127.0.0.1:{http_port}/api/v1/health"))
        .output()
        .expect("curl");
    let body: Value = serde_json::from_slice(&plain.stdout).expect("JSON over plain HTTP");
    assert_eq!(body["status"], "ok");

    // The CLI reaches the daemon over its socket.
    let health = Command::new(&bin)
        .args(["health", "--socket"])
        .arg(&socket)
        .output()
        .expect("appliance health");
    assert!(health.status.success(), "{health:?}");
    assert_eq!(
        String::from_utf8_lossy(&health.stdout).trim(),
        format!("ok (version {})", env!("CARGO_PKG_VERSION"))
    );
    let json = Command::new(&bin)
        .args(["health", "--json", "--socket"])
        .arg(&socket)
        .output()
        .expect("appliance health --json");
    let value: Value = serde_json::from_slice(&json.stdout).expect("health --json");
    assert_eq!(value["status"], "ok");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let status = child.wait().expect("wait for serve");
    assert!(status.success(), "serve exited with {status}");
    assert!(!socket.exists(), "the socket was not removed");
    let missing = Command::new(&bin)
        .args(["health", "--socket"])
        .arg(&socket)
        .output()
        .expect("appliance health");
    assert!(!missing.status.success(), "health succeeded with no daemon");
}
