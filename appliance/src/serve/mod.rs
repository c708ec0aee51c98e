//! `appliance serve`: the daemon. HTTPS on the `--listen` addresses (443 in the
//! appliance), optional plain HTTP, and the root-only local socket for the CLI; stops on
//! SIGTERM/SIGINT or a shutdown call.

pub mod certificate;
pub mod local;
pub mod nbd_tls;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::{Extension, Router};
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;
use nix::sys::signal::SigSet;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{self, AppState, LocalPeer, StopRequest};
use crate::auth::password::Origin;
use crate::auth::PasswordStore;
use crate::cli::ServeArgs;
use crate::config::BootConfig;
use crate::services::exports::NbdCatalog;
use crate::services::Services;

/// Exit status telling the appliance's init that the daemon stopped because a power off
/// was requested (not a crash).
pub const EXIT_POWEROFF: u8 = 64;

/// How long open connections get to finish when the daemon stops.
const GRACE: Duration = Duration::from_secs(5);

/// Runs the daemon until it is told to stop.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    // A parent may hand down a blocked signal mask (the appliance's init blocks the
    // signals it reads from a signalfd); SIGTERM and SIGINT must reach this process.
    SigSet::all()
        .thread_unblock()
        .context("unblocking signals")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(mut args: ServeArgs) -> Result<ExitCode> {
    let boot = if args.boot_config {
        let boot = BootConfig::read_system();
        // Under the appliance's init the warnings are on the console already.
        if !args.supervised {
            for warning in &boot.warnings {
                say(&format!("boot configuration: {warning}"));
            }
        }
        boot
    } else {
        BootConfig::default()
    };
    if boot.http && args.http_listen.is_empty() {
        args.http_listen.push(SocketAddr::from(([0, 0, 0, 0], 80)));
    }
    prepare_state_dir(&args.state_dir)?;
    if args.ephemeral_state {
        say(&format!(
            "settings are kept in memory ({}): no disk labelled APPLIANCE-CONFIG, \
             nothing set now survives a power off",
            args.state_dir.display()
        ));
    } else {
        say(&format!(
            "settings are kept in {}",
            args.state_dir.display()
        ));
    }

    let (passwords, origin) =
        PasswordStore::open_or_init(&args.state_dir, boot.password.as_deref())
            .context("setting up the admin password")?;
    let login_hint = match &origin {
        Origin::Stored => "the stored admin password".to_owned(),
        Origin::Config => "the password from the boot configuration".to_owned(),
        Origin::Generated(text) => {
            say(&format!(
                "generated admin password (shown only now): {text}"
            ));
            "the generated password shown above".to_owned()
        }
    };

    let addresses = announce_addresses(&args.listen);
    let names: Vec<String> = addresses.iter().map(|(ip, _)| ip.to_string()).collect();
    let identity = tls::load_or_create(&args.state_dir, &names).context("TLS certificate")?;
    if let Some(reason) = &identity.rejected {
        say(&format!(
            "the stored TLS certificate was set aside (*.rejected in {}): {reason}",
            args.state_dir.display()
        ));
    }
    say(&format!(
        "{} TLS certificate, SHA-256 fingerprint {}",
        if identity.created {
            "created a self-signed"
        } else {
            "using the stored"
        },
        identity.info.fingerprint_sha256
    ));

    let services = Services::for_daemon(&args.state_dir, args.ephemeral_state, args.supervised);
    let (state, mut stop_rx) = AppState::with_services(passwords, boot.debug, services.clone());
    if boot.debug {
        say("debug calls enabled (boot key debug=1): do not use in production");
    }
    let rustls = RustlsConfig::from_config(identity.config.clone());
    state.serve_https(certificate::HttpsCertificate::new(
        args.state_dir.clone(),
        names.clone(),
        rustls.clone(),
        identity.info,
    ));
    let app = api::make_app(state.clone());

    let mut servers = JoinSet::new();
    let mut handles = Vec::new();
    for addr in &args.listen {
        let listener = bind(*addr, "HTTPS")?;
        let handle = Handle::new();
        handles.push(handle.clone());
        let server = axum_server::from_tcp_rustls(listener, rustls.clone())
            .handle(handle)
            .serve(
                app.clone()
                    .into_make_service_with_connect_info::<SocketAddr>(),
            );
        let addr = *addr;
        servers.spawn(async move { (format!("HTTPS {addr}"), server.await) });
    }
    for addr in &args.http_listen {
        let listener = bind(*addr, "HTTP")?;
        let handle = Handle::new();
        handles.push(handle.clone());
        let server = axum_server::from_tcp(listener).handle(handle).serve(
            app.clone()
                .into_make_service_with_connect_info::<SocketAddr>(),
        );
        let addr = *addr;
        servers.spawn(async move { (format!("HTTP {addr}"), server.await) });
        say(&format!("plain HTTP on {addr} (boot key http=1)"));
    }
    let (socket_stop, socket_task) = serve_socket(&args.socket, app.clone())?;
    let (nbd_stop, nbd_task) = start_nbd(args.nbd_listen, &args.state_dir, &names, &services);

    for (ip, port) in &addresses {
        let host = match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        let url = if *port == 443 {
            format!("https://{host}/")
        } else {
            format!("https://{host}:{port}/")
        };
        say(&format!(
            "web UI and REST API at {url} (user admin, {login_hint})"
        ));
    }
    say(&format!("ready (version {})", api::VERSION));

    let request = wait_for_stop(&mut stop_rx, &mut servers).await;
    say("stopping: closing the listeners");
    for handle in &handles {
        handle.graceful_shutdown(Some(GRACE));
    }
    let _ = socket_stop.send(true);
    let _ = nbd_stop.send(true);
    if let Some(task) = nbd_task {
        let _ = task.await;
        say("stopping: NBD clients disconnected");
    }
    while let Some(joined) = servers.join_next().await {
        if let Ok((what, Err(err))) = joined {
            say(&format!("{what} ended with an error: {err}"));
        }
    }
    let _ = socket_task.await;
    remove_socket(&args.socket);
    let _ = tokio::task::spawn_blocking(move || services.shutdown()).await;
    say("stopping: no jobs running");
    say("stopping: no snapshots held by the daemon");
    say("stopped");
    if request == StopRequest::PowerOff && args.supervised {
        Ok(ExitCode::from(EXIT_POWEROFF))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// Starts the NBD server on `addr` with the exports of `services`; a failure (port taken,
/// certificate) is reported and the daemon goes on without it.
fn start_nbd(
    addr: SocketAddr,
    state_dir: &Path,
    names: &[String],
    services: &std::sync::Arc<Services>,
) -> (watch::Sender<bool>, Option<tokio::task::JoinHandle<()>>) {
    let (stop, stop_rx) = watch::channel(false);
    let identity = match nbd_tls::load_or_create(state_dir, names) {
        Ok(identity) => identity,
        Err(err) => {
            say(&format!(
                "NBD server not started: {}",
                snapcore::chain(&err)
            ));
            return (stop, None);
        }
    };
    let listener = match bind(addr, "NBD").and_then(|l| {
        tokio::net::TcpListener::from_std(l).with_context(|| format!("NBD listener on {addr}"))
    }) {
        Ok(listener) => listener,
        Err(err) => {
            say(&format!("NBD server not started: {err:#}"));
            return (stop, None);
        }
    };
    let _ = services.nbd_ca.set(identity.ca_pem.clone());
    say(&format!(
        "NBD server on {addr} ({} CA, SHA-256 fingerprint {}; clients fetch it from \
         /api/v1/nbd/ca-certificate)",
        if identity.created {
            "created the"
        } else {
            "using the stored"
        },
        identity.ca_fingerprint
    ));
    let config = nbd::ServerConfig {
        catalog: std::sync::Arc::new(NbdCatalog::new(services)),
        tls: Some(nbd::TlsAcceptor::from(identity.config)),
    };
    let events = std::sync::Arc::downgrade(services);
    let on_end = std::sync::Arc::new(move |peer: SocketAddr, result: Result<(), nbd::NbdError>| {
        if let (Err(err), Some(services)) = (result, events.upgrade()) {
            services.events.record(
                crate::services::Level::Warning,
                "exports",
                format!("NBD client {}: {err}", peer.ip()),
            );
        }
    });
    let task = tokio::spawn(nbd::run(listener, config, stop_rx, on_end));
    (stop, Some(task))
}

/// Waits for a shutdown call, SIGTERM, SIGINT, or a server ending on its own.
async fn wait_for_stop(
    stop_rx: &mut watch::Receiver<StopRequest>,
    servers: &mut JoinSet<(String, std::io::Result<()>)>,
) -> StopRequest {
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    let term_fut = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let int_fut = async {
        match int.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        changed = stop_rx.wait_for(|r| *r != StopRequest::None) => {
            changed.map(|r| *r).unwrap_or(StopRequest::None)
        }
        () = term_fut => {
            say("SIGTERM received");
            StopRequest::None
        }
        () = int_fut => {
            say("SIGINT received");
            StopRequest::None
        }
        Some(joined) = servers.join_next() => {
            match joined {
                Ok((what, Err(err))) => say(&format!("{what} failed: {err}")),
                Ok((what, Ok(()))) => say(&format!("{what} ended")),
                Err(err) => say(&format!("a server task failed: {err}")),
            }
            StopRequest::None
        }
    }
}

fn bind(addr: SocketAddr, what: &str) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen for {what} on {addr}"))?;
    listener
        .set_nonblocking(true)
        .with_context(|| format!("{what} listener on {addr}"))?;
    Ok(listener)
}

fn prepare_state_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict the state directory {}", dir.display()))?;
    Ok(())
}

/// Serves the API without authentication on a unix socket only root can reach.
pub(crate) fn serve_socket(
    path: &Path,
    app: Router,
) -> Result<(watch::Sender<bool>, tokio::task::JoinHandle<()>)> {
    let (stop, mut stop_rx) = watch::channel(false);
    let listener = match bind_socket(path) {
        Ok(listener) => Some(listener),
        Err(err) => {
            say(&format!(
                "local socket {} not available ({err:#}); the CLI cannot reach this daemon",
                path.display()
            ));
            None
        }
    };
    let task = tokio::spawn(async move {
        let Some(listener) = listener else {
            return;
        };
        let app = app.layer(Extension(LocalPeer));
        let shutdown = async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        };
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            say(&format!("local socket server failed: {err}"));
        }
    });
    Ok((stop, task))
}

fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener> {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))?;
    remove_socket(path);
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

pub(crate) fn remove_socket(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// The addresses to tell users about: the listen addresses, or for a wildcard listen
/// address every non-loopback IPv4 address of the machine.
fn announce_addresses(listen: &[SocketAddr]) -> Vec<(IpAddr, u16)> {
    let mut out = Vec::new();
    for addr in listen {
        if addr.ip().is_unspecified() {
            for ip in local_ipv4_addresses() {
                out.push((IpAddr::V4(ip), addr.port()));
            }
        } else {
            out.push((addr.ip(), addr.port()));
        }
    }
    out.dedup();
    out
}

fn local_ipv4_addresses() -> Vec<std::net::Ipv4Addr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<_> = addrs
        .filter_map(|ifa| ifa.address)
        .filter_map(|addr| addr.as_sockaddr_in().map(|sin| sin.ip()))
        .filter(|ip| !ip.is_loopback())
        .collect();
    out.dedup();
    out
}

/// A line on the daemon's stderr (the console, under the appliance's init).
pub fn say(line: &str) {
    eprintln!("appliance: {line}");
}
