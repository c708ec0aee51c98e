//! One REST call over the daemon's local socket, with the CLI's error reporting: API
//! errors become `error: <message> (<code>)`, an absent daemon a sentence saying so.

use std::path::Path;

use serde_json::Value;

use crate::client;

/// Why a CLI verb failed; [`Failure::report`] prints it.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Nothing answers on the socket.
    #[error(
        "no appliance daemon answers at {socket} ({cause}); start it with `appliance serve` \
         (as root)"
    )]
    NoDaemon {
        /// The socket tried.
        socket: String,
        /// What connecting said.
        cause: String,
    },
    /// The daemon refused the call with `{code, message}`.
    #[error("{message} ({code})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable code.
        code: String,
        /// The daemon's sentence.
        message: String,
        /// The body as sent, for `--json`.
        body: String,
    },
    /// A job finished other than done.
    #[error("job {id} {state}: {message}")]
    Job {
        /// The job number.
        id: u64,
        /// `failed` or `cancelled`.
        state: String,
        /// The job's error, or what is known.
        message: String,
    },
    /// Anything else (a broken answer, a bad argument).
    #[error("{0}")]
    Other(String),
}

impl Failure {
    /// Prints the failure: with `--json` an API error's body goes to stdout as sent; the
    /// `error: ...` line always goes to stderr.
    pub fn report(&self, json: bool) {
        if let (true, Failure::Api { body, .. }) = (json, self) {
            println!("{body}");
        }
        eprintln!("error: {self}");
    }
}

/// A successful answer: its body as sent and parsed.
#[derive(Debug)]
pub struct Reply {
    /// The body as the daemon sent it.
    pub raw: String,
    /// The body parsed (`null` when empty, as after a DELETE).
    pub value: Value,
}

/// Calls `method path` with an optional JSON body; any non-2xx answer is a [`Failure`].
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Reply, Failure> {
    let text = body.map(Value::to_string);
    let answer = client::call(socket, method, path, text.as_deref()).map_err(|err| {
        let io = err.chain().find_map(|e| e.downcast_ref::<std::io::Error>());
        match io.map(std::io::Error::kind) {
            Some(
                std::io::ErrorKind::NotFound
                | std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::PermissionDenied,
            ) => Failure::NoDaemon {
                socket: socket.display().to_string(),
                cause: io.map(ToString::to_string).unwrap_or_default(),
            },
            _ => Failure::Other(format!("{err:#}")),
        }
    })?;
    let value = if answer.body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&answer.body).map_err(|e| {
            Failure::Other(format!(
                "the daemon's answer (HTTP {}) is not JSON: {e}",
                answer.status
            ))
        })?
    };
    if (200..300).contains(&answer.status) {
        return Ok(Reply {
            raw: answer.body,
            value,
        });
    }
    let code = value["code"].as_str().unwrap_or("http_error").to_owned();
    let message = value["message"]
        .as_str()
        .map_or_else(|| format!("HTTP status {}", answer.status), str::to_owned);
    Err(Failure::Api {
        status: answer.status,
        code,
        message,
        body: answer.body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_daemon_is_a_clear_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("none.sock");
        let err = request(&socket, "GET", "/api/v1/jobs", None).unwrap_err();
        assert!(matches!(err, Failure::NoDaemon { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("appliance serve"), "{text}");
    }

    #[test]
    fn api_error_line() {
        let err = Failure::Api {
            status: 404,
            code: "not_found".into(),
            message: "no such resource".into(),
            body: String::new(),
        };
        assert_eq!(err.to_string(), "no such resource (not_found)");
    }
}
