//! The integer types, [`DistributedAtomicLong`] and [`DistributedAtomicInteger`]: one macro
//! over the engine, for two widths of Curator's big-endian encoding.

use std::sync::Arc;

use bytes::Bytes;
use corral_core::{Framework, RetryPolicy};

use super::{AtomicValue, Codec, Engine, PromotedToLock};
use crate::{Error, Result};

/// Writes an integer atomic type: its codec (Curator's big-endian encoding of `$int`, empty data
/// reading as 0 and fewer bytes than the width refused, as Java's `ByteBuffer` does) and the
/// type with every method, each documented with a runnable example.
///
/// - `curator`: Curator's class name, for the docs;
/// - `bits`, `bytes`: the width, for the docs.
macro_rules! atomic_integer {
    (
        $(#[$attr:meta])*
        pub struct $name:ident($codec:ident, $int:ty);
        curator = $curator:literal;
        bits = $bits:literal;
        bytes = $bytes:literal;
    ) => {
        #[derive(Debug, Clone, Copy)]
        struct $codec;

        impl Codec for $codec {
            type Value = $int;

            fn encode(value: &$int) -> Bytes {
                Bytes::copy_from_slice(&value.to_be_bytes())
            }

            fn decode(path: &str, data: &[u8]) -> Result<$int> {
                const WIDTH: usize = std::mem::size_of::<$int>();
                if data.is_empty() {
                    return Ok(0);
                }
                match data.get(..WIDTH).and_then(|b| <[u8; WIDTH]>::try_from(b).ok()) {
                    Some(bytes) => Ok(<$int>::from_be_bytes(bytes)),
                    None => Err(Error::corrupt(path, format!("{} bytes, not a {}-byte integer", data.len(), WIDTH))),
                }
            }
        }

        $(#[$attr])*
        #[derive(Debug, Clone)]
        pub struct $name {
            engine: Engine<$codec>,
        }

        impl $name {
            #[doc = concat!("A counter at `path` (Curator's `", $curator, "`), whose optimistic tries are retried")]
            /// under `retry` (Curator's `RetryNTimes(n, sleep)` makes `n + 1` tries). Nothing is
            /// sent yet.
            ///
            /// # Examples
            ///
            #[doc = concat!("See [`", stringify!($name), "`].")]
            pub fn new(fw: &Framework, path: impl Into<String>, retry: impl RetryPolicy + 'static) -> Self {
                Self { engine: Engine::new(fw, path.into(), Arc::new(retry)) }
            }

            /// Promotes updates to a lock once the optimistic tries run out.
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            /// use std::time::Duration;
            /// use corral_recipes::RetryNTimes;
            #[doc = concat!("use corral_recipes::atomic::{", stringify!($name), ", PromotedToLock};")]
            ///
            #[doc = concat!("let counter = ", stringify!($name), "::new(&fw, \"/counters/hits\", RetryNTimes::new(0, Duration::ZERO))")]
            ///     .promoted_to_lock(PromotedToLock::new("/counters/hits-lock"));
            /// assert!(counter.increment().await?.succeeded);
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub fn promoted_to_lock(mut self, promotion: PromotedToLock) -> Self {
                self.engine.promoted = Some(promotion);
                self
            }

            /// The counter's path.
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            #[doc = concat!("use corral_recipes::{RetryOneTime, atomic::", stringify!($name), "};")]
            ///
            #[doc = concat!("let counter = ", stringify!($name), "::new(&fw, \"/counters/hits\", RetryOneTime::new(Default::default()));")]
            /// assert_eq!(counter.path(), "/counters/hits");
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub fn path(&self) -> &str {
                &self.engine.path
            }

            /// Reads the counter: `pre_value == post_value`, always succeeded; 0 if the node
            /// does not exist.
            ///
            /// # Errors
            ///
            /// Connection errors once the retry policy gives up;
            #[doc = concat!("[`Error::CorruptData`] if the node holds some data but fewer than ", $bytes, " bytes;")]
            /// server errors such as NoAuth.
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
            /// use std::time::Duration;
            #[doc = concat!("use corral_recipes::{RetryNTimes, atomic::", stringify!($name), "};")]
            ///
            #[doc = concat!("let counter = ", stringify!($name), "::new(&fw, \"/counters/hits\", RetryNTimes::new(3, Duration::from_millis(10)));")]
            /// assert_eq!(counter.get().await?.post_value, 0); // no node yet
            /// counter.add(5).await?;
            /// assert_eq!(counter.get().await?.post_value, 5);
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub async fn get(&self) -> Result<AtomicValue<$int>> {
                self.engine.get().await
            }

            #[doc = concat!("Adds 1 (wrapping on overflow, as Java's `", $bits, "`-bit integers).")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($name), "::add`].")]
            ///
            /// # Cancel safety
            ///
            #[doc = concat!("As [`", stringify!($name), "::add`].")]
            ///
            /// # Examples
            ///
            #[doc = concat!("See [`", stringify!($name), "`].")]
            pub async fn increment(&self) -> Result<AtomicValue<$int>> {
                self.add(1).await
            }

            /// Subtracts 1 (wrapping on overflow).
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($name), "::add`].")]
            ///
            /// # Cancel safety
            ///
            #[doc = concat!("As [`", stringify!($name), "::add`].")]
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            /// use std::time::Duration;
            #[doc = concat!("use corral_recipes::{RetryNTimes, atomic::", stringify!($name), "};")]
            ///
            #[doc = concat!("let counter = ", stringify!($name), "::new(&fw, \"/counters/hits\", RetryNTimes::new(3, Duration::from_millis(10)));")]
            /// assert_eq!(counter.decrement().await?.post_value, -1);
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub async fn decrement(&self) -> Result<AtomicValue<$int>> {
                self.add(-1).await
            }

            /// Adds `delta` (wrapping on overflow): optimistic tries under the retry policy,
            /// then tries under the promoted lock if configured and needed.
            ///
            /// # Errors
            ///
            /// Connection errors (reads once the retry policy gives up; a write at once, see
            /// the module docs: the value may or may not have changed);
            #[doc = concat!("[`Error::CorruptData`] if the node holds some data but fewer than ", $bytes, " bytes;")]
            /// [`Error::SessionLost`] if the session is lost while waiting for the promoted
            /// lock; server errors such as NoAuth. Losing every race is not an error: see
            /// [`AtomicValue::succeeded`].
            ///
            /// # Cancel safety
            ///
            /// Not cancel safe: a write may have been applied when the future is dropped. A
            /// promoted lock being waited for or held is released in the background.
            ///
            /// # Examples
            ///
            /// See [`AtomicValue`].
            pub async fn add(&self, delta: $int) -> Result<AtomicValue<$int>> {
                self.engine.update(&move |v: &$int| v.wrapping_add(delta)).await
            }

            /// Subtracts `delta` (wrapping on overflow).
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($name), "::add`].")]
            ///
            /// # Cancel safety
            ///
            #[doc = concat!("As [`", stringify!($name), "::add`].")]
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            /// use std::time::Duration;
            #[doc = concat!("use corral_recipes::{RetryNTimes, atomic::", stringify!($name), "};")]
            ///
            #[doc = concat!("let counter = ", stringify!($name), "::new(&fw, \"/counters/hits\", RetryNTimes::new(3, Duration::from_millis(10)));")]
            /// counter.force_set(10).await?;
            /// assert_eq!(counter.subtract(4).await?.post_value, 6);
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub async fn subtract(&self, delta: $int) -> Result<AtomicValue<$int>> {
                self.engine.update(&move |v: &$int| v.wrapping_sub(delta)).await
            }

            /// Sets the value to `value`, whatever it is, with the same tries as an update
            /// (Curator's `trySet`).
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($name), "::add`].")]
            ///
            /// # Cancel safety
            ///
            #[doc = concat!("As [`", stringify!($name), "::add`].")]
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            /// use std::time::Duration;
            #[doc = concat!("use corral_recipes::{RetryNTimes, atomic::", stringify!($name), "};")]
            ///
            #[doc = concat!("let counter = ", stringify!($name), "::new(&fw, \"/counters/hits\", RetryNTimes::new(3, Duration::from_millis(10)));")]
            /// let result = counter.try_set(7).await?;
            /// assert_eq!((result.succeeded, result.pre_value, result.post_value), (true, 0, 7));
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub async fn try_set(&self, value: $int) -> Result<AtomicValue<$int>> {
                self.engine.update(&move |_: &$int| value).await
            }

            /// Sets the value to `new` only if it is `expected` now, in one try (no retry, no
            /// lock, and a missing node is not created — as Curator's `compareAndSet`).
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($name), "::add`].")]
            ///
            /// # Cancel safety
            ///
            /// Not cancel safe: the write may have been applied when the future is dropped.
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            /// use std::time::Duration;
            #[doc = concat!("use corral_recipes::{RetryNTimes, atomic::", stringify!($name), "};")]
            ///
            #[doc = concat!("let counter = ", stringify!($name), "::new(&fw, \"/counters/hits\", RetryNTimes::new(3, Duration::from_millis(10)));")]
            /// counter.force_set(3).await?;
            /// assert!(!counter.compare_and_set(2, 10).await?.succeeded);
            /// let result = counter.compare_and_set(3, 10).await?;
            /// assert_eq!((result.succeeded, result.pre_value, result.post_value), (true, 3, 10));
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub async fn compare_and_set(&self, expected: $int, new: $int) -> Result<AtomicValue<$int>> {
                self.engine.compare_and_set(&expected, new).await
            }

            /// Creates the counter with `value` if it does not exist yet (Curator's
            /// `initialize`): `Ok(true)` if this call created it, `Ok(false)` if it existed.
            ///
            /// # Errors
            ///
            /// Connection errors: the create is sent once, and after a connection error the
            /// node may or may not have been created; server errors such as NoAuth.
            ///
            /// # Cancel safety
            ///
            /// Not cancel safe: the node may have been created when the future is dropped.
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            /// use std::time::Duration;
            #[doc = concat!("use corral_recipes::{RetryNTimes, atomic::", stringify!($name), "};")]
            ///
            #[doc = concat!("let counter = ", stringify!($name), "::new(&fw, \"/counters/hits\", RetryNTimes::new(3, Duration::from_millis(10)));")]
            /// assert!(counter.try_initialize(100).await?);
            /// assert!(!counter.try_initialize(5).await?);
            /// assert_eq!(counter.get().await?.post_value, 100);
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub async fn try_initialize(&self, value: $int) -> Result<bool> {
                self.engine.try_initialize(&value).await
            }

            /// Sets the value to `value` unconditionally, creating the node if needed
            /// (Curator's `forceSet`).
            ///
            /// # Errors
            ///
            /// Connection errors once the retry policy gives up; server errors such as NoAuth.
            ///
            /// # Cancel safety
            ///
            /// Not cancel safe: the value may have been written when the future is dropped.
            ///
            /// # Examples
            ///
            /// ```
            /// # #[tokio::main(flavor = "current_thread")]
            /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
            /// # let server = corral_server::testing::TestingServer::start().await?;
            /// # let fw = corral_recipes::Framework::builder(server.connect_string()).start()?;
            /// use std::time::Duration;
            #[doc = concat!("use corral_recipes::{RetryNTimes, atomic::", stringify!($name), "};")]
            ///
            #[doc = concat!("let counter = ", stringify!($name), "::new(&fw, \"/counters/hits\", RetryNTimes::new(3, Duration::from_millis(10)));")]
            #[doc = concat!("counter.force_set(", stringify!($int), "::MAX).await?;")]
            #[doc = concat!("assert_eq!(counter.increment().await?.post_value, ", stringify!($int), "::MIN); // wraps, as Java's")]
            /// # fw.close().await;
            /// # Ok(()) }
            /// ```
            pub async fn force_set(&self, value: $int) -> Result<()> {
                self.engine.force_set(&value).await
            }
        }
    };
}

atomic_integer! {
    /// A distributed 64-bit counter (Curator's `DistributedAtomicLong`): 8 bytes, big-endian.
    /// Cheap to clone.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, RetryNTimes, atomic::DistributedAtomicLong};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let counter = DistributedAtomicLong::new(&fw, "/counters/hits", RetryNTimes::new(10, Duration::from_millis(10)));
    /// let result = counter.increment().await?;
    /// assert!(result.succeeded, "every try lost a race");
    /// assert_eq!(result.post_value, 1);
    /// assert_eq!(&fw.client().get_data("/counters/hits").await?.0[..], 1i64.to_be_bytes());
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub struct DistributedAtomicLong(LongCodec, i64);
    curator = "DistributedAtomicLong";
    bits = "64";
    bytes = "8";
}

atomic_integer! {
    /// A distributed 32-bit counter (Curator's `DistributedAtomicInteger`): 4 bytes,
    /// big-endian. Cheap to clone.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use std::time::Duration;
    /// use corral_recipes::{Framework, RetryNTimes, atomic::DistributedAtomicInteger};
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let counter = DistributedAtomicInteger::new(&fw, "/counters/slots", RetryNTimes::new(10, Duration::from_millis(10)));
    /// let result = counter.add(3).await?;
    /// assert!(result.succeeded, "every try lost a race");
    /// assert_eq!(result.post_value, 3);
    /// assert_eq!(&fw.client().get_data("/counters/slots").await?.0[..], [0, 0, 0, 3]);
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub struct DistributedAtomicInteger(IntegerCodec, i32);
    curator = "DistributedAtomicInteger";
    bits = "32";
    bytes = "4";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_curators_bytes() {
        assert_eq!(&LongCodec::encode(&1)[..], [0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&LongCodec::encode(&-2)[..], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]);
        assert_eq!(LongCodec::decode("/a", &[]), Ok(0));
        assert_eq!(LongCodec::decode("/a", &[0, 0, 0, 0, 0, 0, 1, 0, 9]), Ok(256), "extra bytes ignored");
        assert!(matches!(LongCodec::decode("/a", &[0, 0, 1]), Err(Error::CorruptData { .. })));

        assert_eq!(&IntegerCodec::encode(&-2)[..], [0xFF, 0xFF, 0xFF, 0xFE]);
        assert_eq!(IntegerCodec::decode("/a", &[]), Ok(0));
        assert_eq!(IntegerCodec::decode("/a", &[0, 0, 1, 0, 9]), Ok(256), "extra bytes ignored");
        assert!(matches!(IntegerCodec::decode("/a", &[0, 1, 0]), Err(Error::CorruptData { .. })));
    }
}
