//! Read operations: never mutate, keys expired at `now` are invisible. O(1) per key unless
//! noted.

use bytes::Bytes;

use super::{KvState, SCAN_POSITION_BITS};
use crate::glob::Glob;
use crate::ops::ReadOp;
use crate::reply::Reply;

impl KvState {
    pub(super) fn read_op(&self, op: &ReadOp, now: u64) -> Reply {
        match op {
            ReadOp::Get { key } => match self.live(key, now) {
                None => Reply::Nil,
                Some(e) => match e.value.as_str() {
                    Ok(s) => Reply::Bulk(s.clone()),
                    Err(r) => r,
                },
            },
            // MGET answers Nil for keys of other types instead of failing.
            ReadOp::MGet { keys } => Reply::Array(
                keys.iter()
                    .map(|k| match self.live(k, now).map(|e| e.value.as_str()) {
                        Some(Ok(s)) => Reply::Bulk(s.clone()),
                        _ => Reply::Nil,
                    })
                    .collect(),
            ),
            ReadOp::Exists { keys } => {
                Reply::Int(keys.iter().filter(|k| self.live(k, now).is_some()).count() as i64)
            }
            ReadOp::Ttl { key, ms } => match self.live(key, now) {
                None => Reply::Int(-2),
                Some(e) => match e.expire_at {
                    None => Reply::Int(-1),
                    Some(t) => {
                        // Live means t > now.
                        let left = i64::try_from(t - now).unwrap_or(i64::MAX);
                        Reply::Int(if *ms {
                            left
                        } else {
                            left.saturating_add(500) / 1000
                        })
                    }
                },
            },
            ReadOp::Type { key } => {
                let name = self.live(key, now).map_or("none", |e| e.value.type_name());
                Reply::Status(Bytes::from_static(name.as_bytes()))
            }
            ReadOp::Strlen { key } => match self.live(key, now) {
                None => Reply::Int(0),
                Some(e) => match e.value.as_str() {
                    Ok(s) => Reply::Int(s.len() as i64),
                    Err(r) => r,
                },
            },
            ReadOp::GetRange { key, start, end } => match self.live(key, now) {
                None => Reply::Bulk(Bytes::new()),
                Some(e) => match e.value.as_str() {
                    Ok(s) => Reply::Bulk(get_range(s, *start, *end)),
                    Err(r) => r,
                },
            },
            ReadOp::Keys { pattern } => self.keys(pattern, now),
            ReadOp::Scan {
                cursor,
                pattern,
                count,
                type_filter,
            } => self.scan(*cursor, pattern.as_ref(), *count, type_filter.as_ref(), now),
            ReadOp::DbSize => Reply::Int(self.live_len(now) as i64),
        }
    }

    /// KEYS: O(n) over all stored keys (O(pattern x key) per match), in scan order.
    fn keys(&self, pattern: &Bytes, now: u64) -> Reply {
        let glob = Glob::new(pattern);
        Reply::Array(
            self.order
                .iter()
                .filter(|(_, k)| glob.matches(k) && self.live(k, now).is_some())
                .map(|(_, k)| Reply::Bulk(k.clone()))
                .collect(),
        )
    }

    /// One SCAN step: visits about `count` keys (expired, filtered or not, like Redis' COUNT)
    /// starting at scan position `cursor`, then finishes the last position so keys sharing it
    /// are never split between steps. The next cursor is that position + 1, or 0 when nothing
    /// follows. A key present for the whole scan is returned exactly once, since positions are
    /// fixed per key and the cursor only moves forward. O((count + ties) log n).
    fn scan(
        &self,
        cursor: u64,
        pattern: Option<&Bytes>,
        count: usize,
        type_filter: Option<&Bytes>,
        now: u64,
    ) -> Reply {
        let reply = |next: u64, keys: Vec<Reply>| {
            Reply::Array(vec![Reply::Int(next as i64), Reply::Array(keys)])
        };
        if cursor >= 1 << SCAN_POSITION_BITS {
            return reply(0, Vec::new());
        }
        let glob = pattern.map(|p| Glob::new(p));
        let budget = count.max(1);
        let mut keys = Vec::new();
        let mut last: Option<u64> = None;
        for (seen, (pos, key)) in self.order.range((cursor, Bytes::new())..).enumerate() {
            if let Some(l) = last {
                if seen >= budget && l != *pos {
                    return reply(l + 1, keys);
                }
            }
            last = Some(*pos);
            let Some(e) = self.live(key, now) else {
                continue;
            };
            if let Some(t) = type_filter {
                if !t.eq_ignore_ascii_case(e.value.type_name().as_bytes()) {
                    continue;
                }
            }
            if glob.as_ref().is_some_and(|g| !g.matches(key)) {
                continue;
            }
            keys.push(Reply::Bulk(key.clone()));
        }
        reply(0, keys)
    }
}

/// GETRANGE with Redis' index rules: negative indexes count from the end, both ends are
/// clamped, an inverted range is empty. Zero-copy.
fn get_range(s: &Bytes, start: i64, end: i64) -> Bytes {
    let len = s.len() as i128;
    let (mut start, mut end) = (i128::from(start), i128::from(end));
    if start < 0 && end < 0 && start > end {
        return Bytes::new();
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0).min(len - 1);
    if len == 0 || start > end {
        return Bytes::new();
    }
    s.slice(start as usize..=end as usize)
}
