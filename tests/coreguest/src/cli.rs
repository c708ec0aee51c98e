//! The `cli` scenario: the `appliance` binary's verbs as an admin runs them on a machine
//! with the module and no daemon (`/bin/appliance`, in-process mode), with the settings
//! of a state directory whose target is a directory on backup0.
//!
//! - `devices --json` lists prod0 by serial;
//! - `backup prod0 --scratch scratch0 --json`: a full backup job, done;
//! - `restore ID --to file:...`: the restored file's SHA-256 is prod0's before the backup;
//! - after a known 1 MiB write, `backup` again: incremental, and it read exactly the one
//!   repository chunk around the write;
//! - `backup nosuchdisk`: exit 1 and the API's `device_not_found`-style sentence.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result};
use serde_json::Value;
use snapcore::Device;

use crate::check;
use crate::io::{self, MIB};

const BIN: &str = "/bin/appliance";
const STATE: &str = "/tmp/cli-state";
const TARGET: &str = "/mnt/backup/cli-target";
/// No daemon listens here: the verbs work in process.
const SOCKET: &str = "/run/no-daemon.sock";

fn appliance(args: &[&str]) -> Result<Output> {
    Command::new(BIN)
        .args(args)
        .args(["--socket", SOCKET, "--state-dir", STATE])
        .output()
        .with_context(|| format!("running {BIN} {args:?}"))
}

/// Runs a verb that must succeed with `--json`; its JSON.
fn json(args: &[&str]) -> Result<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let out = appliance(&all)?;
    check!(
        out.status.success(),
        "appliance {args:?}: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "appliance {args:?} printed no JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The backup result of a finished job record.
fn backup_result(job: &Value) -> Result<&Value> {
    check!(job["state"] == "done", "backup job not done: {job}");
    Ok(&job["result"])
}

pub fn cli(prod: &Device) -> Result<()> {
    check!(Path::new(BIN).is_file(), "{BIN} is not in the image");
    std::fs::create_dir_all(STATE)?;
    std::fs::create_dir_all(TARGET)?;
    let setting = serde_json::json!({ "kind": "directory", "path": TARGET });
    std::fs::write(format!("{STATE}/target.json"), setting.to_string())?;

    let devices = json(&["devices"])?;
    let listed = devices
        .as_array()
        .and_then(|l| l.iter().find(|d| d["serial"] == "prod0"))
        .with_context(|| format!("prod0 not listed: {devices}"))?;
    check!(
        listed["size_bytes"] == prod.size_bytes,
        "prod0 listed as {listed}"
    );

    let before = io::sha256_prefix(&prod.path, prod.size_bytes)?;
    let full = json(&["backup", "prod0", "--scratch", "scratch0"])?;
    let result = backup_result(&full)?;
    let id = result["backup_id"]
        .as_str()
        .with_context(|| format!("no backup id: {full}"))?
        .to_owned();
    check!(result["mode"] == "full", "first CLI backup: {result}");

    let restore = json(&["restore", &id, "--to", "file:cli.img"])?;
    check!(restore["state"] == "done", "restore: {restore}");
    let restored = Path::new(TARGET).join("blksnap-files/restores/cli.img");
    let got = io::sha256_prefix(&restored, prod.size_bytes)?;
    check!(
        got == before,
        "restored {got}, prod0 was {before} before the backup"
    );

    // One aligned MiB: the repository (256 KiB chunks on a local target) reads exactly the
    // tracking blocks the change map marks, whole chunks of them.
    io::write_sync(&prod.path, 9 * MIB, &io::noise(77, MIB as usize))?;
    let inc = json(&["backup", "prod0", "--scratch", "scratch0"])?;
    let result = backup_result(&inc)?;
    check!(
        result["mode"] == "incremental",
        "second CLI backup: {result}"
    );
    let read = result["read_bytes"].as_u64().unwrap_or(0);
    check!(
        (MIB..4 * MIB).contains(&read) && Some(read) == result["changed_bytes"].as_u64(),
        "incremental read {read} bytes in {} chunks for a 1 MiB write; expected the changed \
         bytes in 256 KiB chunks: {result}",
        result["read_chunks"]
    );
    check!(
        result["read_chunks"].as_u64() == Some(read / (256 << 10)),
        "read {read} bytes in {} chunks, not 256 KiB ones: {result}",
        result["read_chunks"]
    );

    let bad = appliance(&["backup", "nosuchdisk", "--scratch", "scratch0"])?;
    let stderr = String::from_utf8_lossy(&bad.stderr);
    check!(
        bad.status.code() == Some(1) && stderr.contains("error: ") && stderr.contains("nosuchdisk"),
        "backup of an unknown disk: {}: {stderr}",
        bad.status
    );
    Ok(())
}
