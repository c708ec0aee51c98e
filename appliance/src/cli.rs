//! Command-line interface: `appliance <verb>`.
//!
//! As PID 1 the binary ignores its arguments (the kernel passes unknown boot words to
//! init) and runs the init sequence; `appliance init` asks for it explicitly.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The default root-only socket of the running daemon.
pub const DEFAULT_SOCKET: &str = "/run/appliance/api.sock";

/// The default state directory (the config disk is mounted here in the appliance).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/appliance";

/// The blksnap appliance: PID 1, HTTPS daemon and CLI in one binary.
#[derive(Debug, Parser)]
#[command(name = "appliance", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: the HTTPS web UI and REST API, the NBD server and the local socket.
    Serve(ServeArgs),
    /// Run the PID 1 init sequence (mounts, modules, network, daemon supervision).
    Init,
    /// Ask the running daemon whether it is healthy.
    Health(ClientArgs),
    #[command(flatten)]
    Daemon(crate::cmd::Verb),
}

/// Options of `appliance serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to serve HTTPS on; repeat for several.
    #[arg(long = "listen", value_name = "ADDR", default_value = "0.0.0.0:443")]
    pub listen: Vec<SocketAddr>,
    /// Also serve plain HTTP on this address (the boot key `http=1` adds 0.0.0.0:80).
    #[arg(long = "http-listen", value_name = "ADDR")]
    pub http_listen: Vec<SocketAddr>,
    /// Address of the NBD server (exports of disks, snapshots and backups).
    #[arg(
        long = "nbd-listen",
        value_name = "ADDR",
        default_value = "0.0.0.0:10809"
    )]
    pub nbd_listen: SocketAddr,
    /// Where settings live (password hash, TLS certificate and key).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// The root-only local API socket used by the CLI.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Read the boot configuration (kernel command line and fw_cfg) for the first
    /// password and `http=1`.
    #[arg(long)]
    pub boot_config: bool,
    /// Say that the state directory is kept in memory (nothing survives a power off).
    #[arg(long)]
    pub ephemeral_state: bool,
    /// Run under the appliance's init: a shutdown request powers the machine off.
    #[arg(long, hide = true)]
    pub supervised: bool,
}

/// Options shared by the verbs that talk to the daemon.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The daemon's local socket.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long)]
    pub json: bool,
    /// Settings (the target) used when no daemon answers and the verb runs in this
    /// process.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_and_overrides() {
        let cli = Cli::parse_from([
            "appliance",
            "serve",
            "--listen",
            "127.0.0.1:8443",
            "--state-dir",
            "/tmp/x",
        ]);
        match cli.command {
            Command::Serve(args) => {
                assert_eq!(args.listen, vec!["127.0.0.1:8443".parse().unwrap()]);
                assert_eq!(args.state_dir, PathBuf::from("/tmp/x"));
                assert_eq!(args.socket, PathBuf::from(DEFAULT_SOCKET));
                assert!(!args.boot_config);
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
