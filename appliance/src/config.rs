//! Boot configuration: `appliance.<key>=<value>` on the kernel command line and
//! `<key>=<value>` lines in the QEMU fw_cfg item `opt/appliance/config`.
//!
//! Both sources carry the same keys; the kernel command line wins. Values cannot contain
//! whitespace (fw_cfg text is split at any whitespace, like the command line).
//!
//! | key        | meaning                                             | default            |
//! |------------|-----------------------------------------------------|--------------------|
//! | `password` | first admin password (ignored once one is stored)   | generated, printed |
//! | `ip`       | `ADDR/PREFIX[,GATEWAY]` on the first NIC            | DHCP               |
//! | `http`     | `1`: also serve plain HTTP on port 80               | off                |
//! | `debug`    | `1`: enable the guarded debug calls used by tests   | off                |

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

/// Where QEMU's fw_cfg sysfs driver exposes the configuration item.
pub const FW_CFG_PATH: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/appliance/config/raw";

/// The kernel command line prefix of every key.
pub const CMDLINE_PREFIX: &str = "appliance.";

/// A static IPv4 configuration for the first NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticIp {
    /// The interface address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub prefix: u8,
    /// The default gateway, if any.
    pub gateway: Option<Ipv4Addr>,
}

impl fmt::Display for StaticIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        Ok(())
    }
}

/// The parsed boot configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootConfig {
    /// The first admin password.
    pub password: Option<String>,
    /// A static address; `None` means DHCP.
    pub ip: Option<StaticIp>,
    /// Serve plain HTTP on port 80 as well.
    pub http: bool,
    /// Enable the debug calls (tests only).
    pub debug: bool,
    /// Problems met while parsing, one sentence each, for the console.
    pub warnings: Vec<String>,
}

/// A value that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValueError {
    /// `ip` is not `ADDR/PREFIX[,GATEWAY]`.
    #[error("`{0}` is not ADDR/PREFIX[,GATEWAY] (for example 192.168.1.20/24,192.168.1.1)")]
    Ip(String),
    /// A boolean is not one of 1/0/yes/no/true/false/on/off.
    #[error("`{0}` is not a boolean (1 or 0)")]
    Bool(String),
}

impl BootConfig {
    /// Reads the running machine's configuration: fw_cfg (if present) and `/proc/cmdline`.
    pub fn read_system() -> Self {
        let mut warnings = Vec::new();
        let fw_cfg = match std::fs::read(FW_CFG_PATH) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => {
                warnings.push(format!("cannot read fw_cfg {FW_CFG_PATH}: {err}"));
                String::new()
            }
        };
        let cmdline = match sysboot::cmdline::read() {
            Ok(map) => map,
            Err(err) => {
                warnings.push(format!("cannot read the kernel command line: {err}"));
                BTreeMap::new()
            }
        };
        let mut config = Self::from_sources(&fw_cfg, &cmdline);
        warnings.append(&mut config.warnings);
        config.warnings = warnings;
        config
    }

    /// Whether the fw_cfg item exists on this machine.
    pub fn fw_cfg_present() -> bool {
        Path::new(FW_CFG_PATH).exists()
    }

    /// Merges fw_cfg text and a parsed kernel command line; the command line wins.
    pub fn from_sources(fw_cfg: &str, cmdline: &BTreeMap<String, String>) -> Self {
        let mut keys = parse_fw_cfg(fw_cfg);
        for (key, value) in cmdline {
            if let Some(short) = key.strip_prefix(CMDLINE_PREFIX) {
                keys.insert(short.to_owned(), value.clone());
            }
        }
        Self::from_keys(&keys)
    }

    /// Builds the configuration from `key -> value`, collecting warnings.
    pub fn from_keys(keys: &BTreeMap<String, String>) -> Self {
        let mut config = BootConfig::default();
        for (key, value) in keys {
            match key.as_str() {
                "password" if value.is_empty() => {
                    config.warnings.push("empty password ignored".to_owned());
                }
                "password" => config.password = Some(value.clone()),
                "ip" => match parse_ip(value) {
                    Ok(ip) => config.ip = Some(ip),
                    Err(err) => config
                        .warnings
                        .push(format!("ip: {err}; using DHCP instead")),
                },
                "http" => match parse_bool(value) {
                    Ok(on) => config.http = on,
                    Err(err) => config.warnings.push(format!("http: {err}")),
                },
                "debug" => match parse_bool(value) {
                    Ok(on) => config.debug = on,
                    Err(err) => config.warnings.push(format!("debug: {err}")),
                },
                other => config
                    .warnings
                    .push(format!("unknown configuration key `{other}` ignored")),
            }
        }
        config
    }
}

/// Splits fw_cfg text into `key -> value`; words without `=` and `#` comments are skipped.
pub fn parse_fw_cfg(text: &str) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    for line in text.lines() {
        let line = match line.split_once('#') {
            Some((before, _)) => before,
            None => line,
        };
        for word in line.split_whitespace() {
            if let Some((key, value)) = word.split_once('=') {
                let key = key.strip_prefix(CMDLINE_PREFIX).unwrap_or(key);
                keys.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    keys
}

/// Parses `ADDR/PREFIX[,GATEWAY]`.
pub fn parse_ip(text: &str) -> Result<StaticIp, ValueError> {
    let bad = || ValueError::Ip(text.to_owned());
    let (cidr, gateway) = match text.split_once(',') {
        Some((cidr, gw)) => (cidr, Some(gw.parse::<Ipv4Addr>().map_err(|_| bad())?)),
        None => (text, None),
    };
    let (addr, prefix) = cidr.split_once('/').ok_or_else(bad)?;
    let addr = addr.parse::<Ipv4Addr>().map_err(|_| bad())?;
    let prefix = prefix.parse::<u8>().map_err(|_| bad())?;
    if prefix > 32 || addr.is_unspecified() {
        return Err(bad());
    }
    Ok(StaticIp {
        addr,
        prefix,
        gateway,
    })
}

/// Parses 1/0, yes/no, true/false, on/off.
pub fn parse_bool(text: &str) -> Result<bool, ValueError> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" | "" => Ok(false),
        _ => Err(ValueError::Bool(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmdline(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn fw_cfg_lines_and_spaces() {
        let keys = parse_fw_cfg("password=s3cret\nhttp=1 ip=10.0.0.5/24 # comment\nnoise\n");
        assert_eq!(keys.get("password").map(String::as_str), Some("s3cret"));
        assert_eq!(keys.get("http").map(String::as_str), Some("1"));
        assert_eq!(keys.get("ip").map(String::as_str), Some("10.0.0.5/24"));
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn cmdline_wins_over_fw_cfg() {
        let config = BootConfig::from_sources(
            "password=fromfwcfg http=1",
            &cmdline(&[
                ("appliance.password", "fromcmdline"),
                ("console", "ttyS0"),
                ("blksnap.x", "1"),
            ]),
        );
        assert_eq!(config.password.as_deref(), Some("fromcmdline"));
        assert!(config.http);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn ip_forms() {
        assert_eq!(
            parse_ip("192.168.7.2/24,192.168.7.1"),
            Ok(StaticIp {
                addr: Ipv4Addr::new(192, 168, 7, 2),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(192, 168, 7, 1)),
            })
        );
        assert_eq!(parse_ip("10.1.2.3/8").map(|ip| ip.gateway), Ok(None));
        for bad in [
            "10.1.2.3",
            "10.1.2.3/33",
            "x/24",
            "10.1.2.3/24,gw",
            "0.0.0.0/0",
        ] {
            assert!(parse_ip(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_become_warnings() {
        let config = BootConfig::from_sources("ip=nonsense http=maybe colour=blue", &cmdline(&[]));
        assert_eq!(config.ip, None);
        assert!(!config.http);
        assert_eq!(config.warnings.len(), 3, "{:?}", config.warnings);
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("1"), Ok(true));
        assert_eq!(parse_bool("On"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        assert!(parse_bool("2").is_err());
    }
}
