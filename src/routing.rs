//! Redis Cluster key slots and the static slot -> shard group -> core map.
//!
//! A key hashes to one of [`SLOTS`] slots exactly like Redis Cluster (CRC16-XMODEM of the key,
//! or of its `{hash tag}`, modulo 16384), so multi-key commands on keys sharing a tag always land
//! in one group. Groups own contiguous slot ranges; each group lives on one core. The map is
//! immutable: built once at start-up and shared read-only (e.g. in an `Arc`) by every core.

/// Number of Redis Cluster hash slots.
pub const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM: poly 0x1021, init 0, no reflection, no final xor) lookup table,
/// the same function as Redis' `crc16.c`.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC16-XMODEM of `data`.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from(((crc >> 8) as u8) ^ b)]
    })
}

/// The hash slot of `key`, as Redis' `keyHashSlot`: if the key contains a `{`, and after the
/// first `{` there is a `}`, and the bytes between that `{` and the first `}` after it are not
/// empty, only those bytes are hashed; otherwise the whole key is.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS - 1)
}

/// The part of `key` that is hashed (see [`key_slot`]).
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

/// Slot -> group -> core map.
///
/// Invariants (enforced by [`Routing::try_new`]): `1 <= groups <= SLOTS`, so every group owns a
/// non-empty contiguous slot range; group `g` owns `[g*SLOTS/groups, (g+1)*SLOTS/groups)`;
/// every group is placed on exactly one core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    groups: u32,
    /// `placement[g]` = core index owning group `g`; `len() == groups`.
    placement: Vec<usize>,
    /// `by_core[c]` = groups placed on core `c`, ascending.
    by_core: Vec<Vec<u32>>,
}

impl Routing {
    /// Builds the map; `placement[g]` is the index of the core owning group `g`.
    ///
    /// # Panics
    /// If the arguments are invalid (see [`Routing::try_new`]). Callers pass a validated
    /// [`crate::config::Config`], whose validation enforces the same rules.
    pub fn new(groups: u32, placement: &[usize]) -> Routing {
        match Routing::try_new(groups, placement) {
            Ok(r) => r,
            Err(e) => panic!("invalid routing: {e}"),
        }
    }

    /// Builds the map, or says why `groups`/`placement` are unusable: `groups` must be in
    /// `1..=SLOTS` and `placement` must have exactly `groups` entries.
    pub fn try_new(groups: u32, placement: &[usize]) -> Result<Routing, String> {
        if groups == 0 || groups > u32::from(SLOTS) {
            return Err(format!("groups ({groups}) must be in 1..={SLOTS}"));
        }
        if placement.len() != groups as usize {
            return Err(format!(
                "placement has {} entries, expected one per group ({groups})",
                placement.len()
            ));
        }
        let cores = placement.iter().max().map_or(0, |&m| m + 1);
        let mut by_core = vec![Vec::new(); cores];
        for (g, &core) in (0u32..).zip(placement) {
            by_core[core].push(g);
        }
        Ok(Routing {
            groups,
            placement: placement.to_vec(),
            by_core,
        })
    }

    /// Number of shard groups.
    pub fn groups(&self) -> u32 {
        self.groups
    }

    /// The group owning `slot`. Slots `>= SLOTS` are taken modulo `SLOTS`.
    pub fn group_of_slot(&self, slot: u16) -> u32 {
        let slot = u64::from(slot % SLOTS);
        let (n, g) = (u64::from(SLOTS), u64::from(self.groups));
        // The largest g with start(g) = floor(g*n/G) <= slot, i.e. g*n < (slot+1)*G.
        (((slot + 1) * g - 1) / n) as u32
    }

    /// The group owning `key`.
    pub fn group_of_key(&self, key: &[u8]) -> u32 {
        self.group_of_slot(key_slot(key))
    }

    /// The core index owning group `g`.
    ///
    /// # Panics
    /// If `g >= self.groups()`.
    pub fn core_of_group(&self, g: u32) -> usize {
        self.placement[g as usize]
    }

    /// The first and last (inclusive) slot owned by group `g`.
    ///
    /// # Panics
    /// If `g >= self.groups()`.
    pub fn slot_range(&self, g: u32) -> (u16, u16) {
        assert!(g < self.groups, "group {g} out of range");
        (self.range_start(g), self.range_start(g + 1) - 1)
    }

    /// The groups placed on core index `core` (ascending; empty for a core with none).
    pub fn groups_on_core(&self, core: usize) -> &[u32] {
        self.by_core.get(core).map_or(&[], Vec::as_slice)
    }

    /// First slot of group `g` (`g == groups` gives `SLOTS`).
    fn range_start(&self, g: u32) -> u16 {
        (u64::from(g) * u64::from(SLOTS) / u64::from(self.groups)) as u16
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc16_check_value() {
        // The CRC-16/XMODEM check value, also quoted in Redis' crc16.c.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn known_slots() {
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"123456789"), 0x31C3 & 0x3FFF);
    }

    #[test]
    fn hash_tags() {
        // Redis cluster spec examples.
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // Empty tag: whole key hashed.
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        // Tag is between the first `{` and the first `}` after it.
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        // No closing brace, or a `}` only before the `{`.
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        assert_eq!(hash_tag(b"}foo{"), b"}foo{");
        assert_eq!(hash_tag(b"a}b{c}"), b"c");
        assert_eq!(hash_tag(b"{}"), b"{}");
    }

    #[test]
    fn single_group_owns_everything() {
        let r = Routing::new(1, &[0]);
        assert_eq!(r.slot_range(0), (0, SLOTS - 1));
        assert_eq!(r.group_of_slot(0), 0);
        assert_eq!(r.group_of_slot(SLOTS - 1), 0);
        assert_eq!(r.groups_on_core(0), &[0]);
        assert!(r.groups_on_core(1).is_empty());
    }

    #[test]
    fn placement_and_cores() {
        let r = Routing::new(4, &[0, 1, 0, 1]);
        assert_eq!(r.groups(), 4);
        assert_eq!(r.core_of_group(2), 0);
        assert_eq!(r.core_of_group(3), 1);
        assert_eq!(r.groups_on_core(0), &[0, 2]);
        assert_eq!(r.groups_on_core(1), &[1, 3]);
        assert_eq!(r.slot_range(0), (0, 4095));
        assert_eq!(r.slot_range(3), (12288, 16383));
        assert_eq!(r.group_of_key(b"foo"), 2); // slot 12182
    }

    #[test]
    fn invalid_routing_is_an_error() {
        assert!(Routing::try_new(0, &[]).is_err());
        assert!(Routing::try_new(16385, &vec![0; 16385]).is_err());
        assert!(Routing::try_new(2, &[0]).is_err());
        assert!(Routing::try_new(16384, &vec![0; 16384]).is_ok());
    }

    /// Checks every slot against the range definition for `groups`.
    fn check_cover(groups: u32) {
        let r = Routing::new(groups, &vec![0; groups as usize]);
        let mut next = 0u32;
        for g in 0..groups {
            let (lo, hi) = r.slot_range(g);
            assert_eq!(u32::from(lo), next, "groups={groups} g={g} not contiguous");
            assert!(lo <= hi);
            next = u32::from(hi) + 1;
        }
        assert_eq!(next, u32::from(SLOTS), "groups={groups} does not cover");
        for slot in 0..SLOTS {
            let g = r.group_of_slot(slot);
            assert!(g < groups);
            let (lo, hi) = r.slot_range(g);
            assert!(
                (lo..=hi).contains(&slot),
                "groups={groups} slot={slot} g={g}"
            );
        }
    }

    #[test]
    fn ranges_contiguous_and_covering() {
        for groups in [1, 2, 3, 4, 5, 7, 16, 100, 1000, 3000, 16383, 16384] {
            check_cover(groups);
        }
    }

    proptest! {
        #[test]
        fn every_slot_in_exactly_one_group(groups in 1u32..=16384, slot in 0u16..SLOTS) {
            let r = Routing::new(groups, &vec![0; groups as usize]);
            let g = r.group_of_slot(slot);
            let owners = (0..groups)
                .filter(|&h| { let (lo, hi) = r.slot_range(h); (lo..=hi).contains(&slot) })
                .count();
            prop_assert_eq!(owners, 1);
            let (lo, hi) = r.slot_range(g);
            prop_assert!(lo <= slot && slot <= hi);
        }

        #[test]
        fn tag_decides_slot(prefix in "[^{]*", tag in "[^}]+", suffix in any::<Vec<u8>>()) {
            let mut key = prefix.into_bytes();
            key.push(b'{');
            key.extend_from_slice(tag.as_bytes());
            key.push(b'}');
            key.extend_from_slice(&suffix);
            prop_assert_eq!(key_slot(&key), key_slot(tag.as_bytes()));
        }

        #[test]
        fn slot_in_range(key in any::<Vec<u8>>()) {
            prop_assert!(key_slot(&key) < SLOTS);
        }
    }
}
