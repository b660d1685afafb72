//! Medians, spreads, and the per-target series the benchmarks report.

use std::collections::BTreeMap;

use super::Target;
use crate::report::{Reporter, note};

/// The median (the mean of the middle two for an even count); `None` when empty.
pub(super) fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// `[min–max]` of a series, for the notes.
pub(super) fn spread(values: &[f64], decimals: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("[{min:.decimals$}–{max:.decimals$}] over {}", values.len())
}

/// Per-target series of named values, collected over the rounds.
#[derive(Debug, Default)]
pub(super) struct Series(BTreeMap<(Target, String), Vec<f64>>);

impl Series {
    pub(super) fn push(&mut self, target: Target, key: &str, value: f64) {
        self.0.entry((target, key.to_owned())).or_default().push(value);
    }

    pub(super) fn get(&self, target: Target, key: &str) -> &[f64] {
        self.0.get(&(target, key.to_owned())).map_or(&[], Vec::as_slice)
    }

    pub(super) fn median(&self, target: Target, key: &str) -> Option<f64> {
        median(self.get(target, key))
    }

    /// Prints `server_<target>_<name>` = the median of `key`, with its spread as a note.
    pub(super) fn out(
        &self,
        r: &Reporter,
        target: Target,
        key: &str,
        name: &str,
        decimals: usize,
        unit: &str,
    ) -> Option<f64> {
        let values = self.get(target, key);
        let m = median(values)?;
        r.out(&format!("server_{}_{name}", target.name()), format!("{m:.decimals$}"), unit);
        if values.len() > 1 {
            note(format_args!("server_{}_{name} {}", target.name(), spread(values, decimals)));
        }
        Some(m)
    }

    /// Prints `metric` = embedded median ÷ ZooKeeper median, when both exist.
    pub(super) fn ratio(&self, r: &Reporter, key: &str, metric: &str) -> Option<f64> {
        let e = self.median(Target::Embedded, key)?;
        let z = self.median(Target::Zk, key)?;
        (z != 0.0).then(|| {
            let ratio = e / z;
            let decimals = if ratio.abs() >= 0.1 { 2 } else { 4 };
            r.out(metric, format!("{ratio:.decimals$}"), "x");
            ratio
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[3.0, 1.0]), Some(2.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
    }
}
