//! The install layout a manifest declares: who the service runs as, which directories
//! exist with which owners, modes and ACLs, where configs go, and how health is judged.
//!
//! The installer acts on exactly this, so every string here is validated on parse: user
//! and group names, absolute paths and ACL entries are newtypes that cannot hold `..`,
//! whitespace or shell metacharacters.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::entry_path::EntryPath;
use crate::mode::Mode;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Install {
    pub user: Name,
    pub group: Name,
    #[serde(default)]
    pub supplementary_groups: Vec<Name>,
    /// Service unit file name, e.g. `hello.service`.
    pub unit: Name,
    /// Socket unit, when the service is socket-activated.
    #[serde(default)]
    pub socket_unit: Option<Name>,
    /// Environment used when the installer is given no `--env`.
    pub default_env: Name,
    pub environments: Vec<Name>,
    pub directories: Vec<Directory>,
    pub configs: Vec<ConfigFile>,
    #[serde(default)]
    pub secrets: Vec<Secret>,
    pub health: Health,
}

/// A user, group, unit or environment name: `[a-z_][a-z0-9_.@-]*`, at most 64 bytes
/// (units may carry a `.service` suffix; `@` for template instances).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid name {text:?}: expected [a-z_][a-z0-9_.@-]*, at most 64 bytes")]
pub struct NameError {
    pub text: String,
}

impl Name {
    pub fn new(text: &str) -> Result<Self, NameError> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && text.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'.' | b'@' | b'-')
            })
            && !text.contains("..");
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(NameError {
                text: text.chars().take(80).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An absolute, normalized host path: starts with `/`, no empty, `.` or `..` components,
/// characters from `A-Z a-z 0-9 . _ - + @ /` only, at most 255 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPath(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid host path {text:?}: expected an absolute, normalized path")]
pub struct HostPathError {
    pub text: String,
}

impl HostPath {
    pub fn new(text: &str) -> Result<Self, HostPathError> {
        let err = || HostPathError {
            text: text.chars().take(120).collect(),
        };
        let rest = text.strip_prefix('/').ok_or_else(err)?;
        if text.len() > 255
            || rest.is_empty()
            || rest
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
            || !rest.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'@' | b'/')
            })
        {
            return Err(err());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path without its leading `/`, for joining under an install root.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    pub fn parent(&self) -> Option<HostPath> {
        let (p, _) = self.0.rsplit_once('/')?;
        (!p.is_empty()).then(|| Self(p.to_owned()))
    }

    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

macro_rules! string_newtype_serde {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t>::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_newtype_serde!(Name);
string_newtype_serde!(HostPath);

/// One named ACL entry, written as `getfacl` prints it: `group:ops:r-x`, `user:backup:r--`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AclEntry {
    pub kind: AclKind,
    pub name: Name,
    /// r=4 w=2 x=1
    pub perms: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AclKind {
    User,
    Group,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid ACL entry {text:?}: expected user:NAME:rwx or group:NAME:r-x")]
pub struct AclEntryError {
    pub text: String,
}

impl AclEntry {
    pub fn new(text: &str) -> Result<Self, AclEntryError> {
        let err = || AclEntryError {
            text: text.chars().take(80).collect(),
        };
        let mut parts = text.split(':');
        let (Some(kind), Some(name), Some(perms), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        let kind = match kind {
            "user" | "u" => AclKind::User,
            "group" | "g" => AclKind::Group,
            _ => return Err(err()),
        };
        let name = Name::new(name).map_err(|_| err())?;
        let pb = perms.as_bytes();
        if pb.len() != 3 {
            return Err(err());
        }
        let mut bits = 0;
        for (i, (&c, (letter, bit))) in pb.iter().zip([(b'r', 4), (b'w', 2), (b'x', 1)]).enumerate()
        {
            let _ = i;
            if c == letter {
                bits |= bit;
            } else if c != b'-' {
                return Err(err());
            }
        }
        Ok(Self {
            kind,
            name,
            perms: bits,
        })
    }

    pub fn perms_string(&self) -> String {
        let p = self.perms;
        [(4, 'r'), (2, 'w'), (1, 'x')]
            .iter()
            .map(|&(b, c)| if p & b != 0 { c } else { '-' })
            .collect()
    }
}

impl fmt::Display for AclEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            AclKind::User => "user",
            AclKind::Group => "group",
        };
        write!(f, "{kind}:{}:{}", self.name, self.perms_string())
    }
}

impl fmt::Debug for AclEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AclEntry({self})")
    }
}

impl Serialize for AclEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for AclEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AclEntry::new(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    pub path: HostPath,
    pub owner: Name,
    pub group: Name,
    pub mode: Mode,
    /// Named entries of the access ACL.
    #[serde(default)]
    pub acl: Vec<AclEntry>,
    /// Named entries of the default ACL (inherited by new files).
    #[serde(default)]
    pub default_acl: Vec<AclEntry>,
    /// Removed by `uninstall --purge` only (data and logs), or with the release.
    pub keep: Keep,
}

/// What `uninstall` does with a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// Data and logs: kept unless `--purge`.
    Data,
    /// Configuration: kept unless `--purge`.
    Config,
    /// Removed with the application.
    Release,
}

/// What an upgrade does to a config file that already exists on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUpgrade {
    /// Keep the host's file; the new default lands beside it as `NAME.new`.
    Preserve,
    /// Replace it.
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub env: Name,
    /// Payload member holding the rendered file.
    pub source: EntryPath,
    pub dest: HostPath,
    pub owner: Name,
    pub group: Name,
    pub mode: Mode,
    pub on_upgrade: OnUpgrade,
}

/// A secret never travels in a bundle: the installer creates an empty file (0600) once
/// and never overwrites it; an operator fills it on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    pub name: Name,
    pub path: HostPath,
    pub kind: SecretKind,
    pub owner: Name,
    pub group: Name,
    pub mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// Passed with `LoadCredential=`; readable by root only.
    Credential,
    /// Read with `EnvironmentFile=`.
    EnvironmentFile,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub probe: Probe,
    /// Seconds from start until the service must be healthy.
    pub timeout_secs: u32,
    /// Seconds the unit must stay active without a restart before it counts as healthy.
    pub settle_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Probe {
    /// Unit state only.
    None,
    /// `GET` must answer 2xx. Host is an IP literal or `localhost`, never a name to resolve.
    Http { url: String },
    /// A TCP connect must succeed.
    Tcp { address: String },
    /// A command must exit 0.
    Exec { argv: Vec<String> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "hello",
            "_x",
            "hello.service",
            "a-b_c",
            "getty@tty1.service",
        ] {
            assert!(Name::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Hello",
            "1abc",
            "a b",
            "a/b",
            "a;b",
            "..",
            "a..b",
            &"a".repeat(65),
        ] {
            assert!(Name::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_paths() {
        for ok in ["/etc/hello", "/var/lib/hello", "/etc/hello/hello.toml"] {
            assert!(HostPath::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "etc",
            "/etc/../x",
            "/etc//x",
            "/etc/",
            "/a b",
            "/a\nb",
            "/./x",
        ] {
            assert!(HostPath::new(bad).is_err(), "{bad}");
        }
        let p = HostPath::new("/etc/hello/hello.toml").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "/etc/hello");
        assert_eq!(p.relative(), "etc/hello/hello.toml");
        assert_eq!(HostPath::new("/etc").unwrap().parent(), None);
    }

    #[test]
    fn acl_entries() {
        let e = AclEntry::new("group:ops:r-x").unwrap();
        assert_eq!((e.kind, e.perms), (AclKind::Group, 5));
        assert_eq!(e.to_string(), "group:ops:r-x");
        assert_eq!(
            AclEntry::new("u:backup:rw-").unwrap().to_string(),
            "user:backup:rw-"
        );
        for bad in [
            "group:ops",
            "group:ops:rwxx",
            "other::r--",
            "group:Ops:r-x",
            "group:ops:x-r",
            "mask::rwx",
            "group:ops:r-x:x",
        ] {
            assert!(AclEntry::new(bad).is_err(), "{bad}");
        }
    }
}
