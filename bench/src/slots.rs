//! Redis Cluster key slots (CRC16-XMODEM of the key or of its `{hash tag}`, mod 16384):
//! what leasekv uses to place keys in shard groups. The suite uses it to pick hash tags
//! that land in a chosen group.

/// Number of cluster slots.
pub const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as in Redis' `crc16.c`.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of `key`: only the part between the first `{` and the next `}` is hashed when
/// that part is non-empty (Redis Cluster hash tags).
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) % SLOTS
}

/// The first tag `PREFIXn` (n = 0, 1, ...) whose slot satisfies `want`; `None` if none of
/// the first 100000 does.
pub fn find_tag(prefix: &str, want: impl Fn(u16) -> bool) -> Option<String> {
    (0..100_000)
        .map(|n| format!("{prefix}{n}"))
        .find(|t| want(key_slot(t.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster() {
        // Values from Redis' CLUSTER KEYSLOT and the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn find_tag_lands_in_the_range() {
        let t = find_tag("t", |s| s < 100).expect("a tag in slots 0..100");
        assert!(key_slot(t.as_bytes()) < 100);
        assert!(find_tag("t", |_| false).is_none());
    }
}
