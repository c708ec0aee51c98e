//! The appliance's REST API from the host, with curl (`-k`: the appliance's HTTPS
//! certificate is self-signed): single calls, a logged-in client, job polling and
//! downloads. Shared by the VM suites that drive a booted appliance.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::paths;

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }
}

/// One call to `base` + `path`. `None` when nothing answered.
pub fn call(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Option<Reply> {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-k",
        "--max-time",
        "120",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(t) = token {
        cmd.arg("-H").arg(format!("Authorization: Bearer {t}"));
    }
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    cmd.arg(format!("{base}{path}"));
    let out = cmd.stdin(Stdio::null()).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n')?;
    Some(Reply {
        status: status.trim().parse().ok()?,
        body: body.to_owned(),
    })
}

/// Polls `GET /api/v1/health` until it answers 200; panics after `timeout` (scaled),
/// naming `log`.
pub fn wait_healthy(base: &str, timeout: Duration, log: &Path) {
    let deadline = Instant::now() + paths::scaled(timeout);
    loop {
        if let Some(reply) = call(base, "GET", "/api/v1/health", None, None) {
            if reply.status == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the API did not come up; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A client logged in as admin.
#[derive(Debug, Clone)]
pub struct Client {
    pub base: String,
    pub token: String,
    /// Prefix of the progress lines it prints.
    pub tag: String,
}

impl Client {
    /// Logs in to `base` with `password`.
    pub fn login(base: &str, password: &str, tag: &str) -> Client {
        let body = json!({"username": "admin", "password": password}).to_string();
        let reply =
            call(base, "POST", "/api/v1/auth/login", Some(&body), None).expect("login answers");
        assert_eq!(reply.status, 200, "login: {reply:?}");
        let token = reply.json()["token"].as_str().expect("token").to_owned();
        Client {
            base: base.to_owned(),
            token,
            tag: tag.to_owned(),
        }
    }

    /// One authenticated call (panics when nothing answers).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let body = body.map(|b| b.to_string());
        call(&self.base, method, path, body.as_deref(), Some(&self.token))
            .unwrap_or_else(|| panic!("{method} {path}: no answer"))
    }

    /// A call that must answer `status`; its JSON body (`null` for an empty one).
    pub fn ok(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let reply = self.call(method, path, body);
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        if reply.body.trim().is_empty() {
            Value::Null
        } else {
            reply.json()
        }
    }

    /// Polls job `id` until it finished (printing its progress), at most `timeout`
    /// (scaled); returns its record.
    pub fn wait_job(&self, id: u64, timeout: Duration) -> Value {
        let deadline = Instant::now() + paths::scaled(timeout);
        let mut last_percent = None;
        loop {
            let job = self.ok("GET", &format!("/api/v1/jobs/{id}"), None, 200);
            let percent = job["progress"]["percent"].as_u64();
            if percent != last_percent {
                println!(
                    "{}: job {id} {} {}%: {} of {} bytes",
                    self.tag,
                    job["state"],
                    percent.unwrap_or(0),
                    job["progress"]["done_bytes"],
                    job["progress"]["total_bytes"]
                );
                last_percent = percent;
            }
            if job["finished"] == true {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Downloads `path` to `dest`.
    pub fn download(&self, path: &str, dest: &Path) {
        let out = Command::new("curl")
            .args(["-sS", "-k", "--fail", "--max-time", "600", "-o"])
            .arg(dest)
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "download {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The result of a job that must have finished well.
pub fn done(job: &Value) -> &Value {
    assert_eq!(job["state"], "done", "job failed: {job}");
    assert_eq!(job["progress"]["percent"], 100, "{job}");
    &job["result"]
}

/// SHA-256 of a file, hex, with sha256sum.
pub fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_owned()
}
