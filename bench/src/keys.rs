//! Key selection (uniform, YCSB/Gray zipfian) and key formatting.

use crate::config::{ConfigError, Distribution, KeyTag};
use crate::rng::Rng;
use std::io::Write as _;
use std::sync::Arc;

/// Below this many items zeta is summed exactly; above, the tail is added with an
/// Euler-Maclaurin estimate so 10^9 keys do not cost 10^9 `powf` calls at start-up.
const ZETA_EXACT_TERMS: u64 = 1_000_000;

/// `sum_{i=1..n} 1 / i^theta`.
pub fn zeta(n: u64, theta: f64) -> f64 {
    let exact = n.min(ZETA_EXACT_TERMS);
    // Summed from the small terms up for accuracy.
    let mut sum: f64 = (1..=exact).rev().map(|i| (i as f64).powf(-theta)).sum();
    if n > exact {
        // sum_{i=a+1..n} f(i) ~ int_a^n f + (f(n) - f(a))/2 + (f'(n) - f'(a))/12,
        // f(x) = x^-theta; the error is O(a^-(theta+3)), far below f64 noise here.
        let (a, b) = (exact as f64, n as f64);
        let f = |x: f64| x.powf(-theta);
        let df = |x: f64| -theta * x.powf(-theta - 1.0);
        let integral = (b.powf(1.0 - theta) - a.powf(1.0 - theta)) / (1.0 - theta);
        sum += integral + (f(b) - f(a)) / 2.0 + (df(b) - df(a)) / 12.0;
    }
    sum
}

/// Precomputed constants of the zipfian generator of Gray et al., "Quickly Generating
/// Billion-Record Synthetic Databases" (SIGMOD '94), as used by YCSB's
/// `ZipfianGenerator`. Rank 0 is the most popular item; P(rank r) = 1 / ((r+1)^theta * zeta(n)).
/// Computed once and shared by every connection (zeta is O(n)).
#[derive(Debug, Clone, PartialEq)]
pub struct ZipfianParams {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
    half_pow_theta: f64,
}

impl ZipfianParams {
    pub fn new(items: u64, theta: f64) -> Result<Self, ConfigError> {
        if items == 0 {
            return Err(ConfigError("zipfian needs at least one item".into()));
        }
        Distribution::Zipfian { theta }.validate()?;
        let zetan = zeta(items, theta);
        let zeta2 = 1.0 + 0.5f64.powf(theta);
        // With one or two items the first two branches of `sample` cover every u, and
        // eta's formula would divide 0 by 0.
        let eta = if items > 2 {
            (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            0.0
        };
        Ok(ZipfianParams {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
            half_pow_theta: 0.5f64.powf(theta),
        })
    }

    pub fn items(&self) -> u64 {
        self.items
    }

    /// Exact probability of `rank` (0-based).
    pub fn probability(&self, rank: u64) -> f64 {
        1.0 / ((rank + 1) as f64).powf(self.theta) / self.zetan
    }

    /// Maps `u` uniform in [0, 1) to a rank in `0..items`.
    pub fn sample(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + self.half_pow_theta {
            return 1.min(self.items - 1);
        }
        let r = self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        // `as` saturates (and maps NaN to 0); clamp for the u -> 1 edge.
        (r as u64).min(self.items - 1)
    }
}

/// Draws key indexes in `0..keys`.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    kind: ChooserKind,
    rng: Rng,
}

#[derive(Debug, Clone)]
enum ChooserKind {
    Uniform(u64),
    Zipfian(Arc<ZipfianParams>),
}

impl KeyChooser {
    pub fn uniform(keys: u64, rng: Rng) -> Self {
        KeyChooser {
            kind: ChooserKind::Uniform(keys.max(1)),
            rng,
        }
    }

    pub fn zipfian(params: Arc<ZipfianParams>, rng: Rng) -> Self {
        KeyChooser {
            kind: ChooserKind::Zipfian(params),
            rng,
        }
    }

    pub fn next_index(&mut self) -> u64 {
        match &self.kind {
            ChooserKind::Uniform(n) => self.rng.below(*n),
            ChooserKind::Zipfian(p) => p.sample(self.rng.next_f64()),
        }
    }
}

/// Turns a key index into the key bytes sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFormat {
    prefix: String,
    tag: KeyTag,
}

impl KeyFormat {
    pub fn new(prefix: &str, tag: KeyTag) -> Self {
        KeyFormat {
            prefix: prefix.to_string(),
            tag,
        }
    }

    /// Appends the key of `index` to `out` (no allocation once `out` has capacity).
    pub fn write_key(&self, index: u64, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = match &self.tag {
            // Per-target and per-core tags are resolved to `Shared` per connection
            // (`connection_tag`); unresolved they add nothing.
            KeyTag::None | KeyTag::PerTarget(_) | KeyTag::OwnCore | KeyTag::OtherCore => {
                write!(out, "{}{index}", self.prefix)
            }
            KeyTag::Shared(tag) => write!(out, "{{{tag}}}{}{index}", self.prefix),
            KeyTag::PerKey => write!(out, "{{{}{index}}}", self.prefix),
        };
    }

    pub fn key(&self, index: u64) -> String {
        let mut v = Vec::new();
        self.write_key(index, &mut v);
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// The tag a connection to target `target` uses. `PerTarget` picks that target's tag;
/// `OwnCore`/`OtherCore` take `core_tag`, the tag the connection chose after asking the
/// server (a missing one leaves keys untagged); other variants are the same everywhere.
pub fn connection_tag(tag: &KeyTag, target: usize, core_tag: Option<&str>) -> KeyTag {
    match tag {
        KeyTag::PerTarget(tags) if !tags.is_empty() => {
            KeyTag::Shared(tags[target % tags.len()].clone())
        }
        KeyTag::PerTarget(_) => KeyTag::None,
        KeyTag::OwnCore | KeyTag::OtherCore => match core_tag {
            Some(t) => KeyTag::Shared(t.to_string()),
            None => KeyTag::None,
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_tags_resolve_per_target_and_core() {
        let per = KeyTag::PerTarget(vec!["a".into(), "b".into()]);
        assert_eq!(connection_tag(&per, 0, None), KeyTag::Shared("a".into()));
        assert_eq!(connection_tag(&per, 3, None), KeyTag::Shared("b".into()));
        assert_eq!(
            connection_tag(&KeyTag::OwnCore, 0, Some("x")),
            KeyTag::Shared("x".into())
        );
        assert_eq!(
            connection_tag(&KeyTag::PerKey, 1, Some("x")),
            KeyTag::PerKey
        );
        let f = KeyFormat::new("k", connection_tag(&per, 1, None));
        assert_eq!(f.key(5), "{b}k5");
    }

    #[test]
    fn zeta_tail_estimate_matches_exact_sum() {
        let n = 3 * ZETA_EXACT_TERMS;
        let exact: f64 = (1..=n).rev().map(|i| (i as f64).powf(-0.99)).sum();
        let est = zeta(n, 0.99);
        assert!(((est - exact) / exact).abs() < 1e-10, "{est} vs {exact}");
    }

    #[test]
    fn zipfian_rank1_frequency_matches_theory() {
        let p = Arc::new(ZipfianParams::new(1000, 0.99).unwrap());
        let expected = p.probability(0);
        // zeta(1000, 0.99) ~ 7.2: the hottest key draws ~14% of requests.
        assert!((0.12..0.16).contains(&expected), "{expected}");
        let samples = 200_000;
        let mut kc = KeyChooser::zipfian(p.clone(), Rng::new(42));
        let mut counts = vec![0u64; 1000];
        for _ in 0..samples {
            counts[kc.next_index() as usize] += 1;
        }
        let f0 = counts[0] as f64 / samples as f64;
        // Binomial sd is ~0.0008; 3% relative is > 5 sd.
        assert!(
            (f0 - expected).abs() / expected < 0.03,
            "rank-1 frequency {f0}, expected {expected}"
        );
        // Rank 2 is exact in Gray's method too; and popularity decreases.
        let f1 = counts[1] as f64 / samples as f64;
        assert!((f1 - p.probability(1)).abs() / p.probability(1) < 0.05);
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
    }

    #[test]
    fn zipfian_is_deterministic_with_a_seed() {
        let p = Arc::new(ZipfianParams::new(10_000, 0.99).unwrap());
        let draw = |seed| {
            let mut kc = KeyChooser::zipfian(p.clone(), Rng::new(seed));
            (0..100).map(|_| kc.next_index()).collect::<Vec<_>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }

    #[test]
    fn zipfian_edges_stay_in_range() {
        for n in [1u64, 2, 3] {
            let p = ZipfianParams::new(n, 0.99).unwrap();
            for u in [0.0, 0.3, 0.6, 0.999_999_999, 1.0 - f64::EPSILON] {
                assert!(p.sample(u) < n, "n={n} u={u}");
            }
        }
        assert!(ZipfianParams::new(0, 0.5).is_err());
        assert!(ZipfianParams::new(10, 1.0).is_err());
    }

    #[test]
    fn uniform_covers_the_key_space_evenly() {
        let mut kc = KeyChooser::uniform(100, Rng::new(3));
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[kc.next_index() as usize] += 1;
        }
        // Mean 1000, sd ~31: every key hit, none far off.
        assert!(
            counts.iter().all(|&c| (850..1150).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn key_formats() {
        assert_eq!(KeyFormat::new("key:", KeyTag::None).key(42), "key:42");
        assert_eq!(
            KeyFormat::new("key:", KeyTag::Shared("t1".into())).key(7),
            "{t1}key:7"
        );
        assert_eq!(KeyFormat::new("k", KeyTag::PerKey).key(0), "{k0}");
        let mut out = b"x".to_vec();
        KeyFormat::new("", KeyTag::None).write_key(u64::MAX, &mut out);
        assert_eq!(out, b"x18446744073709551615");
    }
}
