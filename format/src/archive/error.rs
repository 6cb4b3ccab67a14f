//! Everything that can be wrong with a bundle, each variant naming the member at fault.

use std::io;

use crate::claims::ClaimsError;
use crate::digest::Sha256;
use crate::keyring::KeyringError;
use crate::limits::LimitKind;
use crate::minisign::SigError;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle is not a readable zstd/tar stream: {0}")]
    Corrupt(String),
    #[error("bundle is truncated: {0}")]
    Truncated(String),
    #[error("expected member {expected:?}, found {found:?}")]
    UnexpectedMember { expected: String, found: String },
    #[error("member {path:?} is not listed in the manifest")]
    UnlistedMember { path: String },
    #[error("member {path:?} is listed in the manifest but missing from the archive")]
    MissingMember { path: String },
    #[error("member {path:?} is a {kind}, only regular files are allowed")]
    NotRegularFile { path: String, kind: String },
    #[error("member {path:?} has a bad tar header: {detail}")]
    BadHeader { path: String, detail: String },
    #[error("{limit} {value} exceeds the limit of {max} (raise it with {flag})", flag = limit.flag())]
    LimitExceeded {
        limit: LimitKind,
        value: u64,
        max: u64,
    },
    #[error("manifest signature is malformed: {0}")]
    SignatureMalformed(#[source] SigError),
    #[error("manifest signature rejected: {0}")]
    Signature(#[source] KeyringError),
    #[error("manifest signature's trusted comment: {0}")]
    Claims(#[source] ClaimsError),
    #[error("manifest format_version {found} is not supported (this installer reads {supported})")]
    UnsupportedFormat { found: u64, supported: u32 },
    #[error("manifest is invalid: {0}")]
    InvalidManifest(String),
    #[error("{path}: size is {actual} bytes, manifest says {expected}")]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: SHA-256 is {actual}, manifest says {expected}")]
    DigestMismatch {
        path: String,
        expected: Sha256,
        actual: Sha256,
    },
    #[error("data after the end of the archive")]
    TrailingData,
    /// The consumer of the payload failed (disk full, permissions): not the bundle's fault.
    #[error("writing {path}: {source}")]
    Sink {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl BundleError {
    /// True when the bundle itself is at fault (exit 3), false when the host is (disk).
    pub fn is_verification(&self) -> bool {
        !matches!(self, Self::Sink { .. })
    }
}
