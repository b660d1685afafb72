//! The faults report: one table per run — faults applied by kind, what the workload achieved
//! (acquisitions, leader terms, items), violations, and the longest time to recover after a
//! fault — and a final `N passed, M failed` line over the runs.
//!
//! The report is data plus [`std::fmt::Display`]; the tests print it (to stderr), the library
//! never does.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use corral_ensemble_tests::report::{FaultsReport, Tally};
//!
//! let mut report = FaultsReport::new("mutex");
//! report.fault("session expiry");
//! report.add("acquisitions", 12);
//! report.recovered("session expiry", Duration::from_millis(4_200));
//! let mut tally = Tally::default();
//! tally.record(report.violations() == 0);
//! assert!(report.to_string().contains("session expiry"));
//! assert_eq!(tally.to_string(), "1 passed, 0 failed");
//! ```

use std::fmt;
use std::time::Duration;

/// The row of the violations count; [`FaultsReport::violations`] reads it.
pub const VIOLATIONS: &str = "violations";

/// One run's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultsReport {
    name: String,
    faults: Vec<(String, u64)>,
    counts: Vec<(String, u64)>,
    recoveries: Vec<(String, Vec<Duration>)>,
    /// Per measure (say "a new leader after a leader kill"): per side ("Corral", "Curator"),
    /// every time measured.
    comparisons: Vec<(String, Sides)>,
}

/// Per side of a comparison, every time measured.
type Sides = Vec<(String, Vec<Duration>)>;

fn bump(rows: &mut Vec<(String, u64)>, what: &str, by: u64) {
    match rows.iter_mut().find(|(name, _)| name == what) {
        Some((_, n)) => *n += by,
        None => rows.push((what.to_owned(), by)),
    }
}

impl FaultsReport {
    /// An empty report for the run `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// The run's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Counts one fault of `kind` applied.
    pub fn fault(&mut self, kind: &str) {
        bump(&mut self.faults, kind, 1);
    }

    /// How many faults of `kind` were applied.
    pub fn faults_of(&self, kind: &str) -> u64 {
        self.faults.iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| *n)
    }

    /// Adds `n` to the workload count `what` (acquisitions, leader terms, items, …).
    pub fn add(&mut self, what: &str, n: u64) {
        bump(&mut self.counts, what, n);
    }

    /// Sets the workload count `what`.
    pub fn set(&mut self, what: &str, n: u64) {
        match self.counts.iter_mut().find(|(name, _)| name == what) {
            Some((_, v)) => *v = n,
            None => self.counts.push((what.to_owned(), n)),
        }
    }

    /// The workload count `what` (0 if never set).
    pub fn count(&self, what: &str) -> u64 {
        self.counts.iter().find(|(k, _)| k == what).map_or(0, |(_, n)| *n)
    }

    /// The number of violations (the [`VIOLATIONS`] count).
    pub fn violations(&self) -> u64 {
        self.count(VIOLATIONS)
    }

    /// Records that the workload made progress `took` after a fault of `kind` ended.
    pub fn recovered(&mut self, kind: &str, took: Duration) {
        match self.recoveries.iter_mut().find(|(k, _)| k == kind) {
            Some((_, all)) => all.push(took),
            None => self.recoveries.push((kind.to_owned(), vec![took])),
        }
    }

    /// The times of recovery measured after faults of `kind` (empty if none).
    pub fn recoveries_of(&self, kind: &str) -> &[Duration] {
        self.recoveries.iter().find(|(k, _)| k == kind).map_or(&[], |(_, all)| all.as_slice())
    }

    /// Records one time of `measure` for `side`, to print side by side with the other sides'
    /// (Corral's and Curator's time to a new leader after the same fault, say).
    pub fn compare(&mut self, measure: &str, side: &str, took: Duration) {
        let sides = match self.comparisons.iter_mut().position(|(m, _)| m == measure) {
            Some(i) => &mut self.comparisons[i].1,
            None => {
                self.comparisons.push((measure.to_owned(), Vec::new()));
                &mut self.comparisons.last_mut().expect("just pushed").1
            }
        };
        match sides.iter_mut().find(|(s, _)| s == side) {
            Some((_, all)) => all.push(took),
            None => sides.push((side.to_owned(), vec![took])),
        }
    }

    /// The times of `measure` recorded for `side` (empty if none).
    pub fn compared(&self, measure: &str, side: &str) -> &[Duration] {
        self.comparisons
            .iter()
            .find(|(m, _)| m == measure)
            .and_then(|(_, sides)| sides.iter().find(|(s, _)| s == side))
            .map_or(&[], |(_, all)| all.as_slice())
    }

    /// The longest recovery over every fault kind, if any was measured.
    pub fn max_recovery(&self) -> Option<Duration> {
        self.recoveries.iter().flat_map(|(_, all)| all.iter().copied()).max()
    }

    /// Adds another run's faults, counts and recoveries to this one (an aggregate over seeds).
    pub fn merge(&mut self, other: &Self) {
        for (kind, n) in &other.faults {
            bump(&mut self.faults, kind, *n);
        }
        for (what, n) in &other.counts {
            bump(&mut self.counts, what, *n);
        }
        for (kind, all) in &other.recoveries {
            for took in all {
                self.recovered(kind, *took);
            }
        }
        for (measure, sides) in &other.comparisons {
            for (side, all) in sides {
                for took in all {
                    self.compare(measure, side, *took);
                }
            }
        }
    }
}

/// The `p`-th percentile (nearest rank) of `times`, `None` when there are none.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use corral_ensemble_tests::report::percentile;
///
/// let times: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
/// assert_eq!(percentile(&times, 50), Some(Duration::from_millis(50)));
/// assert_eq!(percentile(&times, 99), Some(Duration::from_millis(99)));
/// assert_eq!(percentile(&[], 99), None);
/// ```
pub fn percentile(times: &[Duration], p: usize) -> Option<Duration> {
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = (sorted.len() * p.min(100)).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

impl fmt::Display for FaultsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "faults report: {}", self.name)?;
        writeln!(f, "  {:<44} {:>10}", "faults applied, by kind", "count")?;
        if self.faults.is_empty() {
            writeln!(f, "  {:<44} {:>10}", "(none)", 0)?;
        }
        for (kind, n) in &self.faults {
            writeln!(f, "  {kind:<44} {n:>10}")?;
        }
        let total: u64 = self.faults.iter().map(|(_, n)| n).sum();
        writeln!(f, "  {:<44} {total:>10}", "all faults")?;
        for (what, n) in &self.counts {
            writeln!(f, "  {what:<44} {n:>10}")?;
        }
        if !self.counts.iter().any(|(k, _)| k == VIOLATIONS) {
            writeln!(f, "  {VIOLATIONS:<44} {:>10}", 0)?;
        }
        for (kind, all) in &self.recoveries {
            let (Some(p50), Some(p99), Some(max)) = (percentile(all, 50), percentile(all, 99), all.iter().max()) else {
                continue;
            };
            writeln!(
                f,
                "  recovery after {kind:<29} n={:<6} p50={:<9} p99={:<9} max={}",
                all.len(),
                millis(p50),
                millis(p99),
                millis(*max)
            )?;
        }
        for (measure, sides) in &self.comparisons {
            writeln!(f, "  side by side: {measure}")?;
            for (side, all) in sides {
                let (Some(p50), Some(p99), Some(max)) = (percentile(all, 50), percentile(all, 99), all.iter().max())
                else {
                    continue;
                };
                writeln!(
                    f,
                    "    {side:<12} n={:<6} p50={:<9} p99={:<9} max={}",
                    all.len(),
                    millis(p50),
                    millis(p99),
                    millis(*max)
                )?;
            }
        }
        match self.max_recovery() {
            Some(max) => writeln!(f, "  {:<44} {:>10}", "max time to recovery", millis(max)),
            None => writeln!(f, "  {:<44} {:>10}", "max time to recovery", "-"),
        }
    }
}

/// Runs passed and failed; displays as `N passed, M failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Runs with no violation.
    pub passed: u64,
    /// Runs with a violation (or that did not finish).
    pub failed: u64,
}

impl Tally {
    /// Counts one run.
    pub fn record(&mut self, passed: bool) {
        if passed {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_reports_add_up_and_print_every_row() {
        let mut a = FaultsReport::new("one");
        a.fault("black hole");
        a.fault("black hole");
        a.add("acquisitions", 3);
        a.recovered("black hole", Duration::from_millis(10));
        let mut b = FaultsReport::new("two");
        b.fault("connection drop");
        b.add("acquisitions", 4);
        b.add(VIOLATIONS, 1);
        b.recovered("black hole", Duration::from_millis(30));
        a.merge(&b);
        assert_eq!(a.faults_of("black hole"), 2);
        assert_eq!(a.faults_of("connection drop"), 1);
        assert_eq!(a.count("acquisitions"), 7);
        assert_eq!(a.violations(), 1);
        assert_eq!(a.max_recovery(), Some(Duration::from_millis(30)));
        let text = a.to_string();
        for row in ["faults report: one", "black hole", "connection drop", "all faults", "acquisitions", "max=30 ms"] {
            assert!(text.contains(row), "{row:?} missing from\n{text}");
        }
        let mut tally = Tally::default();
        tally.record(true);
        tally.record(false);
        tally.record(true);
        assert_eq!(tally.to_string(), "2 passed, 1 failed");
    }

    #[test]
    fn comparisons_print_side_by_side_and_merge() {
        let mut a = FaultsReport::new("compare");
        a.compare("a new leader", "Corral", Duration::from_millis(100));
        a.compare("a new leader", "Curator", Duration::from_millis(900));
        let mut b = FaultsReport::new("more");
        b.compare("a new leader", "Corral", Duration::from_millis(300));
        a.merge(&b);
        assert_eq!(a.compared("a new leader", "Corral"), [Duration::from_millis(100), Duration::from_millis(300)]);
        assert_eq!(a.compared("a new leader", "Curator"), [Duration::from_millis(900)]);
        assert!(a.compared("instance back", "Corral").is_empty());
        let text = a.to_string();
        assert!(text.contains("side by side: a new leader"), "{text}");
        assert!(text.contains("Corral       n=2      p50=100 ms"), "{text}");
        assert!(text.contains("Curator      n=1      p50=900 ms"), "{text}");
        assert_eq!(percentile(&[Duration::from_millis(7)], 99), Some(Duration::from_millis(7)));
    }

    #[test]
    fn an_empty_report_says_so() {
        let text = FaultsReport::new("idle").to_string();
        assert!(text.contains("(none)") && text.contains("violations") && text.contains("max time to recovery"));
    }
}
