//! `/proc/self/mountinfo`: which block devices are mounted where.
//!
//! Line format (proc(5)): `id parent MAJ:MIN root mountpoint options [optional...] - fstype
//! source superoptions`, with spaces, tabs, newlines and backslashes in paths escaped as
//! octal (`\040`).

use std::path::PathBuf;

use blksnap::DevId;

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The `st_dev` of the mounted filesystem (for block filesystems: the device).
    pub dev: DevId,
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// The mount source (`/dev/vda1`, `tmpfs`, `server:/export`).
    pub source: String,
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let mut right = right.split(' ');
    let dev = left.get(2)?.parse::<DevId>().ok()?;
    let mount_point = PathBuf::from(unescape(left.get(4)?));
    let fs_type = unescape(right.next()?);
    let source = unescape(right.next().unwrap_or(""));
    Some(Mount {
        dev,
        mount_point,
        fs_type,
        source,
    })
}

/// Parses the text of a mountinfo file; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_paths_and_escapes() {
        let text = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
40 27 254:16 / /mnt/back\\040up rw,relatime shared:7 master:2 - ext4 /dev/vdb rw
garbage line
41 27 0:45 /sub /mnt/b rw - btrfs /dev/vdc rw
";
        let m = parse(text);
        assert_eq!(m.len(), 4);
        assert_eq!(m[1].dev, DevId::new(254, 1));
        assert_eq!(m[1].mount_point, PathBuf::from("/"));
        assert_eq!(m[1].fs_type, "ext4");
        assert_eq!(m[1].source, "/dev/vda1");
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/back up"));
        assert_eq!(m[2].dev, DevId::new(254, 16));
        assert_eq!(m[3].source, "/dev/vdc");
    }

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape("a\\040b\\134c"), "a b\\c");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
    }
}
