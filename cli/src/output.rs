//! Printing: aligned tables and key/value blocks for a terminal (colour only when stdout is a
//! TTY), one JSON document per command with `--json`, and the small formatters every command
//! shares (times, ages, session ids, node data).

use std::io::{IsTerminal, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::{CliError, CliResult};

/// A colour (an ANSI SGR code) for one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// No colour.
    Plain,
    /// Bold: headers and titles.
    Bold,
    /// Green: holders, leaders, healthy hosts.
    Good,
    /// Yellow: waiters, warnings.
    Warn,
    /// Red: errors, unreachable hosts.
    Bad,
    /// Cyan: ephemeral markers and session ids.
    Accent,
    /// Dim: secondary details.
    Dim,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Bold => "1",
            Style::Good => "32",
            Style::Warn => "33",
            Style::Bad => "31",
            Style::Accent => "36",
            Style::Dim => "2",
        }
    }
}

/// Where a command's output goes, and in which form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    /// `--json`: one JSON document per command.
    pub(crate) json: bool,
    /// Colour: stdout is a terminal (and `NO_COLOR` is not set).
    pub(crate) color: bool,
}

impl Out {
    /// The output settings for this process.
    pub(crate) fn new(json: bool) -> Self {
        let color = !json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { json, color }
    }

    /// `text` in `style`, if colour is on.
    pub(crate) fn paint(&self, text: &str, style: Style) -> String {
        if self.color && style != Style::Plain && !text.is_empty() {
            format!("\x1b[{}m{text}\x1b[0m", style.code())
        } else {
            text.to_owned()
        }
    }

    /// Prints one line.
    pub(crate) fn line(&self, text: impl AsRef<str>) -> CliResult {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", text.as_ref()).map_err(broken_pipe)
    }

    /// Prints `value` as one JSON document (pretty on a terminal, one line otherwise).
    pub(crate) fn json<T: Serialize>(&self, value: &T) -> CliResult {
        let text = if std::io::stdout().is_terminal() {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        }
        .map_err(|e| CliError::failed(format!("cannot encode JSON: {e}")))?;
        self.line(text)
    }

    /// Prints `value` as one JSON line (for streams: one document per event).
    pub(crate) fn json_line<T: Serialize>(&self, value: &T) -> CliResult {
        let text = serde_json::to_string(value).map_err(|e| CliError::failed(format!("cannot encode JSON: {e}")))?;
        self.line(text)
    }

    /// Prints a table.
    pub(crate) fn table(&self, table: &Table) -> CliResult {
        self.line(table.render(self).join("\n"))
    }

    /// Prints `key: value` lines with the values aligned.
    pub(crate) fn fields(&self, rows: &[(&str, String)]) -> CliResult {
        let width = rows.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
        for (key, value) in rows {
            let pad = " ".repeat(width - key.chars().count());
            self.line(format!("{}{pad}  {value}", self.paint(&format!("{key}:"), Style::Dim)))?;
        }
        Ok(())
    }
}

/// A closed stdout (`corral ls / | head`) ends the command quietly.
fn broken_pipe(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    CliError::failed(format!("cannot write output: {e}"))
}

/// A table with a header row; every column is as wide as its widest cell.
#[derive(Debug, Default)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<(String, Style)>>,
}

impl Table {
    /// A table with these column names.
    pub(crate) fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row of plain cells.
    pub(crate) fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(|c| (c.into(), Style::Plain)).collect());
    }

    /// Adds a row of styled cells.
    pub(crate) fn styled_row(&mut self, cells: Vec<(String, Style)>) {
        self.rows.push(cells);
    }

    /// Whether the table has no rows.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The lines of the table; padding is computed on the text, before colour is added.
    fn render(&self, out: &Out) -> Vec<String> {
        let columns = self.header.len().max(self.rows.iter().map(Vec::len).max().unwrap_or(0));
        let mut widths = vec![0; columns];
        for (i, h) in self.header.iter().enumerate() {
            widths[i] = h.chars().count();
        }
        for row in &self.rows {
            for (i, (cell, _)) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: Vec<(&str, Style)>| {
            let last = cells.len().saturating_sub(1);
            let mut text = String::new();
            for (i, (cell, style)) in cells.into_iter().enumerate() {
                text.push_str(&out.paint(cell, style));
                if i < last {
                    text.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
                }
            }
            text
        };
        let mut lines = vec![line(self.header.iter().map(|h| (h.as_str(), Style::Bold)).collect())];
        for row in &self.rows {
            lines.push(line(row.iter().map(|(c, s)| (c.as_str(), *s)).collect()));
        }
        lines
    }
}

/// A session id as ZooKeeper prints it: `0x` and lowercase hex.
pub(crate) fn session_hex(id: i64) -> String {
    format!("{:#x}", id)
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// An epoch-ms time as ISO 8601 UTC, `2026-12-06T06:25:00.123Z`.
pub(crate) fn iso_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A duration in ms, short: `850ms`, `12.3s`, `4m05s`, `3h12m`, `2d04h`.
pub(crate) fn short_duration(ms: i64) -> String {
    let ms = ms.max(0);
    let secs = ms / 1000;
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{}.{}s", secs, (ms % 1000) / 100),
        60_000..=3_599_999 => format!("{}m{:02}s", secs / 60, secs % 60),
        3_600_000..=86_399_999 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A time with its age: `2026-12-06T06:25:00.123Z (4m05s ago)`.
pub(crate) fn time_and_age(ms: i64) -> String {
    format!("{} ({} ago)", iso_time(ms), short_duration(now_ms().saturating_sub(ms)))
}

/// Node data for a table cell: the text if it is printable UTF-8 (cut at `max` characters),
/// otherwise `0x` and hex.
pub(crate) fn data_preview(data: &[u8], max: usize) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if !text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
            let flat = text.replace(['\n', '\t'], " ");
            if flat.chars().count() > max { format!("{}…", flat.chars().take(max).collect::<String>()) } else { flat }
        }
        _ => {
            let hex: String = data.iter().take(max / 2).map(|b| format!("{b:02x}")).collect();
            if data.len() > max / 2 { format!("0x{hex}…") } else { format!("0x{hex}") }
        }
    }
}

/// Node data for JSON: the UTF-8 text, or `None` when it is not UTF-8.
pub(crate) fn data_text(data: &[u8]) -> Option<String> {
    std::str::from_utf8(data).ok().map(str::to_owned)
}

/// Lowercase hex of `data`.
pub(crate) fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(short_duration(850), "850ms");
        assert_eq!(short_duration(12_345), "12.3s");
        assert_eq!(short_duration(245_000), "4m05s");
        assert_eq!(short_duration(3 * 3_600_000 + 12 * 60_000), "3h12m");
        assert_eq!(short_duration(2 * 86_400_000 + 4 * 3_600_000), "2d04h");
    }

    #[test]
    fn previews() {
        assert_eq!(data_preview(b"hello", 10), "hello");
        assert_eq!(data_preview(b"hello world", 5), "hello…");
        assert_eq!(data_preview(&[0, 0, 0, 42], 16), "0x0000002a");
        assert_eq!(session_hex(0x1000_0000_0000_002a), "0x100000000000002a");
    }

    #[test]
    fn tables_align_on_text_not_colour() {
        let out = Out { json: false, color: true };
        let mut table = Table::new(&["A", "LONGER"]);
        table.styled_row(vec![("wide cell".into(), Style::Good), ("x".into(), Style::Plain)]);
        let lines = table.render(&out);
        assert_eq!(lines[0], "\x1b[1mA\x1b[0m          \x1b[1mLONGER\x1b[0m");
        assert_eq!(lines[1], "\x1b[32mwide cell\x1b[0m  x");
        let plain = Out { json: false, color: false };
        assert_eq!(table.render(&plain), ["A          LONGER", "wide cell  x"]);
    }
}
