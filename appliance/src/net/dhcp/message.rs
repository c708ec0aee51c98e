//! DHCPv4 messages (RFC 2131 / RFC 2132): building the client's requests and reading the
//! server's replies. Pure byte work, no sockets.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// BOOTREQUEST.
const OP_REQUEST: u8 = 1;
/// BOOTREPLY.
const OP_REPLY: u8 = 2;
/// Ethernet.
const HTYPE_ETHER: u8 = 1;
/// "Answer by broadcast": we have no address to receive unicast on yet.
const FLAG_BROADCAST: u16 = 0x8000;
/// RFC 2131 magic cookie.
const MAGIC: [u8; 4] = [99, 130, 83, 99];
/// Offset of the options (after the fixed 236-byte header and the cookie).
const OPTIONS_AT: usize = 240;
/// Some servers ignore requests shorter than a BOOTP packet.
const MIN_LEN: usize = 300;

/// Option codes used here.
pub mod opt {
    /// Pad.
    pub const PAD: u8 = 0;
    /// Subnet mask.
    pub const SUBNET_MASK: u8 = 1;
    /// Routers.
    pub const ROUTER: u8 = 3;
    /// DNS servers.
    pub const DNS: u8 = 6;
    /// Host name.
    pub const HOST_NAME: u8 = 12;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// Lease time in seconds.
    pub const LEASE_TIME: u8 = 51;
    /// DHCP message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list.
    pub const PARAMS: u8 = 55;
    /// End.
    pub const END: u8 = 255;
}

/// The DHCP message type (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Client looks for servers.
    Discover = 1,
    /// Server offers an address.
    Offer = 2,
    /// Client asks for an offered (or its current) address.
    Request = 3,
    /// Server confirms.
    Ack = 5,
    /// Server refuses.
    Nak = 6,
}

impl MessageType {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            _ => return None,
        })
    }
}

/// Why a datagram is not a usable reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the fixed header.
    #[error("datagram too short ({0} bytes)")]
    TooShort(usize),
    /// Not a BOOTREPLY with the DHCP cookie.
    #[error("not a DHCP reply")]
    NotDhcpReply,
    /// An option runs past the end.
    #[error("option {0} runs past the end of the datagram")]
    Truncated(u8),
    /// No or an unknown message type.
    #[error("missing or unknown DHCP message type")]
    NoMessageType,
}

/// A parsed server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The transaction id it answers.
    pub xid: u32,
    /// The client hardware address it is meant for.
    pub chaddr: [u8; 6],
    /// The address offered or assigned.
    pub yiaddr: Ipv4Addr,
    /// OFFER, ACK or NAK.
    pub kind: MessageType,
    /// Raw options, by code (later occurrences are appended, RFC 3396).
    pub options: BTreeMap<u8, Vec<u8>>,
}

/// What a lease gives the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Our address.
    pub addr: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// The first router, if any.
    pub router: Option<Ipv4Addr>,
    /// DNS servers.
    pub dns: Vec<Ipv4Addr>,
    /// The server that granted it.
    pub server: Ipv4Addr,
    /// Lease time in seconds (`u32::MAX`: infinite).
    pub seconds: u32,
}

/// The parameters the client asks for.
const WANTED: [u8; 4] = [opt::SUBNET_MASK, opt::ROUTER, opt::DNS, opt::LEASE_TIME];

/// Builds a client message. `ciaddr` is set only when renewing an address in use.
fn build(
    kind: MessageType,
    xid: u32,
    mac: [u8; 6],
    ciaddr: Ipv4Addr,
    extra: &[(u8, Vec<u8>)],
) -> Vec<u8> {
    let mut out = vec![0u8; OPTIONS_AT];
    out[0] = OP_REQUEST;
    out[1] = HTYPE_ETHER;
    out[2] = 6;
    out[4..8].copy_from_slice(&xid.to_be_bytes());
    out[10..12].copy_from_slice(&FLAG_BROADCAST.to_be_bytes());
    out[12..16].copy_from_slice(&ciaddr.octets());
    out[28..34].copy_from_slice(&mac);
    out[236..240].copy_from_slice(&MAGIC);
    let mut push = |code: u8, value: &[u8]| {
        out.push(code);
        // Our options are all short; the cast cannot truncate.
        out.push(value.len() as u8);
        out.extend_from_slice(value);
    };
    push(opt::MESSAGE_TYPE, &[kind as u8]);
    for (code, value) in extra {
        push(*code, value);
    }
    push(opt::HOST_NAME, b"appliance");
    push(opt::PARAMS, &WANTED);
    out.push(opt::END);
    if out.len() < MIN_LEN {
        out.resize(MIN_LEN, opt::PAD);
    }
    out
}

/// DHCPDISCOVER.
pub fn discover(xid: u32, mac: [u8; 6]) -> Vec<u8> {
    build(MessageType::Discover, xid, mac, Ipv4Addr::UNSPECIFIED, &[])
}

/// DHCPREQUEST in the SELECTING state: take `offer` from `server`.
pub fn request(xid: u32, mac: [u8; 6], offer: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    build(
        MessageType::Request,
        xid,
        mac,
        Ipv4Addr::UNSPECIFIED,
        &[
            (opt::REQUESTED_IP, offer.octets().to_vec()),
            (opt::SERVER_ID, server.octets().to_vec()),
        ],
    )
}

/// DHCPREQUEST in the REBINDING state: extend the lease on `current`.
pub fn renew(xid: u32, mac: [u8; 6], current: Ipv4Addr) -> Vec<u8> {
    build(MessageType::Request, xid, mac, current, &[])
}

/// Reads a server reply.
pub fn parse(bytes: &[u8]) -> Result<Reply, ParseError> {
    if bytes.len() < OPTIONS_AT {
        return Err(ParseError::TooShort(bytes.len()));
    }
    if bytes[0] != OP_REPLY || bytes[236..240] != MAGIC {
        return Err(ParseError::NotDhcpReply);
    }
    let xid = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let yiaddr = Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]);
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&bytes[28..34]);
    let mut options: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    let mut at = OPTIONS_AT;
    while at < bytes.len() {
        let code = bytes[at];
        match code {
            opt::PAD => at += 1,
            opt::END => break,
            _ => {
                let len = usize::from(*bytes.get(at + 1).ok_or(ParseError::Truncated(code))?);
                let value = bytes
                    .get(at + 2..at + 2 + len)
                    .ok_or(ParseError::Truncated(code))?;
                options.entry(code).or_default().extend_from_slice(value);
                at += 2 + len;
            }
        }
    }
    let kind = options
        .get(&opt::MESSAGE_TYPE)
        .and_then(|v| v.first().copied())
        .and_then(MessageType::from_byte)
        .ok_or(ParseError::NoMessageType)?;
    Ok(Reply {
        xid,
        chaddr,
        yiaddr,
        kind,
        options,
    })
}

impl Reply {
    fn addr_option(&self, code: u8) -> Option<Ipv4Addr> {
        self.addr_list(code).into_iter().next()
    }

    fn addr_list(&self, code: u8) -> Vec<Ipv4Addr> {
        self.options
            .get(&code)
            .map(|value| {
                value
                    .chunks_exact(4)
                    .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The server identifier (option 54).
    pub fn server_id(&self) -> Option<Ipv4Addr> {
        self.addr_option(opt::SERVER_ID)
    }

    /// The lease this reply describes; `None` without an address or server id.
    pub fn lease(&self) -> Option<Lease> {
        if self.yiaddr.is_unspecified() {
            return None;
        }
        let server = self.server_id()?;
        let prefix = self
            .addr_option(opt::SUBNET_MASK)
            .map(crate::net::link::mask_to_prefix)
            .unwrap_or_else(|| classful_prefix(self.yiaddr));
        let seconds = self
            .options
            .get(&opt::LEASE_TIME)
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(u32::MAX);
        Some(Lease {
            addr: self.yiaddr,
            prefix,
            router: self.addr_option(opt::ROUTER),
            dns: self.addr_list(opt::DNS),
            server,
            seconds,
        })
    }
}

/// The historical class prefix, for servers that send no subnet mask.
fn classful_prefix(addr: Ipv4Addr) -> u8 {
    match addr.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    /// A reply as a server would send it.
    fn server_reply(kind: u8, xid: u32, options: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = vec![0u8; OPTIONS_AT];
        out[0] = OP_REPLY;
        out[1] = HTYPE_ETHER;
        out[2] = 6;
        out[4..8].copy_from_slice(&xid.to_be_bytes());
        out[16..20].copy_from_slice(&[10, 0, 2, 15]);
        out[28..34].copy_from_slice(&MAC);
        out[236..240].copy_from_slice(&MAGIC);
        out.extend_from_slice(&[opt::MESSAGE_TYPE, 1, kind, opt::PAD]);
        for (code, value) in options {
            out.push(*code);
            out.push(value.len() as u8);
            out.extend_from_slice(value);
        }
        out.push(opt::END);
        out
    }

    #[test]
    fn discover_layout() {
        let msg = discover(0x1234_5678, MAC);
        assert_eq!(msg.len(), MIN_LEN);
        assert_eq!(&msg[..4], &[OP_REQUEST, HTYPE_ETHER, 6, 0]);
        assert_eq!(&msg[4..8], &[0x12, 0x34, 0x56, 0x78]);
        assert_eq!(&msg[10..12], &[0x80, 0x00], "broadcast flag");
        assert_eq!(&msg[28..34], &MAC);
        assert_eq!(&msg[236..240], &MAGIC);
        assert_eq!(
            &msg[240..243],
            &[opt::MESSAGE_TYPE, 1, MessageType::Discover as u8]
        );
    }

    #[test]
    fn request_carries_offer_and_server() {
        let msg = request(
            7,
            MAC,
            Ipv4Addr::new(10, 0, 2, 15),
            Ipv4Addr::new(10, 0, 2, 2),
        );
        let opts = &msg[240..];
        let find = |code: u8| {
            let pos = opts.windows(2).position(|w| w[0] == code && w[1] == 4)?;
            Some(opts[pos + 2..pos + 6].to_vec())
        };
        assert_eq!(find(opt::REQUESTED_IP), Some(vec![10, 0, 2, 15]));
        assert_eq!(find(opt::SERVER_ID), Some(vec![10, 0, 2, 2]));
    }

    #[test]
    fn renew_sets_ciaddr() {
        let msg = renew(7, MAC, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(&msg[12..16], &[10, 0, 2, 15]);
    }

    #[test]
    fn parses_an_ack_into_a_lease() {
        let bytes = server_reply(
            5,
            42,
            &[
                (opt::SUBNET_MASK, &[255, 255, 255, 0]),
                (opt::ROUTER, &[10, 0, 2, 2]),
                (opt::DNS, &[10, 0, 2, 3, 1, 1, 1, 1]),
                (opt::LEASE_TIME, &86400u32.to_be_bytes()),
                (opt::SERVER_ID, &[10, 0, 2, 2]),
            ],
        );
        let reply = parse(&bytes).expect("parse");
        assert_eq!(reply.xid, 42);
        assert_eq!(reply.kind, MessageType::Ack);
        assert_eq!(reply.chaddr, MAC);
        assert_eq!(
            reply.lease(),
            Some(Lease {
                addr: Ipv4Addr::new(10, 0, 2, 15),
                prefix: 24,
                router: Some(Ipv4Addr::new(10, 0, 2, 2)),
                dns: vec![Ipv4Addr::new(10, 0, 2, 3), Ipv4Addr::new(1, 1, 1, 1)],
                server: Ipv4Addr::new(10, 0, 2, 2),
                seconds: 86400,
            })
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse(&[0u8; 10]), Err(ParseError::TooShort(10)));
        let mut bytes = server_reply(2, 1, &[]);
        bytes[0] = OP_REQUEST;
        assert_eq!(parse(&bytes), Err(ParseError::NotDhcpReply));
        let mut truncated = server_reply(2, 1, &[]);
        truncated.pop();
        truncated.extend_from_slice(&[opt::ROUTER, 4, 10]);
        assert_eq!(parse(&truncated), Err(ParseError::Truncated(opt::ROUTER)));
        let unknown = server_reply(9, 1, &[]);
        assert_eq!(parse(&unknown), Err(ParseError::NoMessageType));
    }

    #[test]
    fn lease_without_mask_uses_class() {
        let bytes = server_reply(5, 1, &[(opt::SERVER_ID, &[10, 0, 2, 2])]);
        let lease = parse(&bytes).unwrap().lease().unwrap();
        assert_eq!(lease.prefix, 8);
        assert_eq!(lease.seconds, u32::MAX);
        assert_eq!(lease.router, None);
    }
}
