//! Latencies per operation type, merged across client tasks.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::workload::Op;

/// Every latency of a run, in microseconds, by operation type; plus errors.
#[derive(Debug, Default)]
pub struct Latencies {
    samples_us: BTreeMap<Op, Vec<u64>>,
    errors: BTreeMap<Op, u64>,
    pub first_error: Option<String>,
}

/// Percentiles of one operation type.
#[derive(Debug, Clone)]
pub struct Summary {
    pub op: Op,
    pub count: usize,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Summary {
    /// p50, p99 and max, in milliseconds.
    pub fn quantiles_ms(&self) -> [f64; 3] {
        [self.p50_us, self.p99_us, self.max_us].map(|us| us as f64 / 1000.0)
    }
}

impl Latencies {
    pub fn record(&mut self, op: Op, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.samples_us.entry(op).or_default().push(us);
    }

    pub fn error(&mut self, op: Op, message: String) {
        *self.errors.entry(op).or_default() += 1;
        self.first_error.get_or_insert(message);
    }

    pub fn merge(&mut self, other: Latencies) {
        for (op, samples) in other.samples_us {
            self.samples_us.entry(op).or_default().extend(samples);
        }
        for (op, n) in other.errors {
            *self.errors.entry(op).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn total(&self) -> usize {
        self.samples_us.values().map(Vec::len).sum()
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn summaries(&mut self) -> Vec<Summary> {
        let mut ops: Vec<Op> = self
            .samples_us
            .keys()
            .chain(self.errors.keys())
            .copied()
            .collect();
        ops.sort();
        ops.dedup();
        ops.into_iter()
            .map(|op| {
                let samples = self.samples_us.entry(op).or_default();
                samples.sort_unstable();
                let at = |q: f64| -> u64 {
                    if samples.is_empty() {
                        return 0;
                    }
                    // Nearest rank: the smallest sample with at least q of
                    // all samples at or below it.
                    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
                    samples[rank - 1]
                };
                let sum: u64 = samples.iter().sum();
                Summary {
                    op,
                    count: samples.len(),
                    errors: self.errors.get(&op).copied().unwrap_or(0),
                    p50_us: at(0.50),
                    p99_us: at(0.99),
                    max_us: samples.last().copied().unwrap_or(0),
                    mean_us: if samples.is_empty() {
                        0.0
                    } else {
                        sum as f64 / samples.len() as f64
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut l = Latencies::default();
        for us in 1..=100 {
            l.record(Op::Read, Duration::from_micros(us));
        }
        l.error(Op::Read, "boom".into());
        let s = &l.summaries()[0];
        assert_eq!(
            (s.count, s.errors, s.p50_us, s.p99_us, s.max_us),
            (100, 1, 50, 99, 100)
        );
        assert_eq!(l.first_error.as_deref(), Some("boom"));
    }
}
