//! YCSB's core workloads A–F: operation mix, key choice and record shape,
//! as YCSB's `CoreWorkload` and its `workloads/workload[a-f]` files define
//! them.

use rand::Rng;

use crate::generators::{fnv_hash64, uniform, Latest, ScrambledZipfian};

/// Ten fields of 100 bytes: a 1 KiB record, YCSB's default.
pub const FIELD_COUNT: usize = 10;
pub const FIELD_LENGTH: usize = 100;
/// Longest scan of workload E (YCSB's `maxscanlength`).
pub const SCAN_LENGTH_MAX: u64 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Read,
    Update,
    Insert,
    Scan,
    ReadModifyWrite,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "READ",
            Op::Update => "UPDATE",
            Op::Insert => "INSERT",
            Op::Scan => "SCAN",
            Op::ReadModifyWrite => "READ-MODIFY-WRITE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDistribution {
    Zipfian,
    Latest,
}

/// One core workload: proportions of each operation and the key chooser.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub name: char,
    pub description: &'static str,
    pub mix: [(Op, f64); 2],
    pub keys: KeyDistribution,
}

impl Workload {
    pub fn core(name: char) -> Option<Workload> {
        let (description, mix, keys) = match name.to_ascii_lowercase() {
            'a' => (
                "update heavy: 50% read, 50% update",
                [(Op::Read, 0.5), (Op::Update, 0.5)],
                KeyDistribution::Zipfian,
            ),
            'b' => (
                "read mostly: 95% read, 5% update",
                [(Op::Read, 0.95), (Op::Update, 0.05)],
                KeyDistribution::Zipfian,
            ),
            'c' => (
                "read only: 100% read",
                [(Op::Read, 1.0), (Op::Update, 0.0)],
                KeyDistribution::Zipfian,
            ),
            'd' => (
                "read latest: 95% read, 5% insert",
                [(Op::Read, 0.95), (Op::Insert, 0.05)],
                KeyDistribution::Latest,
            ),
            'e' => (
                "short ranges: 95% scan, 5% insert",
                [(Op::Scan, 0.95), (Op::Insert, 0.05)],
                KeyDistribution::Zipfian,
            ),
            'f' => (
                "read-modify-write: 50% read, 50% RMW",
                [(Op::Read, 0.5), (Op::ReadModifyWrite, 0.5)],
                KeyDistribution::Zipfian,
            ),
            _ => return None,
        };
        Some(Workload {
            name: name.to_ascii_uppercase(),
            description,
            mix,
            keys,
        })
    }

    pub fn insert_proportion(&self) -> f64 {
        self.mix
            .iter()
            .filter(|(op, _)| *op == Op::Insert)
            .map(|(_, p)| p)
            .sum()
    }

    pub fn choose_op(&self, rng: &mut impl Rng) -> Op {
        let u: f64 = rng.gen();
        if u < self.mix[0].1 {
            self.mix[0].0
        } else {
            self.mix[1].0
        }
    }
}

/// YCSB's record key for key number `n` (hashed insert order, no padding).
pub fn key_name(n: u64) -> String {
    format!("user{}", fnv_hash64(n))
}

/// A field value of YCSB's printable random bytes.
pub fn field_value(rng: &mut impl Rng) -> String {
    (0..FIELD_LENGTH)
        .map(|_| char::from(rng.gen_range(b' '..=b'~')))
        .collect()
}

pub fn field_name(i: usize) -> String {
    format!("field{i}")
}

/// Chooses key numbers for one client task. `inserted` is the highest key
/// number inserted so far (shared by the tasks of a run).
pub struct KeyChooser {
    scrambled: ScrambledZipfian,
    latest: Latest,
    distribution: KeyDistribution,
}

impl KeyChooser {
    /// As YCSB: the zipfian covers the loaded records plus the inserts the
    /// run is expected to make (twice the insert proportion of the
    /// operations), so new keys get their share of the popularity.
    pub fn new(workload: &Workload, records: u64, operations: u64) -> KeyChooser {
        let expected_new = (operations as f64 * workload.insert_proportion() * 2.0) as u64;
        KeyChooser {
            scrambled: ScrambledZipfian::new(0, records + expected_new),
            latest: Latest::new(records),
            distribution: workload.keys,
        }
    }

    /// A key number that exists: at most `inserted`.
    pub fn next(&mut self, inserted: u64, rng: &mut impl Rng) -> u64 {
        match self.distribution {
            KeyDistribution::Latest => self.latest.next(inserted, rng),
            KeyDistribution::Zipfian => loop {
                let n = self.scrambled.next(rng);
                if n <= inserted {
                    return n;
                }
            },
        }
    }
}

/// Workload E's scan length: uniform in `[1, SCAN_LENGTH_MAX]`.
pub fn scan_length(rng: &mut impl Rng) -> u64 {
    uniform(1, SCAN_LENGTH_MAX, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn core_workload_mixes() {
        let mut rng = StdRng::seed_from_u64(5);
        for (name, op, share) in [
            ('a', Op::Update, 0.5),
            ('b', Op::Update, 0.05),
            ('c', Op::Read, 1.0),
            ('d', Op::Insert, 0.05),
            ('e', Op::Scan, 0.95),
            ('f', Op::ReadModifyWrite, 0.5),
        ] {
            let w = Workload::core(name).expect("core workload");
            let n = 20_000;
            let hits = (0..n).filter(|_| w.choose_op(&mut rng) == op).count();
            let measured = hits as f64 / n as f64;
            assert!(
                (measured - share).abs() < 0.02,
                "workload {name}: {op:?} {measured}"
            );
        }
        assert!(Workload::core('g').is_none());
    }

    #[test]
    fn chosen_keys_exist() {
        let mut rng = StdRng::seed_from_u64(9);
        for name in ['a', 'd', 'e'] {
            let w = Workload::core(name).expect("core workload");
            let mut keys = KeyChooser::new(&w, 1000, 10_000);
            for inserted in [999u64, 1200] {
                for _ in 0..5000 {
                    assert!(keys.next(inserted, &mut rng) <= inserted);
                }
            }
        }
    }

    #[test]
    fn records_are_ten_fields_of_100_bytes() {
        let mut rng = StdRng::seed_from_u64(1);
        let value = field_value(&mut rng);
        assert_eq!(value.len(), FIELD_LENGTH);
        assert!(value.bytes().all(|b| (b' '..=b'~').contains(&b)));
        assert!(key_name(0).starts_with("user") && key_name(0) != key_name(1));
    }
}
