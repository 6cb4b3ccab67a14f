//! Deterministic bundle writer: same inputs, same bytes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use super::tee::{DigestWriter, Digests, OutputDigests};
use super::META_MODE;
use crate::digest::{HashingReader, Sha256};
use crate::entry_path::EntryPath;
use crate::manifest::{MANIFEST_PATH, MANIFEST_SIG_PATH};
use crate::mode::Mode;

/// A payload file to pack, as recorded in the manifest.
#[derive(Debug, Clone)]
pub struct PackFile {
    pub path: EntryPath,
    pub mode: Mode,
    pub source: PathBuf,
    pub size: u64,
    /// Digest the manifest recorded; packing fails if the file changed since.
    pub sha256: Sha256,
}

#[derive(Debug, Clone)]
pub struct PackOptions {
    /// zstd level; part of the format's reproducibility, so callers fix it.
    pub level: i32,
    /// zstd worker threads (at least 1). zstd's multi-threaded output does not depend on
    /// the worker count, so bundles built on machines with different core counts match.
    pub threads: u32,
    /// mtime of every member (`SOURCE_DATE_EPOCH`).
    pub mtime: u64,
}

/// Writes the archive: manifest, signature, then `files` in the given (manifest) order.
/// Returns the output and the digests of every byte written, taken in the same pass.
pub fn write_bundle<W: Write>(
    out: W,
    manifest: &[u8],
    manifest_sig: &[u8],
    files: &[PackFile],
    opts: &PackOptions,
    progress: &mut dyn FnMut(u64),
) -> io::Result<(W, OutputDigests)> {
    let sink = DigestWriter {
        inner: out,
        digests: Digests::default(),
    };
    let mut enc = zstd::stream::Encoder::new(sink, opts.level)?;
    enc.multithread(opts.threads.max(1))?;
    enc.include_checksum(true)?;
    enc.include_contentsize(false)?;
    let mut tar = tar::Builder::new(enc);
    tar.mode(tar::HeaderMode::Deterministic);

    append(
        &mut tar,
        MANIFEST_PATH,
        META_MODE,
        opts.mtime,
        manifest.len() as u64,
        manifest,
    )?;
    append(
        &mut tar,
        MANIFEST_SIG_PATH,
        META_MODE,
        opts.mtime,
        manifest_sig.len() as u64,
        manifest_sig,
    )?;
    for f in files {
        let file = File::open(&f.source)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", f.source.display())))?;
        let mut reader = HashingReader::new(Exact {
            inner: file.take(f.size),
            left: f.size,
            path: &f.source,
        });
        append(
            &mut tar,
            f.path.as_str(),
            f.mode.bits(),
            opts.mtime,
            f.size,
            &mut reader,
        )?;
        let (_, digest, _) = reader.finish();
        if digest != f.sha256 {
            return Err(io::Error::other(format!(
                "{} changed while it was being packed",
                f.source.display()
            )));
        }
        progress(f.size);
    }
    let enc = tar.into_inner()?;
    let sink = enc.finish()?;
    let mut sink_inner = sink.inner;
    sink_inner.flush()?;
    Ok((sink_inner, sink.digests.finish()))
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    mode: u32,
    mtime: u64,
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    // ustar with no user or group names: nothing about the build machine leaks in.
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_cksum();
    tar.append(&h, data)
}

/// Fails if the source is shorter than announced, which would misalign the archive.
struct Exact<'a, R> {
    inner: R,
    left: u64,
    path: &'a std::path::Path,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was being packed", self.path.display()),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
