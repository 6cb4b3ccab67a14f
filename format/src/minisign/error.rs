//! The one error type for keys, signatures and signify files.

use std::path::PathBuf;

use super::key::KeyId;
use super::signature::Algorithm;

/// Why a key or signature could not be read, written, made or verified.
#[derive(Debug, thiserror::Error)]
pub enum SigError {
    #[error("signature was made by key {actual}, but the public key is {expected}")]
    KeyIdMismatch { expected: KeyId, actual: KeyId },
    #[error("signature verification failed: the signed data is not what was signed")]
    BadSignature,
    #[error("trusted comment signature verification failed: the trusted comment was altered")]
    BadGlobalSignature,
    #[error("{actual} signature where a {expected} one is required")]
    AlgorithmMismatch {
        expected: Algorithm,
        actual: Algorithm,
    },
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("invalid {what}: {detail}")]
    InvalidInput { what: &'static str, detail: String },
    #[error("{what} is too large: {size} bytes, the limit is {limit}")]
    TooLarge {
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("wrong passphrase for the secret key")]
    WrongPassphrase,
    #[error("the secret key is encrypted and no passphrase was given")]
    PassphraseRequired,
    #[error("unsupported signature algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported key derivation function {0:?} in the secret key")]
    UnsupportedKdf(String),
    #[error("unsupported checksum algorithm {0:?} in the secret key")]
    UnsupportedChecksum(String),
    #[error(
        "secret key asks for too costly a key derivation (opslimit {opslimit}, memlimit {memlimit})"
    )]
    KdfTooCostly { opslimit: u64, memlimit: u64 },
    #[error("system random number generator failed: {0}")]
    Random(getrandom::Error),
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SigError {
    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            what,
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        Self::InvalidInput {
            what,
            detail: detail.into(),
        }
    }
}
