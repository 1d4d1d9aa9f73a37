//! The durable write-ahead log of one core: Raft log entries, HardStates and snapshots of all
//! the shard groups the core runs, made durable with one write + one fdatasync per driver
//! loop (group commit).
//!
//! # On-disk format
//!
//! Everything lives in the core's directory (e.g. `<data_dir>/core-0`):
//!
//! * `wal-<seq>.log` (`seq` = 16 lowercase hex digits): log segments, replayed in `seq`
//!   order. Normally there is one; more remain only after an interrupted compaction. New
//!   records are appended to the highest-numbered one. A segment is a plain sequence of
//!   records `[len u32][crc32c u32 over type+payload][type u8][payload]` (little endian,
//!   `len` counts the payload) of three types: Entries (group id + contiguous Raft entries),
//!   HardState (group id + HardState) and Snapshot (group id + metadata of a snapshot that
//!   replaced the group's log). See `wal/record.rs` for the byte layout and
//!   `wal/replay.rs` for the replay rules.
//! * `group-<id>.snap`: the latest durable snapshot of a group, `[magic][group][len][crc]
//!   [Snapshot protobuf]`. Written as `group-<id>.snap.tmp` and renamed into place.
//!
//! # Crash safety
//!
//! * **Acknowledged appends survive.** [`Wal::sync`] writes the whole batch at the end of the
//!   active segment and returns only after fdatasync succeeded; the segment's directory entry
//!   was fsynced when the segment was created. The driver acknowledges nothing before that.
//! * **A torn tail never becomes data.** A crash during a write leaves at most the last,
//!   unacknowledged batch incomplete (cut short, with holes or with zeroes). Every record
//!   carries its length and a CRC-32C, so replay stops at the first record that is short,
//!   too long, fails its checksum or does not decode, and applies only the records before
//!   it: the result is always a prefix of what was written. In the last segment the file is
//!   then truncated there (ftruncate + fdatasync) before anything is appended, so new records
//!   never follow garbage. Acknowledged batches were fully synced before the torn one was
//!   written, so they lie before the tear. (Limitation: media corruption inside the last
//!   segment looks like a tear and cuts off everything after it, with a warning; there are
//!   no per-batch markers to tell them apart.)
//! * **Real corruption stops the core.** Older segments were complete and synced before a
//!   newer one was created, so a bad record there (or a bad snapshot file, or a log with an
//!   index gap) cannot be a tear: `open` fails with [`WalError::Corrupt`] instead of silently
//!   dropping acknowledged writes.
//! * **Compaction is crash-safe at every step** ([`Wal::compact`]):
//!   1. each new snapshot goes to a tmp file, is fdatasynced, renamed over `group-<id>.snap`,
//!      then the directory is fsynced. A crash here leaves new snapshots next to the old,
//!      complete segments. Replay drops entries at or below a snapshot's index and keeps
//!      the rest, so the result equals the pre-crash log. (A HardState commit below the
//!      snapshot index is raised to it: a snapshot holds only committed state.) A leftover
//!      `*.tmp` is deleted on open.
//!   2. a new segment `seq + 1` gets each group's HardState and its entries after the
//!      snapshot, is fdatasynced and the directory fsynced. A crash here leaves old segments
//!      followed by a (possibly torn) copy of state they already imply: replaying the copy
//!      re-applies the same HardStates and overwrites the same entries with themselves, and a
//!      torn copy is repaired like any torn tail.
//!   3. old segments are deleted newest first, so a crash leaves a prefix of the old history
//!      followed by the new segment, which again replays to the same state.
//! * **Followers installing a snapshot** ([`Wal::install_snapshot`]) persist the snapshot
//!   file before a Snapshot record is buffered; the record (durable at the next `sync`) tells
//!   replay to discard the log that preceded it. A crash before that `sync` leaves the
//!   snapshot with the old log above it, which raft handles as uncommitted conflicting
//!   entries.
//! * **Index gaps are refused at append time** with the same rule replay applies, so the
//!   writer cannot produce a log that would later fail to open.
//! * **After an I/O error the instance is unusable.** A failed write or fsync leaves the
//!   file in an unknown state (and a retried fsync may falsely succeed), so every later call
//!   returns [`WalError::Poisoned`]; reopening recovers what is durable.
//!
//! # I/O
//!
//! Segments use glommio's `BufferedFile` (page cache + io_uring write/fdatasync) rather than
//! `DmaFile`: records are small and unaligned, and O_DIRECT would require 4 KiB-aligned
//! writes, i.e. padding or rewriting the partially filled last block on every group commit.
//! The cost of a commit is the fdatasync either way. Each `sync` is one write of the whole
//! batch, encoded into a buffer that is reused across syncs.

mod fs;
mod record;
mod replay;
mod snapfile;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use glommio::io::BufferedFile;
use raft::eraftpb::{Entry, HardState, Snapshot};
use tracing::{info, warn};

use self::replay::{LogBounds, Replay};

/// After a sync, an encode buffer grown beyond this (a burst) is shrunk back to it.
const RETAINED_BUFFER: usize = 4 << 20;

/// Errors of the WAL.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O operation failed; the message names the operation and the path.
    #[error("wal i/o error: {0}")]
    Io(std::io::Error),
    /// Durable state is damaged in a way that cannot be a torn write; refusing to start.
    #[error("wal corrupt: {0}")]
    Corrupt(String),
    /// The caller passed something that could not be replayed (an index gap, non-contiguous
    /// entries, an incomplete compaction). Nothing of it was written.
    #[error("invalid wal input: {0}")]
    Invalid(String),
    /// An earlier failure left this instance in an unknown state; reopen to recover.
    #[error("wal unusable after an earlier failure ({0}); reopen to recover")]
    Poisoned(String),
}

/// What one group needs to keep across a compaction.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupCheckpoint {
    pub group: u32,
    /// Metadata (index, term, conf_state) and data. Index 0 means "no snapshot yet".
    pub snapshot: Snapshot,
    pub hard_state: HardState,
    /// The entries after the snapshot index, contiguous from `snapshot index + 1`.
    pub tail: Vec<Entry>,
}

/// Everything recovered on open.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recovery {
    pub groups: BTreeMap<u32, RecoveredGroup>,
    /// Set when a torn or corrupt tail of the last segment was cut off.
    pub repaired_tail: Option<TailRepair>,
}

/// One group's durable state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecoveredGroup {
    pub snapshot: Option<Snapshot>,
    /// The last HardState written; its commit is at least the snapshot index.
    pub hard_state: Option<HardState>,
    /// Contiguous, all with index > snapshot index (starting right after it).
    pub entries: Vec<Entry>,
}

/// A torn or corrupt tail that was cut off the last segment on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRepair {
    pub file: PathBuf,
    /// The file was truncated to this length (end of the last valid record).
    pub offset: u64,
    pub dropped_bytes: u64,
    pub reason: String,
}

/// The segment new records are appended to.
struct Segment {
    seq: u64,
    path: PathBuf,
    file: BufferedFile,
    /// Bytes durably written (the append position).
    len: u64,
}

/// A live segment older than the active one (only after an interrupted compaction).
struct OldSegment {
    path: PathBuf,
    len: u64,
}

/// The WAL of one core. Not `Send`: it lives on the core's glommio executor.
pub struct Wal {
    dir: PathBuf,
    active: Segment,
    older: Vec<OldSegment>,
    /// Records buffered for the next `sync`, encoded in log order. Reused across syncs.
    buf: Vec<u8>,
    /// Every group the WAL holds state for, with its durable-or-buffered index bounds.
    groups: BTreeMap<u32, LogBounds>,
    /// A rejected append; the next `sync` fails with it (and poisons).
    invalid: Option<String>,
    poisoned: Option<String>,
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir`, recovers everything durable, repairs a
    /// torn/corrupt tail of the last segment and returns what to rebuild.
    pub async fn open(dir: &Path) -> Result<(Wal, Recovery), WalError> {
        fs::create_dir(dir).await?;
        let listing = scan_dir(dir).await?;
        for tmp in &listing.tmps {
            warn!(file = %tmp.display(), "deleting leftover of an interrupted snapshot write");
            fs::remove(tmp).await?;
        }

        let mut replay = Replay::new();
        for (group, path) in &listing.snapshots {
            let bytes = fs::read_all(path).await?;
            let snapshot = snapfile::decode(*group, &bytes)
                .map_err(|e| WalError::Corrupt(format!("snapshot file {}: {e}", path.display())))?;
            replay
                .add_snapshot(*group, snapshot)
                .map_err(WalError::Corrupt)?;
        }

        let mut segments = Vec::with_capacity(listing.segments.len());
        let mut repaired_tail = None;
        let count = listing.segments.len();
        for (i, (seq, path)) in listing.segments.into_iter().enumerate() {
            let bytes = fs::read_all(&path).await?;
            let (valid, bad) = replay_segment(&mut replay, &path, &bytes)?;
            if let Some(reason) = bad {
                if i + 1 < count {
                    return Err(WalError::Corrupt(format!(
                        "{}: bad record at offset {valid} in a non-final segment \
                         (acknowledged writes would be lost): {reason}",
                        path.display()
                    )));
                }
                repaired_tail = Some(TailRepair {
                    file: path.clone(),
                    offset: valid as u64,
                    dropped_bytes: (bytes.len() - valid) as u64,
                    reason,
                });
            }
            segments.push((seq, path, valid as u64));
        }

        let active = match segments.pop() {
            Some((seq, path, len)) => {
                let file = fs::open_rw(&path).await?;
                if let Some(repair) = &repaired_tail {
                    file.truncate(len)
                        .await
                        .map_err(|e| fs::io_err("truncating", &path, e))?;
                    file.fdatasync()
                        .await
                        .map_err(|e| fs::io_err("syncing", &path, e))?;
                    warn!(
                        file = %path.display(),
                        offset = repair.offset,
                        dropped_bytes = repair.dropped_bytes,
                        reason = %repair.reason,
                        "wal: cut off a torn or corrupt tail"
                    );
                }
                Segment {
                    seq,
                    path,
                    file,
                    len,
                }
            }
            None => create_segment(dir, 1).await?,
        };
        let older = segments
            .into_iter()
            .map(|(_, path, len)| OldSegment { path, len })
            .collect();

        let groups = replay.finish();
        let bounds = groups
            .iter()
            .map(|(&group, g)| {
                let snapshot_index = g.snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
                let last_index = g.entries.last().map_or(snapshot_index, |e| e.index);
                (
                    group,
                    LogBounds {
                        snapshot_index,
                        last_index,
                    },
                )
            })
            .collect();
        let wal = Wal {
            dir: dir.to_path_buf(),
            active,
            older,
            buf: Vec::new(),
            groups: bounds,
            invalid: None,
            poisoned: None,
        };
        info!(
            dir = %dir.display(),
            groups = groups.len(),
            log_bytes = wal.log_bytes(),
            "wal: opened"
        );
        Ok((
            wal,
            Recovery {
                groups,
                repaired_tail,
            },
        ))
    }

    /// Buffers `entries` (contiguous by index) of `group`. Append a group's entries before
    /// its HardState of the same Raft Ready: a torn tail keeps a prefix of the records, so
    /// a surviving HardState then never commits entries that were lost. Entries that would
    /// leave a gap in the group's log, or are not contiguous, are refused: the next
    /// [`Wal::sync`] then fails with [`WalError::Invalid`].
    pub fn append_entries(&mut self, group: u32, entries: &[Entry]) {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return;
        };
        if self.poisoned.is_some() || self.invalid.is_some() {
            return;
        }
        let bounds = self.groups.entry(group).or_default();
        let mut next = *bounds;
        let checked = next.append(first.index, last.index).and_then(|()| {
            record::encode_entries(&mut self.buf, group, entries).map_err(|e| e.to_string())
        });
        match checked {
            Ok(()) => *bounds = next,
            Err(e) => self.invalid = Some(format!("group {group}: {e}")),
        }
    }

    /// Buffers the HardState of `group`.
    pub fn append_hard_state(&mut self, group: u32, hs: &HardState) {
        if self.poisoned.is_some() || self.invalid.is_some() {
            return;
        }
        self.groups.entry(group).or_default();
        if let Err(e) = record::encode_hard_state(&mut self.buf, group, hs) {
            self.invalid = Some(format!("group {group}: {e}"));
        }
    }

    /// Whether records are buffered and not yet synced.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty() || self.invalid.is_some()
    }

    /// Writes every buffered record and fdatasyncs. After `Ok(())` all of them survive a
    /// crash. Any error leaves the instance poisoned.
    pub async fn sync(&mut self) -> Result<(), WalError> {
        self.check_usable()?;
        if let Some(msg) = self.invalid.take() {
            self.poisoned = Some(msg.clone());
            return Err(WalError::Invalid(msg));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.write_batch().await {
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        self.active.len += self.buf.len() as u64;
        self.buf.clear();
        if self.buf.capacity() > RETAINED_BUFFER {
            self.buf.shrink_to(RETAINED_BUFFER);
        }
        Ok(())
    }

    async fn write_batch(&self) -> Result<(), WalError> {
        let seg = &self.active;
        fs::write_all(&seg.file, &seg.path, &self.buf, seg.len).await?;
        seg.file
            .fdatasync()
            .await
            .map_err(|e| fs::io_err("syncing", &seg.path, e))
    }

    /// Bytes in the live log segments (drives compaction). Buffered records not included.
    pub fn log_bytes(&self) -> u64 {
        self.active.len + self.older.iter().map(|s| s.len).sum::<u64>()
    }

    /// Persists a snapshot that replaces `group`'s log (a follower received it from the
    /// leader): writes its file atomically now and buffers a record, durable at the next
    /// [`Wal::sync`], that discards the group's earlier log on replay. Entries appended
    /// afterwards must start at the snapshot index + 1.
    pub async fn install_snapshot(
        &mut self,
        group: u32,
        snapshot: &Snapshot,
    ) -> Result<(), WalError> {
        self.check_usable()?;
        let meta = snapshot.get_metadata();
        let bounds = self.groups.get(&group).copied().unwrap_or_default();
        if meta.index < bounds.snapshot_index {
            return Err(WalError::Invalid(format!(
                "group {group}: snapshot {} is older than the persisted snapshot {}",
                meta.index, bounds.snapshot_index
            )));
        }
        let encoded = if meta.index > bounds.snapshot_index {
            Some(snapfile::encode(group, snapshot).map_err(WalError::Invalid)?)
        } else {
            None
        };
        let mark = self.buf.len();
        record::encode_snapshot(&mut self.buf, group, meta)
            .map_err(|e| WalError::Invalid(format!("group {group}: {e}")))?;
        if let Some(bytes) = encoded {
            let written = async {
                self.write_snapshot_file(group, &bytes).await?;
                fs::sync_dir(&self.dir).await
            }
            .await;
            if let Err(e) = written {
                self.buf.truncate(mark);
                self.poisoned = Some(e.to_string());
                return Err(e);
            }
        }
        self.groups.entry(group).or_default().reset(meta.index);
        Ok(())
    }

    /// Compaction. `checkpoints` must hold every group this WAL has state for, reflecting
    /// everything appended so far (buffered records are synced first). Persists each new
    /// snapshot in its own file, writes a new segment with each group's HardState and tail,
    /// syncs it, then deletes the old segments. Crash-safe at every step (see module docs).
    /// Validation errors ([`WalError::Invalid`]) change nothing; I/O errors poison.
    pub async fn compact(&mut self, checkpoints: Vec<GroupCheckpoint>) -> Result<(), WalError> {
        self.check_usable()?;
        if self.has_pending() {
            self.sync().await?;
        }
        let (content, bounds) = self.plan_compaction(&checkpoints)?;
        if let Err(e) = self.run_compaction(&checkpoints, &content).await {
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        self.groups = bounds;
        Ok(())
    }

    /// Validates the checkpoints and encodes the new segment.
    fn plan_compaction(
        &self,
        checkpoints: &[GroupCheckpoint],
    ) -> Result<(Vec<u8>, BTreeMap<u32, LogBounds>), WalError> {
        let invalid =
            |group: u32, what: String| WalError::Invalid(format!("group {group}: {what}"));
        let mut content = Vec::new();
        let mut bounds = BTreeMap::new();
        for cp in checkpoints {
            let group = cp.group;
            let index = cp.snapshot.get_metadata().index;
            let old = self.groups.get(&group).copied().unwrap_or_default();
            if index < old.snapshot_index {
                return Err(invalid(
                    group,
                    format!(
                        "snapshot {index} is older than the persisted snapshot {}",
                        old.snapshot_index
                    ),
                ));
            }
            if let Some(first) = cp.tail.first() {
                if first.index != index + 1 {
                    return Err(invalid(
                        group,
                        format!(
                            "tail starts at {} but the snapshot is at {index}",
                            first.index
                        ),
                    ));
                }
            }
            if cp.hard_state != HardState::default() {
                record::encode_hard_state(&mut content, group, &cp.hard_state)
                    .map_err(|e| invalid(group, e.to_string()))?;
            }
            record::encode_entries(&mut content, group, &cp.tail)
                .map_err(|e| invalid(group, e.to_string()))?;
            let last_index = cp.tail.last().map_or(index, |e| e.index);
            let new = LogBounds {
                snapshot_index: index,
                last_index,
            };
            if bounds.insert(group, new).is_some() {
                return Err(invalid(group, "appears twice in the checkpoints".into()));
            }
        }
        let missing: Vec<u32> = self
            .groups
            .keys()
            .filter(|g| !bounds.contains_key(g))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(WalError::Invalid(format!(
                "compaction must cover every group; missing {missing:?}"
            )));
        }
        Ok((content, bounds))
    }

    async fn run_compaction(
        &mut self,
        checkpoints: &[GroupCheckpoint],
        content: &[u8],
    ) -> Result<(), WalError> {
        // 1. Snapshots, each atomically, then one directory fsync for all the renames.
        let mut wrote_snapshot = false;
        for cp in checkpoints {
            let old = self.groups.get(&cp.group).copied().unwrap_or_default();
            if cp.snapshot.get_metadata().index > old.snapshot_index {
                let bytes = snapfile::encode(cp.group, &cp.snapshot).map_err(WalError::Invalid)?;
                self.write_snapshot_file(cp.group, &bytes).await?;
                wrote_snapshot = true;
            }
        }
        if wrote_snapshot {
            fs::sync_dir(&self.dir).await?;
        }

        // 2. The new segment, durable (content and directory entry) before anything goes.
        let mut next = create_segment(&self.dir, self.active.seq + 1).await?;
        fs::write_all(&next.file, &next.path, content, 0).await?;
        next.file
            .fdatasync()
            .await
            .map_err(|e| fs::io_err("syncing", &next.path, e))?;
        next.len = content.len() as u64;
        let previous = std::mem::replace(&mut self.active, next);
        let mut old: Vec<OldSegment> = std::mem::take(&mut self.older);
        old.push(OldSegment {
            path: previous.path.clone(),
            len: previous.len,
        });
        previous
            .file
            .close()
            .await
            .map_err(|e| fs::io_err("closing", &previous.path, e))?;

        // 3. Old segments, newest first: a crash leaves a prefix of the old history.
        while let Some(seg) = old.pop() {
            if let Err(e) = fs::remove(&seg.path).await {
                old.push(seg);
                self.older = old;
                return Err(e);
            }
        }
        fs::sync_dir(&self.dir).await?;
        info!(dir = %self.dir.display(), log_bytes = self.log_bytes(), "wal: compacted");
        Ok(())
    }

    async fn write_snapshot_file(&self, group: u32, bytes: &[u8]) -> Result<(), WalError> {
        let path = self.dir.join(snapshot_name(group));
        let tmp = self.dir.join(format!("{}.tmp", snapshot_name(group)));
        fs::write_file_atomic(&tmp, &path, bytes).await
    }

    /// Closes the active segment file. Buffered, unsynced records are dropped.
    pub async fn close(self) -> Result<(), WalError> {
        let path = self.active.path;
        self.active
            .file
            .close()
            .await
            .map_err(|e| fs::io_err("closing", &path, e))
    }

    fn check_usable(&self) -> Result<(), WalError> {
        match &self.poisoned {
            Some(why) => Err(WalError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }
}

/// Replays one segment. Returns the length of its valid prefix and, if the segment does not
/// end there, why the next record is invalid. Records that decode but contradict the log
/// (index gaps) are corruption.
fn replay_segment(
    replay: &mut Replay,
    path: &Path,
    bytes: &[u8],
) -> Result<(usize, Option<String>), WalError> {
    let mut pos = 0;
    while pos < bytes.len() {
        match record::decode_record(&bytes[pos..]) {
            Ok((rec, size)) => {
                replay.apply(rec).map_err(|e| {
                    WalError::Corrupt(format!("{}: record at offset {pos}: {e}", path.display()))
                })?;
                pos += size;
            }
            Err(e) => return Ok((pos, Some(e.to_string()))),
        }
    }
    Ok((pos, None))
}

async fn create_segment(dir: &Path, seq: u64) -> Result<Segment, WalError> {
    let path = dir.join(segment_name(seq));
    let file = fs::create_new(&path).await?;
    fs::sync_dir(dir).await?;
    Ok(Segment {
        seq,
        path,
        file,
        len: 0,
    })
}

fn segment_name(seq: u64) -> String {
    format!("wal-{seq:016x}.log")
}

fn snapshot_name(group: u32) -> String {
    format!("group-{group}.snap")
}

/// What a file in the WAL directory is, judged by its name.
#[derive(Debug, PartialEq, Eq)]
enum FileKind {
    Segment(u64),
    Snapshot(u32),
    Tmp,
    Other,
}

fn classify(name: &str) -> FileKind {
    if name.ends_with(".tmp") {
        return FileKind::Tmp;
    }
    if let Some(hex) = name
        .strip_prefix("wal-")
        .and_then(|n| n.strip_suffix(".log"))
    {
        if hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(seq) = u64::from_str_radix(hex, 16) {
                return FileKind::Segment(seq);
            }
        }
    }
    if let Some(id) = name
        .strip_prefix("group-")
        .and_then(|n| n.strip_suffix(".snap"))
    {
        // Only the canonical spelling, so two names can never map to one group.
        if let Ok(group) = id.parse::<u32>() {
            if group.to_string() == id {
                return FileKind::Snapshot(group);
            }
        }
    }
    FileKind::Other
}

#[derive(Default)]
struct Listing {
    /// Sorted by sequence number.
    segments: Vec<(u64, PathBuf)>,
    /// Sorted by group.
    snapshots: Vec<(u32, PathBuf)>,
    tmps: Vec<PathBuf>,
}

async fn scan_dir(dir: &Path) -> Result<Listing, WalError> {
    let mut listing = Listing::default();
    for name in fs::list_dir(dir).await? {
        let name = match name {
            Ok(name) => name,
            Err(path) => {
                warn!(file = %path.display(), "wal: ignoring file with a non UTF-8 name");
                continue;
            }
        };
        let path = dir.join(&name);
        match classify(&name) {
            FileKind::Segment(seq) => listing.segments.push((seq, path)),
            FileKind::Snapshot(group) => listing.snapshots.push((group, path)),
            FileKind::Tmp => listing.tmps.push(path),
            FileKind::Other => warn!(file = %path.display(), "wal: ignoring unknown file"),
        }
    }
    listing.segments.sort();
    listing.snapshots.sort();
    Ok(listing)
}
