//! WAL record framing: encoding into a reusable buffer and decoding. Pure, no I/O.
//!
//! Frame: `[len u32 LE][crc u32 LE][type u8][payload; len bytes]`, where `len` counts the
//! payload only and `crc` is CRC-32C over `type ++ payload`. Every payload starts with the
//! group id (`u32 LE`); the rest depends on the type:
//!
//! * [`Record::Entries`] (type 1): `[count u32]` then `count` x `[entry_len u32][Entry protobuf]`.
//! * [`Record::HardState`] (type 2): the `HardState` protobuf.
//! * [`Record::Snapshot`] (type 3): the `SnapshotMetadata` protobuf of a snapshot that replaced
//!   the group's log (the snapshot itself lives in `group-<id>.snap`).

use std::fmt;

use protobuf::Message;
use raft::eraftpb::{Entry, HardState, SnapshotMetadata};

/// Bytes before the payload: length, checksum, type.
pub const HEADER_LEN: usize = 9;
/// Largest payload accepted. A length field above this is treated as corruption rather
/// than trusted for an allocation.
pub const MAX_PAYLOAD_LEN: usize = 256 << 20;
/// An Entries record is closed once its payload reaches this size and the remaining
/// entries go into a following record, so a large batch never approaches the cap.
const SPLIT_PAYLOAD_LEN: usize = 1 << 20;

const TYPE_ENTRIES: u8 = 1;
const TYPE_HARD_STATE: u8 = 2;
const TYPE_SNAPSHOT: u8 = 3;

/// One decoded WAL record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Log entries of one group, contiguous by index (checked by replay, not here).
    Entries { group: u32, entries: Vec<Entry> },
    /// The group's latest HardState.
    HardState { group: u32, hard_state: HardState },
    /// The group's log was replaced by the snapshot with this metadata.
    Snapshot {
        group: u32,
        metadata: SnapshotMetadata,
    },
}

/// Why a batch could not be encoded. Nothing is appended to the buffer in that case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// Entry indexes in one call must be strictly consecutive.
    NotContiguous { prev: u64, next: u64 },
    /// A single entry does not fit in a record.
    TooLarge { index: u64, bytes: usize },
    /// The protobuf encoder refused the message.
    Protobuf(String),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::NotContiguous { prev, next } => {
                write!(f, "entries not contiguous: index {next} follows {prev}")
            }
            EncodeError::TooLarge { index, bytes } => write!(
                f,
                "entry {index} encodes to {bytes} bytes, above the cap of {MAX_PAYLOAD_LEN}"
            ),
            EncodeError::Protobuf(e) => write!(f, "protobuf encoding failed: {e}"),
        }
    }
}

/// Why the bytes at some offset are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than [`HEADER_LEN`] bytes left.
    ShortHeader { available: usize },
    /// The length field exceeds [`MAX_PAYLOAD_LEN`].
    ImplausibleLength { len: u64 },
    /// The record runs past the end of the data.
    PastEof { needed: u64, available: usize },
    /// Checksum mismatch.
    Crc { stored: u32, computed: u32 },
    /// Unknown record type (with a valid checksum).
    UnknownType(u8),
    /// The checksum matched but the payload does not parse.
    BadPayload(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::ShortHeader { available } => {
                write!(f, "short record header ({available} of {HEADER_LEN} bytes)")
            }
            DecodeError::ImplausibleLength { len } => {
                write!(f, "implausible record length {len} (cap {MAX_PAYLOAD_LEN})")
            }
            DecodeError::PastEof { needed, available } => {
                write!(f, "record needs {needed} bytes but only {available} remain")
            }
            DecodeError::Crc { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
            DecodeError::UnknownType(t) => write!(f, "unknown record type {t}"),
            DecodeError::BadPayload(e) => write!(f, "undecodable payload: {e}"),
        }
    }
}

/// Appends an Entries record (several if the batch is large) for `group` to `buf`.
/// Empty `entries` appends nothing. On error `buf` is left exactly as it was.
pub fn encode_entries(buf: &mut Vec<u8>, group: u32, entries: &[Entry]) -> Result<(), EncodeError> {
    for pair in entries.windows(2) {
        if pair[1].index != pair[0].index.wrapping_add(1) {
            return Err(EncodeError::NotContiguous {
                prev: pair[0].index,
                next: pair[1].index,
            });
        }
    }
    let rollback = buf.len();
    let result = encode_entries_unchecked(buf, group, entries);
    if result.is_err() {
        buf.truncate(rollback);
    }
    result
}

fn encode_entries_unchecked(
    buf: &mut Vec<u8>,
    group: u32,
    entries: &[Entry],
) -> Result<(), EncodeError> {
    // (record start, position of the count field, count) of the record being filled.
    let mut open: Option<(usize, usize, u32)> = None;
    for entry in entries {
        let (start, count_pos, count) = match open {
            Some(rec) => rec,
            None => {
                let start = begin_record(buf, TYPE_ENTRIES, group);
                let count_pos = buf.len();
                buf.extend_from_slice(&0u32.to_le_bytes());
                (start, count_pos, 0)
            }
        };
        let len_pos = buf.len();
        buf.extend_from_slice(&0u32.to_le_bytes());
        entry
            .write_to_vec(buf)
            .map_err(|e| EncodeError::Protobuf(e.to_string()))?;
        let entry_len = buf.len() - len_pos - 4;
        let payload_len = buf.len() - start - HEADER_LEN;
        if payload_len > MAX_PAYLOAD_LEN {
            return Err(EncodeError::TooLarge {
                index: entry.index,
                bytes: entry_len,
            });
        }
        // Both fit in u32: bounded by MAX_PAYLOAD_LEN above.
        patch_u32(buf, len_pos, entry_len as u32);
        let count = count + 1;
        if payload_len >= SPLIT_PAYLOAD_LEN {
            patch_u32(buf, count_pos, count);
            finish_record(buf, start);
            open = None;
        } else {
            open = Some((start, count_pos, count));
        }
    }
    if let Some((start, count_pos, count)) = open {
        patch_u32(buf, count_pos, count);
        finish_record(buf, start);
    }
    Ok(())
}

/// Appends a HardState record for `group`.
pub fn encode_hard_state(buf: &mut Vec<u8>, group: u32, hs: &HardState) -> Result<(), EncodeError> {
    encode_message(buf, TYPE_HARD_STATE, group, hs)
}

/// Appends a Snapshot (log replaced) record for `group`.
pub fn encode_snapshot(
    buf: &mut Vec<u8>,
    group: u32,
    metadata: &SnapshotMetadata,
) -> Result<(), EncodeError> {
    encode_message(buf, TYPE_SNAPSHOT, group, metadata)
}

fn encode_message(
    buf: &mut Vec<u8>,
    record_type: u8,
    group: u32,
    msg: &dyn Message,
) -> Result<(), EncodeError> {
    let start = begin_record(buf, record_type, group);
    if let Err(e) = msg.write_to_vec(buf) {
        buf.truncate(start);
        return Err(EncodeError::Protobuf(e.to_string()));
    }
    // HardState and SnapshotMetadata are a few dozen bytes plus the voter lists.
    if buf.len() - start - HEADER_LEN > MAX_PAYLOAD_LEN {
        let bytes = buf.len() - start - HEADER_LEN;
        buf.truncate(start);
        return Err(EncodeError::TooLarge { index: 0, bytes });
    }
    finish_record(buf, start);
    Ok(())
}

/// Writes a header placeholder, the type and the group id; returns the record start.
fn begin_record(buf: &mut Vec<u8>, record_type: u8, group: u32) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; 8]);
    buf.push(record_type);
    buf.extend_from_slice(&group.to_le_bytes());
    start
}

/// Fills in length and checksum of the record starting at `start` and ending at `buf.len()`.
fn finish_record(buf: &mut [u8], start: usize) {
    let payload_len = buf.len() - start - HEADER_LEN;
    // Callers keep payload_len <= MAX_PAYLOAD_LEN < u32::MAX.
    patch_u32(buf, start, payload_len as u32);
    let crc = crc32c::crc32c(&buf[start + 8..]);
    patch_u32(buf, start + 4, crc);
}

fn patch_u32(buf: &mut [u8], pos: usize, value: u32) {
    buf[pos..pos + 4].copy_from_slice(&value.to_le_bytes());
}

/// Decodes the record at the start of `buf` (which must not be empty).
/// Returns the record and its total size in bytes.
pub fn decode_record(buf: &[u8]) -> Result<(Record, usize), DecodeError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Err(DecodeError::ShortHeader {
            available: buf.len(),
        });
    };
    let len = read_u32(header, 0) as usize;
    let stored = read_u32(header, 4);
    if len > MAX_PAYLOAD_LEN {
        return Err(DecodeError::ImplausibleLength { len: len as u64 });
    }
    let total = HEADER_LEN + len;
    if total > buf.len() {
        return Err(DecodeError::PastEof {
            needed: total as u64,
            available: buf.len(),
        });
    }
    let computed = crc32c::crc32c(&buf[8..total]);
    if computed != stored {
        return Err(DecodeError::Crc { stored, computed });
    }
    let record = decode_payload(buf[8], &buf[HEADER_LEN..total])?;
    Ok((record, total))
}

fn decode_payload(record_type: u8, payload: &[u8]) -> Result<Record, DecodeError> {
    let mut cur = Cursor(payload);
    let group = cur.u32()?;
    match record_type {
        TYPE_ENTRIES => {
            let count = cur.u32()? as usize;
            if count == 0 {
                return Err(bad("entries record with no entries"));
            }
            // Every entry takes at least its 4 byte length: bounds the allocation.
            let mut entries = Vec::with_capacity(count.min(cur.0.len() / 4));
            for _ in 0..count {
                let len = cur.u32()? as usize;
                let bytes = cur.take(len)?;
                entries.push(parse::<Entry>(bytes)?);
            }
            if !cur.0.is_empty() {
                return Err(bad("trailing bytes after entries"));
            }
            Ok(Record::Entries { group, entries })
        }
        TYPE_HARD_STATE => Ok(Record::HardState {
            group,
            hard_state: parse(cur.0)?,
        }),
        TYPE_SNAPSHOT => Ok(Record::Snapshot {
            group,
            metadata: parse(cur.0)?,
        }),
        other => Err(DecodeError::UnknownType(other)),
    }
}

fn parse<M: Message>(bytes: &[u8]) -> Result<M, DecodeError> {
    M::parse_from_bytes(bytes).map_err(|e| bad(&e.to_string()))
}

fn bad(what: &str) -> DecodeError {
    DecodeError::BadPayload(what.to_string())
}

fn read_u32(buf: &[u8], pos: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[pos..pos + 4]);
    u32::from_le_bytes(b)
}

/// Bounds-checked reader over a payload.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.0.len() {
            return Err(bad("field runs past the end of the payload"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.take(4).map(|b| read_u32(b, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::ConfState;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    fn decode_all(mut buf: &[u8]) -> Vec<Record> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let (rec, n) = decode_record(buf).expect("valid record");
            out.push(rec);
            buf = &buf[n..];
        }
        out
    }

    #[test]
    fn round_trip_every_record_type() {
        let mut buf = Vec::new();
        let entries = vec![entry(5, 2, b"a"), entry(6, 2, b""), entry(7, 3, b"ccc")];
        encode_entries(&mut buf, 7, &entries).unwrap();
        let hs = HardState {
            term: 3,
            vote: 2,
            commit: 6,
            ..Default::default()
        };
        encode_hard_state(&mut buf, 7, &hs).unwrap();
        let mut meta = SnapshotMetadata {
            index: 40,
            term: 4,
            ..Default::default()
        };
        meta.set_conf_state(ConfState {
            voters: vec![1, 2, 3],
            ..Default::default()
        });
        encode_snapshot(&mut buf, u32::MAX, &meta).unwrap();
        encode_entries(&mut buf, 1, &[]).unwrap(); // appends nothing

        assert_eq!(
            decode_all(&buf),
            vec![
                Record::Entries { group: 7, entries },
                Record::HardState {
                    group: 7,
                    hard_state: hs
                },
                Record::Snapshot {
                    group: u32::MAX,
                    metadata: meta
                },
            ]
        );
    }

    #[test]
    fn large_batches_are_split_into_several_records() {
        let big = vec![7u8; 300 << 10];
        let entries: Vec<Entry> = (1..=10).map(|i| entry(i, 1, &big)).collect();
        let mut buf = Vec::new();
        encode_entries(&mut buf, 3, &entries).unwrap();
        let records = decode_all(&buf);
        assert!(records.len() > 1, "expected a split, got {}", records.len());
        let rejoined: Vec<Entry> = records
            .into_iter()
            .flat_map(|r| match r {
                Record::Entries { group: 3, entries } => entries,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(rejoined, entries);
    }

    #[test]
    fn non_contiguous_entries_are_rejected_without_touching_the_buffer() {
        let mut buf = vec![1, 2, 3];
        let err = encode_entries(&mut buf, 1, &[entry(1, 1, b""), entry(3, 1, b"")]);
        assert_eq!(err, Err(EncodeError::NotContiguous { prev: 1, next: 3 }));
        assert_eq!(buf, vec![1, 2, 3]);
    }

    #[test]
    fn truncated_records_are_detected() {
        let mut buf = Vec::new();
        encode_entries(&mut buf, 1, &[entry(1, 1, b"hello")]).unwrap();
        assert!(matches!(
            decode_record(&buf[..5]),
            Err(DecodeError::ShortHeader { available: 5 })
        ));
        assert!(matches!(
            decode_record(&buf[..buf.len() - 1]),
            Err(DecodeError::PastEof { .. })
        ));
    }

    #[test]
    fn flipped_bits_are_detected_anywhere_in_the_record() {
        let mut buf = Vec::new();
        encode_entries(&mut buf, 1, &[entry(1, 1, b"hello")]).unwrap();
        for pos in 4..buf.len() {
            let mut copy = buf.clone();
            copy[pos] ^= 0x10;
            assert!(
                matches!(decode_record(&copy), Err(DecodeError::Crc { .. })),
                "flip at {pos} not detected"
            );
        }
    }

    #[test]
    fn implausible_length_is_rejected_before_reading() {
        let mut buf = vec![0u8; HEADER_LEN];
        buf[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_record(&buf),
            Err(DecodeError::ImplausibleLength { .. })
        ));
    }

    #[test]
    fn zero_filled_tail_is_not_a_record() {
        assert!(matches!(
            decode_record(&[0u8; 64]),
            Err(DecodeError::Crc { .. })
        ));
    }

    /// Frames `payload` with a correct checksum, as a buggy or foreign writer could.
    fn framed(record_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let mut body = vec![record_type];
        body.extend_from_slice(payload);
        buf.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        buf.extend_from_slice(&body);
        buf
    }

    #[test]
    fn checksummed_garbage_is_still_rejected() {
        // Too short for a group id.
        assert!(matches!(
            decode_record(&framed(TYPE_HARD_STATE, &[1, 2])),
            Err(DecodeError::BadPayload(_))
        ));
        // Entry count larger than the payload.
        let mut p = 1u32.to_le_bytes().to_vec();
        p.extend_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(
            decode_record(&framed(TYPE_ENTRIES, &p)),
            Err(DecodeError::BadPayload(_))
        ));
        // Entry bytes that are not protobuf.
        let mut p = 1u32.to_le_bytes().to_vec();
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(&2u32.to_le_bytes());
        p.extend_from_slice(&[0xff, 0xff]);
        assert!(matches!(
            decode_record(&framed(TYPE_ENTRIES, &p)),
            Err(DecodeError::BadPayload(_))
        ));
        assert_eq!(
            decode_record(&framed(9, &1u32.to_le_bytes())),
            Err(DecodeError::UnknownType(9))
        );
    }
}
