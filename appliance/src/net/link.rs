//! Link configuration through the classic socket ioctls: interface up, IPv4 address and
//! netmask, default route. Every `unsafe` block in the network code lives here.

use std::ffi::c_ulong;
use std::io;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `IFNAMSIZ` from `<linux/if.h>`.
const IFNAMSIZ: usize = 16;
/// `RTF_UP` from `<linux/route.h>`.
const RTF_UP: u16 = 0x0001;
/// `RTF_GATEWAY` from `<linux/route.h>`.
const RTF_GATEWAY: u16 = 0x0002;

/// `struct ifreq` with the `ifr_flags` member of the union (40 bytes on 64-bit).
#[repr(C)]
struct IfReqFlags {
    name: [u8; IFNAMSIZ],
    flags: libc::c_short,
    pad: [u8; 22],
}

/// `struct ifreq` with the `ifr_addr` member of the union.
#[repr(C)]
struct IfReqAddr {
    name: [u8; IFNAMSIZ],
    addr: libc::sockaddr_in,
    pad: [u8; 8],
}

/// `struct rtentry` from `<linux/route.h>`.
#[repr(C)]
struct RtEntry {
    rt_pad1: c_ulong,
    rt_dst: libc::sockaddr_in,
    rt_gateway: libc::sockaddr_in,
    rt_genmask: libc::sockaddr_in,
    rt_flags: u16,
    rt_pad2: i16,
    rt_pad3: c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: i16,
    rt_dev: *mut libc::c_char,
    rt_mtu: c_ulong,
    rt_window: c_ulong,
    rt_irtt: u16,
}

const _: () = assert!(size_of::<IfReqFlags>() == 40);
const _: () = assert!(size_of::<IfReqAddr>() == 40);
const _: () = assert!(size_of::<RtEntry>() == 120);

/// An AF_INET datagram socket, the handle the interface ioctls are issued on.
fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers and returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn name_bytes(name: &str) -> io::Result<[u8; IFNAMSIZ]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name `{name}`"),
        ));
    }
    let mut out = [0u8; IFNAMSIZ];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Issues `request` with a pointer to `arg` on `fd`.
///
/// # Safety
/// `T` must be the structure the kernel expects for `request`.
unsafe fn ioctl_ptr<T>(fd: &OwnedFd, request: c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: the caller guarantees `T` matches `request`; `arg` is a valid, exclusive
    // pointer for the duration of the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg as *mut T) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets `IFF_UP` on `name`.
pub fn set_up(name: &str) -> io::Result<()> {
    let fd = control_socket()?;
    let mut req = IfReqFlags {
        name: name_bytes(name)?,
        flags: 0,
        pad: [0; 22],
    };
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS take a `struct ifreq` using `ifr_flags`.
    unsafe { ioctl_ptr(&fd, libc::SIOCGIFFLAGS as c_ulong, &mut req)? };
    req.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above.
    unsafe { ioctl_ptr(&fd, libc::SIOCSIFFLAGS as c_ulong, &mut req) }
}

/// Gives `name` the address `addr/prefix` (and the matching broadcast address).
pub fn set_ipv4(name: &str, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let fd = control_socket()?;
    let mask = prefix_to_mask(prefix);
    let broadcast = Ipv4Addr::from(u32::from(addr) | !u32::from(mask));
    for (request, value) in [
        (libc::SIOCSIFADDR, addr),
        (libc::SIOCSIFNETMASK, mask),
        (libc::SIOCSIFBRDADDR, broadcast),
    ] {
        let mut req = IfReqAddr {
            name: name_bytes(name)?,
            addr: sockaddr(value),
            pad: [0; 8],
        };
        // SAFETY: these three requests take a `struct ifreq` using `ifr_addr`.
        unsafe { ioctl_ptr(&fd, request as c_ulong, &mut req)? };
    }
    Ok(())
}

/// Adds a default route via `gateway` out of `name`. An existing identical route is fine.
pub fn add_default_route(name: &str, gateway: Ipv4Addr) -> io::Result<()> {
    let fd = control_socket()?;
    let mut dev = name_bytes(name)?;
    let mut route = RtEntry {
        rt_pad1: 0,
        rt_dst: sockaddr(Ipv4Addr::UNSPECIFIED),
        rt_gateway: sockaddr(gateway),
        rt_genmask: sockaddr(Ipv4Addr::UNSPECIFIED),
        rt_flags: RTF_UP | RTF_GATEWAY,
        rt_pad2: 0,
        rt_pad3: 0,
        rt_pad4: std::ptr::null_mut(),
        rt_metric: 0,
        rt_dev: dev.as_mut_ptr().cast(),
        rt_mtu: 0,
        rt_window: 0,
        rt_irtt: 0,
    };
    // SAFETY: SIOCADDRT takes a `struct rtentry`; `rt_dev` points at a NUL-terminated
    // name in `dev`, which outlives the call.
    match unsafe { ioctl_ptr(&fd, libc::SIOCADDRT as c_ulong, &mut route) } {
        Err(err) if err.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other,
    }
}

/// The netmask of a prefix length (clamped to 32).
pub fn prefix_to_mask(prefix: u8) -> Ipv4Addr {
    let prefix = u32::from(prefix.min(32));
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Ipv4Addr::from(bits)
}

/// The prefix length of a netmask (counts the leading ones).
pub fn mask_to_prefix(mask: Ipv4Addr) -> u8 {
    // At most 32, so the cast cannot truncate.
    u32::from(mask).leading_ones() as u8
}

/// The hardware address of `name` from sysfs.
pub fn hw_addr(name: &str) -> io::Result<[u8; 6]> {
    let text = std::fs::read_to_string(Path::new("/sys/class/net").join(name).join("address"))?;
    parse_mac(text.trim()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} has no Ethernet address ({})", text.trim()),
        )
    })
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut out {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The first Ethernet NIC backed by a device, by interface index (`eth0`/`ens3` before
/// later ones); virtual interfaces and loopback are skipped.
pub fn first_nic() -> Option<String> {
    let mut found: Vec<(u32, String)> = std::fs::read_dir("/sys/class/net")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let dir = entry.path();
            if !dir.join("device").exists() {
                return None;
            }
            let kind = std::fs::read_to_string(dir.join("type")).ok()?;
            // ARPHRD_ETHER
            if kind.trim() != "1" {
                return None;
            }
            let index = std::fs::read_to_string(dir.join("ifindex")).ok()?;
            Some((index.trim().parse().ok()?, name))
        })
        .collect();
    found.sort();
    found.into_iter().next().map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(prefix_to_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_to_mask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(prefix_to_mask(32), Ipv4Addr::BROADCAST);
        assert_eq!(prefix_to_mask(20), Ipv4Addr::new(255, 255, 240, 0));
        for prefix in 0..=32 {
            assert_eq!(mask_to_prefix(prefix_to_mask(prefix)), prefix);
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("52:54:00:12:34:56"),
            Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("52:54:00:12:34:56:78"), None);
        assert_eq!(parse_mac("zz:54:00:12:34:56"), None);
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(name_bytes("").is_err());
        assert!(name_bytes("a-very-long-interface-name").is_err());
        assert_eq!(&name_bytes("eth0").unwrap()[..5], b"eth0\0");
    }
}
