//! Parsing of the daemon verbs.

use std::path::PathBuf;

use clap::Parser;

use super::args::{Format, SnapshotVerb, Verb};
use super::render;
use crate::cli::{Cli, Command, DEFAULT_SOCKET};

fn verb(args: &[&str]) -> Verb {
    let cli = Cli::try_parse_from(std::iter::once("appliance").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    match cli.command {
        Command::Daemon(verb) => verb,
        other => panic!("parsed as {other:?}"),
    }
}

fn rejects(args: &[&str]) {
    let parsed = Cli::try_parse_from(std::iter::once("appliance").chain(args.iter().copied()));
    assert!(parsed.is_err(), "{args:?} was accepted");
}

#[test]
fn listing_verbs_take_json_and_socket() {
    match verb(&["devices", "--json", "--socket", "/tmp/s"]) {
        Verb::Devices(c) => {
            assert!(c.json);
            assert_eq!(c.socket, PathBuf::from("/tmp/s"));
        }
        other => panic!("{other:?}"),
    }
    match verb(&["backups"]) {
        Verb::Backups(c) => {
            assert!(!c.json);
            assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(verb(&["jobs", "--json"]), Verb::Jobs(c) if c.json));
    assert!(matches!(
        verb(&["snapshot", "list", "--json"]),
        Verb::Snapshot(SnapshotVerb::List(c)) if c.json
    ));
}

#[test]
fn snapshot_create_take_and_destroy() {
    match verb(&[
        "snapshot",
        "create",
        "--device",
        "prod0",
        "--device",
        "vdb",
        "--scratch",
        "scratch0",
    ]) {
        Verb::Snapshot(SnapshotVerb::Create(a)) => {
            assert_eq!(a.devices, ["prod0", "vdb"]);
            assert_eq!(a.storage.scratch.as_deref(), Some("scratch0"));
            assert!(!a.storage.overwrite);
            assert!(!a.later);
        }
        other => panic!("{other:?}"),
    }
    match verb(&[
        "snapshot",
        "create",
        "--device",
        "prod0",
        "--scratch",
        "scratch0",
        "--later",
    ]) {
        Verb::Snapshot(SnapshotVerb::Create(a)) => assert!(a.later),
        other => panic!("{other:?}"),
    }
    match verb(&["snapshot", "take", "0b0e-uuid"]) {
        Verb::Snapshot(SnapshotVerb::Take(a)) => assert_eq!(a.id, "0b0e-uuid"),
        other => panic!("{other:?}"),
    }
    rejects(&["snapshot", "take"]);
    rejects(&["snapshot", "create", "--scratch", "scratch0"]);
    rejects(&[
        "snapshot",
        "create",
        "--device",
        "a",
        "--scratch",
        "b",
        "--scratch-file",
        "/x",
        "--scratch-size",
        "64",
    ]);
    rejects(&[
        "snapshot",
        "create",
        "--device",
        "a",
        "--scratch-file",
        "/x",
    ]);
    match verb(&["snapshot", "destroy", "0b0e-uuid", "--json"]) {
        Verb::Snapshot(SnapshotVerb::Destroy(a)) => {
            assert_eq!(a.id, "0b0e-uuid");
            assert!(a.client.json);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_disk_shows_or_formats() {
    match verb(&["config-disk"]) {
        Verb::ConfigDisk(a) => assert!(a.format.is_none() && !a.overwrite),
        other => panic!("{other:?}"),
    }
    match verb(&["config-disk", "--format", "cfg0", "--overwrite", "--json"]) {
        Verb::ConfigDisk(a) => {
            assert_eq!(a.format.as_deref(), Some("cfg0"));
            assert!(a.overwrite && a.client.json);
        }
        other => panic!("{other:?}"),
    }
    rejects(&["config-disk", "--overwrite"]);
    assert_eq!(
        render::config_disk(&serde_json::json!({"persistent": false, "device": null, "state_dir": "/var/lib/appliance"})),
        "settings are kept in memory (/var/lib/appliance): `appliance config-disk --format DEVICE` keeps them on a disk\n"
    );
}

#[test]
fn backup_and_job_starters() {
    match verb(&[
        "backup",
        "prod0",
        "--full",
        "--scratch",
        "scratch0",
        "--wait",
    ]) {
        Verb::Backup(a) => {
            assert_eq!(a.device, "prod0");
            assert!(a.full && a.wait.wait);
            assert_eq!(a.storage.scratch.as_deref(), Some("scratch0"));
        }
        other => panic!("{other:?}"),
    }
    match verb(&["backup", "prod0"]) {
        Verb::Backup(a) => assert!(!a.full && !a.wait.wait && a.storage.scratch.is_none()),
        other => panic!("{other:?}"),
    }
    match verb(&["restore", "B1", "--to", "file:out.img", "--wait"]) {
        Verb::Restore(a) => {
            assert_eq!((a.backup.as_str(), a.to.as_str()), ("B1", "file:out.img"));
            assert!(a.wait.wait);
        }
        other => panic!("{other:?}"),
    }
    rejects(&["restore", "B1"]);
    assert!(matches!(verb(&["verify", "B1", "--wait"]), Verb::Verify(a) if a.wait.wait));
    match verb(&["export", "B1", "--format", "qcow2"]) {
        Verb::Export(a) => assert_eq!(a.format, Format::Qcow2),
        other => panic!("{other:?}"),
    }
    rejects(&["export", "B1", "--format", "vmdk"]);
    match verb(&["job", "7", "--cancel"]) {
        Verb::Job(a) => assert!(a.id == 7 && a.cancel && !a.wait.wait),
        other => panic!("{other:?}"),
    }
    rejects(&["job", "seven"]);
    rejects(&["job", "7", "--cancel", "--wait"]);
}

#[test]
fn path_segments_are_encoded() {
    assert_eq!(super::segment("20261124T1-ab_c.d"), "20261124T1-ab_c.d");
    assert_eq!(super::segment("a/../b c"), "a%2F..%2Fb%20c");
}
