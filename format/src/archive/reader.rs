//! The streaming, verifying reader: one pass over the bundle, nothing trusted before it
//! is checked.
//!
//! Order of checks: the manifest member (size-limited) and its signature are read first;
//! the signature is verified over the raw bytes and its signed claims compared with the
//! manifest digest *before* the manifest is parsed. Then each payload member must be the
//! next file the manifest lists, with the listed size and mode, and its SHA-256 is
//! compared as soon as its last byte has been handed to the sink.

use std::io::{self, Read};

use super::error::BundleError;
use super::tee::{Counter, DigestReader, Digests, OutputDigests, RatioExceeded, RatioGuard};
use super::META_MODE;
use crate::claims::Claims;
use crate::digest::{HashingReader, Sha256};
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

type Stream<R> = RatioGuard<zstd::stream::Decoder<'static, io::BufReader<DigestReader<R>>>>;

fn open<R: Read>(input: R, limits: &Limits) -> Result<(tar::Archive<Stream<R>>, Counter), BundleError> {
    let counter = Counter::default();
    let raw = DigestReader {
        inner: input,
        digests: Digests::default(),
        counter: counter.clone(),
    };
    let dec = zstd::stream::Decoder::new(raw).map_err(|e| BundleError::Corrupt(e.to_string()))?;
    let guard = RatioGuard {
        inner: dec,
        compressed: counter.clone(),
        decompressed: 0,
        ratio: limits.ratio,
        floor: limits.ratio_floor,
    };
    Ok((tar::Archive::new(guard), counter))
}

/// Maps an error from the decompressing tar stream to what it says about the bundle.
fn stream_error(e: &io::Error, limits: &Limits) -> BundleError {
    if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<RatioExceeded>()) {
        return BundleError::LimitExceeded {
            limit: LimitKind::Ratio,
            value: r.decompressed / r.compressed.max(1),
            max: limits.ratio,
        };
    }
    let text = e.to_string();
    if e.kind() == io::ErrorKind::UnexpectedEof
        || text.contains("incomplete")
        || text.contains("entire block")
        || text.contains("unexpected end")
    {
        BundleError::Truncated(text)
    } else {
        BundleError::Corrupt(text)
    }
}

/// Checks the parts of a member header the format fixes, before any data is read.
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
    let kind = h.entry_type();
    if !matches!(kind, tar::EntryType::Regular) || h.as_ustar().is_none() {
        return Err(BundleError::NotRegularFile {
            path: path.to_owned(),
            kind: describe_type(kind),
        });
    }
    // A pax or GNU extension could rename the member after the fact; the format has none.
    if entry.path_bytes().as_ref() != h.path_bytes().as_ref() {
        return Err(bad("path set by an extension header".into()));
    }
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

fn describe_type(kind: tar::EntryType) -> String {
    match kind {
        tar::EntryType::Symlink => "symlink".into(),
        tar::EntryType::Link => "hard link".into(),
        tar::EntryType::Char => "character device".into(),
        tar::EntryType::Block => "block device".into(),
        tar::EntryType::Fifo => "FIFO".into(),
        tar::EntryType::Directory => "directory".into(),
        tar::EntryType::Regular => "regular file in a non-ustar header".into(),
        other => format!("tar entry of type {:?}", other.as_byte() as char),
    }
}

fn entry_path_string<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    String::from_utf8_lossy(&entry.path_bytes()).chars().take(200).collect()
}

fn read_small<R: Read>(
    entries: &mut tar::Entries<'_, Stream<R>>,
    expected: &str,
    max: u64,
    limit: LimitKind,
    limits: &Limits,
) -> Result<Vec<u8>, BundleError> {
    let mut entry = match entries.next() {
        None => {
            return Err(BundleError::MissingMember {
                path: expected.to_owned(),
            })
        }
        Some(e) => e.map_err(|e| stream_error(&e, limits))?,
    };
    let found = entry_path_string(&entry);
    if found != expected {
        return Err(BundleError::UnexpectedMember {
            expected: expected.to_owned(),
            found,
        });
    }
    let size = check_header(&entry, expected, META_MODE, Some((max, limit)), None)?;
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
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

/// Parses manifest bytes: version first, so an unknown format gets its own error.
pub(crate) fn parse_manifest(bytes: &[u8], limits: &Limits) -> Result<Manifest, BundleError> {
    #[derive(serde::Deserialize)]
    struct Probe {
        format_version: u64,
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| BundleError::InvalidManifest(format!("not UTF-8: {e}")))?;
    let probe: Probe = serde_json::from_str(text)
        .map_err(|e| BundleError::InvalidManifest(e.to_string()))?;
    if probe.format_version != u64::from(FORMAT_VERSION) {
        return Err(BundleError::UnsupportedFormat {
            found: probe.format_version,
            supported: FORMAT_VERSION,
        });
    }
    let manifest: Manifest =
        serde_json::from_str(text).map_err(|e| BundleError::InvalidManifest(e.to_string()))?;
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
    let (mut archive, _) = open(input, limits)?;
    let (manifest, manifest_sha256, key_id) = {
        let mut entries = archive
            .entries()
            .map_err(|e| stream_error(&e, limits))?;
        let manifest_bytes = read_small(
            &mut entries,
            MANIFEST_PATH,
            limits.manifest_bytes,
            LimitKind::ManifestBytes,
            limits,
        )?;
        let sig_bytes = read_small(
            &mut entries,
            MANIFEST_SIG_PATH,
            limits.signature_bytes,
            LimitKind::SignatureBytes,
            limits,
        )?;
        let (manifest, digest, key_id) = authenticate(&manifest_bytes, &sig_bytes, keyring, limits)?;
        stream_payload(&mut entries, &manifest, limits, sink)?;
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

fn stream_payload<R: Read>(
    entries: &mut tar::Entries<'_, Stream<R>>,
    manifest: &Manifest,
    limits: &Limits,
    sink: &mut dyn FnMut(&FileEntry, &mut dyn Read) -> io::Result<()>,
) -> Result<(), BundleError> {
    let mut expected = manifest.files.iter();
    loop {
        let next = entries.next();
        let want = expected.next();
        let mut entry = match (next, want) {
            (None, None) => return Ok(()),
            (None, Some(want)) => {
                return Err(BundleError::MissingMember {
                    path: want.path.to_string(),
                })
            }
            (Some(e), want) => {
                let e = e.map_err(|e| stream_error(&e, limits))?;
                let found = entry_path_string(&e);
                match want {
                    Some(w) if w.path.as_str() == found => {}
                    Some(w) if manifest.file(&found).is_some() => {
                        return Err(BundleError::UnexpectedMember {
                            expected: w.path.to_string(),
                            found,
                        })
                    }
                    _ => return Err(BundleError::UnlistedMember { path: found }),
                }
                e
            }
        };
        let want = want.expect("matched above");
        check_header(
            &entry,
            want.path.as_str(),
            want.mode.bits(),
            Some((limits.file_bytes, LimitKind::FileBytes)),
            Some(want.size),
        )?;
        let mut hashing = HashingReader::new(&mut entry);
        let sink_result = sink(want, &mut hashing);
        // Read what the sink left, so the digest always covers the whole member.
        let drained = io::copy(&mut hashing, &mut io::sink());
        let (_, actual, len) = hashing.finish();
        if let Err(e) = drained {
            return Err(stream_error(&e, limits));
        }
        if let Err(source) = sink_result {
            // The sink sees stream errors through the reader: report those as the bundle's.
            if source.get_ref().is_some_and(<dyn std::error::Error + Send + Sync>::is::<RatioExceeded>)
                || matches!(source.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData)
            {
                return Err(stream_error(&source, limits));
            }
            return Err(BundleError::Sink {
                path: want.path.to_string(),
                source,
            });
        }
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
}

/// After the last member: only tar's zero blocks may follow, then the end of the file.
fn finish<R: Read>(archive: tar::Archive<Stream<R>>, limits: &Limits) -> Result<OutputDigests, BundleError> {
    let mut guard = archive.into_inner();
    let mut rest = Vec::new();
    (&mut guard)
        .take(1 << 20)
        .read_to_end(&mut rest)
        .map_err(|e| stream_error(&e, limits))?;
    if rest.iter().any(|&b| b != 0) || rest.len() % 512 != 0 || rest.len() >= 1 << 20 {
        return Err(BundleError::TrailingData);
    }
    if rest.is_empty() {
        return Err(BundleError::Truncated("end-of-archive blocks missing".into()));
    }
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
    let (mut archive, _) = open(input, limits)?;
    let mut entries = archive.entries().map_err(|e| stream_error(&e, limits))?;
    let manifest_bytes = read_small(
        &mut entries,
        MANIFEST_PATH,
        limits.manifest_bytes,
        LimitKind::ManifestBytes,
        limits,
    )?;
    let sig_bytes = read_small(
        &mut entries,
        MANIFEST_SIG_PATH,
        limits.signature_bytes,
        LimitKind::SignatureBytes,
        limits,
    )?;
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
    let (mut archive, _) = open(input, limits)?;
    let mut entries = archive.entries().map_err(|e| stream_error(&e, limits))?;
    let manifest_bytes = read_small(
        &mut entries,
        MANIFEST_PATH,
        limits.manifest_bytes,
        LimitKind::ManifestBytes,
        limits,
    )?;
    let sig_bytes = read_small(
        &mut entries,
        MANIFEST_SIG_PATH,
        limits.signature_bytes,
        LimitKind::SignatureBytes,
        limits,
    )?;
    authenticate(&manifest_bytes, &sig_bytes, keyring, limits)
}
