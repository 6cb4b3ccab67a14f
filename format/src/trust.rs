//! Keys over time: rotation statements and revocations, resolved into a [`Keyring`].
//!
//! Neither minisign nor signify has rotation or revocation, so ferry adds two small signed
//! statements, both in signify's embedded form (checkable with `signify-openbsd -V -e`):
//!
//! ```text
//! ferry key rotation v1
//! old-key-id: 0807060504030201
//! new-key: RWQ...            (the new minisign public key, base64 line)
//! issued: 1700000000
//! ```
//! signed by the *old* key, which vouches for the new one (TUF's root-rotation idea with a
//! threshold of one), and
//!
//! ```text
//! ferry key revocation v1
//! revoked-key-id: 0807060504030201
//! issued: 1700000000
//! reason: compromised
//! ```
//! signed by any trusted key (a key may revoke itself). Operators can also list revoked
//! key ids in a plain `revoked` file beside the trusted keys.
//!
//! Resolution: revocations apply first and always win; then rotations signed by a trusted,
//! unrevoked key add their new key, repeated until nothing changes (so A→B→C chains
//! work). A revoked key's rotation statements are ignored, so a stolen key cannot rotate
//! trust to its thief once it is revoked.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::keyring::Keyring;
use crate::minisign::{KeyId, PublicKey, SecretKey, SigError};
use crate::signify;

const ROTATION_HEADER: &str = "ferry key rotation v1";
const REVOCATION_HEADER: &str = "ferry key revocation v1";

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{what} is malformed: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error(transparent)]
    Sig(#[from] SigError),
}

/// A signed statement as found on disk, not yet checked against any key.
#[derive(Debug, Clone)]
pub struct Statement {
    /// Where it came from, for messages.
    pub origin: String,
    pub text: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rotation {
    old: KeyId,
    new: PublicKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Revocation {
    revoked: Vec<KeyId>,
}

fn fields(message: &[u8], header: &'static str) -> Result<Vec<(String, String)>, TrustError> {
    let text = std::str::from_utf8(message).map_err(|_| TrustError::Malformed {
        what: header,
        detail: "not UTF-8".into(),
    })?;
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return Err(TrustError::Malformed {
            what: header,
            detail: format!("first line is not {header:?}"),
        });
    }
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_once(": ")
                .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
                .ok_or_else(|| TrustError::Malformed {
                    what: header,
                    detail: format!("line {l:?} is not `key: value`"),
                })
        })
        .collect()
}

fn parse_key_id(s: &str, what: &'static str) -> Result<KeyId, TrustError> {
    s.parse().map_err(|_| TrustError::Malformed {
        what,
        detail: format!("bad key id {s:?}"),
    })
}

fn parse_rotation(message: &[u8]) -> Result<Rotation, TrustError> {
    let f = fields(message, ROTATION_HEADER)?;
    let get = |k: &str| {
        f.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| TrustError::Malformed {
                what: ROTATION_HEADER,
                detail: format!("missing {k}"),
            })
    };
    Ok(Rotation {
        old: parse_key_id(&get("old-key-id")?, ROTATION_HEADER)?,
        new: PublicKey::from_base64(&get("new-key")?)?,
    })
}

fn parse_revocation(message: &[u8]) -> Result<Revocation, TrustError> {
    let f = fields(message, REVOCATION_HEADER)?;
    let revoked = f
        .iter()
        .filter(|(k, _)| k == "revoked-key-id")
        .map(|(_, v)| parse_key_id(v, REVOCATION_HEADER))
        .collect::<Result<Vec<_>, _>>()?;
    if revoked.is_empty() {
        return Err(TrustError::Malformed {
            what: REVOCATION_HEADER,
            detail: "no revoked-key-id".into(),
        });
    }
    Ok(Revocation { revoked })
}

/// Writes a rotation statement, signed by the old key.
pub fn rotation_statement(
    old: &SecretKey,
    new: &PublicKey,
    issued: u64,
) -> Result<String, TrustError> {
    let msg = format!(
        "{ROTATION_HEADER}\nold-key-id: {}\nnew-key: {}\nissued: {issued}\n",
        old.key_id(),
        new.to_base64()
    );
    Ok(signify::sign_embedded(
        old,
        msg.as_bytes(),
        &format!("ferry key rotation: {} -> {}", old.key_id(), new.key_id()),
    )?)
}

/// Writes a revocation statement, signed by `signer`.
pub fn revocation_statement(
    signer: &SecretKey,
    revoked: &[KeyId],
    issued: u64,
    reason: &str,
) -> Result<String, TrustError> {
    let mut msg = format!("{REVOCATION_HEADER}\n");
    for id in revoked {
        let _ = writeln!(msg, "revoked-key-id: {id}");
    }
    let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
    let _ = write!(msg, "issued: {issued}\nreason: {reason}\n");
    Ok(signify::sign_embedded(
        signer,
        msg.as_bytes(),
        &format!("ferry key revocation signed by {}", signer.key_id()),
    )?)
}

/// The message of a signify embedded signature: everything after the second newline.
fn embedded_message(text: &[u8]) -> Option<&[u8]> {
    let first = text.iter().position(|&b| b == b'\n')?;
    let second = text[first + 1..].iter().position(|&b| b == b'\n')? + first + 1;
    Some(&text[second + 1..])
}

/// Verifies an embedded statement against any of `keys`; returns the message and signer.
fn open_statement<'a>(st: &'a Statement, keys: &[PublicKey]) -> Option<(&'a [u8], KeyId)> {
    keys.iter().find_map(|k| {
        signify::verify_embedded(k, &st.text)
            .ok()
            .map(|m| (m, k.key_id()))
    })
}

/// Everything a host knows about which keys to trust.
#[derive(Debug, Default, Clone)]
pub struct TrustStore {
    pub roots: Vec<PublicKey>,
    pub rotations: Vec<Statement>,
    pub revocations: Vec<Statement>,
    /// Key ids an operator listed as revoked (plain file, trusted by its placement).
    pub revoked_ids: Vec<KeyId>,
    /// Keys the host trusts but this run does not (an installer given `--pubkey` in place
    /// of the host's keys): their revocations still count, because a revocation only ever
    /// removes trust; they verify nothing else.
    pub revokers: Vec<PublicKey>,
}

/// The resolved trust, with a record of why each key is (not) trusted.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub keyring: Keyring,
    pub notes: Vec<String>,
}

impl TrustStore {
    pub fn resolve(&self) -> Result<Resolved, TrustError> {
        let mut notes = Vec::new();
        let mut revoked: BTreeSet<KeyId> = self.revoked_ids.iter().copied().collect();
        // Who may revoke: a key this host trusts (a root, or a key a verified rotation
        // chain from a root adds), or the revoked key itself. A rotation statement counts
        // for nothing until its signature verifies by such a key, so a statement signed by
        // a stranger cannot smuggle in a key whose revocations would then be honoured.
        let may_revoke: Vec<PublicKey> = self.roots.iter().chain(&self.revokers).cloned().collect();
        let vouched = self.closure(&may_revoke, &BTreeSet::new(), &mut Vec::new())?;
        // Public keys a self-revocation may be checked against: only to learn what a
        // key looks like; such a statement revokes nothing but its own signer.
        let mut strangers: Vec<PublicKey> = Vec::new();
        for r in &self.rotations {
            if let Some(rot) = embedded_message(&r.text).and_then(|m| parse_rotation(m).ok()) {
                if !vouched.iter().any(|k| k.key_id() == rot.new.key_id()) {
                    strangers.push(rot.new);
                }
            }
        }
        for st in &self.revocations {
            let (msg, signer, trusted) = match open_statement(st, &vouched) {
                Some((m, s)) => (m, s, true),
                None => match open_statement(st, &strangers) {
                    Some((m, s)) => (m, s, false),
                    None => {
                        return Err(TrustError::Malformed {
                            what: REVOCATION_HEADER,
                            detail: format!(
                                "{}: not signed by a trusted key or by the key it revokes",
                                st.origin
                            ),
                        })
                    }
                },
            };
            let rev = parse_revocation(msg)?;
            if !trusted && rev.revoked.iter().any(|id| *id != signer) {
                return Err(TrustError::Malformed {
                    what: REVOCATION_HEADER,
                    detail: format!(
                        "{}: signed by {signer}, which this host does not trust, and revokes other keys than itself",
                        st.origin
                    ),
                });
            }
            for id in rev.revoked {
                notes.push(format!(
                    "{id} revoked by a statement signed by {signer} ({})",
                    st.origin
                ));
                revoked.insert(id);
            }
        }
        let roots: Vec<PublicKey> = self
            .roots
            .iter()
            .filter(|k| !revoked.contains(&k.key_id()))
            .cloned()
            .collect();
        let trusted = self.closure(&roots, &revoked, &mut notes)?;
        Ok(Resolved {
            keyring: Keyring::with_revoked(trusted, revoked.into_iter().collect()),
            notes,
        })
    }

    /// `start` plus every key a rotation signed by a key already in the set adds,
    /// repeated until nothing changes (A→B→C chains), skipping revoked keys.
    fn closure(
        &self,
        start: &[PublicKey],
        revoked: &BTreeSet<KeyId>,
        notes: &mut Vec<String>,
    ) -> Result<Vec<PublicKey>, TrustError> {
        let mut trusted: Vec<PublicKey> = start.to_vec();
        loop {
            let mut added = false;
            for st in &self.rotations {
                let Some((msg, signer)) = open_statement(st, &trusted) else {
                    continue;
                };
                let rot = parse_rotation(msg)?;
                if rot.old != signer {
                    return Err(TrustError::Malformed {
                        what: ROTATION_HEADER,
                        detail: format!(
                            "{}: signed by {signer} but names old key {}",
                            st.origin, rot.old
                        ),
                    });
                }
                let id = rot.new.key_id();
                if !revoked.contains(&id) && !trusted.iter().any(|k| k.key_id() == id) {
                    notes.push(format!(
                        "{id} trusted through rotation from {signer} ({})",
                        st.origin
                    ));
                    trusted.push(rot.new);
                    added = true;
                }
            }
            if !added {
                return Ok(trusted);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SecretKey {
        SecretKey::from_seed(&[seed; 32], KeyId([seed; 8]))
    }

    fn stmt(text: String) -> Statement {
        Statement {
            origin: "test".into(),
            text: text.into_bytes(),
        }
    }

    #[test]
    fn rotation_adds_the_new_key_only_when_signed_by_a_trusted_old_key() {
        let (a, b, c) = (key(1), key(2), key(3));
        let ab = stmt(rotation_statement(&a, &b.public_key(), 1).unwrap());
        let bc = stmt(rotation_statement(&b, &c.public_key(), 2).unwrap());
        let store = TrustStore {
            roots: vec![a.public_key()],
            rotations: vec![bc.clone(), ab],
            ..TrustStore::default()
        };
        let r = store.resolve().unwrap();
        for k in [&a, &b, &c] {
            assert!(
                r.keyring.get(&k.key_id()).is_some(),
                "chain A->B->C resolves"
            );
        }
        // Without A's statement, B's statement about C proves nothing.
        let store = TrustStore {
            roots: vec![a.public_key()],
            rotations: vec![bc],
            ..TrustStore::default()
        };
        let r = store.resolve().unwrap();
        assert!(r.keyring.get(&c.key_id()).is_none());
        assert!(r.keyring.get(&b.key_id()).is_none());
    }

    #[test]
    fn revocation_wins_over_roots_and_rotations() {
        let (a, b) = (key(1), key(2));
        let ab = stmt(rotation_statement(&a, &b.public_key(), 1).unwrap());
        let revoke_a = stmt(revocation_statement(&a, &[a.key_id()], 3, "compromised").unwrap());
        let store = TrustStore {
            roots: vec![a.public_key()],
            rotations: vec![ab],
            revocations: vec![revoke_a],
            ..TrustStore::default()
        };
        let r = store.resolve().unwrap();
        assert!(r.keyring.get(&a.key_id()).is_none());
        assert!(r.keyring.is_revoked(&a.key_id()));
        assert!(
            r.keyring.get(&b.key_id()).is_none(),
            "a revoked key's rotations are ignored"
        );
    }

    #[test]
    fn operator_revocation_list() {
        let a = key(1);
        let store = TrustStore {
            roots: vec![a.public_key()],
            revoked_ids: vec![a.key_id()],
            ..TrustStore::default()
        };
        assert!(store.resolve().unwrap().keyring.is_empty());
    }

    #[test]
    fn forged_and_malformed_statements() {
        let (a, b, evil) = (key(1), key(2), key(9));
        // Signed by an untrusted key: ignored.
        let forged = stmt(rotation_statement(&evil, &b.public_key(), 1).unwrap());
        let store = TrustStore {
            roots: vec![a.public_key()],
            rotations: vec![forged],
            ..TrustStore::default()
        };
        assert!(store.resolve().unwrap().keyring.get(&b.key_id()).is_none());
        // A revocation nobody known signed is an error, not silently ignored.
        let store = TrustStore {
            roots: vec![a.public_key()],
            revocations: vec![stmt(
                revocation_statement(&evil, &[a.key_id()], 1, "x").unwrap(),
            )],
            ..TrustStore::default()
        };
        assert!(store.resolve().is_err());
        for bad in [
            "",
            "ferry key rotation v1\nold-key-id: zz\n",
            "ferry key rotation v2\n",
        ] {
            assert!(parse_rotation(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse_revocation(b"ferry key revocation v1\nissued: 1\n").is_err());
    }

    /// A revocation signed by a key that only an *unverified* rotation names is no
    /// revocation: it must not revoke every trusted key.
    #[test]
    fn revocations_count_only_from_trusted_keys_or_the_key_itself() {
        let (a, evil) = (key(1), key(9));
        // A rotation evil -> evil2 signed by evil (not trusted), and evil revoking a.
        let evil2 = key(10);
        let bogus_rotation = stmt(rotation_statement(&evil, &evil2.public_key(), 1).unwrap());
        let evil2_revokes_a = stmt(revocation_statement(&evil2, &[a.key_id()], 2, "x").unwrap());
        let store = TrustStore {
            roots: vec![a.public_key()],
            rotations: vec![bogus_rotation.clone()],
            revocations: vec![evil2_revokes_a],
            ..TrustStore::default()
        };
        let e = store.resolve().unwrap_err().to_string();
        assert!(e.contains("revokes other keys than itself"), "{e}");
        // The same stranger revoking itself is harmless and accepted.
        let evil2_revokes_itself =
            stmt(revocation_statement(&evil2, &[evil2.key_id()], 2, "x").unwrap());
        let store = TrustStore {
            roots: vec![a.public_key()],
            rotations: vec![bogus_rotation],
            revocations: vec![evil2_revokes_itself],
            ..TrustStore::default()
        };
        let r = store.resolve().unwrap();
        assert!(r.keyring.get(&a.key_id()).is_some());
        // A key added by a verified rotation may revoke (the new key retires the old).
        let b = key(2);
        let ab = stmt(rotation_statement(&a, &b.public_key(), 1).unwrap());
        let b_revokes_a = stmt(revocation_statement(&b, &[a.key_id()], 3, "retired").unwrap());
        let store = TrustStore {
            roots: vec![a.public_key(), b.public_key()],
            rotations: vec![ab],
            revocations: vec![b_revokes_a],
            ..TrustStore::default()
        };
        let r = store.resolve().unwrap();
        assert!(r.keyring.get(&a.key_id()).is_none() && r.keyring.get(&b.key_id()).is_some());
    }

    /// The host's own keys, replaced for one run by `--pubkey`, still revoke (their
    /// statements only remove trust) and still trust nothing.
    #[test]
    fn the_hosts_keys_revoke_when_a_run_trusts_other_keys() {
        let (host, given, old) = (key(1), key(2), key(3));
        let host_revokes_old =
            stmt(revocation_statement(&host, &[old.key_id()], 5, "leaked").unwrap());
        let store = TrustStore {
            roots: vec![given.public_key(), old.public_key()],
            revocations: vec![host_revokes_old.clone()],
            revokers: vec![host.public_key()],
            ..TrustStore::default()
        };
        let r = store.resolve().unwrap();
        assert!(
            r.keyring.get(&old.key_id()).is_none(),
            "the host's revocation holds"
        );
        assert!(r.keyring.get(&given.key_id()).is_some());
        assert!(
            r.keyring.get(&host.key_id()).is_none(),
            "a revoker is not trusted"
        );
        // Without the host's keys the statement is a stranger's: refused, as before.
        let store = TrustStore {
            roots: vec![given.public_key(), old.public_key()],
            revocations: vec![host_revokes_old],
            ..TrustStore::default()
        };
        assert!(store.resolve().is_err());
    }
}
