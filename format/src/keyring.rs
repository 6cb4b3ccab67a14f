//! The set of public keys a verifier trusts, chosen by the key id in each signature.

use std::path::Path;

use crate::minisign::{KeyId, PublicKey, SigError, Signature};

#[derive(Debug, Default, Clone)]
pub struct Keyring {
    keys: Vec<PublicKey>,
    /// Revoked key ids: a signature by one is refused with its own error.
    revoked: Vec<KeyId>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("signed by key {key_id}, which is not trusted (trusted: {trusted})")]
    UntrustedKey { key_id: KeyId, trusted: String },
    #[error("signed by key {key_id}, which is revoked")]
    RevokedKey { key_id: KeyId },
    #[error("signature by key {key_id} is invalid: {source}")]
    BadSignature {
        key_id: KeyId,
        #[source]
        source: SigError,
    },
}

impl Keyring {
    pub fn new(keys: Vec<PublicKey>) -> Self {
        Self {
            keys,
            revoked: Vec::new(),
        }
    }

    /// Trusted keys minus the revoked ones; signatures by revoked ids get `RevokedKey`.
    pub fn with_revoked(keys: Vec<PublicKey>, revoked: Vec<KeyId>) -> Self {
        let keys = keys
            .into_iter()
            .filter(|k| !revoked.contains(&k.key_id()))
            .collect();
        Self { keys, revoked }
    }

    pub fn is_revoked(&self, id: &KeyId) -> bool {
        self.revoked.contains(id)
    }

    pub fn load(paths: &[impl AsRef<Path>]) -> Result<Self, SigError> {
        let keys = paths
            .iter()
            .map(|p| PublicKey::load(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self::new(keys))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    pub fn get(&self, id: &KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.key_id() == *id)
    }

    fn lookup(&self, sig: &Signature) -> Result<&PublicKey, KeyringError> {
        if self.is_revoked(&sig.key_id) {
            return Err(KeyringError::RevokedKey { key_id: sig.key_id });
        }
        self.get(&sig.key_id)
            .ok_or_else(|| KeyringError::UntrustedKey {
                key_id: sig.key_id,
                trusted: self.describe(),
            })
    }

    /// Verifies a whole (small) message.
    pub fn verify(&self, sig: &Signature, msg: &[u8]) -> Result<&PublicKey, KeyringError> {
        let key = self.lookup(sig)?;
        key.verify(sig, msg)
            .map_err(|source| KeyringError::BadSignature {
                key_id: sig.key_id,
                source,
            })?;
        Ok(key)
    }

    /// Verifies a prehashed signature against a BLAKE2b-512 digest computed while streaming.
    pub fn verify_prehashed(
        &self,
        sig: &Signature,
        blake2b512: &[u8; 64],
    ) -> Result<&PublicKey, KeyringError> {
        let key = self.lookup(sig)?;
        key.verify_prehashed(sig, blake2b512)
            .map_err(|source| KeyringError::BadSignature {
                key_id: sig.key_id,
                source,
            })?;
        Ok(key)
    }

    fn describe(&self) -> String {
        if self.keys.is_empty() {
            return "none".into();
        }
        self.keys
            .iter()
            .map(|k| k.key_id().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
