//! `appliance`: PID 1 of the blksnap appliance, its HTTPS daemon, and the CLI.
//!
//! As PID 1 (the initramfs's `/init`) it runs [`init`]; otherwise it parses its command
//! line ([`cli`]).

mod api;
mod auth;
mod cli;
mod client;
mod cmd;
mod config;
mod init;
mod net;
mod serve;
mod services;
mod web;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if std::process::id() == 1 {
        init::run();
    }
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Init => init::run(),
        cli::Command::Health(args) => client::health(&args),
        cli::Command::Daemon(verb) => return cmd::run(verb),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("appliance: {err:#}");
            ExitCode::FAILURE
        }
    }
}
