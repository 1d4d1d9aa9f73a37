//! Snapshot file format (`group-<id>.snap`). Pure, no I/O.
//!
//! `[magic "LKVSNAP1"][group u32 LE][payload_len u64 LE][crc u32 LE][payload]`, where the
//! payload is the `Snapshot` protobuf (metadata + data) and `crc` is CRC-32C over group,
//! length and payload. The file must end exactly after the payload.

use protobuf::Message;
use raft::eraftpb::Snapshot;

const MAGIC: &[u8; 8] = b"LKVSNAP1";
const HEADER_LEN: usize = 8 + 4 + 8 + 4;

/// Encodes a snapshot file for `group`.
pub fn encode(group: u32, snapshot: &Snapshot) -> Result<Vec<u8>, String> {
    let mut buf = Vec::with_capacity(HEADER_LEN + snapshot.data.len() + 256);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&group.to_le_bytes());
    buf.extend_from_slice(&[0u8; 12]); // length and crc, patched below
    snapshot
        .write_to_vec(&mut buf)
        .map_err(|e| format!("encoding snapshot of group {group}: {e}"))?;
    let payload_len = (buf.len() - HEADER_LEN) as u64;
    buf[12..20].copy_from_slice(&payload_len.to_le_bytes());
    let crc = checksum(&buf[8..20], &buf[HEADER_LEN..]);
    buf[20..24].copy_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

/// Decodes and verifies a snapshot file that must belong to `group`.
pub fn decode(group: u32, buf: &[u8]) -> Result<Snapshot, String> {
    if buf.len() < HEADER_LEN {
        return Err(format!("{} bytes, shorter than the header", buf.len()));
    }
    if &buf[..8] != MAGIC {
        return Err("bad magic".to_string());
    }
    let stored_group = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]);
    if stored_group != group {
        return Err(format!("belongs to group {stored_group}, expected {group}"));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&buf[12..20]);
    let len = u64::from_le_bytes(len);
    let actual = (buf.len() - HEADER_LEN) as u64;
    if len != actual {
        return Err(format!(
            "header says {len} payload bytes, file has {actual}"
        ));
    }
    let stored_crc = u32::from_le_bytes([buf[20], buf[21], buf[22], buf[23]]);
    let crc = checksum(&buf[8..20], &buf[HEADER_LEN..]);
    if crc != stored_crc {
        return Err(format!(
            "checksum mismatch (stored {stored_crc:#010x}, computed {crc:#010x})"
        ));
    }
    Snapshot::parse_from_bytes(&buf[HEADER_LEN..]).map_err(|e| format!("undecodable: {e}"))
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(header), payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        let mut s = Snapshot::default();
        s.mut_metadata().index = 42;
        s.mut_metadata().term = 7;
        s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        s.data = vec![9u8; 1000].into();
        s
    }

    #[test]
    fn round_trip() {
        let buf = encode(5, &snap()).unwrap();
        assert_eq!(decode(5, &buf).unwrap(), snap());
    }

    #[test]
    fn damage_is_detected() {
        let buf = encode(5, &snap()).unwrap();
        assert!(decode(6, &buf).unwrap_err().contains("group"));
        assert!(decode(5, &buf[..buf.len() - 1]).is_err());
        assert!(decode(5, &buf[..10]).is_err());
        let mut longer = buf.clone();
        longer.push(0);
        assert!(decode(5, &longer).is_err());
        for pos in [0, 9, 13, 21, HEADER_LEN + 3, buf.len() - 1] {
            let mut copy = buf.clone();
            copy[pos] ^= 1;
            assert!(decode(5, &copy).is_err(), "flip at {pos} not detected");
        }
    }
}
