//! The daemon's services inside a CLI process, for when no daemon runs: the same API
//! router as `appliance serve`, served on a private unix socket only this process uses,
//! so every CLI verb works unchanged. No network listener, no login (the socket is the
//! local peer), and nothing is left behind: dropping [`LocalDaemon`] cancels its jobs,
//! releases its snapshots and removes the socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

use super::{remove_socket, serve_socket};
use crate::api::{self, AppState};
use crate::auth::PasswordStore;
use crate::services::Services;

/// The API served by this process.
pub struct LocalDaemon {
    socket: PathBuf,
    services: Arc<Services>,
    stop: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LocalDaemon {
    /// Starts the services with the settings of `state_dir` (read, and written only by
    /// verbs that change settings) or, when it does not exist, with the defaults in
    /// memory; serves them on `socket_dir/cli-<pid>.sock`.
    pub fn start(state_dir: &Path, socket_dir: &Path) -> Result<LocalDaemon> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        let services = if state_dir.is_dir() {
            Services::for_daemon(state_dir, false, false)
        } else {
            Services::new(crate::services::ServicesConfig::system(None))
        };
        // Logins are not served: the private socket needs none.
        let (state, _stop_requests) =
            AppState::with_services(PasswordStore::refusing(), false, services.clone());
        let app = api::make_app(state);
        let socket = socket_dir.join(format!("cli-{}.sock", std::process::id()));
        let (stop, task) = {
            let _entered = runtime.enter();
            serve_socket(&socket, app)?
        };
        if !socket.exists() {
            return Err(anyhow::anyhow!(
                "cannot serve the CLI's private socket {}",
                socket.display()
            ));
        }
        Ok(LocalDaemon {
            socket,
            services,
            stop,
            runtime: Some(runtime),
            task: Some(task),
        })
    }

    /// The private socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for LocalDaemon {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let (Some(runtime), Some(task)) = (self.runtime.take(), self.task.take()) {
            let _ = runtime.block_on(task);
            runtime.shutdown_background();
        }
        remove_socket(&self.socket);
        self.services.shutdown();
    }
}
