//! Loading the image's kernel modules, dependencies first (from `modules.dep`).

use std::path::{Path, PathBuf};

use super::log;

/// The list `images/` writes into the initramfs, next to `modules.dep`.
const LOAD_LIST: &str = "modules.load";
/// An alternative place for the list.
const ETC_LIST: &str = "/etc/appliance/modules.list";

/// Used when the image carries no list: what the appliance needs on QEMU and common
/// hypervisors.
const BUILTIN_LIST: &[&str] = &[
    "crc32c_generic",
    "virtio_rng",
    "qemu_fw_cfg",
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "sd_mod",
    "ahci",
    "ata_piix",
    "virtio_net",
    "e1000",
    "e1000e",
    "ext4",
];

/// Loaded after the list when present: the ACPI power button and the input event
/// interface init watches it through.
const POWER_BUTTON_MODULES: &[&str] = &["button", "evdev"];

/// Loads the module list, the power button modules and blksnap; failures are logged and
/// boot goes on.
pub fn load_all() {
    let release = match sysboot::modules::kernel_release() {
        Ok(release) => release,
        Err(err) => {
            log(&format!("modules: {err}; loading none"));
            return;
        }
    };
    let root = Path::new("/lib/modules").join(&release);
    let index = match sysboot::modules::ModuleIndex::open(&root) {
        Ok(index) => index,
        Err(err) => {
            log(&format!("modules: {err}; loading none"));
            return;
        }
    };
    let (names, source) = module_list(&root);
    let mut loaded = 0usize;
    let mut failed = Vec::new();
    for name in &names {
        match index.load(name, "") {
            Ok(()) => loaded += 1,
            Err(err) => failed.push(format!("{name} ({err})")),
        }
    }
    let mut power = Vec::new();
    for name in POWER_BUTTON_MODULES {
        if sysboot::modules::is_loaded(name) {
            continue;
        }
        if !index.contains(name) {
            power.push(*name);
            continue;
        }
        match index.load(name, "") {
            Ok(()) => loaded += 1,
            Err(err) => failed.push(format!("{name} ({err})")),
        }
    }
    log(&format!(
        "modules: loaded {loaded} from {source}{}",
        if failed.is_empty() {
            String::new()
        } else {
            format!("; failed: {}", failed.join(", "))
        }
    ));
    if !power.is_empty() {
        log(&format!(
            "modules: {} not in the image: the ACPI power button may not work",
            power.join(", ")
        ));
    }
    load_blksnap(&index, &root);
}

fn load_blksnap(index: &sysboot::modules::ModuleIndex, root: &Path) {
    let result = if index.contains("blksnap") {
        index.load("blksnap", "")
    } else {
        let file = root.join("extra/blksnap.ko");
        if !file.exists() {
            log("modules: blksnap.ko is not in the image; snapshots are unavailable");
            return;
        }
        sysboot::modules::load_file(&file, "")
    };
    match result {
        Ok(()) => log("modules: blksnap loaded"),
        Err(err) => log(&format!(
            "modules: blksnap: {err}; snapshots are unavailable"
        )),
    }
}

/// The names to load and where they came from.
fn module_list(root: &Path) -> (Vec<String>, String) {
    for path in [root.join(LOAD_LIST), PathBuf::from(ETC_LIST)] {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return (parse_list(&text), path.display().to_string());
        }
    }
    (
        BUILTIN_LIST.iter().map(|s| (*s).to_owned()).collect(),
        "the built-in list".to_owned(),
    )
}

/// One name a line; `#` starts a comment.
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_skips_comments_and_blanks() {
        let text = "# header\nvirtio_pci\n\n  virtio-blk  # disks\n#ext4\n";
        assert_eq!(parse_list(text), vec!["virtio_pci", "virtio-blk"]);
    }
}
