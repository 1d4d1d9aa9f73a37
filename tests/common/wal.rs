//! Reading the WAL segment framing from outside the server, to damage the *last record* of a
//! segment precisely. Records are `[len u32 LE][crc32c u32][type u8][payload]`; the layout does
//! not say whether `len` counts the type byte, so both readings are tried and the one that tiles
//! the file is used (a zero-filled preallocated tail is allowed after the last record).

use std::fs;
use std::path::{Path, PathBuf};

/// Where one record sits in a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSpan {
    /// Offset of the record header.
    pub start: usize,
    /// Offset just past the record.
    pub end: usize,
    /// Offset of the first payload byte (after the type byte).
    pub payload_start: usize,
}

/// Segment files `wal-<16 hex>.log` in `core_dir`, oldest first (by the hex number).
pub fn segments(core_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(core_dir) else {
        return Vec::new();
    };
    let mut segs: Vec<(u64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
            if hex.len() != 16 {
                return None;
            }
            Some((u64::from_str_radix(hex, 16).ok()?, e.path()))
        })
        .collect();
    segs.sort();
    segs.into_iter().map(|(_, p)| p).collect()
}

/// Snapshot files `group-<id>.snap` in `core_dir`.
pub fn snapshots(core_dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(core_dir) else {
        return Vec::new();
    };
    let mut snaps: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.starts_with("group-") && n.ends_with(".snap"))
        })
        .collect();
    snaps.sort();
    snaps
}

/// Splits `data` into records, or `None` if it does not tile under either reading of `len`
/// (`len` = payload length, or type + payload). If both tile, the one whose CRCs check wins.
pub fn records(data: &[u8]) -> Option<Vec<RecordSpan>> {
    let tilings: Vec<Vec<RecordSpan>> = [9usize, 8]
        .iter()
        .filter_map(|&extra| tile(data, extra))
        .collect();
    let all_crcs_ok = |recs: &Vec<RecordSpan>| recs.iter().all(|r| crc_ok(data, r));
    match tilings.iter().position(all_crcs_ok) {
        Some(i) => tilings.into_iter().nth(i),
        None => tilings.into_iter().next(),
    }
}

/// The stored CRC32C matches the record under some plausible coverage (type + payload,
/// payload only, or everything after the CRC field including `len`).
fn crc_ok(data: &[u8], r: &RecordSpan) -> bool {
    let stored = u32::from_le_bytes([
        data[r.start + 4],
        data[r.start + 5],
        data[r.start + 6],
        data[r.start + 7],
    ]);
    let mut with_len = data[r.start..r.start + 4].to_vec();
    with_len.extend_from_slice(&data[r.start + 8..r.end]);
    [
        crc32c::crc32c(&data[r.start + 8..r.end]),
        crc32c::crc32c(&data[r.payload_start..r.end]),
        crc32c::crc32c(&with_len),
    ]
    .contains(&stored)
}

fn tile(data: &[u8], extra: usize) -> Option<Vec<RecordSpan>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < data.len() {
        if data[off..].iter().all(|&b| b == 0) {
            break; // preallocated, never written
        }
        if data.len() - off < 9 {
            return None;
        }
        let len = u32::from_le_bytes(data[off..off + 4].try_into().ok()?) as usize;
        let end = off.checked_add(extra)?.checked_add(len)?;
        if end > data.len() || end < off + 9 {
            return None;
        }
        out.push(RecordSpan {
            start: off,
            end,
            payload_start: off + 9,
        });
        off = end;
    }
    Some(out)
}

/// The newest segment of `core_dir` that holds at least one record, with its records.
pub fn newest_segment_with_records(core_dir: &Path) -> Option<(PathBuf, Vec<RecordSpan>)> {
    segments(core_dir).into_iter().rev().find_map(|p| {
        let data = fs::read(&p).ok()?;
        let recs = records(&data).unwrap_or_else(|| {
            panic!(
                "{} ({} bytes) does not parse as [len u32][crc32c u32][type u8][payload] records",
                p.display(),
                data.len()
            )
        });
        (!recs.is_empty()).then_some((p, recs))
    })
}
