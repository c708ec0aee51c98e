//! A small DHCPv4 client: a UDP socket on port 68 bound to one interface
//! (`SO_BINDTODEVICE`) that asks servers to answer by broadcast, so it works before the
//! interface has an address. Enough for QEMU's user networking and ordinary LAN servers.

pub mod message;

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};

pub use message::Lease;
use message::{MessageType, Reply};

/// The client port.
const CLIENT_PORT: u16 = 68;
/// The server port.
const SERVER_PORT: u16 = 67;
/// Waits for a reply, one per attempt; the last one repeats.
const WAITS: [Duration; 4] = [
    Duration::from_secs(2),
    Duration::from_secs(3),
    Duration::from_secs(4),
    Duration::from_secs(6),
];

/// DHCP failures.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    /// The socket could not be set up or used.
    #[error("DHCP socket on {ifname}: {step}")]
    Socket {
        /// The interface.
        ifname: String,
        /// What failed.
        step: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// No server answered in time.
    #[error("no DHCP server answered on {0}")]
    NoAnswer(String),
    /// The server refused the request.
    #[error("the DHCP server refused the address (DHCPNAK)")]
    Refused,
    /// The answer lacks an address or server id.
    #[error("the DHCP answer does not describe a lease")]
    NoLease,
}

/// A DHCP client on one interface.
pub struct Client {
    socket: UdpSocket,
    ifname: String,
    mac: [u8; 6],
}

impl Client {
    /// Opens the client socket on `ifname` (which must be up).
    pub fn open(ifname: &str, mac: [u8; 6]) -> Result<Self, DhcpError> {
        let fail = |step: &'static str| {
            move |err: nix::Error| DhcpError::Socket {
                ifname: ifname.to_owned(),
                step,
                source: io::Error::from(err),
            }
        };
        let fd = socket::socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(fail("socket"))?;
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(fail("SO_REUSEADDR"))?;
        socket::setsockopt(&fd, sockopt::Broadcast, &true).map_err(fail("SO_BROADCAST"))?;
        socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(ifname))
            .map_err(fail("SO_BINDTODEVICE"))?;
        let any = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT));
        socket::bind(fd.as_raw_fd(), &any).map_err(fail("bind to port 68"))?;
        Ok(Client {
            socket: UdpSocket::from(fd),
            ifname: ifname.to_owned(),
            mac,
        })
    }

    /// The interface the client works on.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// DISCOVER, OFFER, REQUEST, ACK. Gives up after the waits in [`WAITS`].
    pub fn acquire(&self) -> Result<Lease, DhcpError> {
        for wait in WAITS {
            let xid = rand::random::<u32>();
            self.send(&message::discover(xid, self.mac))?;
            let Some(offer) = self.receive(xid, wait, |r| r.kind == MessageType::Offer)? else {
                continue;
            };
            let Some(server) = offer.server_id() else {
                continue;
            };
            self.send(&message::request(xid, self.mac, offer.yiaddr, server))?;
            let reply = self.receive(xid, wait, |r| {
                matches!(r.kind, MessageType::Ack | MessageType::Nak)
            })?;
            match reply {
                Some(ack) if ack.kind == MessageType::Ack => {
                    return ack.lease().ok_or(DhcpError::NoLease);
                }
                Some(_) => return Err(DhcpError::Refused),
                None => continue,
            }
        }
        Err(DhcpError::NoAnswer(self.ifname.clone()))
    }

    /// Extends the lease on `current` (broadcast REQUEST with `ciaddr`).
    pub fn renew(&self, current: Ipv4Addr) -> Result<Lease, DhcpError> {
        for wait in WAITS {
            let xid = rand::random::<u32>();
            self.send(&message::renew(xid, self.mac, current))?;
            let reply = self.receive(xid, wait, |r| {
                matches!(r.kind, MessageType::Ack | MessageType::Nak)
            })?;
            match reply {
                Some(ack) if ack.kind == MessageType::Ack => {
                    return ack.lease().ok_or(DhcpError::NoLease);
                }
                Some(_) => return Err(DhcpError::Refused),
                None => continue,
            }
        }
        Err(DhcpError::NoAnswer(self.ifname.clone()))
    }

    fn send(&self, bytes: &[u8]) -> Result<(), DhcpError> {
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, SERVER_PORT);
        self.socket
            .send_to(bytes, to)
            .map(|_| ())
            .map_err(|source| DhcpError::Socket {
                ifname: self.ifname.clone(),
                step: "send",
                source,
            })
    }

    /// Waits up to `wait` for a reply to `xid` for our address that `wanted` accepts;
    /// other datagrams are skipped.
    fn receive(
        &self,
        xid: u32,
        wait: Duration,
        wanted: impl Fn(&Reply) -> bool,
    ) -> Result<Option<Reply>, DhcpError> {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 1500];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.socket
                .set_read_timeout(Some(left))
                .map_err(|source| DhcpError::Socket {
                    ifname: self.ifname.clone(),
                    step: "set timeout",
                    source,
                })?;
            match self.socket.recv_from(&mut buf) {
                Ok((len, _from)) => {
                    if let Ok(reply) = message::parse(&buf[..len]) {
                        if reply.xid == xid && reply.chaddr == self.mac && wanted(&reply) {
                            return Ok(Some(reply));
                        }
                    }
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(source) => {
                    return Err(DhcpError::Socket {
                        ifname: self.ifname.clone(),
                        step: "receive",
                        source,
                    })
                }
            }
        }
    }
}
