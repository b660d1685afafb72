//! Compressed node data: Curator's `CompressionProvider` and its `GzipCompressionProvider`.
//!
//! A node written with [`Create::compressed`](super::Create::compressed) or
//! [`Framework::set_data_compressed`] holds its data compressed by the framework's provider
//! (set with [`FrameworkBuilder::compression_provider`](super::FrameworkBuilder::compression_provider));
//! [`Framework::get_data_decompressed`] reads it back.
//!
//! Compression is chosen per operation. There is no switch that compresses every node (as
//! Curator's `enableCompression()`): recipes write their nodes through the same framework
//! operations, and their formats are shared uncompressed with Curator's and kazoo's recipes.
//!
//! The default provider writes what Curator 5.4's `GzipCompressionProvider` writes: one gzip
//! member with a fixed 10-byte header (no name, no time, `XFL` 0, `OS` 0), a raw deflate
//! stream at the default level, and the CRC-32 and length trailer, and Curator's 20-byte
//! constant for empty data. So Java services on Curator and Rust services on Corral read each
//! other's compressed nodes.

use std::fmt::Debug;
use std::io::{Read, Write};

use bytes::Bytes;
use flate2::Compression;

use super::Framework;
use crate::error::{Error, Result};

/// Compresses and decompresses node data (Curator's `CompressionProvider`).
///
/// `path` is the node's path (relative to the namespace), for providers that compress some
/// paths differently; the gzip provider ignores it.
///
/// # Examples
///
/// ```
/// use corral_core::framework::{CompressionProvider, GzipCompressionProvider};
///
/// let gzip = GzipCompressionProvider::new();
/// let packed = gzip.compress("/config", b"a line repeated, a line repeated, a line repeated")?;
/// assert_eq!(&packed[..2], [0x1f, 0x8b]); // a gzip member
/// assert_eq!(&gzip.decompress("/config", &packed)?[..], b"a line repeated, a line repeated, a line repeated");
/// # Ok::<(), corral_core::Error>(())
/// ```
pub trait CompressionProvider: Debug + Send + Sync + 'static {
    /// The compressed form of `data`, to be written at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::Compression`] when the data cannot be compressed.
    fn compress(&self, path: &str, data: &[u8]) -> Result<Bytes>;

    /// The data `compressed` (read at `path`) stands for.
    ///
    /// # Errors
    ///
    /// [`Error::Compression`] when `compressed` is not in the provider's format (for example
    /// a node that was written uncompressed), is corrupt or decompresses past the provider's
    /// limit.
    fn decompress(&self, path: &str, compressed: &[u8]) -> Result<Bytes>;
}

/// The gzip header Curator 5.4 writes: magic, deflate, no flags, no time, `XFL` 0, `OS` 0.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0];

/// What Curator writes for empty data: the header, an empty final fixed block, a zero CRC and
/// a zero length.
const COMPRESSED_EMPTY: [u8; 20] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// The default limit of [`GzipCompressionProvider::max_decompressed_len`]: 64 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_LEN: usize = 64 << 20;

/// Gzip, compatible byte for byte in its framing with Curator 5.4's `GzipCompressionProvider`
/// (the framework's default provider).
///
/// Compressing writes one gzip member with Curator's fixed header (`1f 8b 08 00`, zero time,
/// `XFL` 0, `OS` 0), a raw deflate stream at the default level (6) and the CRC-32 and length
/// trailer; empty data becomes Curator's 20-byte constant. The deflate stream itself comes
/// from `miniz_oxide`, so its bytes may differ from the ones Java's zlib picks for the same
/// input (as they differ between zlib builds), while decoding to the same data on both sides.
///
/// Decompressing accepts any single gzip member (header fields such as a file name or a
/// header CRC are skipped, as Curator does), checks the CRC-32 and the length, and refuses
/// trailing bytes after the member and output past
/// [`GzipCompressionProvider::max_decompressed_len`] (a corrupt or hostile node must not
/// exhaust memory).
///
/// # Examples
///
/// ```
/// use corral_core::framework::{CompressionProvider, GzipCompressionProvider};
///
/// let gzip = GzipCompressionProvider::new();
/// // Curator's constant for empty data.
/// assert_eq!(
///     &gzip.compress("/empty", b"")?[..],
///     [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]
/// );
/// assert!(gzip.decompress("/plain", b"not gzip").is_err());
/// # Ok::<(), corral_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GzipCompressionProvider {
    max_decompressed_len: usize,
}

impl Default for GzipCompressionProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl GzipCompressionProvider {
    /// A provider with Curator's format and a decompression limit of
    /// [`DEFAULT_MAX_DECOMPRESSED_LEN`].
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::framework::{DEFAULT_MAX_DECOMPRESSED_LEN, GzipCompressionProvider};
    ///
    /// assert_eq!(GzipCompressionProvider::new().max_decompressed_len(), DEFAULT_MAX_DECOMPRESSED_LEN);
    /// ```
    pub fn new() -> Self {
        Self { max_decompressed_len: DEFAULT_MAX_DECOMPRESSED_LEN }
    }

    /// Sets the most bytes one node may decompress to; more is an [`Error::Compression`].
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::framework::{CompressionProvider, GzipCompressionProvider};
    ///
    /// let small = GzipCompressionProvider::new().with_max_decompressed_len(1024);
    /// let packed = small.compress("/big", &[0u8; 4096])?;
    /// assert!(small.decompress("/big", &packed).is_err());
    /// assert_eq!(GzipCompressionProvider::new().decompress("/big", &packed)?.len(), 4096);
    /// # Ok::<(), corral_core::Error>(())
    /// ```
    pub fn with_max_decompressed_len(mut self, max: usize) -> Self {
        self.max_decompressed_len = max;
        self
    }

    /// The most bytes one node may decompress to.
    ///
    /// # Examples
    ///
    /// ```
    /// use corral_core::framework::GzipCompressionProvider;
    ///
    /// assert_eq!(GzipCompressionProvider::new().with_max_decompressed_len(10).max_decompressed_len(), 10);
    /// ```
    pub fn max_decompressed_len(&self) -> usize {
        self.max_decompressed_len
    }
}

fn compression_error(path: &str, reason: impl std::fmt::Display) -> Error {
    Error::Compression { path: path.to_owned(), reason: reason.to_string() }
}

impl CompressionProvider for GzipCompressionProvider {
    fn compress(&self, path: &str, data: &[u8]) -> Result<Bytes> {
        if data.is_empty() {
            return Ok(Bytes::from_static(&COMPRESSED_EMPTY));
        }
        let mut out = Vec::with_capacity(GZIP_HEADER.len() + data.len() / 2 + 32);
        out.extend_from_slice(&GZIP_HEADER);
        let mut deflate = flate2::write::DeflateEncoder::new(out, Compression::default());
        deflate.write_all(data).map_err(|e| compression_error(path, e))?;
        let mut out = deflate.finish().map_err(|e| compression_error(path, e))?;
        let mut crc = flate2::Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE is the length modulo 2^32 (RFC 1952).
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        Ok(out.into())
    }

    fn decompress(&self, path: &str, compressed: &[u8]) -> Result<Bytes> {
        if compressed.len() < GZIP_HEADER.len() + 2 + 8 {
            return Err(compression_error(path, "too short for gzip data"));
        }
        if compressed[..2] != GZIP_HEADER[..2] {
            return Err(compression_error(path, "not in gzip format"));
        }
        let mut decoder = flate2::bufread::GzDecoder::new(compressed);
        let limit = self.max_decompressed_len;
        let mut out = Vec::with_capacity(compressed.len().saturating_mul(3).min(limit));
        // One byte past the limit tells "exactly the limit" from "more".
        (&mut decoder)
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| compression_error(path, format!("corrupt gzip data: {e}")))?;
        if out.len() > limit {
            return Err(compression_error(path, format!("decompresses to more than {limit} bytes")));
        }
        if !decoder.into_inner().is_empty() {
            return Err(compression_error(path, "trailing bytes after the gzip member"));
        }
        Ok(out.into())
    }
}

impl Framework {
    /// The provider that compresses node data (set with
    /// [`FrameworkBuilder::compression_provider`](super::FrameworkBuilder::compression_provider);
    /// [`GzipCompressionProvider`] by default).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// use corral_core::Framework;
    ///
    /// let fw = Framework::builder(server.connect_string()).start()?;
    /// let packed = fw.compression_provider().compress("/x", b"data")?;
    /// assert_eq!(&fw.compression_provider().decompress("/x", &packed)?[..], b"data");
    /// fw.close().await;
    /// # Ok(()) }
    /// ```
    pub fn compression_provider(&self) -> std::sync::Arc<dyn CompressionProvider> {
        self.inner.compression.clone()
    }

    /// `data` as it is to be written at `path`: compressed when `compressed` is set.
    pub(super) fn encode(&self, path: &str, data: Bytes, compressed: bool) -> Result<Bytes> {
        if compressed { self.inner.compression.compress(path, &data) } else { Ok(data) }
    }

    /// Sets a node's data compressed by the framework's provider (Curator's
    /// `setData().compressed()`), retrying as [`Framework::set_data`].
    ///
    /// # Errors
    ///
    /// [`Error::Compression`] from the provider before anything is sent; otherwise as
    /// [`Framework::set_data`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the data may have been set when the future is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = corral_server::testing::TestingServer::start().await?;
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::CreateMode;
    ///
    /// fw.create("/config", "", CreateMode::Persistent).await?;
    /// fw.set_data_compressed("/config", "x".repeat(1000), Some(0)).await?;
    /// let (raw, _) = fw.client().get_data("/config").await?;
    /// assert!(raw.len() < 100);
    /// let (data, stat) = fw.get_data_decompressed("/config").await?;
    /// assert_eq!((data.len(), stat.version), (1000, 1));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn set_data_compressed(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        version: Option<i32>,
    ) -> Result<corral_proto::Stat> {
        let data = self.inner.compression.compress(path, &data.into())?;
        self.set_data_raw(path, data, version).await
    }

    /// Reads a node's data and decompresses it with the framework's provider (Curator's
    /// `getData().decompressed()`), retrying under the retry policy.
    ///
    /// # Errors
    ///
    /// As [`Client::get_data`](crate::Client::get_data) after retries (NoNode as
    /// [`Error::Server`]); [`Error::Compression`] when the node's data is not the provider's
    /// (for example it was written uncompressed).
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
    /// # let fw = corral_core::Framework::builder(server.connect_string()).start()?;
    /// # fw.wait_until_connected(std::time::Duration::from_secs(5)).await?;
    /// use corral_core::{CreateMode, Error, framework::Create};
    ///
    /// fw.create("/packed", "payload", Create::new(CreateMode::Persistent).compressed()).await?;
    /// assert_eq!(&fw.get_data_decompressed("/packed").await?.0[..], b"payload");
    /// fw.create("/plain", "payload", CreateMode::Persistent).await?;
    /// assert!(matches!(fw.get_data_decompressed("/plain").await, Err(Error::Compression { .. })));
    /// # fw.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn get_data_decompressed(&self, path: &str) -> Result<(Bytes, corral_proto::Stat)> {
        let (data, stat) = self.with_retry(|client| async move { client.get_data(path).await }).await?;
        Ok((self.inner.compression.decompress(path, &data)?, stat))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_curator_framing() {
        let gzip = GzipCompressionProvider::new();
        for data in [&b""[..], b"x", b"hello, hello, hello, hello", &[7u8; 100_000][..]] {
            let packed = gzip.compress("/p", data).unwrap();
            assert_eq!(packed[..10], GZIP_HEADER);
            let n = packed.len();
            assert_eq!(packed[n - 4..], (data.len() as u32).to_le_bytes());
            assert_eq!(&gzip.decompress("/p", &packed).unwrap()[..], data);
        }
    }

    #[test]
    fn refuses_bad_input_without_panicking() {
        let gzip = GzipCompressionProvider::new();
        let packed = gzip.compress("/p", b"some data to pack").unwrap();
        // Every truncation, every single-byte corruption and trailing garbage: an error or the
        // right data (a flipped bit in an ignored header byte), never a panic or wrong data.
        for cut in 0..packed.len() {
            assert!(gzip.decompress("/p", &packed[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..packed.len() {
            let mut bad = packed.to_vec();
            bad[i] ^= 0x55;
            if let Ok(data) = gzip.decompress("/p", &bad) {
                assert_eq!(&data[..], b"some data to pack", "corrupted byte {i}");
            }
        }
        let mut trailing = packed.to_vec();
        trailing.push(0);
        let err = gzip.decompress("/p", &trailing).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    #[test]
    fn limit_is_exact() {
        let packed = GzipCompressionProvider::new().compress("/p", &[1u8; 1000]).unwrap();
        assert_eq!(
            GzipCompressionProvider::new().with_max_decompressed_len(1000).decompress("/p", &packed).unwrap().len(),
            1000
        );
        assert!(GzipCompressionProvider::new().with_max_decompressed_len(999).decompress("/p", &packed).is_err());
    }
}
