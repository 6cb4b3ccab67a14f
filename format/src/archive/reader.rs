//! The streaming, verifying reader: one pass over the bundle, nothing trusted before it
//! is checked.
//!
//! Order of checks: the manifest member (size-limited) and its signature are read first;
//! the signature is verified over the raw bytes and its signed claims compared with the
//! manifest digest *before* the manifest is parsed. Then each payload member must be the
//! next file the manifest lists, with the listed size and mode, and its SHA-256 is
//! compared as soon as its last byte has been handed to the sink.
//!
//! The tar stream is read raw: the format has no pax or GNU extension headers, so one is
//! refused as a member of the wrong type instead of being applied (or read into memory)
//! by the tar library. The zstd stream must be exactly one frame: a second frame, a
//! skippable frame or any other byte after the first frame is trailing data.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use super::error::BundleError;
use super::tee::{
    Counter, DigestReader, Digests, FileHashers, OutputDigests, RatioExceeded, RatioGuard,
};
use super::META_MODE;
use crate::claims::Claims;
use crate::digest::Sha256;
use crate::keyring::Keyring;
use crate::limits::{LimitKind, Limits};
use crate::manifest::{FileEntry, Manifest, FORMAT_VERSION, MANIFEST_PATH, MANIFEST_SIG_PATH};
use crate::minisign::{KeyId, Signature};

/// What a successful read proved.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub manifest_sha256: Sha256,
    pub key_id: KeyId,
    /// Digests of the whole bundle file, for its detached signature and `SHA256SUMS`.
    pub bundle: OutputDigests,
}

type Stream<R> =
    EndWatch<RatioGuard<zstd::stream::Decoder<'static, io::BufReader<DigestReader<R>>>>>;
type Entries<'a, R> = tar::Entries<'a, Stream<R>>;

/// Set once the decompressed stream has ended, shared with the reading side: an archive
/// that stops where a member header should be (no end-of-archive blocks) is truncated,
/// not an archive with a member missing.
#[derive(Clone, Default)]
struct Ended(Rc<Cell<bool>>);

impl Ended {
    fn get(&self) -> bool {
        self.0.get()
    }
}

struct EndWatch<R> {
    inner: R,
    ended: Ended,
}

impl<R: Read> Read for EndWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended.0.set(true);
        }
        Ok(n)
    }
}

fn open<R: Read>(
    input: R,
    limits: &Limits,
) -> Result<(tar::Archive<Stream<R>>, Ended), BundleError> {
    let counter = Counter::default();
    let raw = DigestReader {
        inner: input,
        digests: Digests::default(),
        counter: counter.clone(),
    };
    // One frame only: what follows it is trailing data (see `finish`), never more archive.
    let dec = zstd::stream::Decoder::new(raw)
        .map_err(|e| BundleError::Corrupt(e.to_string()))?
        .single_frame();
    let guard = RatioGuard {
        inner: dec,
        compressed: counter,
        decompressed: 0,
        ratio: limits.ratio,
        floor: limits.ratio_floor,
    };
    let ended = Ended::default();
    let watch = EndWatch {
        inner: guard,
        ended: ended.clone(),
    };
    Ok((tar::Archive::new(watch), ended))
}

/// The entries of the archive exactly as stored: no extension header is interpreted.
fn raw_entries<'a, R: Read>(
    archive: &'a mut tar::Archive<Stream<R>>,
    limits: &Limits,
) -> Result<Entries<'a, R>, BundleError> {
    Ok(archive
        .entries()
        .map_err(|e| stream_error(&e, limits))?
        .raw(true))
}

/// Maps an error from the decompressing tar stream to what it says about the bundle.
fn stream_error(e: &io::Error, limits: &Limits) -> BundleError {
    if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<RatioExceeded>()) {
        return BundleError::LimitExceeded {
            limit: LimitKind::Ratio,
            // Rounded up: the guard fires when the ratio is strictly above the limit.
            value: r.decompressed.div_ceil(r.compressed.max(1)),
            max: limits.ratio,
        };
    }
    let text = e.to_string();
    if e.kind() == io::ErrorKind::UnexpectedEof
        || text.contains("incomplete")
        || text.contains("entire block")
        || text.contains("unexpected end")
        || text.contains("unexpected EOF")
    {
        BundleError::Truncated(text)
    } else if text.contains("Error strings stripped") || text.contains("Unknown frame descriptor") {
        // libzstd as built here keeps no error texts: say what its failures mean.
        BundleError::Corrupt(
            "not zstd data, or a damaged zstd frame (bad block or checksum)".into(),
        )
    } else {
        BundleError::Corrupt(one_line(&text))
    }
}

/// Error text that came from the bundle, made safe for a terminal and a one-line report:
/// control characters escaped, cut to a readable length.
fn one_line(text: &str) -> String {
    const MAX: usize = 300;
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// After the entries ran out while `path` was still expected: truncated if the stream
/// ended there, else the end-of-archive blocks came early and the member is missing.
fn missing(path: &str, ended: &Ended) -> BundleError {
    if ended.get() {
        BundleError::Truncated(format!(
            "the archive ends where member {path:?} should start"
        ))
    } else {
        BundleError::MissingMember {
            path: path.to_owned(),
        }
    }
}

/// Checks the parts of a member header the format fixes, before any data is read.
// Callers have run `check_type` first: a link or device is refused before its name is
// compared with the manifest.
fn check_header<R: Read>(
    entry: &tar::Entry<'_, R>,
    path: &str,
    mode: u32,
    size_max: Option<(u64, LimitKind)>,
    expected_size: Option<u64>,
) -> Result<u64, BundleError> {
    let h = entry.header();
    let bad = |detail: String| BundleError::BadHeader {
        path: path.to_owned(),
        detail,
    };
    let size = h.size().map_err(|e| bad(e.to_string()))?;
    if let Some((max, limit)) = size_max {
        if size > max {
            return Err(BundleError::LimitExceeded {
                limit,
                value: size,
                max,
            });
        }
    }
    if let Some(expected) = expected_size {
        if size != expected {
            return Err(BundleError::SizeMismatch {
                path: path.to_owned(),
                expected,
                actual: size,
            });
        }
    }
    let m = h.mode().map_err(|e| bad(e.to_string()))?;
    if m != mode {
        return Err(bad(format!("mode {m:04o}, expected {mode:04o}")));
    }
    if h.uid().ok() != Some(0) || h.gid().ok() != Some(0) {
        return Err(bad("owner is not 0:0".into()));
    }
    Ok(size)
}

/// Only regular files in ustar headers are members; checked before the path, so a link or
/// device is named as what it is wherever it appears.
fn check_type<R: Read>(entry: &tar::Entry<'_, R>) -> Result<(), BundleError> {
    let h = entry.header();
    let kind = h.entry_type();
    if matches!(kind, tar::EntryType::Regular) && h.as_ustar().is_some() {
        return Ok(());
    }
    Err(BundleError::NotRegularFile {
        path: entry_path_string(entry),
        kind: describe_type(kind),
    })
}

fn describe_type(kind: tar::EntryType) -> String {
    match kind {
        tar::EntryType::Symlink => "symlink".into(),
        tar::EntryType::Link => "hard link".into(),
        tar::EntryType::Char => "character device".into(),
        tar::EntryType::Block => "block device".into(),
        tar::EntryType::Fifo => "FIFO".into(),
        tar::EntryType::Directory => "directory".into(),
        tar::EntryType::Regular => "regular file in a non-ustar (GNU or v7) header".into(),
        tar::EntryType::XHeader => "pax extended header".into(),
        tar::EntryType::XGlobalHeader => "pax global header".into(),
        tar::EntryType::GNULongName => "GNU long name header".into(),
        tar::EntryType::GNULongLink => "GNU long link header".into(),
        tar::EntryType::GNUSparse => "GNU sparse file".into(),
        other => format!("tar entry of type {:?}", char::from(other.as_byte())),
    }
}

/// The member's path as its header spells it (raw entries: no extension applies), for
/// messages: lossy UTF-8, cut short; printed with `{:?}`, which escapes control characters.
fn entry_path_string<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    String::from_utf8_lossy(&entry.path_bytes())
        .chars()
        .take(200)
        .collect()
}

fn read_small<R: Read>(
    entries: &mut Entries<'_, R>,
    ended: &Ended,
    expected: &str,
    max: u64,
    limit: LimitKind,
    limits: &Limits,
) -> Result<Vec<u8>, BundleError> {
    let mut entry = match entries.next() {
        None => return Err(missing(expected, ended)),
        Some(e) => e.map_err(|e| stream_error(&e, limits))?,
    };
    check_type(&entry)?;
    let found = entry_path_string(&entry);
    if found != expected {
        return Err(BundleError::UnexpectedMember {
            expected: expected.to_owned(),
            found,
        });
    }
    let size = check_header(&entry, expected, META_MODE, Some((max, limit)), None)?;
    // The size is within the limit, but a raised limit must not turn a header's claim
    // into one large allocation: grow as the bytes actually arrive.
    let mut buf = Vec::with_capacity(usize::try_from(size.min(64 << 10)).unwrap_or(0));
    entry
        .read_to_end(&mut buf)
        .map_err(|e| stream_error(&e, limits))?;
    Ok(buf)
}

/// Authenticates the manifest bytes with the signature, then parses and validates them.
fn authenticate(
    manifest_bytes: &[u8],
    sig_bytes: &[u8],
    keyring: &Keyring,
    limits: &Limits,
) -> Result<(Manifest, Sha256, KeyId), BundleError> {
    let sig_text = std::str::from_utf8(sig_bytes)
        .map_err(|_| BundleError::InvalidManifest("signature is not UTF-8".into()))?;
    let sig = Signature::parse(sig_text).map_err(BundleError::SignatureMalformed)?;
    let key = keyring
        .verify(&sig, manifest_bytes)
        .map_err(BundleError::Signature)?;
    let key_id = key.key_id();
    let manifest_sha256 = Sha256::of(manifest_bytes);
    let claims = Claims::parse(&sig.trusted_comment)
        .map_err(BundleError::Claims)?
        .ok_or(BundleError::Claims(crate::claims::ClaimsError::Missing {
            field: "manifest",
        }))?;
    if claims.manifest_sha256 != manifest_sha256 {
        return Err(BundleError::Claims(crate::claims::ClaimsError::Mismatch {
            field: "manifest",
            signed: claims.manifest_sha256.to_string(),
            actual: manifest_sha256.to_string(),
        }));
    }
    let manifest = parse_manifest(manifest_bytes, limits)?;
    claims
        .check(&Claims::for_manifest(&manifest, manifest_sha256))
        .map_err(BundleError::Claims)?;
    Ok((manifest, manifest_sha256, key_id))
}

/// Parses and validates manifest bytes, as the reader does once their signature checked
/// out: version first, so an unknown format gets its own error. Public for `fuzz/`.
pub fn parse_manifest(bytes: &[u8], limits: &Limits) -> Result<Manifest, BundleError> {
    #[derive(serde::Deserialize)]
    struct Probe {
        format_version: u64,
    }
    // serde's messages quote the offending input (an unknown field's name, say): escape it.
    let invalid = |e: serde_json::Error| BundleError::InvalidManifest(one_line(&e.to_string()));
    let text = std::str::from_utf8(bytes)
        .map_err(|e| BundleError::InvalidManifest(format!("not UTF-8: {e}")))?;
    let probe: Probe = serde_json::from_str(text).map_err(invalid)?;
    if probe.format_version != u64::from(FORMAT_VERSION) {
        return Err(BundleError::UnsupportedFormat {
            found: probe.format_version,
            supported: FORMAT_VERSION,
        });
    }
    let manifest: Manifest = serde_json::from_str(text).map_err(invalid)?;
    manifest.validate(limits)?;
    Ok(manifest)
}

/// Reads and verifies a whole bundle in one pass, handing each payload file to `sink` as
/// it streams. On error the sink has seen a prefix of the payload, and the caller must
/// discard what it wrote (the installer removes its staging directory).
pub fn read_bundle<R: Read>(
    input: R,
    keyring: &Keyring,
    limits: &Limits,
    sink: &mut dyn FnMut(&FileEntry, &mut dyn Read) -> io::Result<()>,
) -> Result<Verified, BundleError> {
    let (mut archive, ended) = open(input, limits)?;
    let (manifest, manifest_sha256, key_id) = {
        let mut entries = raw_entries(&mut archive, limits)?;
        let (manifest_bytes, sig_bytes) = read_meta(&mut entries, &ended, limits)?;
        let (manifest, digest, key_id) =
            authenticate(&manifest_bytes, &sig_bytes, keyring, limits)?;
        stream_payload(&mut entries, &ended, &manifest, limits, sink)?;
        (manifest, digest, key_id)
    };
    let bundle = finish(archive, limits)?;
    Ok(Verified {
        manifest,
        manifest_sha256,
        key_id,
        bundle,
    })
}

/// The manifest and signature members, size-limited, unparsed.
fn read_meta<R: Read>(
    entries: &mut Entries<'_, R>,
    ended: &Ended,
    limits: &Limits,
) -> Result<(Vec<u8>, Vec<u8>), BundleError> {
    let manifest = read_small(
        entries,
        ended,
        MANIFEST_PATH,
        limits.manifest_bytes,
        LimitKind::ManifestBytes,
        limits,
    )?;
    let sig = read_small(
        entries,
        ended,
        MANIFEST_SIG_PATH,
        limits.signature_bytes,
        LimitKind::SignatureBytes,
        limits,
    )?;
    Ok((manifest, sig))
}

/// The reader a sink gets: remembers the first read error, so a failed sink can be told
/// apart from a bad bundle (a read error is the bundle's fault, a write error the host's).
struct Watched<'a, R> {
    inner: R,
    failed: &'a mut Option<io::Error>,
}

impl<R: Read> Read for Watched<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            // The sink gets a copy; the original keeps its payload (the ratio guard's type).
            let copy = io::Error::new(e.kind(), e.to_string());
            if self.failed.is_none() {
                *self.failed = Some(e);
            }
            copy
        })
    }
}

/// The manifest index of the file at `path`, if listed (`files` is sorted and unique).
fn listed(manifest: &Manifest, path: &str) -> Option<usize> {
    manifest
        .files
        .binary_search_by(|f| f.path.as_str().cmp(path))
        .ok()
}

fn stream_payload<R: Read>(
    entries: &mut Entries<'_, R>,
    ended: &Ended,
    manifest: &Manifest,
    limits: &Limits,
    sink: &mut dyn FnMut(&FileEntry, &mut dyn Read) -> io::Result<()>,
) -> Result<(), BundleError> {
    let mut file_hashers = FileHashers::default();
    for (index, want) in manifest.files.iter().enumerate() {
        let mut entry = match entries.next() {
            None => return Err(missing(want.path.as_str(), ended)),
            Some(e) => e.map_err(|e| stream_error(&e, limits))?,
        };
        check_type(&entry)?;
        let found = entry_path_string(&entry);
        if found != want.path.as_str() {
            return Err(misplaced(manifest, index, found));
        }
        check_header(
            &entry,
            want.path.as_str(),
            want.mode.bits(),
            Some((limits.file_bytes, LimitKind::FileBytes)),
            Some(want.size),
        )?;
        let mut read_error = None;
        // Large files are hashed on a second thread while this one decompresses.
        let mut hashing = file_hashers.reader(&mut entry, want.size);
        let sink_result = sink(
            want,
            &mut Watched {
                inner: &mut hashing,
                failed: &mut read_error,
            },
        );
        if let Some(e) = read_error {
            // The sink saw the bundle fail (truncated, corrupt, a bomb): report that.
            return Err(stream_error(&e, limits));
        }
        if let Err(source) = sink_result {
            return Err(BundleError::Sink {
                path: want.path.to_string(),
                source,
            });
        }
        // Read what the sink left, so the digest always covers the whole member.
        let drained = io::copy(&mut hashing, &mut io::sink());
        let (_, actual, len) = hashing.finish();
        drained.map_err(|e| stream_error(&e, limits))?;
        if len != want.size {
            return Err(BundleError::Truncated(format!(
                "{}: {len} of {} bytes",
                want.path, want.size
            )));
        }
        if actual != want.sha256 {
            return Err(BundleError::DigestMismatch {
                path: want.path.to_string(),
                expected: want.sha256,
                actual,
            });
        }
    }
    match entries.next() {
        None => Ok(()),
        Some(e) => {
            let e = e.map_err(|e| stream_error(&e, limits))?;
            check_type(&e)?;
            Err(misplaced(
                manifest,
                manifest.files.len(),
                entry_path_string(&e),
            ))
        }
    }
}

/// What a member found where the manifest's file number `index` (or the end) belongs is.
fn misplaced(manifest: &Manifest, index: usize, found: String) -> BundleError {
    match listed(manifest, &found) {
        None => BundleError::UnlistedMember { path: found },
        Some(i) if i < index => BundleError::BadHeader {
            path: found,
            detail: "duplicate member: the archive already had one with this path".into(),
        },
        Some(_) => match manifest.files.get(index) {
            Some(want) => BundleError::UnexpectedMember {
                expected: want.path.to_string(),
                found,
            },
            None => BundleError::UnlistedMember { path: found },
        },
    }
}

/// After the last member: only tar's zero blocks may follow, then the end of the zstd
/// frame, then the end of the file.
fn finish<R: Read>(
    archive: tar::Archive<Stream<R>>,
    limits: &Limits,
) -> Result<OutputDigests, BundleError> {
    let mut guard = archive.into_inner().inner;
    let mut rest = Vec::new();
    (&mut guard)
        .take(1 << 20)
        .read_to_end(&mut rest)
        .map_err(|e| stream_error(&e, limits))?;
    if rest.iter().any(|&b| b != 0) || rest.len() % 512 != 0 || rest.len() >= 1 << 20 {
        return Err(BundleError::TrailingData);
    }
    if rest.is_empty() {
        return Err(BundleError::Truncated(
            "end-of-archive blocks missing".into(),
        ));
    }
    // The decoder stops at the end of its one frame; its input buffer keeps what follows.
    let mut raw = guard.inner.finish();
    let mut extra = [0u8; 1];
    let n = raw
        .read(&mut extra)
        .map_err(|e| BundleError::Corrupt(e.to_string()))?;
    if n != 0 {
        return Err(BundleError::TrailingData);
    }
    Ok(raw.into_inner().digests.finish())
}

/// Reads only the manifest and its signature, trusting nothing: for `ferry inspect`.
pub fn read_manifest_unverified<R: Read>(
    input: R,
    limits: &Limits,
) -> Result<(Manifest, Signature, Sha256), BundleError> {
    let (mut archive, ended) = open(input, limits)?;
    let mut entries = raw_entries(&mut archive, limits)?;
    let (manifest_bytes, sig_bytes) = read_meta(&mut entries, &ended, limits)?;
    let sig_text = std::str::from_utf8(&sig_bytes)
        .map_err(|_| BundleError::InvalidManifest("signature is not UTF-8".into()))?;
    let sig = Signature::parse(sig_text).map_err(BundleError::SignatureMalformed)?;
    let manifest = parse_manifest(&manifest_bytes, limits)?;
    Ok((manifest, sig, Sha256::of(&manifest_bytes)))
}

/// Reads the manifest and its signature and verifies them, reading no payload: lets the
/// installer run its preflight checks (arch, downgrade, space) before the real pass.
pub fn read_verified_manifest<R: Read>(
    input: R,
    keyring: &Keyring,
    limits: &Limits,
) -> Result<(Manifest, Sha256, KeyId), BundleError> {
    let (mut archive, ended) = open(input, limits)?;
    let mut entries = raw_entries(&mut archive, limits)?;
    let (manifest_bytes, sig_bytes) = read_meta(&mut entries, &ended, limits)?;
    authenticate(&manifest_bytes, &sig_bytes, keyring, limits)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::minisign::{sign, SecretKey};

    type SetLimit = fn(&mut Limits, u64);
    const SDE: u64 = 1_700_000_000;

    fn key() -> SecretKey {
        SecretKey::from_seed(&[7; 32], KeyId([7; 8]))
    }

    fn keyring() -> Keyring {
        Keyring::new(vec![key().public_key()])
    }

    /// Payload of the test bundle: `(path, mode, role, data)`, sorted by path.
    fn payload() -> Vec<(&'static str, u32, &'static str, Vec<u8>)> {
        crate::testdata::payload()
    }

    fn manifest_json(files: &[(&str, u32, &str, Vec<u8>)]) -> serde_json::Value {
        crate::testdata::manifest_json(files, SDE)
    }

    fn signature(manifest: &[u8]) -> Vec<u8> {
        let m: Manifest = serde_json::from_slice(manifest).expect("a valid test manifest");
        let comment =
            Claims::for_manifest(&m, Sha256::of(manifest)).trusted_comment(SDE, "manifest.json");
        sign(&key(), manifest, &comment, "test")
            .unwrap()
            .to_file_string()
            .into_bytes()
    }

    fn member(tar: &mut Vec<u8>, path: &str, mode: u32, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(SDE);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }

    /// The raw tar of a bundle with this payload, manifest validly signed.
    fn raw_tar(files: &[(&str, u32, &str, Vec<u8>)]) -> Vec<u8> {
        let mut manifest = serde_json::to_vec_pretty(&manifest_json(files)).unwrap();
        manifest.push(b'\n');
        let mut tar = Vec::new();
        member(&mut tar, MANIFEST_PATH, META_MODE, &manifest);
        member(
            &mut tar,
            MANIFEST_SIG_PATH,
            META_MODE,
            &signature(&manifest),
        );
        for (path, mode, _, data) in files {
            member(&mut tar, path, *mode, data);
        }
        tar.extend_from_slice(&[0; 1024]);
        tar
    }

    fn zst(raw: &[u8]) -> Vec<u8> {
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_checksum(true).unwrap();
        enc.write_all(raw).unwrap();
        enc.finish().unwrap()
    }

    fn read(bundle: &[u8], limits: &Limits) -> Result<Verified, BundleError> {
        read_bundle(bundle, &keyring(), limits, &mut |_, r| {
            io::copy(r, &mut io::sink()).map(|_| ())
        })
    }

    #[test]
    fn a_valid_bundle_reads() {
        let bundle = zst(&raw_tar(&payload()));
        let v = read(&bundle, &Limits::default()).unwrap();
        assert_eq!(v.manifest.files.len(), payload().len());
        assert_eq!(v.bundle.size, bundle.len() as u64);
        assert_eq!(v.bundle.sha256, Sha256::of(&bundle));
        read_manifest_unverified(&bundle[..], &Limits::default()).unwrap();
        read_verified_manifest(&bundle[..], &keyring(), &Limits::default()).unwrap();
    }

    /// Every limit: at exactly what the bundle needs it passes, one below it fails with
    /// that limit, its value and its maximum.
    #[test]
    fn each_limit_fires_just_above_and_not_at_the_limit() {
        let files = payload();
        let tar = raw_tar(&files);
        let bundle = zst(&tar);
        let manifest_len = {
            let h = tar::Header::from_byte_slice(&tar[..512]);
            h.size().unwrap()
        };
        let sig_len = {
            let at = 512 + usize::try_from(manifest_len.div_ceil(512) * 512).unwrap();
            tar::Header::from_byte_slice(&tar[at..at + 512])
                .size()
                .unwrap()
        };
        let sizes: Vec<u64> = files.iter().map(|f| f.3.len() as u64).collect();
        let table: [(LimitKind, u64, SetLimit); 6] = [
            (LimitKind::ManifestBytes, manifest_len, |l, v| {
                l.manifest_bytes = v;
            }),
            (LimitKind::SignatureBytes, sig_len, |l, v| {
                l.signature_bytes = v;
            }),
            (LimitKind::Files, files.len() as u64, |l, v| {
                l.files = usize::try_from(v).unwrap();
            }),
            (
                LimitKind::FileBytes,
                *sizes.iter().max().unwrap(),
                |l, v| {
                    l.file_bytes = v;
                },
            ),
            (LimitKind::TotalBytes, sizes.iter().sum(), |l, v| {
                l.total_bytes = v;
            }),
            (
                LimitKind::PathBytes,
                files.iter().map(|f| f.0.len() as u64).max().unwrap(),
                |l, v| {
                    l.path_bytes = usize::try_from(v).unwrap();
                },
            ),
        ];
        for (kind, needed, set) in table {
            let mut at = Limits::default();
            set(&mut at, needed);
            read(&bundle, &at).unwrap_or_else(|e| panic!("{kind} at {needed}: {e}"));
            let mut below = Limits::default();
            set(&mut below, needed - 1);
            match read(&bundle, &below) {
                Err(e @ BundleError::LimitExceeded { limit, value, max }) => {
                    assert_eq!((limit, value, max), (kind, needed, needed - 1), "{kind}");
                    assert!(e.to_string().contains(kind.flag()), "{e}");
                }
                other => panic!(
                    "{kind} at {}: expected the limit, got {other:?}",
                    needed - 1
                ),
            }
            // The preflight read (manifest and signature only) applies the same limits.
            if matches!(
                kind,
                LimitKind::ManifestBytes | LimitKind::SignatureBytes | LimitKind::Files
            ) {
                assert!(
                    read_verified_manifest(&bundle[..], &keyring(), &below).is_err(),
                    "{kind}"
                );
            }
        }
    }

    /// The ratio guard: a file of zeros expands far beyond the limit once past the floor;
    /// below the floor, or with the limit raised, it passes.
    #[test]
    fn the_ratio_limit_fires_past_its_floor() {
        let mut files = payload();
        files.insert(2, ("doc/zeros", 0o644, "doc", vec![0; 4 << 20]));
        let bundle = zst(&raw_tar(&files));
        let strict = Limits {
            ratio: 10,
            ratio_floor: 1 << 20,
            ..Limits::default()
        };
        match read(&bundle, &strict) {
            Err(BundleError::LimitExceeded {
                limit: LimitKind::Ratio,
                value,
                max: 10,
            }) => assert!(value > 10, "{value}"),
            other => panic!("expected the ratio limit, got {other:?}"),
        }
        // Under the floor the ratio is not checked; a raised ratio lets it through.
        read(
            &bundle,
            &Limits {
                ratio_floor: 8 << 20,
                ..strict.clone()
            },
        )
        .unwrap();
        read(
            &bundle,
            &Limits {
                ratio: 100_000,
                ..strict
            },
        )
        .unwrap();
    }

    /// A pax header is refused as a member of the wrong type, before its data is read:
    /// a 1 GiB one costs nothing.
    #[test]
    fn extension_headers_are_refused_without_reading_them() {
        let mut raw = Vec::new();
        let mut h = tar::Header::new_ustar();
        h.set_path("PaxHeaders/x").unwrap();
        h.set_entry_type(tar::EntryType::XHeader);
        h.set_size(1 << 30);
        h.set_cksum();
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(b"30 path=ferry/manifest.json\n");
        match read(&zst(&raw), &Limits::default()) {
            Err(BundleError::NotRegularFile { kind, .. }) => {
                assert_eq!(kind, "pax extended header");
            }
            other => panic!("expected a refused pax header, got {other:?}"),
        }
    }

    #[test]
    fn anything_after_the_zstd_frame_is_trailing_data() {
        let bundle = zst(&raw_tar(&payload()));
        let skippable = [0x50, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, b'x'];
        for extra in [&zst(&[0; 1024])[..], &skippable[..], b"x"] {
            let mut b = bundle.clone();
            b.extend_from_slice(extra);
            assert!(
                matches!(read(&b, &Limits::default()), Err(BundleError::TrailingData)),
                "{extra:?}"
            );
        }
    }

    #[test]
    fn truncation_at_a_member_boundary_is_truncation() {
        let tar = raw_tar(&payload());
        // After the manifest and signature members: the archive just stops.
        let h = tar::Header::from_byte_slice(&tar[..512]);
        let manifest_end = 512 + usize::try_from(h.size().unwrap().div_ceil(512) * 512).unwrap();
        for cut in [0, manifest_end, tar.len() - 1024] {
            match read(&zst(&tar[..cut]), &Limits::default()) {
                Err(BundleError::Truncated(_)) => {}
                other => panic!("cut at {cut}: expected truncated, got {other:?}"),
            }
        }
        // End-of-archive blocks in the middle: a member is missing, not truncated.
        let mut early = tar[..tar.len() - 1024].to_vec();
        let last = early.len() - 1024; // sysusers/hello.conf: header plus one data block
        early.truncate(last);
        early.extend_from_slice(&[0; 1024]);
        assert!(matches!(
            read(&zst(&early), &Limits::default()),
            Err(BundleError::MissingMember { .. })
        ));
    }

    /// A sink's own failure is the host's (exit 1); a read failure it passes on is the
    /// bundle's (exit 3), whatever the error kinds.
    #[test]
    fn sink_failures_and_bundle_failures_are_told_apart() {
        let bundle = zst(&raw_tar(&payload()));
        let r = read_bundle(&bundle[..], &keyring(), &Limits::default(), &mut |_, _| {
            Err(io::Error::new(io::ErrorKind::InvalidData, "disk says no"))
        });
        assert!(matches!(r, Err(BundleError::Sink { .. })), "{r:?}");
        assert!(!r.unwrap_err().is_verification());

        let mut files = payload();
        files.insert(2, ("doc/zeros", 0o644, "doc", vec![0; 4 << 20]));
        let bomb = zst(&raw_tar(&files));
        let strict = Limits {
            ratio: 10,
            ratio_floor: 1 << 20,
            ..Limits::default()
        };
        let r = read_bundle(&bomb[..], &keyring(), &strict, &mut |_, r| {
            // A sink that reports whatever it read as its own kind of error.
            io::copy(r, &mut io::sink())
                .map(|_| ())
                .map_err(|e| io::Error::other(e.to_string()))
        });
        assert!(
            matches!(
                r,
                Err(BundleError::LimitExceeded {
                    limit: LimitKind::Ratio,
                    ..
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn members_out_of_place_are_named() {
        let files = payload();
        let mut manifest = serde_json::to_vec_pretty(&manifest_json(&files)).unwrap();
        manifest.push(b'\n');
        let build = |order: &[usize]| {
            let mut tar = Vec::new();
            member(&mut tar, MANIFEST_PATH, META_MODE, &manifest);
            member(
                &mut tar,
                MANIFEST_SIG_PATH,
                META_MODE,
                &signature(&manifest),
            );
            for &i in order {
                let (path, mode, _, data) = &files[i];
                member(&mut tar, path, *mode, data);
            }
            tar.extend_from_slice(&[0; 1024]);
            zst(&tar)
        };
        let err = |order: &[usize]| {
            read(&build(order), &Limits::default())
                .unwrap_err()
                .to_string()
        };
        assert!(
            err(&[0, 0, 1, 2]).contains("duplicate member"),
            "{}",
            err(&[0, 0, 1, 2])
        );
        assert!(
            err(&[0, 1, 2, 2]).contains("duplicate member"),
            "{}",
            err(&[0, 1, 2, 2])
        );
        assert!(
            err(&[0, 2, 1]).contains("expected member \"config/prod/hello.toml\""),
            "{}",
            err(&[0, 2, 1])
        );
        assert!(
            err(&[0, 1, 2, 3, 4]).contains("\"tmpfiles/hello.conf\" is listed"),
            "{}",
            err(&[0, 1, 2, 3, 4])
        );
    }

    #[test]
    fn manifest_errors_are_one_escaped_line() {
        let mut v = manifest_json(&payload());
        v["\u{1b}[2J\nfield"] = serde_json::json!(1);
        let bytes = serde_json::to_vec(&v).unwrap();
        let e = parse_manifest(&bytes, &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(e.contains("unknown field"), "{e}");
    }

    /// Writes the fuzz targets' binary seeds (bundles signed with this module's test key,
    /// which the targets trust) under `$FERRY_FUZZ_SEEDS/<target>/`: `scripts/fuzz` runs
    /// it, so no binary seed is committed.
    /// Without `$FERRY_FUZZ_SEEDS` the seeds go to a temporary directory, and the test
    /// checks that the valid seed bundle really verifies (so the fuzzers start from
    /// inputs that reach deep into the reader).
    #[test]
    fn write_fuzz_seeds() {
        let tmp = tempfile::tempdir().unwrap();
        let dir_os = std::env::var_os("FERRY_FUZZ_SEEDS")
            .unwrap_or_else(|| tmp.path().as_os_str().to_owned());
        let dir = std::path::Path::new(&dir_os);
        let write = |target: &str, name: &str, data: &[u8]| {
            std::fs::create_dir_all(dir.join(target)).unwrap();
            std::fs::write(dir.join(target).join(name), data).unwrap();
        };
        let files = payload();
        let tar = raw_tar(&files);
        let manifest = {
            let mut m = serde_json::to_vec_pretty(&manifest_json(&files)).unwrap();
            m.push(b'\n');
            m
        };
        let mut with_doc = payload();
        with_doc.insert(1, ("doc/zeros", 0o644, "doc", vec![0; 4096]));
        write("archive", "valid.tar.zst", &zst(&tar));
        write("archive", "with-doc.tar.zst", &zst(&raw_tar(&with_doc)));
        write("archive_tar", "valid.tar", &tar);
        write("archive_tar", "with-doc.tar", &raw_tar(&with_doc));
        write("manifest", "small.json", &manifest);
        write("signature", "small.minisig", &signature(&manifest));
        write(
            "keys",
            "fuzz.pub",
            key().public_key().to_file_string().as_bytes(),
        );
        let sk = key()
            .to_file_string(&crate::minisign::Encryption::Unencrypted)
            .unwrap();
        write("keys", "fuzz.key", sk.as_bytes());
        let valid = std::fs::read(dir.join("archive/valid.tar.zst")).unwrap();
        let keyring = crate::keyring::Keyring::new(vec![key().public_key()]);
        read_bundle(&valid[..], &keyring, &Limits::default(), &mut |_, r| {
            io::copy(r, &mut io::sink()).map(|_| ())
        })
        .expect("the valid seed bundle verifies");
    }
}
