//! CLI verbs that talk to the running daemon over its local socket (plain HTTP/1.1 on a
//! root-only unix socket: the same REST API, no token needed).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::ClientArgs;

/// How long a CLI call waits for the daemon.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A daemon answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// `appliance health`.
pub fn health(args: &ClientArgs) -> Result<ExitCode> {
    let answer = call(&args.socket, "GET", "/api/v1/health", None)?;
    if args.json {
        println!("{}", answer.body);
    } else {
        let value: serde_json::Value =
            serde_json::from_str(&answer.body).context("the daemon's answer is not JSON")?;
        let status = value["status"].as_str().unwrap_or("unknown");
        let version = value["version"].as_str().unwrap_or("unknown");
        println!("{status} (version {version})");
    }
    if answer.status == 200 {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// One request over the local socket.
pub fn call(socket: &Path, method: &str, path: &str, body: Option<&str>) -> Result<Answer> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach the daemon at {} (is `appliance serve` running, and are you root?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .context("reading the daemon's answer")?;
    parse_response(&raw)
}

/// Parses an HTTP/1.1 response with a Content-Length or chunked body.
pub fn parse_response(raw: &[u8]) -> Result<Answer> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        bail!("the daemon's answer is not HTTP");
    };
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line `{status_line}`"))?;
    let chunked = lines.any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_owned()
    };
    Ok(Answer { status, body })
}

fn dechunk(mut rest: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else {
            bail!("truncated chunked body");
        };
        let size = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = after.get(..size).context("truncated chunk")?;
        out.push_str(chunk);
        rest = after
            .get(size..)
            .unwrap_or_default()
            .trim_start_matches("\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}";
        let answer = parse_response(plain).unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, "{\"status\":\"ok\"}");
        let chunked = b"HTTP/1.1 401 Unauthorized\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n";
        let answer = parse_response(chunked).unwrap();
        assert_eq!(answer.status, 401);
        assert_eq!(answer.body, "abcdef");
        assert!(parse_response(b"garbage").is_err());
    }
}
