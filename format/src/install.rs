//! The install layout a manifest declares: who the service runs as, which directories
//! exist with which owners, modes and ACLs, where configs go, and how health is judged.
//!
//! The installer acts on exactly this, so every string here is validated on parse: user
//! and group names, absolute paths and ACL entries are newtypes that cannot hold `..`,
//! whitespace or shell metacharacters.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::entry_path::EntryPath;
use crate::footprint::{
    Account, AddressFamily, Capability, IpAllow, ListenAddr, ServiceType, Signal,
};
use crate::mode::Mode;
use crate::sandbox::Sandbox;

/// What installing the bundle does to a host: the service's declared footprint (account,
/// groups, sandbox, network, writable paths, probe, grants) and the layout that realises
/// it. Every generated file in the payload must conform to it ([`crate::conform`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Install {
    pub account: Account,
    pub user: Name,
    pub group: Name,
    pub supplementary_groups: Vec<Name>,
    pub service: Service,
    /// Environment used when the installer is given no `--env`.
    pub default_env: Name,
    /// What differs between environments: each has its own unit
    /// (`systemd/ENV/APP.service`: arguments and environment variables), sandbox and
    /// health probe, and its own configs.
    pub environments: Vec<Environment>,
    pub directories: Vec<Directory>,
    pub configs: Vec<ConfigFile>,
    pub secrets: Vec<Secret>,
    /// Log files under `/var/log/APP` rotated by logrotate; `None`: the journal only.
    pub log_files: Option<LogFiles>,
}

/// One environment's part of the footprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub name: Name,
    /// Sandbox knobs relaxed from ferry's baseline ([`crate::sandbox`]).
    pub sandbox: Sandbox,
    pub health: Health,
}

impl Install {
    /// The environment named `name`.
    pub fn env(&self, name: &Name) -> Option<&Environment> {
        self.environments.iter().find(|e| &e.name == name)
    }

    /// The environment installed without `--env`.
    pub fn default(&self) -> &Environment {
        self.env(&self.default_env)
            .expect("Manifest::validate: the default environment is declared")
    }
}

/// The service unit's part of the footprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    #[serde(rename = "type")]
    pub kind: ServiceType,
    /// Kept in the bounding and ambient sets; empty: none at all.
    pub capabilities: Vec<Capability>,
    /// `RestrictAddressFamilies=`.
    pub address_families: Vec<AddressFamily>,
    /// `PrivateNetwork=`: only the sockets systemd passes in.
    pub private_network: bool,
    /// `IPAddressAllow=` (with `IPAddressDeny=any`); empty: no IP filter.
    pub ip_address_allow: Vec<IpAllow>,
    /// `ListenStream=` of the app's socket unit; empty: no socket unit.
    pub listen: Vec<ListenAddr>,
    /// Where the service may write (`StateDirectory=`, `LogsDirectory=`,
    /// `ReadWritePaths=`); everything else is read-only (`ProtectSystem=strict`).
    pub writable_paths: Vec<HostPath>,
    /// `ExecReload=` sends this signal; `None`: the unit offers no reload.
    pub reload_signal: Option<Signal>,
}

impl Service {
    /// Socket-activated: the bundle carries `APP.socket`.
    pub fn socket_activated(&self) -> bool {
        !self.listen.is_empty()
    }
}

/// logrotate rules for `/var/log/APP/*.log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFiles {
    /// Sent after rotation so the service reopens its file.
    pub reopen_signal: Signal,
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

    /// `self` is `dir` or below it.
    pub fn is_within(&self, dir: &HostPath) -> bool {
        self.0 == dir.0
            || self
                .0
                .strip_prefix(dir.0.as_str())
                .is_some_and(|r| r.starts_with('/'))
    }

    /// The path's components, without the leading `/`.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.relative().split('/')
    }
}

/// Free text from a manifest (a description): no control characters (a newline in a unit
/// file is a new directive), at most 256 bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Text(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TextError {
    // `text` is already escaped (`escape_debug`): shown in quotes, not escaped twice.
    #[error("text \"{text}\" contains a control character (newline, tab, escape, ...)")]
    Control { text: String },
    #[error("text is {len} bytes long; at most 256")]
    TooLong { len: usize },
}

impl Text {
    pub fn new(text: &str) -> Result<Self, TextError> {
        if text.len() > 256 {
            return Err(TextError::TooLong { len: text.len() });
        }
        if text.chars().any(char::is_control) {
            return Err(TextError::Control {
                text: text
                    .chars()
                    .take(80)
                    .collect::<String>()
                    .escape_debug()
                    .to_string(),
            });
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
string_newtype_serde!(Text);

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
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Probe {
    /// Unit state only.
    None,
    /// `GET` must answer 2xx (and, when set, the body must contain `body_contains`).
    Http {
        url: HttpUrl,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body_contains: Option<Text>,
    },
    /// A TCP connect must succeed.
    Tcp { address: ProbeAddr },
    /// A command must exit 0. It runs as the service user, in the unit's sandbox.
    Exec { argv: Argv },
}

/// `host:port` where host is an IP literal or `localhost`: never a name to resolve (a
/// static installer must not use NSS, and an air-gapped host has no resolver to trust).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProbeAddr(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid probe address {text:?}: expected IP:PORT, [IPv6]:PORT or localhost:PORT")]
pub struct ProbeAddrError {
    pub text: String,
}

impl ProbeAddr {
    pub fn new(text: &str) -> Result<Self, ProbeAddrError> {
        let a = Self(text.to_owned());
        match a.socket_addr() {
            Some(s) if s.port() != 0 => Ok(a),
            _ => Err(ProbeAddrError {
                text: text.chars().take(80).collect(),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        let fixed = self
            .0
            .strip_prefix("localhost:")
            .map_or_else(|| self.0.clone(), |port| format!("127.0.0.1:{port}"));
        fixed.parse().ok()
    }
}

/// `http://HOST[:PORT]/PATH` with HOST as in [`ProbeAddr`]; the path is printable ASCII.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HttpUrl(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid health URL {text:?}: expected http://IP-or-localhost[:PORT]/PATH")]
pub struct HttpUrlError {
    pub text: String,
}

impl HttpUrl {
    pub fn new(text: &str) -> Result<Self, HttpUrlError> {
        let u = Self(text.to_owned());
        if u.parts().is_some() {
            Ok(u)
        } else {
            Err(HttpUrlError {
                text: text.chars().take(120).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `(address, Host header, path)`.
    pub fn parts(&self) -> Option<(std::net::SocketAddr, &str, &str)> {
        let rest = self.0.strip_prefix("http://")?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.len() > 1024 || !path.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let with_port = if hostport.ends_with(']') || !hostport.contains(':') {
            format!("{hostport}:80")
        } else {
            hostport.to_owned()
        };
        let addr = ProbeAddr::new(&with_port).ok()?.socket_addr()?;
        Some((addr, hostport, path))
    }
}

/// A command line: an absolute program path, then arguments; no control characters, at
/// most 32 words of 1 KiB.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Argv(Vec<String>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
// `text` is already escaped (`escape_debug`).
#[error("invalid command \"{text}\": expected an absolute program path and at most 31 arguments without control characters")]
pub struct ArgvError {
    pub text: String,
}

impl Argv {
    pub fn new(words: Vec<String>) -> Result<Self, ArgvError> {
        let ok = !words.is_empty()
            && words.len() <= 32
            && HostPath::new(&words[0]).is_ok()
            && words
                .iter()
                .all(|w| w.len() <= 1024 && !w.chars().any(char::is_control));
        if ok {
            Ok(Self(words))
        } else {
            Err(ArgvError {
                text: words
                    .join(" ")
                    .chars()
                    .take(120)
                    .collect::<String>()
                    .escape_debug()
                    .to_string(),
            })
        }
    }

    pub fn words(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Debug for Argv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl Serialize for Argv {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Argv::new(Vec::<String>::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

string_newtype_serde!(ProbeAddr);
string_newtype_serde!(HttpUrl);

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
