//! kazoo's `Counter`: a number in a znode, changed by compare-and-set on the node's version.

use crate::{Error, Result};
use bytes::Bytes;
use corral_core::Error as CoreError;
use corral_core::{ErrorCode, Framework};

/// A value a kazoo [`Counter`] can hold, in kazoo's encoding.
///
/// kazoo writes `repr(value)` in ASCII and reads it back with the default's type; an empty node
/// reads as the default. With `support_curator=True` it writes a 4-byte big-endian int instead,
/// as Curator's `SharedCount` does (see [`Counter::curator`]).
pub trait CounterValue: Copy + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// `self + delta`, or `None` on overflow.
    fn checked_add(self, delta: Self) -> Option<Self>;
    /// Python's `repr` of the value, as kazoo stores it.
    fn to_repr(self) -> String;
    /// The value of `repr` text, as Python's `int(...)` or `float(...)` reads it.
    fn from_repr(text: &str) -> Option<Self>;
}

impl CounterValue for i64 {
    fn checked_add(self, delta: Self) -> Option<Self> {
        i64::checked_add(self, delta)
    }

    fn to_repr(self) -> String {
        self.to_string()
    }

    fn from_repr(text: &str) -> Option<Self> {
        // Python's int() takes surrounding whitespace, a sign and `_` between digits.
        let text = text.trim();
        let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
        if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
            return None;
        }
        text.replace('_', "").parse().ok()
    }
}

impl CounterValue for f64 {
    fn checked_add(self, delta: Self) -> Option<Self> {
        Some(self + delta)
    }

    fn to_repr(self) -> String {
        python_float_repr(self)
    }

    fn from_repr(text: &str) -> Option<Self> {
        let text = text.trim();
        match text.to_ascii_lowercase().trim_start_matches(['+', '-']) {
            "inf" | "infinity" | "nan" => text.to_ascii_lowercase().replace("infinity", "inf").parse().ok(),
            _ => text.replace('_', "").parse().ok(),
        }
    }
}

/// Python's `repr(float)`: the shortest digits that read back as the same value, in fixed
/// notation with at least one decimal when the decimal exponent is in `[-4, 16)`, otherwise as
/// `d.ddde±XX`.
pub(crate) fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits too: "d.ddde<exp>".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{text}")
    } else {
        let mantissa = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{esign}{:02}", exp.abs())
    }
}

/// The values around one change of a [`Counter`]: kazoo's `pre_value` and `post_value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterChange<T> {
    /// The value the change was applied to.
    pub pre_value: T,
    /// The value the change wrote.
    pub post_value: T,
}

/// kazoo's `Counter(path, default=…, support_curator=…)`: an `i64` or `f64` in a znode, changed
/// atomically by compare-and-set on the node's version, in kazoo's encoding, so Python and
/// Rust processes share one counter.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = corral_server::testing::TestingServer::start().await?;
/// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
/// use corral_recipes::kazoo::Counter;
///
/// let hits = Counter::new(&fw, "/counters/hits", 0i64);
/// hits.add(2).await?;
/// let change = hits.add(-1).await?;
/// assert_eq!((change.pre_value, change.post_value), (2, 1));
/// assert_eq!(&fw.client().get_data("/counters/hits").await?.0[..], b"1"); // repr(1)
///
/// let load = Counter::new(&fw, "/counters/load", 1.0f64);
/// assert_eq!(load.add(2.0).await?.post_value, 3.0);
/// assert_eq!(&fw.client().get_data("/counters/load").await?.0[..], b"3.0"); // repr(3.0)
/// # fw.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Counter<T> {
    fw: Framework,
    path: String,
    default: T,
    curator: bool,
}

impl<T: CounterValue> Counter<T> {
    /// A counter at `path` that reads as `default` while the node is empty or missing (kazoo's
    /// `default`, whose type is the counter's type).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Counter;
    ///
    /// assert_eq!(Counter::new(&fw, "/counters/fresh", 10i64).value().await?, 10);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn new(fw: &Framework, path: impl Into<String>, default: T) -> Self {
        Self { fw: fw.clone(), path: path.into(), default, curator: false }
    }

    /// The counter's value now (the default for an empty or missing node).
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::BadArguments`] naming the path if the node holds what kazoo could not read
    /// either; connection errors once the framework's retries give up.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::{CreateMode, framework::Create, kazoo::Counter};
    ///
    /// let spec = Create::new(CreateMode::Persistent).parents();
    /// fw.create("/counters/py", "41", spec).await?; // written by kazoo
    /// assert_eq!(Counter::new(&fw, "/counters/py", 0i64).value().await?, 41);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn value(&self) -> Result<T> {
        Ok(self.read().await?.0)
    }

    /// Adds `delta` (negative to subtract) by compare-and-set, trying again after a concurrent
    /// change (after the recipes' jittered backoff), and returns kazoo's `pre_value` and
    /// `post_value`. The node (and its parents) is created empty first if it is missing.
    ///
    /// # Errors
    ///
    /// [`corral_core::Error::BadArguments`] if the node holds what cannot be read or the sum overflows (or,
    /// in Curator mode, leaves the 32-bit range); connection errors once the framework's
    /// retries give up.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the change may have been applied when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Counter;
    ///
    /// let counter = Counter::new(&fw, "/counters/jobs", 0i64);
    /// let (a, b) = tokio::join!(counter.add(1), counter.add(1));
    /// assert_ne!(a?.post_value, b?.post_value); // each change saw the other's result or none
    /// assert_eq!(counter.value().await?, 2);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn add(&self, delta: T) -> Result<CounterChange<T>> {
        let policy = self.fw.retry_policy();
        let mut conflicts = 0u32;
        loop {
            let (pre_value, version) = self.read().await?;
            let post_value = pre_value
                .checked_add(delta)
                .ok_or_else(|| Error::bad_arguments(format!("{}: {pre_value:?} + {delta:?} overflows", self.path)))?;
            let data = self.encode(post_value)?;
            match self.fw.set_data(&self.path, data, Some(version)).await {
                Ok(_) => return Ok(CounterChange { pre_value, post_value }),
                Err(CoreError::Server { code: ErrorCode::BadVersion, .. }) => {
                    conflicts += 1;
                    tokio::time::sleep(crate::task::backoff_delay(&*policy, conflicts)).await;
                }
                Err(e) => return Err(Error::from(e)),
            }
        }
    }

    /// The value and the node's version, creating the node empty if it is missing (kazoo's
    /// `ensure_path`).
    async fn read(&self) -> Result<(T, i32)> {
        let read = || {
            self.fw.with_retry(|c| {
                let path = self.path.clone();
                async move {
                    match c.get_data(&path).await {
                        Ok(found) => Ok(Some(found)),
                        Err(e) if e.is_no_node() => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
        };
        let (data, stat) = match read().await? {
            Some(found) => found,
            None => {
                self.fw.ensure_path(&self.path).await?;
                read().await?.ok_or_else(|| CoreError::Server { code: ErrorCode::NoNode, path: self.path.clone() })?
            }
        };
        Ok((self.decode(&data)?, stat.version))
    }

    fn decode(&self, data: &[u8]) -> Result<T> {
        if data.is_empty() {
            return Ok(self.default);
        }
        let bad = || Error::corrupt(&self.path, format!("{data:?} is not what a kazoo counter can read"));
        if self.curator {
            let bytes: [u8; 4] = data.try_into().map_err(|_| bad())?;
            return T::from_repr(&i32::from_be_bytes(bytes).to_string()).ok_or_else(bad);
        }
        std::str::from_utf8(data).ok().and_then(T::from_repr).ok_or_else(bad)
    }

    fn encode(&self, value: T) -> Result<Bytes> {
        if self.curator {
            let int: i32 = value.to_repr().parse().map_err(|_| {
                Error::bad_arguments(format!("{}: {value:?} does not fit Curator's 32-bit SharedCount", self.path))
            })?;
            return Ok(Bytes::copy_from_slice(&int.to_be_bytes()));
        }
        Ok(Bytes::from(value.to_repr()))
    }
}

impl Counter<i64> {
    /// kazoo's `support_curator=True`: the value as a 4-byte big-endian int, byte-compatible with
    /// Curator's `SharedCount` (and this crate's [`SharedCount`](crate::shared_count::SharedCount)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
    /// use corral_recipes::kazoo::Counter;
    ///
    /// let counter = Counter::new(&fw, "/counters/shared", 0).curator();
    /// counter.add(5).await?;
    /// assert_eq!(&fw.client().get_data("/counters/shared").await?.0[..], [0, 0, 0, 5]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn curator(mut self) -> Self {
        self.curator = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_is_pythons() {
        for (x, repr) in [
            (3.0, "3.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (2.5e-300, "2.5e-300"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(python_float_repr(x), repr, "{x:?}");
            if !x.is_nan() {
                assert_eq!(f64::from_repr(repr), Some(x), "{repr}");
            }
        }
    }

    #[test]
    fn int_parse_is_pythons() {
        assert_eq!(i64::from_repr("41"), Some(41));
        assert_eq!(i64::from_repr(" -7\n"), Some(-7));
        assert_eq!(i64::from_repr("1_000"), Some(1000));
        assert_eq!(i64::from_repr("3.0"), None); // int("3.0") fails in Python too
        assert_eq!(i64::from_repr("_1"), None);
    }
}
