//! Byte formats: the connection handshake, its reply, and the frame length prefix.
//!
//! Handshake (connector -> acceptor), big-endian:
//! `magic "LKVT" | version u8 | lane u8 | core u16 | from u64 | id_len u8 | cluster_id`.
//! Reply (acceptor -> connector): `magic "LKVT" | status u8`; anything but [`Status::Ok`]
//! is followed by the acceptor closing the connection.
//! Frame: `len u32 | len bytes`.

use super::Lane;

pub const MAGIC: [u8; 4] = *b"LKVT";
pub const VERSION: u8 = 1;
/// Magic and version: enough to tell a foreign or newer client before reading further.
pub const PREFIX_LEN: usize = 5;
/// lane, core, from, id_len.
pub const FIXED_LEN: usize = 1 + 2 + 8 + 1;
pub const REPLY_LEN: usize = 5;
pub const FRAME_HEADER: usize = 4;

/// What a connector announces about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub lane: Lane,
    pub core: u16,
    pub from: u64,
    pub cluster_id: String,
}

impl Hello {
    /// The full handshake. `cluster_id` must be at most 255 bytes (checked at
    /// `Transport::start`); longer ids are cut, which the acceptor then refuses.
    pub fn encode(&self) -> Vec<u8> {
        let id = self.cluster_id.as_bytes();
        let id = &id[..id.len().min(255)];
        let mut b = Vec::with_capacity(PREFIX_LEN + FIXED_LEN + id.len());
        b.extend_from_slice(&MAGIC);
        b.push(VERSION);
        b.push(self.lane as u8);
        b.extend_from_slice(&self.core.to_be_bytes());
        b.extend_from_slice(&self.from.to_be_bytes());
        b.push(id.len() as u8);
        b.extend_from_slice(id);
        b
    }
}

/// Checks magic and version (the first [`PREFIX_LEN`] bytes).
pub fn check_prefix(b: &[u8; PREFIX_LEN]) -> Result<(), Status> {
    if b[..4] != MAGIC {
        return Err(Status::BadMagic);
    }
    if b[4] != VERSION {
        return Err(Status::BadVersion);
    }
    Ok(())
}

/// The fixed part after the prefix: (lane, core, from, cluster id length).
pub fn decode_fixed(b: &[u8; FIXED_LEN]) -> Result<(Lane, u16, u64, usize), Status> {
    let lane = Lane::from_u8(b[0]).ok_or(Status::BadLane)?;
    let core = u16::from_be_bytes([b[1], b[2]]);
    let mut from = [0u8; 8];
    from.copy_from_slice(&b[3..11]);
    Ok((lane, core, u64::from_be_bytes(from), usize::from(b[11])))
}

/// The acceptor's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    BadVersion = 1,
    WrongCluster = 2,
    WrongCore = 3,
    /// The connector is not a peer of the acceptor (not configured, or removed).
    UnknownNode = 4,
    /// The connector claims the acceptor's own node id.
    SameNode = 5,
    BadLane = 6,
    /// Not our protocol: closed without a reply.
    BadMagic = 7,
}

impl Status {
    pub fn from_u8(b: u8) -> Option<Status> {
        Some(match b {
            0 => Status::Ok,
            1 => Status::BadVersion,
            2 => Status::WrongCluster,
            3 => Status::WrongCore,
            4 => Status::UnknownNode,
            5 => Status::SameNode,
            6 => Status::BadLane,
            7 => Status::BadMagic,
            _ => return None,
        })
    }

    pub fn reply(self) -> [u8; REPLY_LEN] {
        let mut r = [0u8; REPLY_LEN];
        r[..4].copy_from_slice(&MAGIC);
        r[4] = self as u8;
        r
    }

    /// Parses a reply; None if it is not one.
    pub fn parse_reply(r: &[u8; REPLY_LEN]) -> Option<Status> {
        if r[..4] != MAGIC {
            return None;
        }
        Status::from_u8(r[4])
    }

    pub fn describe(self) -> &'static str {
        match self {
            Status::Ok => "accepted",
            Status::BadVersion => "protocol version mismatch",
            Status::WrongCluster => "cluster id mismatch",
            Status::WrongCore => "core index mismatch",
            Status::UnknownNode => "node is not a peer of the acceptor",
            Status::SameNode => "node id is the acceptor's own",
            Status::BadLane => "unknown lane",
            Status::BadMagic => "not a leasekv transport handshake",
        }
    }
}

pub fn frame_header(len: usize) -> [u8; FRAME_HEADER] {
    // Callers only pass lengths <= max_frame_bytes <= u32::MAX (checked at start).
    (len as u32).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip() {
        let h = Hello {
            lane: Lane::Bulk,
            core: 513,
            from: 0x0102_0304_0506_0708,
            cluster_id: "prod-eu".into(),
        };
        let b = h.encode();
        assert_eq!(b.len(), PREFIX_LEN + FIXED_LEN + 7);
        let prefix: [u8; PREFIX_LEN] = b[..PREFIX_LEN].try_into().unwrap();
        assert_eq!(check_prefix(&prefix), Ok(()));
        let fixed: [u8; FIXED_LEN] = b[PREFIX_LEN..PREFIX_LEN + FIXED_LEN].try_into().unwrap();
        assert_eq!(decode_fixed(&fixed), Ok((Lane::Bulk, 513, h.from, 7)));
        assert_eq!(&b[PREFIX_LEN + FIXED_LEN..], b"prod-eu");
    }

    #[test]
    fn bad_prefix_and_lane() {
        assert_eq!(check_prefix(b"HTTP/"), Err(Status::BadMagic));
        assert_eq!(check_prefix(b"LKVT\x02"), Err(Status::BadVersion));
        let mut fixed = [0u8; FIXED_LEN];
        fixed[0] = 9;
        assert_eq!(decode_fixed(&fixed), Err(Status::BadLane));
    }

    #[test]
    fn replies() {
        for b in 0..=7 {
            let s = Status::from_u8(b).unwrap();
            assert_eq!(Status::parse_reply(&s.reply()), Some(s));
            assert!(!s.describe().is_empty());
        }
        assert_eq!(Status::from_u8(8), None);
        assert_eq!(Status::parse_reply(b"LKVT\x09"), None);
        assert_eq!(Status::parse_reply(b"XXXX\x00"), None);
    }

    #[test]
    fn long_cluster_id_is_cut() {
        let h = Hello {
            lane: Lane::Control,
            core: 0,
            from: 1,
            cluster_id: "x".repeat(300),
        };
        let b = h.encode();
        assert_eq!(b[PREFIX_LEN + FIXED_LEN - 1], 255);
        assert_eq!(b.len(), PREFIX_LEN + FIXED_LEN + 255);
        assert_eq!(frame_header(258), [0, 0, 1, 2]);
    }
}
