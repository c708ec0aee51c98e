//! A minimal QMP (QEMU Machine Protocol) client: one command per connection.
//!
//! QEMU listens on a unix socket (`-qmp unix:PATH,server=on,wait=off`); a client reads
//! the greeting, negotiates with `qmp_capabilities`, then sends commands as JSON lines.
//! Asynchronous event lines are skipped while waiting for a reply.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::{Error, Result};

/// Where a VM whose artifacts live in `dir` has its QMP socket. Unix socket paths are
/// limited to 107 bytes; a long artifact path falls back to the temp directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    let path = dir.join("qmp.sock");
    if path.as_os_str().len() < 100 {
        return path;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in dir.as_os_str().as_encoded_bytes() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    std::env::temp_dir().join(format!("appliance-qmp-{hash:016x}.sock"))
}

/// Runs one QMP command with optional arguments; returns its `return` value.
pub fn execute(socket: &Path, command: &str, arguments: Option<Value>) -> Result<Value> {
    let parse_err = |detail: String| Error::Parse {
        command: format!("QMP {command}"),
        detail,
    };
    let stream = UnixStream::connect(socket).map_err(Error::io("cannot connect to", socket))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(Error::io("cannot set a timeout on", socket))?;
    let mut writer = stream
        .try_clone()
        .map_err(Error::io("cannot duplicate", socket))?;
    let mut reader = BufReader::new(stream);
    let greeting = read_message(&mut reader, socket)?;
    if greeting.get("QMP").is_none() {
        return Err(parse_err(format!("no QMP greeting: {greeting}")));
    }
    let mut send = |message: Value| -> Result<Value> {
        let mut line = message.to_string();
        line.push('\n');
        writer
            .write_all(line.as_bytes())
            .map_err(Error::io("cannot write to", socket))?;
        loop {
            let reply = read_message(&mut reader, socket)?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            return Err(parse_err(format!("error reply: {reply}")));
        }
    };
    send(json!({"execute": "qmp_capabilities"}))?;
    let mut message = json!({ "execute": command });
    if let Some(arguments) = arguments {
        message["arguments"] = arguments;
    }
    send(message)
}

fn read_message(reader: &mut impl BufRead, socket: &Path) -> Result<Value> {
    let mut line = String::new();
    let read = reader
        .read_line(&mut line)
        .map_err(Error::io("cannot read from", socket))?;
    if read == 0 {
        return Err(Error::Parse {
            command: "QMP".into(),
            detail: "connection closed".into(),
        });
    }
    serde_json::from_str(&line).map_err(|err| Error::Parse {
        command: "QMP".into(),
        detail: format!("{err}: {line}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_artifact_paths_get_short_sockets() {
        let short = socket_path(Path::new("/w/tests/artifacts/x"));
        assert_eq!(short, Path::new("/w/tests/artifacts/x/qmp.sock"));
        let long_dir = PathBuf::from(format!("/w/{}", "d".repeat(120)));
        let long = socket_path(&long_dir);
        assert!(long.as_os_str().len() < 108);
        assert_eq!(long, socket_path(&long_dir));
    }
}
