//! Redis Cluster key slots (CRC16/XMODEM of the key or its `{hash tag}`, mod 16384) and the
//! leasekv mapping slot -> group -> core, so tests can pick keys owned by a chosen core.

pub const SLOTS: usize = 16384;

/// CRC16/XMODEM (poly 0x1021, init 0), the checksum Redis Cluster uses.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
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

/// The cluster slot of `key`: if it contains `{...}` with a non-empty body after the first `{`,
/// only that body is hashed.
pub fn key_slot(key: &[u8]) -> usize {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) as usize % SLOTS
}

/// How a leasekv server spreads slots: `groups` contiguous slot ranges (group g owns
/// `[g*16384/groups, (g+1)*16384/groups)`), group g on core `placement[g]` (default g % cores).
#[derive(Clone, Debug)]
pub struct Topology {
    pub cores: usize,
    pub groups: usize,
    pub placement: Option<Vec<usize>>,
}

impl Topology {
    /// The harness default: `--cores 0,1` and the default 4 groups.
    pub fn two_cores() -> Topology {
        Topology {
            cores: 2,
            groups: 4,
            placement: None,
        }
    }

    pub fn group_of_slot(&self, slot: usize) -> usize {
        (0..self.groups)
            .rev()
            .find(|g| g * SLOTS / self.groups <= slot)
            .expect("group 0 starts at slot 0")
    }

    /// Index (0-based position in `--cores`) of the core running `group`.
    pub fn core_of_group(&self, group: usize) -> usize {
        match &self.placement {
            Some(p) => p[group],
            None => group % self.cores,
        }
    }

    pub fn group_of_key(&self, key: &str) -> usize {
        self.group_of_slot(key_slot(key.as_bytes()))
    }

    pub fn core_of_key(&self, key: &str) -> usize {
        self.core_of_group(self.group_of_key(key))
    }

    /// `n` distinct keys `"<prefix>:<i>"` owned by `core`.
    pub fn keys_on_core(&self, core: usize, prefix: &str, n: usize) -> Vec<String> {
        self.keys_where(prefix, n, |k| self.core_of_key(k) == core)
    }

    /// `n` distinct keys `"<prefix>:<i>"` owned by `group`.
    pub fn keys_in_group(&self, group: usize, prefix: &str, n: usize) -> Vec<String> {
        self.keys_where(prefix, n, |k| self.group_of_key(k) == group)
    }

    /// A hash tag body `t` such that every key containing `{t}` lives on `core`.
    pub fn tag_on_core(&self, core: usize, prefix: &str) -> String {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|t| self.core_of_group(self.group_of_slot(key_slot(t.as_bytes()))) == core)
            .expect("some tag maps to every core")
    }

    fn keys_where(&self, prefix: &str, n: usize, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let keys: Vec<String> = (0..1_000_000)
            .map(|i| format!("{prefix}:{i}"))
            .filter(|k| pred(k))
            .take(n)
            .collect();
        assert_eq!(keys.len(), n, "could not find {n} keys for prefix {prefix}");
        keys
    }
}
