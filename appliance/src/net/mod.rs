//! Networking for the appliance's init: loopback, then the first NIC with a static
//! address from the boot configuration or a DHCP lease (renewed in the background).

pub mod dhcp;
pub mod link;

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::config::StaticIp;

/// How long init waits for a NIC to show up after its driver loaded.
const NIC_WAIT: Duration = Duration::from_secs(5);
/// Poll interval while waiting for the NIC.
const NIC_POLL: Duration = Duration::from_millis(100);

/// How the address was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `ip=` in the boot configuration.
    Static,
    /// A DHCP lease.
    Dhcp,
}

/// The configured first NIC.
#[derive(Debug, Clone)]
pub struct Configured {
    /// Interface name.
    pub ifname: String,
    /// Its address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Where the address came from.
    pub source: Source,
}

impl fmt::Display for Configured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.source {
            Source::Static => "static",
            Source::Dhcp => "DHCP",
        };
        write!(f, "{} {}/{} ({how}", self.ifname, self.addr, self.prefix)?;
        match self.gateway {
            Some(gw) => write!(f, ", gateway {gw})"),
            None => write!(f, ", no gateway)"),
        }
    }
}

/// Network set-up failures.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// No Ethernet NIC appeared.
    #[error("no network interface found")]
    NoNic,
    /// A link ioctl failed.
    #[error("{step} on {ifname}")]
    Link {
        /// The interface.
        ifname: String,
        /// What was being done.
        step: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// DHCP failed.
    #[error(transparent)]
    Dhcp(#[from] dhcp::DhcpError),
}

/// Brings loopback up.
pub fn loopback_up() -> Result<(), NetError> {
    link::set_up("lo").map_err(|source| NetError::Link {
        ifname: "lo".to_owned(),
        step: "bringing the interface up",
        source,
    })
}

/// Configures the first NIC: `static_ip` if given, else DHCP (renewed in a background
/// thread for as long as the process lives).
pub fn configure_first_nic(static_ip: Option<StaticIp>) -> Result<Configured, NetError> {
    let ifname = wait_for_nic().ok_or(NetError::NoNic)?;
    let link_err = |step: &'static str| {
        let ifname = ifname.clone();
        move |source| NetError::Link {
            ifname,
            step,
            source,
        }
    };
    link::set_up(&ifname).map_err(link_err("bringing the interface up"))?;
    if let Some(ip) = static_ip {
        apply(&ifname, ip.addr, ip.prefix, ip.gateway)?;
        return Ok(Configured {
            ifname,
            addr: ip.addr,
            prefix: ip.prefix,
            gateway: ip.gateway,
            source: Source::Static,
        });
    }
    let mac = link::hw_addr(&ifname).map_err(link_err("reading the hardware address"))?;
    let client = dhcp::Client::open(&ifname, mac)?;
    let lease = client.acquire()?;
    apply(&ifname, lease.addr, lease.prefix, lease.router)?;
    write_resolv_conf(&lease.dns);
    let configured = Configured {
        ifname,
        addr: lease.addr,
        prefix: lease.prefix,
        gateway: lease.router,
        source: Source::Dhcp,
    };
    spawn_renewal(client, lease);
    Ok(configured)
}

fn apply(
    ifname: &str,
    addr: Ipv4Addr,
    prefix: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<(), NetError> {
    link::set_ipv4(ifname, addr, prefix).map_err(|source| NetError::Link {
        ifname: ifname.to_owned(),
        step: "setting the address",
        source,
    })?;
    if let Some(gw) = gateway {
        link::add_default_route(ifname, gw).map_err(|source| NetError::Link {
            ifname: ifname.to_owned(),
            step: "adding the default route",
            source,
        })?;
    }
    Ok(())
}

fn wait_for_nic() -> Option<String> {
    let deadline = Instant::now() + NIC_WAIT;
    loop {
        if let Some(name) = link::first_nic() {
            return Some(name);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(NIC_POLL);
    }
}

fn write_resolv_conf(dns: &[Ipv4Addr]) {
    if dns.is_empty() {
        return;
    }
    let text: String = dns.iter().map(|ip| format!("nameserver {ip}\n")).collect();
    if let Err(err) =
        std::fs::create_dir_all("/etc").and_then(|()| std::fs::write("/etc/resolv.conf", text))
    {
        sysboot::console::log(&format!(
            "appliance-init: cannot write /etc/resolv.conf: {err}"
        ));
    }
}

/// Renews the lease at half its time, for as long as the process lives.
fn spawn_renewal(client: dhcp::Client, lease: dhcp::Lease) {
    if lease.seconds == u32::MAX {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("dhcp-renew".to_owned())
        .spawn(move || {
            let mut lease = lease;
            loop {
                let half = Duration::from_secs(u64::from(lease.seconds.max(60) / 2));
                std::thread::sleep(half);
                match client.renew(lease.addr) {
                    Ok(new) => {
                        if new.addr != lease.addr || new.prefix != lease.prefix {
                            sysboot::console::log(&format!(
                                "appliance-init: DHCP gave a new address {}/{}",
                                new.addr, new.prefix
                            ));
                            if let Err(err) =
                                apply(&client_ifname(&client), new.addr, new.prefix, new.router)
                            {
                                sysboot::console::log(&format!("appliance-init: {err}"));
                            }
                        }
                        lease = new;
                    }
                    Err(err) => {
                        sysboot::console::log(&format!(
                            "appliance-init: DHCP renewal failed: {err}; keeping {}",
                            lease.addr
                        ));
                        lease.seconds = lease.seconds.max(120) / 2;
                    }
                }
            }
        });
    if let Err(err) = spawned {
        sysboot::console::log(&format!("appliance-init: cannot start DHCP renewal: {err}"));
    }
}

fn client_ifname(client: &dhcp::Client) -> String {
    client.ifname().to_owned()
}
