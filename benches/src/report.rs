//! Output in the anchors' format (`metric=value unit`, `# comment`) and nearest-rank statistics.

use std::io::Write as _;
use std::time::Duration;

/// Writes every result line with a prefix (`""` for Corral, `"zkc_"` for zookeeper-client).
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    prefix: &'static str,
}

/// The unit a latency series is reported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Microseconds, one decimal (the anchors' `%.1f`).
    Micros,
    /// Milliseconds, two decimals (the anchors' `%.2f`).
    Millis,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Micros => "us",
            Unit::Millis => "ms",
        }
    }

    fn format(self, d: Duration) -> String {
        match self {
            Unit::Micros => format!("{:.1}", d.as_secs_f64() * 1e6),
            Unit::Millis => format!("{:.2}", d.as_secs_f64() * 1e3),
        }
    }
}

impl Reporter {
    /// A reporter that puts `prefix` in front of every metric name.
    pub(crate) fn new(prefix: &'static str) -> Self {
        Self { prefix }
    }

    /// Prints `prefix + metric = value unit` and flushes, so a killed run keeps what it printed.
    pub(crate) fn out(&self, metric: &str, value: impl std::fmt::Display, unit: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}{metric}={value} {unit}", self.prefix);
        let _ = stdout.flush();
    }

    /// Prints `p50`, `p99`, `mean`, `max` and `n` of `samples` under `name`, as the anchors'
    /// `stats()` does. Sorts `samples` in place.
    pub(crate) fn stats(&self, name: &str, samples: &mut [Duration], unit: Unit) {
        samples.sort_unstable();
        let n = samples.len();
        let show = |d: Option<Duration>| d.map_or_else(|| "-1".to_owned(), |d| unit.format(d));
        self.out(&format!("{name}_p50"), show(percentile(samples, 50.0)), unit.name());
        self.out(&format!("{name}_p99"), show(percentile(samples, 99.0)), unit.name());
        let mean = (n > 0).then(|| samples.iter().sum::<Duration>() / u32::try_from(n).unwrap_or(u32::MAX));
        self.out(&format!("{name}_mean"), show(mean), unit.name());
        self.out(&format!("{name}_max"), show(samples.last().copied()), unit.name());
        self.out(&format!("{name}_n"), n, "samples");
    }

    /// Server requests per operation from two `zk_packets_received` readings, minus the one
    /// `mntr` request the second reading itself adds (the anchors' `perOp`).
    pub(crate) fn per_op(&self, metric: &str, before: Option<u64>, after: Option<u64>, ops: usize) {
        if let (Some(before), Some(after)) = (before, after)
            && ops > 0
        {
            let requests = after.saturating_sub(before).saturating_sub(1) as f64;
            self.out(metric, format!("{:.2}", requests / ops as f64), "requests/op");
        }
    }
}

/// Prints a `# ...` comment line.
pub(crate) fn note(text: impl std::fmt::Display) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "# {text}");
    let _ = stdout.flush();
}

/// The nearest-rank percentile of sorted samples: the value at rank `ceil(p/100 * n)`
/// (1-based), clamped to the series; `None` for no samples.
pub(crate) fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p / 100.0 * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Today's UTC date and time as `YYYY-MM-DD HH:MM:SSZ`, from the system clock.
pub(crate) fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7u32], 99.0), Some(7));
        assert_eq!(percentile(&[1u32, 2, 3], 50.0), Some(2));
        assert_eq!(percentile(&[1u32, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
