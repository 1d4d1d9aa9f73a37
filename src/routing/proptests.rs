//! Property tests of key slots against a plain transcription of the Redis Cluster
//! specification, and of the slot -> group -> core map (total, in bounds, stable, tags stick).

use proptest::prelude::*;

use super::{crc16, key_slot, Routing, SLOTS};

/// CRC16 as the Redis Cluster spec defines it ("CRC-16/XMODEM": poly 0x1021, init 0, input
/// and output not reflected, no final xor), bit by bit with no table.
fn spec_crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
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

/// The spec's `HASH_SLOT` / `keyHashSlot`, transcribed index by index:
/// ```c
/// for (s = 0; s < keylen; s++) if (key[s] == '{') break;
/// if (s == keylen) return crc16(key,keylen) & 16383;          /* no '{' */
/// for (e = s+1; e < keylen; e++) if (key[e] == '}') break;
/// if (e == keylen || e == s+1) return crc16(key,keylen) & 16383; /* no '}' or "{}" */
/// return crc16(key+s+1,e-s-1) & 16383;                          /* first {...} */
/// ```
fn spec_key_slot(key: &[u8]) -> u16 {
    let keylen = key.len();
    let mut s = 0;
    while s < keylen && key[s] != b'{' {
        s += 1;
    }
    if s == keylen {
        return spec_crc16(key) & 16383;
    }
    let mut e = s + 1;
    while e < keylen && key[e] != b'}' {
        e += 1;
    }
    if e == keylen || e == s + 1 {
        return spec_crc16(key) & 16383;
    }
    spec_crc16(&key[s + 1..e]) & 16383
}

#[test]
fn spec_vectors() {
    // The CRC16 check value quoted in the spec, and its slot.
    assert_eq!(spec_crc16(b"123456789"), 0x31C3);
    assert_eq!(crc16(b"123456789"), 0x31C3);
    assert_eq!(key_slot(b"123456789"), 12739);
    // `CLUSTER KEYSLOT foo` / `somekey` on a real Redis.
    assert_eq!(key_slot(b"foo"), 12182);
    assert_eq!(key_slot(b"somekey"), 11058);
    // The spec's hash tag examples.
    let rules: &[(&[u8], &[u8])] = &[
        (b"{user1000}.following", b"user1000"),
        (b"{user1000}.followers", b"user1000"),
        (b"foo{}{bar}", b"foo{}{bar}"), // empty first tag: the whole key
        (b"foo{{bar}}zap", b"{bar"),    // from the first '{' to the first '}' after it
        (b"foo{bar}{zap}", b"bar"),     // only the first tag counts
        (b"foo{bar", b"foo{bar"),       // '{' without '}': the whole key
        (b"}foo{", b"}foo{"),
        (b"a}b{c}", b"c"),
        (b"{}", b"{}"),
        (b"{", b"{"),
        (b"{a}", b"a"),
    ];
    for (key, hashed) in rules {
        let want = spec_crc16(hashed) & 16383;
        assert_eq!(
            spec_key_slot(key),
            want,
            "{:?}",
            String::from_utf8_lossy(key)
        );
        assert_eq!(key_slot(key), want, "{:?}", String::from_utf8_lossy(key));
    }
}

/// Keys rich in braces, so the tag rules are exercised far more often than by random bytes.
fn bracey_key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(b"{}{}ab\x00\xff".to_vec()), 0..24)
}

/// A routing: 1..=SLOTS groups (biased towards small counts) placed on up to 8 cores.
fn routing() -> impl Strategy<Value = (u32, Vec<usize>)> {
    prop_oneof![1u32..=16, 1u32..=SLOTS as u32]
        .prop_flat_map(|g| (Just(g), prop::collection::vec(0usize..8, g as usize)))
}

proptest! {
    #[test]
    fn slot_matches_spec(key in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert_eq!(crc16(&key), spec_crc16(&key));
        prop_assert_eq!(key_slot(&key), spec_key_slot(&key));
        prop_assert!(key_slot(&key) < SLOTS);
    }

    #[test]
    fn slot_matches_spec_with_braces(key in bracey_key()) {
        prop_assert_eq!(key_slot(&key), spec_key_slot(&key));
    }

    #[test]
    fn same_tag_same_group(
        (groups, placement) in routing(),
        tag in prop::collection::vec(any::<u8>().prop_filter("no }", |b| *b != b'}'), 1..16),
        a in ("[^{]*", any::<Vec<u8>>()),
        b in ("[^{]*", any::<Vec<u8>>()),
    ) {
        let r = Routing::new(groups, &placement);
        let key = |(prefix, suffix): &(String, Vec<u8>)| {
            [prefix.as_bytes(), b"{", &tag, b"}", suffix].concat()
        };
        let (ka, kb) = (key(&a), key(&b));
        prop_assert_eq!(key_slot(&ka), key_slot(&kb));
        prop_assert_eq!(key_slot(&ka), spec_crc16(&tag) & 16383);
        prop_assert_eq!(r.group_of_key(&ka), r.group_of_key(&kb));
    }

    #[test]
    fn slot_group_core_map_is_total_bounded_and_stable((groups, placement) in routing(), slot in any::<u16>()) {
        let r = Routing::new(groups, &placement);
        let g = r.group_of_slot(slot);
        prop_assert!(g < groups);
        // Slots past the end wrap, so every u16 has an owner.
        prop_assert_eq!(g, r.group_of_slot(slot % SLOTS));
        let (lo, hi) = r.slot_range(g);
        prop_assert!(lo <= slot % SLOTS && slot % SLOTS <= hi);
        let core = r.core_of_group(g);
        prop_assert_eq!(core, placement[g as usize]);
        prop_assert!(r.groups_on_core(core).contains(&g));
        // Stable: a map rebuilt from the same inputs answers the same.
        let again = Routing::new(groups, &placement);
        prop_assert_eq!(&again, &r);
        prop_assert_eq!(again.group_of_slot(slot), g);
    }

    #[test]
    fn groups_on_core_partitions_the_groups((groups, placement) in prop_oneof![1u32..=64, 1u32..=2048]
        .prop_flat_map(|g| (Just(g), prop::collection::vec(0usize..8, g as usize))))
    {
        let r = Routing::new(groups, &placement);
        let mut seen = vec![false; groups as usize];
        for core in 0..=8 {
            let on = r.groups_on_core(core);
            prop_assert!(on.windows(2).all(|w| w[0] < w[1]), "not ascending");
            for &g in on {
                prop_assert_eq!(r.core_of_group(g), core);
                prop_assert!(!std::mem::replace(&mut seen[g as usize], true), "group {} twice", g);
            }
        }
        prop_assert!(seen.iter().all(|&s| s), "a group on no core");
        // Ranges tile 0..SLOTS in group order.
        let mut next = 0u32;
        for g in 0..groups {
            let (lo, hi) = r.slot_range(g);
            prop_assert_eq!(u32::from(lo), next);
            prop_assert!(lo <= hi);
            next = u32::from(hi) + 1;
        }
        prop_assert_eq!(next, u32::from(SLOTS));
    }
}
