//! Following a job: print the started job, or poll it to the end with a progress line
//! (plain `\r` updates on a terminal); a job that fails or is cancelled is a failure.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::Value;

use super::http::{request, Failure, Reply};
use super::render;
use crate::cli::ClientArgs;

/// How often the job is asked for.
const POLL: Duration = Duration::from_millis(500);

/// After a job was started: print it, or wait for it with `--wait`.
pub fn started(client: &ClientArgs, wait: bool, reply: &Reply) -> Result<(), Failure> {
    let id = reply.value["id"]
        .as_u64()
        .ok_or_else(|| Failure::Other("the daemon's answer names no job".into()))?;
    if wait {
        if !client.json {
            println!(
                "job {id} started: {}",
                render::text(&reply.value["description"])
            );
        }
        return until_finished(client, id);
    }
    if client.json {
        println!("{}", reply.raw);
    } else {
        println!(
            "job {id} started: {} (follow it with `appliance job {id} --wait`)",
            render::text(&reply.value["description"])
        );
    }
    Ok(())
}

/// Polls job `id` until it finishes; prints the final record (JSON as sent with `--json`).
pub fn until_finished(client: &ClientArgs, id: u64) -> Result<(), Failure> {
    let path = format!("/api/v1/jobs/{id}");
    let terminal = std::io::stderr().is_terminal();
    let mut width: usize = 0;
    let reply = loop {
        let reply = request(&client.socket, "GET", &path, None)?;
        if reply.value["finished"].as_bool().unwrap_or(false) {
            break reply;
        }
        if terminal {
            let line = render::progress(&reply.value["progress"]);
            let pad = width.saturating_sub(line.chars().count());
            width = width.max(line.chars().count());
            eprint!("\r{line}{}", " ".repeat(pad));
            let _ = std::io::stderr().flush();
        }
        std::thread::sleep(POLL);
    };
    if terminal && width > 0 {
        eprint!("\r{}\r", " ".repeat(width));
    }
    outcome(client, id, &reply)
}

fn outcome(client: &ClientArgs, id: u64, reply: &Reply) -> Result<(), Failure> {
    let job = &reply.value;
    if client.json {
        println!("{}", reply.raw);
    }
    let state = render::text(&job["state"]);
    let verify_failed = job["result"]["ok"] == Value::Bool(false);
    if state == "done" && !verify_failed {
        if !client.json {
            print!("{}", summary(job));
        }
        return Ok(());
    }
    if verify_failed {
        if !client.json {
            print!("{}", summary(job));
        }
        return Err(Failure::Job {
            id,
            state: "found damage".into(),
            message: "the backup did not verify".into(),
        });
    }
    let message = match job["error"].as_object() {
        Some(err) => format!(
            "{} ({})",
            render::text(&err["message"]),
            render::text(&err["code"])
        ),
        None => "no error was recorded".to_owned(),
    };
    Err(Failure::Job { id, state, message })
}

/// A finished job in a few lines.
fn summary(job: &Value) -> String {
    let mut out = format!(
        "job {} done: {}\n",
        render::text(&job["id"]),
        render::text(&job["description"])
    );
    let result = &job["result"];
    for key in [
        "backup_id",
        "mode",
        "destination",
        "path",
        "ok",
        "image_sha256",
    ] {
        if let Some(value) = result.get(key).filter(|v| !v.is_null()) {
            out.push_str(&format!("{key}: {}\n", render::text(value)));
        }
    }
    for problem in result["problems"].as_array().map_or(&[][..], Vec::as_slice) {
        out.push_str(&format!("problem: {}\n", render::text(problem)));
    }
    if let Some(download) = job["download"].as_str() {
        out.push_str(&format!("download: {download}\n"));
    }
    out
}
