//! Verifying a bundle file: the embedded manifest signature and every payload digest in one
//! streaming pass, and the detached `.minisig` beside it against the same pass's `BLAKE2b`.
//! Shared by `ferry verify` and `ferry-install verify`, so both judge alike.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::{read_bundle, BundleError, Verified};
use crate::claims::{Claims, ClaimsError};
use crate::conform::{self, ConformError, Generated};
use crate::entry_path::EntryPath;
use crate::keyring::{Keyring, KeyringError};
use crate::limits::{LimitKind, Limits};
use crate::manifest::FileEntry;
use crate::manifest::Role;
use crate::minisign::{KeyId, SigError, Signature};

/// Whether a detached signature must be present beside the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetachedPolicy {
    /// Checked when `BUNDLE.minisig` exists; the embedded signature is the trust anchor.
    IfPresent,
    /// Missing `BUNDLE.minisig` fails verification.
    Required,
}

#[derive(Debug, Clone)]
pub enum Detached {
    Absent,
    Verified {
        key_id: KeyId,
        trusted_comment: String,
        /// Whether the comment carried ferry's claims (stock minisign comments do not).
        claims_checked: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub verified: Verified,
    pub detached: Detached,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("{path} is missing (a detached signature is required)")]
    DetachedMissing { path: PathBuf },
    #[error("{path}: {source}")]
    DetachedMalformed {
        path: PathBuf,
        #[source]
        source: SigError,
    },
    #[error("{path}: {source}")]
    Detached {
        path: PathBuf,
        #[source]
        source: KeyringError,
    },
    #[error("{path}: trusted comment: {source}")]
    DetachedClaims {
        path: PathBuf,
        #[source]
        source: ClaimsError,
    },
    /// A generated file says more than the manifest (the signature may be valid: the
    /// content is the problem).
    #[error("{0} (it says more than the manifest declares)")]
    Conform(#[source] ConformError),
}

impl VerifyError {
    /// True when the bundle (or its signature) is at fault, false for host problems.
    pub fn is_verification(&self) -> bool {
        match self {
            Self::Open { .. } => false,
            Self::Bundle(b) => b.is_verification(),
            _ => true,
        }
    }
}

/// A verification failure with the bundle's path in its one-line message.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct Failed {
    pub path: PathBuf,
    #[source]
    pub source: VerifyError,
}

pub fn detached_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".minisig");
    PathBuf::from(s)
}

fn read_detached(path: &Path, limits: &Limits) -> Result<Option<Signature>, VerifyError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(VerifyError::Open {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut text = String::new();
    file.take(limits.signature_bytes + 1)
        .read_to_string(&mut text)
        .map_err(|e| VerifyError::DetachedMalformed {
            path: path.to_owned(),
            source: SigError::Malformed {
                what: "signature file",
                detail: e.to_string(),
            },
        })?;
    if text.len() as u64 > limits.signature_bytes {
        return Err(VerifyError::Bundle(BundleError::LimitExceeded {
            limit: LimitKind::SignatureBytes,
            value: text.len() as u64,
            max: limits.signature_bytes,
        }));
    }
    Signature::parse(&text)
        .map(Some)
        .map_err(|source| VerifyError::DetachedMalformed {
            path: path.to_owned(),
            source,
        })
}

/// Reads and parses the detached signature at `sig_path` (absent is `None`, or an error
/// under [`DetachedPolicy::Required`]). Done before the bundle is read, so a malformed
/// signature fails before any work.
pub fn read_detached_signature(
    sig_path: &Path,
    limits: &Limits,
    policy: DetachedPolicy,
) -> Result<Option<Signature>, VerifyError> {
    let detached_sig = read_detached(sig_path, limits)?;
    if detached_sig.is_none() && policy == DetachedPolicy::Required {
        return Err(VerifyError::DetachedMissing {
            path: sig_path.to_owned(),
        });
    }
    Ok(detached_sig)
}

/// Verifies the bundle at `path`, handing payload files to `sink` as they stream.
pub fn verify_path(
    path: &Path,
    keyring: &Keyring,
    limits: &Limits,
    policy: DetachedPolicy,
    sink: &mut dyn FnMut(&FileEntry, &mut dyn Read) -> io::Result<()>,
) -> Result<Outcome, VerifyError> {
    let sig_path = detached_path(path);
    let detached_sig = read_detached_signature(&sig_path, limits, policy)?;
    let file = File::open(path).map_err(|source| VerifyError::Open {
        path: path.to_owned(),
        source,
    })?;
    // The zstd decoder buffers its input; a kit's parts go through the same reader type.
    let mut input = crate::kit::PartsReader::from_file(file);
    verify_reader(
        &mut input,
        detached_sig.map(|s| (sig_path, s)),
        keyring,
        limits,
        sink,
    )
}

/// Verifies a bundle read from `input`: an open file, or a kit's parts chained into one
/// stream ([`crate::kit::PartsReader`]). `detached` is the signature from
/// [`read_detached_signature`] with its path; it is checked against the BLAKE2b-512 of
/// exactly the bytes `input` produced. Takes `&mut dyn Read` so every caller shares one
/// copy of the reader (the installer's size budget).
pub fn verify_reader(
    input: &mut dyn Read,
    detached: Option<(PathBuf, Signature)>,
    keyring: &Keyring,
    limits: &Limits,
    sink: &mut dyn FnMut(&FileEntry, &mut dyn Read) -> io::Result<()>,
) -> Result<Outcome, VerifyError> {
    // The generated files (a few KiB, bounded by `limits.generated_bytes` in
    // `Manifest::validate`) are kept as they pass, to be held against the manifest once
    // every digest is verified: a tampered file is reported as tampered, not as odd.
    let mut generated: Vec<(EntryPath, Vec<u8>)> = Vec::new();
    let verified = read_bundle(input, keyring, limits, &mut |e, r| {
        if matches!(
            e.role,
            Role::Unit | Role::Sysusers | Role::Tmpfiles | Role::Logrotate
        ) {
            let mut data = Vec::with_capacity(usize::try_from(e.size).unwrap_or(0));
            r.read_to_end(&mut data)?;
            sink(e, &mut &data[..])?;
            generated.push((e.path.clone(), data));
            Ok(())
        } else {
            sink(e, r)
        }
    })?;
    conform::check(
        &verified.manifest,
        &Generated::from_members(&verified.manifest, &generated),
    )
    .map_err(VerifyError::Conform)?;
    let detached = match detached {
        None => Detached::Absent,
        Some((sig_path, sig)) => {
            keyring
                .verify_prehashed(&sig, &verified.bundle.blake2b512)
                .map_err(|source| VerifyError::Detached {
                    path: sig_path.clone(),
                    source,
                })?;
            let claims = Claims::parse(&sig.trusted_comment).map_err(|source| {
                VerifyError::DetachedClaims {
                    path: sig_path.clone(),
                    source,
                }
            })?;
            if let Some(c) = &claims {
                c.check(&Claims::for_manifest(
                    &verified.manifest,
                    verified.manifest_sha256,
                ))
                .map_err(|source| VerifyError::DetachedClaims {
                    path: sig_path.clone(),
                    source,
                })?;
            }
            Detached::Verified {
                key_id: sig.key_id,
                trusted_comment: sig.trusted_comment.clone(),
                claims_checked: claims.is_some(),
            }
        }
    };
    Ok(Outcome { verified, detached })
}

/// The `verify` result both binaries print with `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub bundle: String,
    pub app: String,
    pub version: String,
    pub target: String,
    pub key_id: String,
    pub manifest_sha256: String,
    pub bundle_sha256: String,
    pub files: usize,
    pub payload_bytes: u64,
    pub detached_signature: &'static str,
}

impl Report {
    pub fn new(path: &Path, o: &Outcome) -> Self {
        let m = &o.verified.manifest;
        Self {
            bundle: path.display().to_string(),
            app: m.app.name.to_string(),
            version: m.app.version.to_string(),
            target: m.target.to_string(),
            key_id: o.verified.key_id.to_string(),
            manifest_sha256: o.verified.manifest_sha256.to_string(),
            bundle_sha256: o.verified.bundle.sha256.to_string(),
            files: m.files.len(),
            payload_bytes: m.files.iter().map(|f| f.size).sum(),
            detached_signature: match o.detached {
                Detached::Absent => "absent",
                Detached::Verified {
                    claims_checked: true,
                    ..
                } => "verified",
                Detached::Verified { .. } => "verified (no ferry claims in its trusted comment)",
            },
        }
    }
}

/// Verifies a bundle file without keeping any payload: what both `verify` commands do.
pub fn verify_file(
    path: &Path,
    keyring: &Keyring,
    limits: &Limits,
    policy: DetachedPolicy,
) -> Result<Report, Failed> {
    let outcome = verify_path(path, keyring, limits, policy, &mut |_, r| {
        io::copy(r, &mut io::sink()).map(|_| ())
    })
    .map_err(|source| Failed {
        path: path.to_owned(),
        source,
    })?;
    Ok(Report::new(path, &outcome))
}

impl Report {
    /// The one-line human summary both `verify` commands print on stdout.
    pub fn print_human(&self) {
        println!(
            "OK {} {} {}: signed by {}, {} files ({} bytes) match the manifest; detached signature {}",
            self.app, self.version, self.target, self.key_id, self.files, self.payload_bytes, self.detached_signature
        );
    }
}
