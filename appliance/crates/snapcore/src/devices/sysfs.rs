//! Reading one block device's attributes from sysfs, and the identity derived from them:
//! serial, WWN, bus path and the stable id.

use std::fs;
use std::path::Path;

/// A trimmed text attribute; `None` when missing, unreadable or empty.
pub(crate) fn attr(dir: &Path, name: &str) -> Option<String> {
    let raw = fs::read(dir.join(name)).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let t = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!t.is_empty()).then(|| t.to_owned())
}

/// A numeric attribute.
pub(crate) fn attr_u64(dir: &Path, name: &str) -> Option<u64> {
    attr(dir, name)?.parse().ok()
}

/// The serial of a SCSI device from its VPD page 0x80 (unit serial number): a 4-byte
/// header (peripheral, page code 0x80, big-endian length) and the ASCII serial.
pub(crate) fn vpd80_serial(raw: &[u8]) -> Option<String> {
    if raw.len() < 4 || raw[1] != 0x80 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
    let body = raw.get(4..4 + len.min(raw.len() - 4))?;
    let s = String::from_utf8_lossy(body)
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_owned();
    (!s.is_empty()).then_some(s)
}

/// Serial number: `serial` of the disk (virtio-blk), `device/serial` (NVMe, some SCSI),
/// or the VPD page 0x80 of a SCSI device.
pub(crate) fn serial(dir: &Path) -> Option<String> {
    attr(dir, "serial")
        .or_else(|| attr(&dir.join("device"), "serial"))
        .or_else(|| {
            fs::read(dir.join("device").join("vpd_pg80"))
                .ok()
                .and_then(|raw| vpd80_serial(&raw))
        })
}

/// World-wide name: `wwid` of the disk (NVMe namespaces) or of its SCSI device.
pub(crate) fn wwn(dir: &Path) -> Option<String> {
    attr(dir, "wwid").or_else(|| attr(&dir.join("device"), "wwid"))
}

/// Model and vendor from the device directory (SCSI, NVMe, ATA). virtio-blk has neither;
/// its `device/vendor` is a PCI id (`0x1af4`) and is not reported.
pub(crate) fn model_vendor(dir: &Path) -> (Option<String>, Option<String>) {
    let device = dir.join("device");
    let vendor = attr(&device, "vendor").filter(|v| !v.starts_with("0x"));
    (attr(&device, "model"), vendor)
}

fn is_pci_address(c: &str) -> bool {
    // dddd:bb:ss.f
    let b = c.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && c.chars()
            .enumerate()
            .all(|(i, ch)| matches!(i, 4 | 7 | 10) || ch.is_ascii_hexdigit())
}

fn is_scsi_address(c: &str) -> bool {
    let parts: Vec<&str> = c.split(':').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A udev-style bus path (`pci-0000:00:04.0`, `pci-0000:00:05.0-scsi-0:0:1:0`,
/// `pci-0000:00:06.0-nvme-1`) from the resolved sysfs path of a disk; `None` for virtual
/// devices.
pub(crate) fn bus_path(resolved: &Path, name: &str) -> Option<String> {
    let comps: Vec<String> = resolved
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if comps.iter().any(|c| c == "virtual") {
        return None;
    }
    let pci = comps.iter().rev().find(|c| is_pci_address(c))?;
    let mut out = format!("pci-{pci}");
    if let Some(scsi) = comps.iter().rev().find(|c| is_scsi_address(c)) {
        out.push_str(&format!("-scsi-{scsi}"));
    } else if let Some(ns) = name
        .strip_prefix("nvme")
        .and_then(|rest| rest.split_once('n'))
        .map(|(_, ns)| ns)
        .filter(|ns| !ns.is_empty() && ns.bytes().all(|b| b.is_ascii_digit()))
    {
        out.push_str(&format!("-nvme-{ns}"));
    }
    Some(out)
}

/// Makes a serial or WWN usable inside an id (URLs, CLI arguments): keeps
/// `[A-Za-z0-9._:-]`, turns anything else into `_`.
pub(crate) fn id_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The stable id of a whole disk: `serial:<serial>`, else `wwn:<wwn>`, else
/// `path:<bus path>`, else `name:<kernel name>`.
pub(crate) fn stable_id(
    serial: Option<&str>,
    wwn: Option<&str>,
    bus: Option<&str>,
    name: &str,
) -> String {
    if let Some(s) = serial {
        format!("serial:{}", id_safe(s))
    } else if let Some(w) = wwn {
        format!("wwn:{}", id_safe(w))
    } else if let Some(p) = bus {
        format!("path:{}", id_safe(p))
    } else {
        format!("name:{}", id_safe(name))
    }
}

/// Entries of a `holders` directory (dm, md, bcache devices stacked on this one) or of a
/// `slaves` directory (the devices this one is stacked on).
pub(crate) fn links(dir: &Path, which: &str) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir.join(which))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpd80() {
        let mut raw = vec![0x00, 0x80, 0x00, 0x08];
        raw.extend_from_slice(b"scsi0   ");
        assert_eq!(vpd80_serial(&raw).as_deref(), Some("scsi0"));
        assert_eq!(vpd80_serial(&[0, 0x83, 0, 1, b'x']), None);
        assert_eq!(
            vpd80_serial(&[0, 0x80, 0, 40, b'a', b'b']).as_deref(),
            Some("ab")
        );
        assert_eq!(vpd80_serial(&[0, 0x80]), None);
    }

    #[test]
    fn bus_paths() {
        let p = Path::new("/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda");
        assert_eq!(bus_path(p, "vda").as_deref(), Some("pci-0000:00:02.0"));
        let p = Path::new(
            "/sys/devices/pci0000:00/0000:00:05.0/virtio3/host0/target0:0:1/0:0:1:0/block/sdb",
        );
        assert_eq!(
            bus_path(p, "sdb").as_deref(),
            Some("pci-0000:00:05.0-scsi-0:0:1:0")
        );
        let p = Path::new("/sys/devices/pci0000:00/0000:00:06.0/nvme/nvme0/nvme0n1");
        assert_eq!(
            bus_path(p, "nvme0n1").as_deref(),
            Some("pci-0000:00:06.0-nvme-1")
        );
        assert_eq!(
            bus_path(Path::new("/sys/devices/virtual/block/dm-0"), "dm-0"),
            None
        );
    }

    #[test]
    fn ids() {
        assert_eq!(
            stable_id(Some("prod 0/x"), None, None, "vda"),
            "serial:prod_0_x"
        );
        assert_eq!(
            stable_id(None, Some("naa.5000c5"), None, "sda"),
            "wwn:naa.5000c5"
        );
        assert_eq!(
            stable_id(None, None, Some("pci-0000:00:02.0"), "vda"),
            "path:pci-0000:00:02.0"
        );
        assert_eq!(stable_id(None, None, None, "vda"), "name:vda");
    }
}
