//! Frames exchanged between the same core of two nodes, carried opaquely by the transport.
//!
//! ```text
//! frame := version:u8=1  sent_at_ns:u64le  count:u32le  item*
//! item  := tag:u8  group:u32le  a:u64le  len:u32le  bytes[len]
//!   tag 1 Raft:         a = echo_ns (see below), bytes = protobuf raft Message
//!   tag 2 Forward:      a = forward id,          bytes = shards::wire request
//!   tag 3 ForwardReply: a = forward id,          bytes = shards::wire reply   (group unused)
//!   tag 4 SnapshotChunk: a = stream id,          bytes = seq:u32le last:u8 total:u64le data
//!         (seq 0's data starts with len:u32le + the MsgSnapshot without its snapshot data)
//! ```
//!
//! Snapshots never travel as one frame: `src/cluster.rs` cuts a MsgSnapshot into chunks of
//! [`SNAPSHOT_CHUNK`] bytes sent a few per driver iteration, and the receiver reassembles
//! them before stepping the message.
//!
//! Send-time echo (for leases): `sent_at_ns` is the sender's CLOCK_BOOTTIME when the frame
//! was built. A receiver remembers, per (peer, group), the `sent_at_ns` of the latest frame
//! from that peer that carried a Raft message of that group, and puts it as `echo_ns` on the
//! Raft messages of that group it sends back. A leader reading `echo_ns` on a response thus
//! learns an instant *on its own clock* no later than the moment the follower last heard
//! from it — the anchor a lease needs (docs/lease.md) — without trusting any other clock.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};

use crate::transport::Lane;

const VERSION: u8 = 1;
const T_RAFT: u8 = 1;
const T_FORWARD: u8 = 2;
const T_FORWARD_REPLY: u8 = 3;
const T_SNAPSHOT_CHUNK: u8 = 4;
const CHUNK_HEADER: usize = 4 + 1 + 8;

/// Bytes of snapshot data per chunk.
pub const SNAPSHOT_CHUNK: usize = 256 * 1024;
const HEADER: usize = 1 + 8 + 4;
const ITEM_HEADER: usize = 1 + 4 + 8 + 4;

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Raft {
        group: u32,
        echo_ns: u64,
        msg: Message,
    },
    Forward {
        group: u32,
        id: u64,
        request: Bytes,
    },
    ForwardReply {
        id: u64,
        reply: Bytes,
    },
    SnapshotChunk(Chunk),
}

/// One piece of a snapshot stream from one peer for one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub group: u32,
    pub stream: u64,
    pub seq: u32,
    pub last: bool,
    /// Total bytes of the stream (for a bounded preallocation).
    pub total: u64,
    pub data: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub sent_at_ns: u64,
    pub items: Vec<Item>,
}

/// Which transport lane a Raft message rides: everything that keeps leadership and reads
/// alive (and is small) goes on Control, never behind log appends and snapshots.
pub fn lane_of(msg: &Message) -> Lane {
    match msg.get_msg_type() {
        MessageType::MsgAppend | MessageType::MsgSnapshot => Lane::Bulk,
        _ => Lane::Control,
    }
}

/// Builds one frame per lane for one peer.
#[derive(Default)]
pub struct FrameBuilder {
    buf: BytesMut,
    count: u32,
}

impl FrameBuilder {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn item(&mut self, tag: u8, group: u32, a: u64, payload: &[u8]) {
        if self.count == 0 {
            self.buf.reserve(HEADER + ITEM_HEADER + payload.len());
            self.buf.put_u8(VERSION);
            self.buf.put_u64_le(0); // sent_at, stamped in finish()
            self.buf.put_u32_le(0); // count, patched in finish()
        }
        self.buf.put_u8(tag);
        self.buf.put_u32_le(group);
        self.buf.put_u64_le(a);
        self.buf.put_u32_le(payload.len() as u32);
        self.buf.put_slice(payload);
        self.count += 1;
    }

    pub fn raft(&mut self, group: u32, echo_ns: u64, msg: &Message) {
        // A protobuf Message of our own always serialises.
        let bytes = msg.write_to_bytes().unwrap_or_default();
        self.item(T_RAFT, group, echo_ns, &bytes);
    }

    pub fn forward(&mut self, group: u32, id: u64, request: &[u8]) {
        self.item(T_FORWARD, group, id, request);
    }

    pub fn forward_reply(&mut self, id: u64, reply: &[u8]) {
        self.item(T_FORWARD_REPLY, 0, id, reply);
    }

    pub fn snapshot_chunk(&mut self, c: &Chunk) {
        let mut payload = Vec::with_capacity(CHUNK_HEADER + c.data.len());
        payload.extend_from_slice(&c.seq.to_le_bytes());
        payload.push(u8::from(c.last));
        payload.extend_from_slice(&c.total.to_le_bytes());
        payload.extend_from_slice(&c.data);
        self.item(T_SNAPSHOT_CHUNK, c.group, c.stream, &payload);
    }

    /// Stamps the send time and returns the frame (None when empty).
    pub fn finish(&mut self, sent_at_ns: u64) -> Option<Bytes> {
        if self.count == 0 {
            return None;
        }
        self.buf[1..9].copy_from_slice(&sent_at_ns.to_le_bytes());
        self.buf[9..13].copy_from_slice(&self.count.to_le_bytes());
        self.count = 0;
        Some(self.buf.split().freeze())
    }
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if b.len() < n {
        return Err(format!("truncated frame: need {n} bytes, have {}", b.len()));
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

fn u32_at(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn u64_at(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Decodes a frame; any malformation is an error (the caller drops the frame and logs).
pub fn decode(frame: &Bytes) -> Result<Frame, String> {
    let mut b: &[u8] = frame;
    let h = take(&mut b, HEADER)?;
    if h[0] != VERSION {
        return Err(format!("unknown frame version {}", h[0]));
    }
    let sent_at_ns = u64_at(&h[1..9]);
    let count = u32_at(&h[9..13]) as usize;
    if count > b.len() / ITEM_HEADER {
        return Err(format!("frame claims {count} items in {} bytes", b.len()));
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let ih = take(&mut b, ITEM_HEADER)?;
        let (tag, group, a, len) = (
            ih[0],
            u32_at(&ih[1..5]),
            u64_at(&ih[5..13]),
            u32_at(&ih[13..17]),
        );
        let offset = frame.len() - b.len();
        take(&mut b, len as usize)?;
        let payload = frame.slice(offset..offset + len as usize);
        items.push(match tag {
            T_RAFT => Item::Raft {
                group,
                echo_ns: a,
                msg: Message::parse_from_bytes(&payload)
                    .map_err(|e| format!("raft message: {e}"))?,
            },
            T_FORWARD => Item::Forward {
                group,
                id: a,
                request: payload,
            },
            T_FORWARD_REPLY => Item::ForwardReply {
                id: a,
                reply: payload,
            },
            T_SNAPSHOT_CHUNK => {
                if payload.len() < CHUNK_HEADER {
                    return Err("snapshot chunk shorter than its header".into());
                }
                Item::SnapshotChunk(Chunk {
                    group,
                    stream: a,
                    seq: u32_at(&payload[0..4]),
                    last: payload[4] != 0,
                    total: u64_at(&payload[5..13]),
                    data: payload.slice(CHUNK_HEADER..),
                })
            }
            t => return Err(format!("unknown item tag {t}")),
        });
    }
    if !b.is_empty() {
        return Err(format!("{} trailing bytes after frame", b.len()));
    }
    Ok(Frame { sent_at_ns, items })
}

/// Per-core memory of the newest frame send time seen from each peer for each group.
#[derive(Default)]
pub struct EchoBook {
    heard: HashMap<(u64, u32), u64>,
}

impl EchoBook {
    /// Records that a frame sent at `sent_at_ns` by `from` carried a message of `group`.
    pub fn heard(&mut self, from: u64, group: u32, sent_at_ns: u64) {
        let e = self.heard.entry((from, group)).or_insert(0);
        *e = (*e).max(sent_at_ns);
    }

    /// The echo to put on a message of `group` to `to` (0 = never heard from it).
    pub fn echo(&self, to: u64, group: u32) -> u64 {
        self.heard.get(&(to, group)).copied().unwrap_or(0)
    }

    /// Forget a peer (removed from the cluster).
    pub fn forget(&mut self, node: u64) {
        self.heard.retain(|(n, _), _| *n != node);
    }
}

/// CLOCK_BOOTTIME in nanoseconds: monotonic and counting across suspend. None if the clock
/// cannot be read (callers treat that as "no lease").
pub fn boottime_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (rc == 0 && ts.tv_sec >= 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(t: MessageType, to: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(t);
        m.to = to;
        m.from = 1;
        m.term = 7;
        m
    }

    #[test]
    fn frame_round_trip_with_all_item_kinds() {
        let mut fb = FrameBuilder::default();
        assert!(fb.finish(1).is_none());
        let hb = msg(MessageType::MsgHeartbeat, 2);
        fb.raft(3, 42, &hb);
        fb.forward(5, 9, b"req");
        fb.forward_reply(9, b"rep");
        let bytes = fb.finish(1234).unwrap();
        let f = decode(&bytes).unwrap();
        assert_eq!(f.sent_at_ns, 1234);
        assert_eq!(
            f.items,
            vec![
                Item::Raft {
                    group: 3,
                    echo_ns: 42,
                    msg: hb
                },
                Item::Forward {
                    group: 5,
                    id: 9,
                    request: Bytes::from_static(b"req")
                },
                Item::ForwardReply {
                    id: 9,
                    reply: Bytes::from_static(b"rep")
                },
            ]
        );
        // The builder is reusable after finish.
        fb.forward_reply(1, b"x");
        assert_eq!(decode(&fb.finish(5).unwrap()).unwrap().items.len(), 1);
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        let mut fb = FrameBuilder::default();
        fb.raft(1, 0, &msg(MessageType::MsgAppend, 2));
        fb.forward(1, 2, b"abc");
        let good = fb.finish(9).unwrap();
        for cut in 0..good.len() {
            assert!(
                decode(&good.slice(..cut)).is_err(),
                "truncation at {cut} accepted"
            );
        }
        let mut extra = good.to_vec();
        extra.push(0);
        assert!(decode(&Bytes::from(extra)).is_err());
        let mut bad_version = good.to_vec();
        bad_version[0] = 9;
        assert!(decode(&Bytes::from(bad_version)).is_err());
        let mut huge_count = good.to_vec();
        huge_count[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&Bytes::from(huge_count)).is_err());
    }

    #[test]
    fn snapshot_chunks_round_trip_and_short_ones_are_errors() {
        let c = Chunk {
            group: 2,
            stream: 77,
            seq: 3,
            last: true,
            total: 1 << 20,
            data: Bytes::from_static(b"piece"),
        };
        let mut fb = FrameBuilder::default();
        fb.snapshot_chunk(&c);
        assert!(!fb.is_empty());
        let f = decode(&fb.finish(1).unwrap()).unwrap();
        assert_eq!(f.items, vec![Item::SnapshotChunk(c)]);
        let mut short = FrameBuilder::default();
        short.item(T_SNAPSHOT_CHUNK, 1, 1, b"abc");
        assert!(decode(&short.finish(1).unwrap()).is_err());
    }

    #[test]
    fn lanes_keep_heartbeats_off_the_bulk_path() {
        assert_eq!(lane_of(&msg(MessageType::MsgAppend, 2)), Lane::Bulk);
        assert_eq!(lane_of(&msg(MessageType::MsgSnapshot, 2)), Lane::Bulk);
        for t in [
            MessageType::MsgHeartbeat,
            MessageType::MsgHeartbeatResponse,
            MessageType::MsgAppendResponse,
            MessageType::MsgReadIndex,
            MessageType::MsgReadIndexResp,
            MessageType::MsgRequestVote,
            MessageType::MsgRequestPreVote,
            MessageType::MsgTimeoutNow,
        ] {
            assert_eq!(lane_of(&msg(t, 2)), Lane::Control, "{t:?}");
        }
    }

    #[test]
    fn echo_book_keeps_the_newest_send_time_per_peer_and_group() {
        let mut e = EchoBook::default();
        assert_eq!(e.echo(2, 1), 0);
        e.heard(2, 1, 100);
        e.heard(2, 1, 90); // reordered older frame never moves it back
        e.heard(3, 1, 50);
        assert_eq!(e.echo(2, 1), 100);
        assert_eq!(e.echo(2, 2), 0);
        e.forget(2);
        assert_eq!(e.echo(2, 1), 0);
        assert_eq!(e.echo(3, 1), 50);
    }

    #[test]
    fn boottime_is_monotonic() {
        let a = boottime_ns().unwrap();
        let b = boottime_ns().unwrap();
        assert!(b >= a);
    }
}
