//! The manifest: the signed description of a bundle, and the first member of its archive.

use serde::{Deserialize, Serialize};

use crate::digest::Sha256;
use crate::entry_path::EntryPath;
use crate::install::Install;
use crate::mode::Mode;

/// The manifest format this code reads and writes. A reader refuses any other.
pub const FORMAT_VERSION: u32 = 1;
/// First archive member.
pub const MANIFEST_PATH: &str = "ferry/manifest.json";
/// Second archive member: a minisign signature over the manifest bytes.
pub const MANIFEST_SIG_PATH: &str = "ferry/manifest.json.minisig";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub app: App,
    pub target: Target,
    pub build: Build,
    pub modules: Vec<Module>,
    /// Payload in archive order (sorted by path).
    pub files: Vec<FileEntry>,
    pub install: Install,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Amd64 => "amd64",
            Self::Arm64 => "arm64",
        }
    }

    /// The architecture as the kernel names it (`uname -m`).
    pub const fn uname(self) -> &'static str {
        match self {
            Self::Amd64 => "x86_64",
            Self::Arm64 => "aarch64",
        }
    }

    pub fn from_uname(machine: &str) -> Option<Self> {
        match machine {
            "x86_64" => Some(Self::Amd64),
            "aarch64" => Some(Self::Arm64),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "amd64" => Some(Self::Amd64),
            "arm64" => Some(Self::Arm64),
            _ => None,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `linux/amd64` and the like; only Linux is a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub os: Os,
    pub arch: Arch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Linux,
}

impl Target {
    pub const fn linux(arch: Arch) -> Self {
        Self {
            os: Os::Linux,
            arch,
        }
    }

    /// Parses `linux/amd64`.
    pub fn parse(s: &str) -> Option<Self> {
        let (os, arch) = s.split_once('/')?;
        (os == "linux").then_some(())?;
        Some(Self::linux(Arch::parse(arch)?))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "linux/{}", self.arch)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// `go1.26.8`, from the binary's build info.
    pub go_version: String,
    pub ferry_version: String,
    /// The Go main module path.
    pub module: String,
    /// The package that was built, e.g. `./cmd/hello`.
    pub package: String,
    /// VCS revision of the source tree, or `null` when it is not a repository.
    pub source_revision: Option<String>,
    /// Whether the tree had uncommitted changes at build time.
    pub source_dirty: bool,
    /// Every timestamp in the archive.
    pub source_date_epoch: u64,
    /// Go build settings from the binary's build info (`-ldflags`, `CGO_ENABLED`, ...).
    pub settings: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    pub path: String,
    pub version: String,
    /// go.sum hash (`h1:...`); absent only for replaced local modules.
    pub sum: Option<String>,
}

/// What a payload file is for; the installer decides where it goes by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The service executable.
    Binary,
    /// A rendered configuration file for one environment.
    Config,
    /// A systemd unit (service or socket).
    Unit,
    /// logrotate rules.
    Logrotate,
    /// sysusers.d snippet.
    Sysusers,
    /// tmpfiles.d snippet.
    Tmpfiles,
    /// `CycloneDX` SBOM.
    Sbom,
    /// Documentation carried along.
    Doc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: EntryPath,
    pub size: u64,
    pub mode: Mode,
    pub role: Role,
    pub sha256: Sha256,
}

impl Manifest {
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path.as_str() == path)
    }

    /// `<app>-<version>-linux-<arch>.tar.zst`
    pub fn bundle_file_name(&self) -> String {
        format!(
            "{}-{}-linux-{}.tar.zst",
            self.app.name, self.app.version, self.target.arch
        )
    }

    /// Canonical bytes: pretty JSON with a final newline, so a person can read the
    /// extracted manifest and `minisign -V` it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }
}

/// Where an app may own directories and files on the host; everything else is refused,
/// so a manifest cannot aim the installer at `/etc/ssh` or `/usr/bin`.
pub fn allowed_prefixes(app: &str) -> [String; 6] {
    [
        format!("/etc/{app}"),
        format!("/var/lib/{app}"),
        format!("/var/log/{app}"),
        format!("/var/cache/{app}"),
        format!("/opt/{app}"),
        format!("/srv/{app}"),
    ]
}

fn under_allowed(app: &str, path: &str) -> bool {
    allowed_prefixes(app).iter().any(|p| {
        path == p
            || path
                .strip_prefix(p.as_str())
                .is_some_and(|r| r.starts_with('/'))
    })
}

/// A version as a safe path component: `[0-9A-Za-z._+~-]`, starting with an alphanumeric.
pub fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'~' | b'-'))
        && !v.contains("..")
}

impl Manifest {
    /// Semantic checks beyond the schema. Runs after the signature is verified, so it
    /// guards against signed mistakes and keeps the installer's assumptions explicit.
    pub fn validate(
        &self,
        limits: &crate::limits::Limits,
    ) -> Result<(), crate::archive::BundleError> {
        use crate::archive::BundleError;
        use crate::limits::LimitKind;
        let invalid = |s: String| Err(BundleError::InvalidManifest(s));
        let app = &self.app.name;
        if crate::install::Name::new(app).is_err() {
            return invalid(format!("app name {app:?} is not a valid name"));
        }
        if !valid_version(&self.app.version) {
            return invalid(format!(
                "version {:?} is not a safe version string",
                self.app.version
            ));
        }
        if self.files.len() > limits.files {
            return Err(BundleError::LimitExceeded {
                limit: LimitKind::Files,
                value: self.files.len() as u64,
                max: limits.files as u64,
            });
        }
        let mut total = 0u64;
        for (i, f) in self.files.iter().enumerate() {
            if f.path.as_str().len() > limits.path_bytes {
                return Err(BundleError::LimitExceeded {
                    limit: LimitKind::PathBytes,
                    value: f.path.as_str().len() as u64,
                    max: limits.path_bytes as u64,
                });
            }
            if f.path.as_str().starts_with("ferry/") {
                return invalid(format!(
                    "payload path {} is in the reserved ferry/ directory",
                    f.path
                ));
            }
            if i > 0 && self.files[i - 1].path >= f.path {
                return invalid(format!("files are not sorted and unique at {}", f.path));
            }
            if f.mode.has_special_bits() || f.mode.is_world_writable() {
                return invalid(format!(
                    "{} has mode {}: setuid, setgid, sticky and world-writable are refused",
                    f.path, f.mode
                ));
            }
            if f.size > limits.file_bytes {
                return Err(BundleError::LimitExceeded {
                    limit: LimitKind::FileBytes,
                    value: f.size,
                    max: limits.file_bytes,
                });
            }
            total = total.saturating_add(f.size);
        }
        if total > limits.total_bytes {
            return Err(BundleError::LimitExceeded {
                limit: LimitKind::TotalBytes,
                value: total,
                max: limits.total_bytes,
            });
        }
        if !self.files.iter().any(|f| f.role == Role::Binary) {
            return invalid("no file has role binary".into());
        }
        // `files` is sorted and unique from here on: look paths up by binary search.
        let has = |path: &str, role: Role| {
            self.files
                .binary_search_by(|f| f.path.as_str().cmp(path))
                .is_ok_and(|i| self.files[i].role == role)
        };
        let inst = &self.install;
        // Units land in /etc/systemd/system under their own names: only the app's own, so
        // a manifest cannot replace another service's unit (ssh.service, say).
        if inst.unit.as_str() != format!("{app}.service") {
            return invalid(format!(
                "unit {} is not the app's own unit {app}.service",
                inst.unit
            ));
        }
        let unit_path = format!("systemd/{}", inst.unit);
        if !has(&unit_path, Role::Unit) {
            return invalid(format!(
                "unit {} is not in the payload as {unit_path}",
                inst.unit
            ));
        }
        if let Some(socket) = &inst.socket_unit {
            if socket.as_str() != format!("{app}.socket") {
                return invalid(format!(
                    "socket unit {socket} is not the app's own unit {app}.socket"
                ));
            }
            if !has(&format!("systemd/{socket}"), Role::Unit) {
                return invalid(format!(
                    "socket unit {socket} is not in the payload as systemd/{socket}"
                ));
            }
        }
        // The installer creates the service account from this file before anything else.
        if !has(&format!("sysusers/{app}.conf"), Role::Sysusers) {
            return invalid(format!(
                "sysusers/{app}.conf (role sysusers) is not in the payload"
            ));
        }
        if inst.user.as_str() == "root" || inst.group.as_str() == "root" {
            return invalid("the service user and group must not be root".into());
        }
        if inst
            .supplementary_groups
            .iter()
            .any(|g| g.as_str() == "root")
        {
            return invalid(
                "supplementary group root is refused: the service must not run with root's group"
                    .into(),
            );
        }
        if !inst.environments.contains(&inst.default_env) {
            return invalid(format!(
                "default environment {} is not declared",
                inst.default_env
            ));
        }
        for d in &inst.directories {
            if !under_allowed(app, d.path.as_str()) {
                return invalid(format!(
                    "directory {} is outside the app's own prefixes",
                    d.path
                ));
            }
            if d.mode.is_world_writable() || d.mode.bits() & 0o6000 != 0 {
                return invalid(format!("directory {} has unsafe mode {}", d.path, d.mode));
            }
        }
        for c in &inst.configs {
            if !inst.environments.contains(&c.env) {
                return invalid(format!(
                    "config {} names undeclared environment {}",
                    c.dest, c.env
                ));
            }
            if !c.dest.as_str().starts_with(&format!("/etc/{app}/")) {
                return invalid(format!("config {} is outside /etc/{app}", c.dest));
            }
            if !has(c.source.as_str(), Role::Config) {
                return invalid(format!(
                    "config source {} is not a config file in the payload",
                    c.source
                ));
            }
            if c.mode.has_special_bits() || c.mode.is_world_writable() {
                return invalid(format!("config {} has unsafe mode {}", c.dest, c.mode));
            }
        }
        for s in &inst.secrets {
            if !s.path.as_str().starts_with(&format!("/etc/{app}/")) {
                return invalid(format!("secret {} is outside /etc/{app}", s.path));
            }
            if s.mode.bits() & 0o077 != 0 {
                return invalid(format!(
                    "secret {} must not be readable by group or others (mode {})",
                    s.path, s.mode
                ));
            }
        }
        if inst.health.timeout_secs == 0 || inst.health.timeout_secs > 3600 {
            return invalid("health timeout must be 1..3600 seconds".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::archive::BundleError;
    use crate::limits::{LimitKind, Limits};

    type SetLimit = fn(&mut Limits, u64);
    fn file(path: &str, size: u64, mode: &str, role: &str) -> Value {
        json!({"path": path, "size": size, "mode": mode, "role": role, "sha256": Sha256::of(b"").to_string()})
    }

    fn valid() -> Value {
        json!({
            "format_version": 1,
            "app": {"name": "hello", "version": "1.0.0"},
            "target": {"os": "linux", "arch": "amd64"},
            "build": {"go_version": "go1.26.8", "ferry_version": "0.1.0", "module": "m", "package": ".",
                "source_revision": null, "source_dirty": false, "source_date_epoch": 0, "settings": []},
            "modules": [],
            "files": [
                file("bin/hello", 1000, "0755", "binary"),
                file("config/prod/hello.toml", 10, "0640", "config"),
                file("systemd/hello.service", 100, "0644", "unit"),
                file("systemd/hello.socket", 50, "0644", "unit"),
                file("sysusers/hello.conf", 20, "0644", "sysusers"),
            ],
            "install": {"user": "hello", "group": "hello", "supplementary_groups": [], "unit": "hello.service",
                "socket_unit": "hello.socket", "default_env": "prod", "environments": ["prod"],
                "directories": [{"path": "/var/lib/hello", "owner": "hello", "group": "hello",
                    "mode": "0750", "keep": "data"}],
                "configs": [{"env": "prod", "source": "config/prod/hello.toml", "dest": "/etc/hello/hello.toml",
                    "owner": "root", "group": "hello", "mode": "0640", "on_upgrade": "preserve"}],
                "secrets": [{"name": "token", "path": "/etc/hello/token", "kind": "credential",
                    "owner": "root", "group": "root", "mode": "0600"}],
                "health": {"probe": {"kind": "none"}, "timeout_secs": 30, "settle_secs": 2}}
        })
    }

    fn check(v: &Value, limits: &Limits) -> Result<(), BundleError> {
        let m: Manifest = serde_json::from_value(v.clone()).expect("the schema accepts it");
        m.validate(limits)
    }

    #[test]
    fn the_valid_manifest_validates() {
        check(&valid(), &Limits::default()).unwrap();
    }

    /// Each limit validate enforces, at exactly the manifest's need and one below it.
    #[test]
    fn limits_fire_just_above_and_not_at_the_limit() {
        let table: [(LimitKind, u64, SetLimit); 4] = [
            (LimitKind::Files, 5, |l, v| {
                l.files = usize::try_from(v).unwrap();
            }),
            (LimitKind::FileBytes, 1000, |l, v| {
                l.file_bytes = v;
            }),
            (LimitKind::TotalBytes, 1180, |l, v| {
                l.total_bytes = v;
            }),
            (LimitKind::PathBytes, 22, |l, v| {
                l.path_bytes = usize::try_from(v).unwrap();
            }),
        ];
        for (kind, needed, set) in table {
            let mut at = Limits::default();
            set(&mut at, needed);
            check(&valid(), &at).unwrap_or_else(|e| panic!("{kind} at {needed}: {e}"));
            let mut below = Limits::default();
            set(&mut below, needed - 1);
            match check(&valid(), &below) {
                Err(BundleError::LimitExceeded { limit, value, max }) => {
                    assert_eq!((limit, value, max), (kind, needed, needed - 1));
                }
                other => panic!("{kind} at {}: {other:?}", needed - 1),
            }
        }
    }

    /// Signed mistakes validate refuses, each with the text its message must contain.
    #[test]
    fn refuses_what_the_installer_must_not_act_on() {
        let cases: &[(&str, &str, Value)] = &[
            ("not a valid name", "/app/name", json!("Hello")),
            ("not a safe version", "/app/version", json!("1/../2")),
            ("reserved ferry/", "/files/1/path", json!("ferry/x")),
            ("not sorted and unique", "/files/1/path", json!("bin/hello")),
            ("setuid, setgid", "/files/0/mode", json!("4755")),
            ("world-writable", "/files/1/mode", json!("0666")),
            ("no file has role binary", "/files/0/role", json!("doc")),
            (
                "not the app's own unit hello.service",
                "/install/unit",
                json!("ssh.service"),
            ),
            (
                "is not in the payload as systemd/hello.service",
                "/files/2/role",
                json!("doc"),
            ),
            (
                "not the app's own unit hello.socket",
                "/install/socket_unit",
                json!("ssh.socket"),
            ),
            (
                "socket unit hello.socket is not in the payload",
                "/files/3/role",
                json!("doc"),
            ),
            (
                "sysusers/hello.conf (role sysusers) is not in the payload",
                "/files/4/role",
                json!("doc"),
            ),
            ("must not be root", "/install/group", json!("root")),
            (
                "supplementary group root",
                "/install/supplementary_groups",
                json!(["adm", "root"]),
            ),
            ("default environment", "/install/default_env", json!("dev")),
            (
                "outside the app's own prefixes",
                "/install/directories/0/path",
                json!("/var/lib/other"),
            ),
            ("unsafe mode", "/install/directories/0/mode", json!("2750")),
            (
                "undeclared environment",
                "/install/configs/0/env",
                json!("dev"),
            ),
            (
                "outside /etc/hello",
                "/install/configs/0/dest",
                json!("/etc/hello2/x"),
            ),
            (
                "not a config file in the payload",
                "/install/configs/0/source",
                json!("bin/hello"),
            ),
            ("unsafe mode", "/install/configs/0/mode", json!("0646")),
            (
                "secret /etc/other/token is outside",
                "/install/secrets/0/path",
                json!("/etc/other/token"),
            ),
            (
                "must not be readable",
                "/install/secrets/0/mode",
                json!("0640"),
            ),
            ("health timeout", "/install/health/timeout_secs", json!(0)),
        ];
        for (message, pointer, value) in cases {
            let mut v = valid();
            *v.pointer_mut(pointer)
                .unwrap_or_else(|| panic!("{pointer}")) = value.clone();
            match check(&v, &Limits::default()) {
                Err(e) => assert!(e.to_string().contains(message), "{message}: got {e}"),
                Ok(()) => panic!("{message}: accepted"),
            }
        }
    }
}
