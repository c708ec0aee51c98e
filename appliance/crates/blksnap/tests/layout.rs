//! Compares the Rust mirror with the C header: compiles a small C program
//! against `kmod/include/uapi/blksnap.h` with the system C compiler, runs it,
//! and checks every struct size, field offset, enum value and request number.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use blksnap::uapi::{self, request, *};

fn header_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../kmod/include/uapi")
}

/// A C struct's name, its Rust size and its fields' Rust offsets.
type Layout = (&'static str, usize, Vec<(&'static str, usize)>);

fn rust_layouts() -> Vec<Layout> {
    macro_rules! layout {
        ($c:literal, $t:ty, [$($f:ident),* $(,)?]) => {
            ($c, size_of::<$t>(), vec![$((stringify!($f), offset_of!($t, $f))),*])
        };
    }
    vec![
        layout!(
            "blk_snap_version",
            BlkSnapVersion,
            [major, minor, revision, build]
        ),
        layout!("blk_snap_dev", BlkSnapDev, [mj, mn]),
        layout!("blk_snap_tracker_remove", BlkSnapTrackerRemove, [dev_id]),
        layout!("blk_snap_uuid", BlkSnapUuid, [b]),
        layout!(
            "blk_snap_cbt_info",
            BlkSnapCbtInfo,
            [
                dev_id,
                blk_size,
                device_capacity,
                blk_count,
                generation_id,
                snap_number
            ]
        ),
        layout!(
            "blk_snap_tracker_collect",
            BlkSnapTrackerCollect,
            [count, cbt_info_array]
        ),
        layout!(
            "blk_snap_tracker_read_cbt_bitmap",
            BlkSnapTrackerReadCbtBitmap,
            [dev_id, offset, length, buff]
        ),
        layout!(
            "blk_snap_block_range",
            BlkSnapBlockRange,
            [sector_offset, sector_count]
        ),
        layout!(
            "blk_snap_tracker_mark_dirty_blocks",
            BlkSnapTrackerMarkDirtyBlocks,
            [dev_id, count, dirty_blocks_array]
        ),
        layout!(
            "blk_snap_snapshot_create",
            BlkSnapSnapshotCreate,
            [count, dev_id_array, id]
        ),
        layout!("blk_snap_snapshot_destroy", BlkSnapSnapshotDestroy, [id]),
        layout!(
            "blk_snap_snapshot_append_storage",
            BlkSnapSnapshotAppendStorage,
            [id, dev_id, count, ranges]
        ),
        layout!("blk_snap_snapshot_take", BlkSnapSnapshotTake, [id]),
        layout!(
            "blk_snap_snapshot_collect",
            BlkSnapSnapshotCollect,
            [count, ids]
        ),
        layout!(
            "blk_snap_image_info",
            BlkSnapImageInfo,
            [orig_dev_id, image_dev_id]
        ),
        layout!(
            "blk_snap_snapshot_collect_images",
            BlkSnapSnapshotCollectImages,
            [id, count, image_info_array]
        ),
        layout!(
            "blk_snap_snapshot_event",
            BlkSnapSnapshotEvent,
            [id, timeout_ms, code, time_label, data]
        ),
        layout!(
            "blk_snap_event_low_free_space",
            BlkSnapEventLowFreeSpace,
            [requested_nr_sect]
        ),
        layout!(
            "blk_snap_event_corrupted",
            BlkSnapEventCorrupted,
            [orig_dev_id, err_code]
        ),
    ]
}

fn rust_requests() -> Vec<(&'static str, String)> {
    vec![
        ("IOCTL_BLK_SNAP_VERSION", request::VERSION.to_string()),
        (
            "IOCTL_BLK_SNAP_TRACKER_REMOVE",
            request::TRACKER_REMOVE.to_string(),
        ),
        (
            "IOCTL_BLK_SNAP_TRACKER_COLLECT",
            request::TRACKER_COLLECT.to_string(),
        ),
        (
            "IOCTL_BLK_SNAP_TRACKER_READ_CBT_MAP",
            request::TRACKER_READ_CBT_MAP.to_string(),
        ),
        (
            "IOCTL_BLK_SNAP_TRACKER_MARK_DIRTY_BLOCKS",
            request::TRACKER_MARK_DIRTY_BLOCKS.to_string(),
        ),
        (
            "IOCTL_BLK_SNAP_SNAPSHOT_CREATE",
            request::SNAPSHOT_CREATE.to_string(),
        ),
        (
            "IOCTL_BLK_SNAP_SNAPSHOT_DESTROY",
            request::SNAPSHOT_DESTROY.to_string(),
        ),
        (
            "IOCTL_BLK_SNAP_SNAPSHOT_APPEND_STORAGE",
            request::SNAPSHOT_APPEND_STORAGE.to_string(),
        ),
        (
            "IOCTL_BLK_SNAP_SNAPSHOT_TAKE",
            request::SNAPSHOT_TAKE.to_string(),
        ),
        (
            "IOCTL_BLK_SNAP_SNAPSHOT_COLLECT",
            request::SNAPSHOT_COLLECT.to_string(),
        ),
        (
            "IOCTL_BLK_SNAP_SNAPSHOT_COLLECT_IMAGES",
            request::SNAPSHOT_COLLECT_IMAGES.to_string(),
        ),
        (
            "IOCTL_BLK_SNAP_SNAPSHOT_WAIT_EVENT",
            request::SNAPSHOT_WAIT_EVENT.to_string(),
        ),
    ]
}

fn rust_enums() -> Vec<(&'static str, String)> {
    vec![
        ("blk_snap_ioctl_version", nr::VERSION.to_string()),
        (
            "blk_snap_ioctl_tracker_remove",
            nr::TRACKER_REMOVE.to_string(),
        ),
        (
            "blk_snap_ioctl_tracker_collect",
            nr::TRACKER_COLLECT.to_string(),
        ),
        (
            "blk_snap_ioctl_tracker_read_cbt_map",
            nr::TRACKER_READ_CBT_MAP.to_string(),
        ),
        (
            "blk_snap_ioctl_tracker_mark_dirty_blocks",
            nr::TRACKER_MARK_DIRTY_BLOCKS.to_string(),
        ),
        (
            "blk_snap_ioctl_snapshot_create",
            nr::SNAPSHOT_CREATE.to_string(),
        ),
        (
            "blk_snap_ioctl_snapshot_destroy",
            nr::SNAPSHOT_DESTROY.to_string(),
        ),
        (
            "blk_snap_ioctl_snapshot_append_storage",
            nr::SNAPSHOT_APPEND_STORAGE.to_string(),
        ),
        (
            "blk_snap_ioctl_snapshot_take",
            nr::SNAPSHOT_TAKE.to_string(),
        ),
        (
            "blk_snap_ioctl_snapshot_collect",
            nr::SNAPSHOT_COLLECT.to_string(),
        ),
        (
            "blk_snap_ioctl_snapshot_collect_images",
            nr::SNAPSHOT_COLLECT_IMAGES.to_string(),
        ),
        (
            "blk_snap_ioctl_snapshot_wait_event",
            nr::SNAPSHOT_WAIT_EVENT.to_string(),
        ),
        ("blk_snap_ioctl_end", nr::END.to_string()),
        (
            "blk_snap_event_code_low_free_space",
            uapi::BLK_SNAP_EVENT_CODE_LOW_FREE_SPACE.to_string(),
        ),
        (
            "blk_snap_event_code_corrupted",
            uapi::BLK_SNAP_EVENT_CODE_CORRUPTED.to_string(),
        ),
        ("BLK_SNAP", uapi::BLK_SNAP.to_string()),
    ]
}

/// The C program: one `key value` line per fact.
fn c_source() -> String {
    let mut src = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/ioctl.h>\n\
         #include \"blksnap.h\"\n\
         #define S(t) printf(\"sizeof %s %zu\\n\", #t, sizeof(struct t));\n\
         #define O(t, f) printf(\"offsetof %s.%s %zu\\n\", #t, #f, offsetof(struct t, f));\n\
         #define V(n) printf(\"value %s %llu\\n\", #n, (unsigned long long)(n));\n\
         int main(void) {\n",
    );
    for (name, _, fields) in rust_layouts() {
        src += &format!("S({name})\n");
        for (field, _) in fields {
            src += &format!("O({name}, {field})\n");
        }
    }
    for (name, _) in rust_requests().into_iter().chain(rust_enums()) {
        src += &format!("V({name})\n");
    }
    src += "printf(\"string BLK_SNAP_CTL %s\\n\", BLK_SNAP_CTL);\n";
    src += "printf(\"string BLK_SNAP_IMAGE_NAME %s\\n\", BLK_SNAP_IMAGE_NAME);\n";
    src += "return 0;\n}\n";
    src
}

fn run_c_program() -> BTreeMap<String, String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("blksnap-layout");
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, c_source()).expect("write C source");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let out = Command::new(&cc)
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg("-I")
        .arg(header_dir())
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc}: {e}"));
    assert!(
        out.status.success(),
        "C compile failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("run layout program");
    assert!(run.status.success(), "layout program failed");
    let text = String::from_utf8(run.stdout).expect("utf-8 output");
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            let kind = parts.next()?;
            let key = parts.next()?;
            let value = parts.next()?;
            Some((format!("{kind} {key}"), value.to_owned()))
        })
        .collect()
}

#[test]
fn rust_mirror_matches_c_header() {
    let c = run_c_program();
    let mut mismatches = Vec::new();
    let mut checked = 0;
    let mut check = |key: String, rust: String| {
        checked += 1;
        match c.get(&key) {
            Some(v) if *v == rust => {}
            Some(v) => mismatches.push(format!("{key}: C {v}, Rust {rust}")),
            None => mismatches.push(format!("{key}: missing in C output")),
        }
    };
    for (name, size, fields) in rust_layouts() {
        check(format!("sizeof {name}"), size.to_string());
        for (field, off) in fields {
            check(format!("offsetof {name}.{field}"), off.to_string());
        }
    }
    for (name, value) in rust_requests().into_iter().chain(rust_enums()) {
        check(format!("value {name}"), value);
    }
    check("string BLK_SNAP_CTL".into(), uapi::BLK_SNAP_CTL.into());
    check(
        "string BLK_SNAP_IMAGE_NAME".into(),
        uapi::BLK_SNAP_IMAGE_NAME.into(),
    );
    assert!(
        mismatches.is_empty(),
        "layout mismatches:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(checked, c.len(), "C printed facts the test did not check");
    assert!(checked > 90, "only {checked} facts compared");
}

#[test]
fn event_struct_is_one_page() {
    assert_eq!(size_of::<BlkSnapSnapshotEvent>(), 4096);
}
