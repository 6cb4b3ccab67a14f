//! What a signature's trusted comment binds: app, version, target and manifest digest.
//!
//! The trusted comment is signed, so putting these fields in it stops an attacker from
//! replaying an old validly-signed manifest or bundle under a new name. The layout keeps
//! minisign's `key:value` tab-separated style, so `minisign -V` prints it readably.

use crate::digest::Sha256;
use crate::manifest::{Manifest, Target};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub app: String,
    pub version: String,
    pub target: Target,
    pub manifest_sha256: Sha256,
}

/// A claimed field disagrees with the manifest it was signed for.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClaimsError {
    #[error("trusted comment has no {field} field")]
    Missing { field: &'static str },
    #[error("trusted comment field {field} is malformed: {value:?}")]
    Malformed { field: &'static str, value: String },
    #[error("signed {field} is {signed:?} but the manifest says {actual:?}")]
    Mismatch {
        field: &'static str,
        signed: String,
        actual: String,
    },
}

impl Claims {
    pub fn for_manifest(manifest: &Manifest, manifest_sha256: Sha256) -> Self {
        Self {
            app: manifest.app.name.to_string(),
            version: manifest.app.version.to_string(),
            target: manifest.target,
            manifest_sha256,
        }
    }

    /// `timestamp:T<TAB>file:F<TAB>app:A<TAB>version:V<TAB>target:linux/amd64<TAB>manifest:sha256:H`
    pub fn trusted_comment(&self, timestamp: u64, file: &str) -> String {
        format!(
            "timestamp:{timestamp}\tfile:{file}\tapp:{}\tversion:{}\ttarget:{}\tmanifest:sha256:{}",
            self.app, self.version, self.target, self.manifest_sha256
        )
    }

    /// Reads the claims back; `Ok(None)` when the comment carries none at all (a detached
    /// signature made by stock minisign), an error when it carries some but not all.
    pub fn parse(comment: &str) -> Result<Option<Self>, ClaimsError> {
        let field = |name: &str| {
            comment
                .split('\t')
                .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        };
        let (app, version, target, manifest) = (
            field("app"),
            field("version"),
            field("target"),
            field("manifest"),
        );
        if app.is_none() && version.is_none() && target.is_none() && manifest.is_none() {
            return Ok(None);
        }
        let app = app.ok_or(ClaimsError::Missing { field: "app" })?;
        let version = version.ok_or(ClaimsError::Missing { field: "version" })?;
        let target_s = target.ok_or(ClaimsError::Missing { field: "target" })?;
        let manifest = manifest.ok_or(ClaimsError::Missing { field: "manifest" })?;
        let target = Target::parse(target_s).ok_or_else(|| ClaimsError::Malformed {
            field: "target",
            value: target_s.to_owned(),
        })?;
        let manifest_sha256 = manifest
            .strip_prefix("sha256:")
            .and_then(|h| Sha256::parse(h).ok())
            .ok_or_else(|| ClaimsError::Malformed {
                field: "manifest",
                value: manifest.to_owned(),
            })?;
        Ok(Some(Self {
            app: app.to_owned(),
            version: version.to_owned(),
            target,
            manifest_sha256,
        }))
    }

    /// Every field must equal `expected`'s.
    pub fn check(&self, expected: &Claims) -> Result<(), ClaimsError> {
        let pairs = [
            ("app", &self.app, &expected.app),
            ("version", &self.version, &expected.version),
        ];
        for (field, signed, actual) in pairs {
            if signed != actual {
                return Err(ClaimsError::Mismatch {
                    field,
                    signed: signed.clone(),
                    actual: actual.clone(),
                });
            }
        }
        if self.target != expected.target {
            return Err(ClaimsError::Mismatch {
                field: "target",
                signed: self.target.to_string(),
                actual: expected.target.to_string(),
            });
        }
        if self.manifest_sha256 != expected.manifest_sha256 {
            return Err(ClaimsError::Mismatch {
                field: "manifest",
                signed: self.manifest_sha256.to_string(),
                actual: expected.manifest_sha256.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Arch;

    fn claims() -> Claims {
        Claims {
            app: "hello".into(),
            version: "1.2.3".into(),
            target: Target::linux(Arch::Arm64),
            manifest_sha256: Sha256::of(b"m"),
        }
    }

    #[test]
    fn round_trip() {
        let c = claims();
        let text = c.trusted_comment(1_700_000_000, "x.tar.zst");
        assert_eq!(Claims::parse(&text).unwrap(), Some(c));
    }

    #[test]
    fn stock_comment_has_no_claims() {
        assert_eq!(
            Claims::parse("timestamp:1700000000\tfile:x.tar.zst\thashed").unwrap(),
            None
        );
    }

    #[test]
    fn partial_or_bad_claims_are_errors() {
        let full = claims().trusted_comment(1, "f");
        let without_target: String = full
            .split('\t')
            .filter(|kv| !kv.starts_with("target:"))
            .collect::<Vec<_>>()
            .join("\t");
        assert!(Claims::parse(&without_target).is_err());
        assert!(Claims::parse(&full.replace("linux/arm64", "linux/mips")).is_err());
        assert!(Claims::parse(&full.replace("sha256:", "md5:")).is_err());
    }

    #[test]
    fn check_names_the_field() {
        let mut other = claims();
        other.version = "9".into();
        let err = claims().check(&other).unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
    }
}
