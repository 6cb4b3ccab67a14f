//! `ferry rotate-key` and `ferry revoke-key`: signed statements that move a fleet's trust
//! from one key to the next, or withdraw it. See `ferry_format::trust` for the format.

use std::path::Path;

use anyhow::{Context as _, Result};
use ferry_format::atomic::write_atomic;
use ferry_format::minisign::{KeyId, PublicKey};
use ferry_format::trust::{revocation_statement, rotation_statement};
use serde::Serialize;

use crate::keys;

#[derive(Debug, Serialize)]
pub struct StatementReport {
    pub statement: String,
    pub signed_by: String,
    pub subject: Vec<String>,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Signs "NEW replaces OLD" with the old secret key.
pub fn rotate(
    old_key: &Path,
    new_pub: &Path,
    out: &Path,
    passphrase: keys::Passphrase,
) -> Result<StatementReport> {
    let old = keys::load_secret(old_key, passphrase)?;
    let new = PublicKey::load(new_pub).with_context(|| format!("loading {}", new_pub.display()))?;
    let text = rotation_statement(&old, &new, now())?;
    write_atomic(out, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(StatementReport {
        statement: out.display().to_string(),
        signed_by: old.key_id().to_string(),
        subject: vec![new.key_id().to_string()],
    })
}

/// Signs a revocation of `ids` with `signer`.
pub fn revoke(
    signer_key: &Path,
    ids: &[String],
    reason: &str,
    out: &Path,
    passphrase: keys::Passphrase,
) -> Result<StatementReport> {
    let signer = keys::load_secret(signer_key, passphrase)?;
    let ids = ids
        .iter()
        .map(|s| {
            s.parse::<KeyId>()
                .map_err(|_| anyhow::anyhow!("{s:?} is not a key id (16 hex digits)"))
        })
        .collect::<Result<Vec<_>>>()?;
    let text = revocation_statement(&signer, &ids, now(), reason)?;
    write_atomic(out, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(StatementReport {
        statement: out.display().to_string(),
        signed_by: signer.key_id().to_string(),
        subject: ids.iter().map(ToString::to_string).collect(),
    })
}
