//! Cluster members (node id and addresses) as a shard group knows them.
//!
//! Addresses travel through Raft: an AddNode/AddLearner conf change carries the new
//! member in its `context`, and a group snapshot carries the whole member map ahead of the
//! KV state. So a node learns a peer's address from the log or a snapshot — the same way it
//! learns that the peer is a member — and a restart rebuilds it from the WAL.
//!
//! ```text
//! member   := version:u8=1 id:u64le len:u16le raft[len] len:u16le client[len]
//! snapshot := magic "LKGS" version:u8=1 count:u32le (len:u32le member)* kv-bytes
//! ```

use std::collections::BTreeMap;

use crate::ops::DecodeError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    /// Raft base address (core c listens on its port + c).
    pub raft: String,
    /// Redis-protocol client address.
    pub client: String,
}

pub type Members = BTreeMap<u64, Member>;

const VERSION: u8 = 1;
const MAGIC: &[u8; 4] = b"LKGS";

fn err(what: &str) -> DecodeError {
    DecodeError(format!("member data: {what}"))
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
    if b.len() < n {
        return Err(err("truncated"));
    }
    let (h, t) = b.split_at(n);
    *b = t;
    Ok(h)
}

fn string(b: &mut &[u8]) -> Result<String, DecodeError> {
    let len = u16::from_le_bytes([take(b, 1)?[0], take(b, 1)?[0]]) as usize;
    String::from_utf8(take(b, len)?.to_vec()).map_err(|_| err("address is not UTF-8"))
}

impl Member {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13 + self.raft.len() + self.client.len());
        out.push(VERSION);
        out.extend_from_slice(&self.id.to_le_bytes());
        for s in [&self.raft, &self.client] {
            let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(bytes);
        }
        out
    }

    pub fn decode(mut b: &[u8]) -> Result<Member, DecodeError> {
        if take(&mut b, 1)?[0] != VERSION {
            return Err(err("unknown version"));
        }
        let id = u64::from_le_bytes(take(&mut b, 8)?.try_into().map_err(|_| err("id"))?);
        let raft = string(&mut b)?;
        let client = string(&mut b)?;
        if !b.is_empty() {
            return Err(err("trailing bytes"));
        }
        Ok(Member { id, raft, client })
    }
}

/// Prefixes the KV snapshot with the member map.
pub fn wrap_snapshot(members: &Members, kv: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + kv.len() + members.len() * 48);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(members.len() as u32).to_le_bytes());
    for m in members.values() {
        let e = m.encode();
        out.extend_from_slice(&(e.len() as u32).to_le_bytes());
        out.extend_from_slice(&e);
    }
    out.extend_from_slice(kv);
    out
}

/// Splits a group snapshot into the member map and the KV bytes.
pub fn unwrap_snapshot(mut b: &[u8]) -> Result<(Members, &[u8]), DecodeError> {
    if take(&mut b, 4)? != MAGIC {
        return Err(err("not a group snapshot"));
    }
    if take(&mut b, 1)?[0] != VERSION {
        return Err(err("unknown snapshot version"));
    }
    let count = u32::from_le_bytes(take(&mut b, 4)?.try_into().map_err(|_| err("count"))?);
    let mut members = Members::new();
    for _ in 0..count {
        let len = u32::from_le_bytes(take(&mut b, 4)?.try_into().map_err(|_| err("len"))?);
        let m = Member::decode(take(&mut b, len as usize)?)?;
        members.insert(m.id, m);
    }
    Ok((members, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: u64) -> Member {
        Member {
            id,
            raft: format!("127.0.0.1:{}", 7100 + id),
            client: format!("127.0.0.1:{}", 7000 + id),
        }
    }

    #[test]
    fn member_and_snapshot_round_trip() {
        assert_eq!(Member::decode(&m(4).encode()).unwrap(), m(4));
        let members: Members = [(1, m(1)), (2, m(2))].into_iter().collect();
        let wrapped = wrap_snapshot(&members, b"kv-state");
        let (back, kv) = unwrap_snapshot(&wrapped).unwrap();
        assert_eq!(back, members);
        assert_eq!(kv, b"kv-state");
    }

    #[test]
    fn damage_is_an_error() {
        let enc = m(3).encode();
        for cut in 0..enc.len() {
            assert!(Member::decode(&enc[..cut]).is_err());
        }
        let wrapped = wrap_snapshot(&[(1, m(1))].into_iter().collect(), b"");
        for cut in 0..wrapped.len() {
            assert!(unwrap_snapshot(&wrapped[..cut]).is_err(), "cut {cut}");
        }
        assert!(unwrap_snapshot(b"XXXX\x01\0\0\0\0").is_err());
    }
}
