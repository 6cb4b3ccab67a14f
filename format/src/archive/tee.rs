//! Byte counting and whole-file digests (SHA-256 for `SHA256SUMS`, BLAKE2b-512 for the
//! detached minisign signature), taken from the same pass that writes or reads a bundle.

use std::cell::Cell;
use std::io::{self, Read};
#[cfg(feature = "writer")]
use std::io::Write;
use std::rc::Rc;

use blake2::Digest as _;

use crate::digest::Sha256;

/// The digests of a whole bundle file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDigests {
    pub sha256: Sha256,
    pub blake2b512: [u8; 64],
    pub size: u64,
}

#[derive(Default)]
pub(crate) struct Digests {
    sha256: sha2::Sha256,
    blake2b: blake2::Blake2b512,
    size: u64,
}

impl Digests {
    fn update(&mut self, data: &[u8]) {
        sha2::Digest::update(&mut self.sha256, data);
        self.blake2b.update(data);
        self.size += data.len() as u64;
    }

    pub(crate) fn finish(self) -> OutputDigests {
        OutputDigests {
            sha256: Sha256::from_bytes(sha2::Digest::finalize(self.sha256).into()),
            blake2b512: self.blake2b.finalize().into(),
            size: self.size,
        }
    }
}

/// Writer adapter that digests what passes through.
#[cfg(feature = "writer")]
pub(crate) struct DigestWriter<W> {
    pub(crate) inner: W,
    pub(crate) digests: Digests,
}

#[cfg(feature = "writer")]
impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digests.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reader adapter that digests what passes through and counts it in a shared counter.
pub(crate) struct DigestReader<R> {
    pub(crate) inner: R,
    pub(crate) digests: Digests,
    pub(crate) counter: Counter,
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digests.update(&buf[..n]);
        self.counter.add(n as u64);
        Ok(n)
    }
}

/// A byte count shared between the two ends of a decoder.
#[derive(Clone, Default)]
pub struct Counter(Rc<Cell<u64>>);

impl Counter {
    pub fn get(&self) -> u64 {
        self.0.get()
    }

    fn add(&self, n: u64) {
        self.0.set(self.0.get() + n);
    }
}

/// Stops a decompression bomb: fails once the output exceeds `ratio` times the compressed
/// input read so far (after a floor, since small inputs have noisy ratios).
pub(crate) struct RatioGuard<R> {
    pub(crate) inner: R,
    pub(crate) compressed: Counter,
    pub(crate) decompressed: u64,
    pub(crate) ratio: u64,
    pub(crate) floor: u64,
}

impl<R: Read> Read for RatioGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.decompressed += n as u64;
        if self.decompressed > self.floor
            && self.decompressed > self.compressed.get().saturating_mul(self.ratio)
        {
            return Err(io::Error::other(RatioExceeded {
                decompressed: self.decompressed,
                compressed: self.compressed.get(),
            }));
        }
        Ok(n)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{decompressed} bytes decompressed from {compressed}")]
pub(crate) struct RatioExceeded {
    pub(crate) decompressed: u64,
    pub(crate) compressed: u64,
}
