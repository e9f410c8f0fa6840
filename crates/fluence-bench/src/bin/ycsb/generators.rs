//! YCSB's key choosers, implemented from the definitions in YCSB's core
//! package (`ZipfianGenerator`, `ScrambledZipfianGenerator`,
//! `SkewedLatestGenerator`, `Utils.fnvhash64`) and Gray et al., "Quickly
//! Generating Billion-Record Synthetic Databases" (SIGMOD 1994), which the
//! zipfian generator follows.

use rand::Rng;

/// YCSB's default zipfian constant.
pub const ZIPFIAN_CONSTANT: f64 = 0.99;

/// The item count YCSB's scrambled zipfian draws from before hashing, and
/// its zeta for [`ZIPFIAN_CONSTANT`] (precomputed in YCSB as well: summing
/// 10^10 terms at start-up would take minutes).
const SCRAMBLED_ITEM_COUNT: u64 = 10_000_000_000;
const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

const FNV_OFFSET_BASIS_64: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME_64: u64 = 1_099_511_628_211;

/// YCSB's 64-bit FNV-1 hash of a key number, byte by byte from the low
/// end, made non-negative as Java's `Math.abs` on a long does.
pub fn fnv_hash64(value: u64) -> u64 {
    let mut hash = FNV_OFFSET_BASIS_64;
    let mut rest = value;
    for _ in 0..8 {
        hash ^= rest & 0xff;
        hash = hash.wrapping_mul(FNV_PRIME_64);
        rest >>= 8;
    }
    // Java: Math.abs(long); Long.MIN_VALUE stays negative there, and
    // YCSB's callers then take it modulo a count. Clearing the sign bit
    // keeps the value in range for that one case.
    (hash as i64).unsigned_abs() & (i64::MAX as u64)
}

/// `sum_{i=from+1}^{to} 1 / i^theta`, added to `start`: zeta extended from
/// `from` items to `to` items.
fn zeta_extend(start: f64, from: u64, to: u64, theta: f64) -> f64 {
    let mut sum = start;
    for i in from..to {
        sum += 1.0 / ((i + 1) as f64).powf(theta);
    }
    sum
}

/// Zipfian over `[base, base + items)`: item `base` is the most popular.
#[derive(Debug, Clone)]
pub struct Zipfian {
    base: u64,
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    zeta2theta: f64,
    eta: f64,
    /// The item count `zetan` was computed for (grows with `next_below`).
    count_for_zeta: u64,
}

impl Zipfian {
    pub fn new(base: u64, items: u64, theta: f64) -> Zipfian {
        assert!(items >= 1, "a zipfian needs at least one item");
        let zetan = zeta_extend(0.0, 0, items, theta);
        Zipfian::with_zetan(base, items, theta, zetan)
    }

    fn with_zetan(base: u64, items: u64, theta: f64, zetan: f64) -> Zipfian {
        let zeta2theta = zeta_extend(0.0, 0, 2, theta);
        let mut z = Zipfian {
            base,
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            zeta2theta,
            eta: 0.0,
            count_for_zeta: items,
        };
        z.eta = z.eta_for(items);
        z
    }

    fn eta_for(&self, items: u64) -> f64 {
        (1.0 - (2.0 / items as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta2theta / self.zetan)
    }

    /// The next value among the first `items` items (YCSB's
    /// `nextLong(itemcount)`); a larger count than before extends zeta
    /// incrementally, as YCSB does for the latest distribution.
    pub fn next_below(&mut self, items: u64, rng: &mut impl Rng) -> u64 {
        if items != self.count_for_zeta {
            if items > self.count_for_zeta {
                self.zetan = zeta_extend(self.zetan, self.count_for_zeta, items, self.theta);
            } else {
                self.zetan = zeta_extend(0.0, 0, items, self.theta);
            }
            self.count_for_zeta = items;
            self.eta = self.eta_for(items);
        }
        let u: f64 = rng.gen();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return self.base;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return self.base + 1;
        }
        let offset = (items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        self.base + offset.min(items - 1)
    }

    pub fn next(&mut self, rng: &mut impl Rng) -> u64 {
        self.next_below(self.items, rng)
    }
}

/// YCSB's scrambled zipfian over `[min, min + items)`: zipfian popularity,
/// but the popular items are spread over the key space by hashing.
#[derive(Debug, Clone)]
pub struct ScrambledZipfian {
    min: u64,
    items: u64,
    zipfian: Zipfian,
}

impl ScrambledZipfian {
    pub fn new(min: u64, items: u64) -> ScrambledZipfian {
        ScrambledZipfian {
            min,
            items,
            zipfian: Zipfian::with_zetan(
                0,
                SCRAMBLED_ITEM_COUNT,
                ZIPFIAN_CONSTANT,
                SCRAMBLED_ZETAN,
            ),
        }
    }

    pub fn next(&mut self, rng: &mut impl Rng) -> u64 {
        self.min + fnv_hash64(self.zipfian.next(rng)) % self.items
    }
}

/// YCSB's skewed-latest: zipfian over the distance from the newest key, so
/// recently inserted records are the most popular.
#[derive(Debug, Clone)]
pub struct Latest {
    zipfian: Zipfian,
}

impl Latest {
    pub fn new(initial_items: u64) -> Latest {
        Latest {
            zipfian: Zipfian::new(0, initial_items.max(1), ZIPFIAN_CONSTANT),
        }
    }

    /// A key number at most `last` (the newest inserted key number).
    pub fn next(&mut self, last: u64, rng: &mut impl Rng) -> u64 {
        let back = self.zipfian.next_below(last.max(1), rng);
        last.saturating_sub(back)
    }
}

/// Uniform over `[min, max]`.
pub fn uniform(min: u64, max: u64, rng: &mut impl Rng) -> u64 {
    rng.gen_range(min..=max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn fnv_matches_the_reference_values() {
        // FNV-1 64 of eight zero bytes, computed by hand from the
        // definition: ((basis * prime) ^ 0) * prime ... eight times.
        let mut expected = FNV_OFFSET_BASIS_64;
        for _ in 0..8 {
            expected = expected.wrapping_mul(FNV_PRIME_64);
        }
        assert_eq!(
            fnv_hash64(0),
            (expected as i64).unsigned_abs() & (i64::MAX as u64)
        );
        assert_ne!(fnv_hash64(1), fnv_hash64(2));
    }

    #[test]
    fn zipfian_stays_in_range_and_favours_the_first_items() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut z = Zipfian::new(100, 1000, ZIPFIAN_CONSTANT);
        let mut counts = vec![0u32; 1000];
        for _ in 0..200_000 {
            let v = z.next(&mut rng);
            assert!((100..1100).contains(&v));
            counts[(v - 100) as usize] += 1;
        }
        // With theta 0.99 over 1000 items, item 0 takes 1/zeta(1000) ~ 13 %
        // of draws and item 1 about half of that.
        let p0 = counts[0] as f64 / 200_000.0;
        assert!((0.11..0.16).contains(&p0), "p0 = {p0}");
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
    }

    #[test]
    fn scrambled_zipfian_spreads_the_hot_keys() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut z = ScrambledZipfian::new(0, 10_000);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..100_000 {
            let v = z.next(&mut rng);
            assert!(v < 10_000);
            *counts.entry(v).or_insert(0u32) += 1;
        }
        let mut hottest: Vec<_> = counts.into_iter().collect();
        hottest.sort_by(|a, b| b.1.cmp(&a.1));
        // Skewed: the hottest key is far above the uniform share (10), and
        // the hot keys are not simply the lowest numbers.
        assert!(hottest[0].1 > 1000, "hottest {:?}", hottest[0]);
        assert!(hottest[..5].iter().any(|(k, _)| *k > 100));
    }

    #[test]
    fn latest_prefers_the_newest_keys() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut latest = Latest::new(1000);
        let mut newest = 0;
        for _ in 0..10_000 {
            let v = latest.next(1999, &mut rng);
            assert!(v <= 1999);
            if v == 1999 {
                newest += 1;
            }
        }
        assert!(newest > 1000, "the newest key drawn {newest} times");
    }
}
