//! The manifest: the signed description of a bundle, and the first member of its archive.

use serde::{Deserialize, Serialize};

use std::fmt;

use serde::{Deserializer, Serializer};

use crate::digest::Sha256;
use crate::entry_path::EntryPath;
use crate::install::{Install, Text};
use crate::layout::AppName;
use crate::mode::Mode;

/// The manifest format this code reads and writes. A reader refuses any other.
///
/// 2: the install section declares the service's footprint (account, capabilities,
/// network, writable paths, sandbox relaxations) that generated files must conform to.
pub const FORMAT_VERSION: u32 = 2;
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
    pub name: AppName,
    pub version: Version,
    pub description: Text,
}

/// A release version, safe as a path component: `[0-9A-Za-z._+~-]`, starting with a
/// letter or digit, no `..`, at most 64 bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Version(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid version {text:?}: expected [0-9A-Za-z._+~-], starting with a letter or digit")]
pub struct VersionError {
    pub text: String,
}

impl Version {
    pub fn new(text: &str) -> Result<Self, VersionError> {
        if valid_version(text) {
            Ok(Self(text.to_owned()))
        } else {
            Err(VersionError {
                text: text.chars().take(80).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Version::new(&s).map_err(serde::de::Error::custom)
    }
}

impl std::ops::Deref for Version {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Version {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
}

impl<'de> Deserialize<'de> for Arch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let i = crate::compact::variant_index(d, &["amd64", "arm64"])?;
        Ok([Self::Amd64, Self::Arm64][i])
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Linux,
}

impl<'de> Deserialize<'de> for Os {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let i = crate::compact::variant_index(d, &["linux"])?;
        Ok([Self::Linux][i])
    }
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
    /// The `[build] before` steps `ferry build --run-before` ran in the build copy before
    /// compiling (generated assets, e.g. a web UI the program embeds), in order. A record
    /// for reviewers: nothing on a host runs them. Absent when there were none, so
    /// manifests of projects without steps are what they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<BeforeStep>,
}

/// One `[build] before` step: a program and its arguments, run without a shell. The
/// program is an absolute path or a bare name looked up in `PATH` (`npm`, never
/// `./x` or `-x`); no word holds a control character. How many steps and how long
/// each may be: [`crate::Limits`], checked by [`Manifest::validate`].
#[derive(Clone, PartialEq, Eq)]
pub struct BeforeStep(Vec<String>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid build step {shown}: {why}")]
pub struct BeforeStepError {
    pub shown: String,
    pub why: &'static str,
}

impl BeforeStep {
    pub fn new(argv: Vec<String>) -> Result<Self, BeforeStepError> {
        let err = |why| BeforeStepError {
            shown: format!("{:?}", argv.join(" ").chars().take(80).collect::<String>()),
            why,
        };
        let Some(program) = argv.first() else {
            return Err(err("it is empty: expected [\"PROGRAM\", \"ARG\", ...]"));
        };
        if argv.iter().any(|w| w.chars().any(char::is_control)) {
            return Err(err("a word contains a control character"));
        }
        let bare = !program.is_empty()
            && !program.starts_with(['-', '.'])
            && program
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
        let absolute = program.starts_with('/') && !program.split('/').any(|c| c == "..");
        if !(bare || absolute) {
            return Err(err(
                "the program must be an absolute path or a name looked up in PATH (letters, digits, . _ + -; not starting with - or .)",
            ));
        }
        Ok(Self(argv))
    }

    pub fn argv(&self) -> &[String] {
        &self.0
    }

    pub fn program(&self) -> &str {
        &self.0[0]
    }

    /// What [`crate::Limits::before_step_bytes`] counts: every word's bytes plus one.
    pub fn bytes(&self) -> usize {
        self.0.iter().map(|w| w.len() + 1).sum()
    }
}

impl fmt::Display for BeforeStep {
    /// The words joined by spaces, each quoted when it is empty or holds a space or quote.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            if w.is_empty() || w.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                write!(f, "{w:?}")?;
            } else {
                f.write_str(w)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for BeforeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Serialize for BeforeStep {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for BeforeStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BeforeStep::new(Vec::deserialize(d)?).map_err(serde::de::Error::custom)
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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

impl Role {
    /// The name the manifest uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Config => "config",
            Self::Unit => "unit",
            Self::Logrotate => "logrotate",
            Self::Sysusers => "sysusers",
            Self::Tmpfiles => "tmpfiles",
            Self::Sbom => "sbom",
            Self::Doc => "doc",
        }
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let i = crate::compact::variant_index(
            d,
            &[
                "binary",
                "config",
                "unit",
                "logrotate",
                "sysusers",
                "tmpfiles",
                "sbom",
                "doc",
            ],
        )?;
        Ok([
            Self::Binary,
            Self::Config,
            Self::Unit,
            Self::Logrotate,
            Self::Sysusers,
            Self::Tmpfiles,
            Self::Sbom,
            Self::Doc,
        ][i])
    }
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
    /// The payload entry at `path`. `files` is sorted and unique once [`Self::validate`]
    /// has passed; before that the answer may be wrong, never unsafe.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
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

/// `build.before` within [`crate::Limits`]: how many steps, how long each.
pub fn check_before(
    steps: &[BeforeStep],
    limits: &crate::limits::Limits,
) -> Result<(), crate::archive::BundleError> {
    use crate::archive::BundleError;
    use crate::limits::LimitKind;
    if steps.len() > limits.before_steps {
        return Err(BundleError::LimitExceeded {
            limit: LimitKind::BeforeSteps,
            value: steps.len() as u64,
            max: limits.before_steps as u64,
        });
    }
    for s in steps {
        if s.bytes() > limits.before_step_bytes {
            return Err(BundleError::LimitExceeded {
                limit: LimitKind::BeforeStepBytes,
                value: s.bytes() as u64,
                max: limits.before_step_bytes as u64,
            });
        }
    }
    Ok(())
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
    /// guards against signed mistakes and keeps the installer's assumptions explicit. The
    /// types already refused malformed names, paths, versions, modes and text; this checks
    /// how the parts fit together.
    pub fn validate(
        &self,
        limits: &crate::limits::Limits,
    ) -> Result<(), crate::archive::BundleError> {
        use crate::archive::BundleError;
        use crate::limits::LimitKind;
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
            if f.size > limits.file_bytes {
                return Err(BundleError::LimitExceeded {
                    limit: LimitKind::FileBytes,
                    value: f.size,
                    max: limits.file_bytes,
                });
            }
            let generated = matches!(
                f.role,
                Role::Unit | Role::Sysusers | Role::Tmpfiles | Role::Logrotate
            );
            if generated && f.size > limits.generated_bytes {
                return Err(BundleError::LimitExceeded {
                    limit: LimitKind::GeneratedBytes,
                    value: f.size,
                    max: limits.generated_bytes,
                });
            }
            if i > 0 && self.files[i - 1].path >= f.path {
                return Err(BundleError::InvalidManifest(format!(
                    "files are not sorted and unique at {}",
                    f.path
                )));
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
        check_before(&self.build.before, limits)?;
        self.check_sense().map_err(BundleError::InvalidManifest)
    }

    /// Whether the parts of a manifest fit together; the message names what does not.
    fn check_sense(&self) -> Result<(), String> {
        use crate::footprint::AddressFamily;
        let app = &self.app.name;
        let l = app.layout();
        let inst = &self.install;
        let svc = &inst.service;
        for a in &svc.listen {
            if let Some(p) = a.path() {
                if !p.is_within(&l.run()) || p == l.run() {
                    return Err(format!("listen socket {a} is not under {}", l.run()));
                }
            }
        }
        for f in &self.files {
            if f.path.as_str().starts_with("ferry/") {
                return Err(format!(
                    "payload path {} is in the reserved ferry/ directory",
                    f.path
                ));
            }
            if f.mode.has_special_bits() || f.mode.is_world_writable() {
                return Err(format!(
                    "{} has mode {}: setuid, setgid, sticky and world-writable are refused",
                    f.path, f.mode
                ));
            }
            // Each role lives at its own place; a file elsewhere would never be installed
            // and only confuses a review.
            let p = f.path.as_str();
            let top = p.split('/').next().unwrap_or("");
            let at_home = match f.role {
                Role::Binary => top == "bin",
                Role::Config => inst.configs.iter().any(|c| c.source == f.path),
                Role::Unit => {
                    inst.environments
                        .iter()
                        .any(|e| f.path == l.payload_unit(&e.name))
                        || (svc.socket_activated() && f.path == l.payload_socket())
                }
                Role::Sysusers => f.path == l.payload_sysusers(),
                Role::Tmpfiles => f.path == l.payload_tmpfiles(),
                Role::Logrotate => inst.log_files.is_some() && f.path == l.payload_logrotate(),
                Role::Sbom => top == "sbom",
                Role::Doc => !matches!(
                    top,
                    "bin" | "config" | "systemd" | "sysusers" | "tmpfiles" | "logrotate" | "sbom"
                ),
            };
            if !at_home {
                return Err(format!(
                    "{p} has role {} but is not where that role belongs (or is not declared)",
                    f.role.as_str()
                ));
            }
        }
        let has =
            |path: &EntryPath, role: Role| self.file(path.as_str()).is_some_and(|f| f.role == role);
        if !has(&l.payload_binary(), Role::Binary) {
            return Err(format!(
                "{} (role binary) is not in the payload",
                l.payload_binary()
            ));
        }
        for e in &inst.environments {
            if !has(&l.payload_unit(&e.name), Role::Unit) {
                return Err(format!(
                    "{} (role unit) is not in the payload",
                    l.payload_unit(&e.name)
                ));
            }
        }
        if svc.socket_activated() != has(&l.payload_socket(), Role::Unit) {
            return Err(format!(
                "{} must be in the payload exactly when the service has listen addresses",
                l.payload_socket()
            ));
        }
        if !has(&l.payload_sysusers(), Role::Sysusers) {
            return Err(format!(
                "{} (role sysusers) is not in the payload",
                l.payload_sysusers()
            ));
        }
        if inst.log_files.is_some() != has(&l.payload_logrotate(), Role::Logrotate) {
            return Err(format!(
                "{} must be in the payload exactly when the service declares log files",
                l.payload_logrotate()
            ));
        }
        // Accounts.
        if inst.user.as_str() == "root" || inst.group.as_str() == "root" {
            return Err("the service user and group must not be root".into());
        }
        let mut groups = Vec::new();
        for g in &inst.supplementary_groups {
            if g.as_str() == "root" {
                return Err("supplementary group root is refused: the service must not run with root's group".into());
            }
            if g == &inst.group || groups.contains(&g) {
                return Err(format!(
                    "supplementary group {g} is listed twice or is the primary group"
                ));
            }
            groups.push(g);
        }
        // Environments.
        let envs: Vec<&crate::install::Name> = inst.environments.iter().map(|e| &e.name).collect();
        if let Some(i) = crate::compact::first_repeat(&envs) {
            return Err(format!("environment {} is declared twice", envs[i]));
        }
        for e in &inst.environments {
            if e.health.timeout_secs == 0 || e.health.timeout_secs > 3600 {
                return Err(format!(
                    "environment {}: health timeout must be 1..3600 seconds",
                    e.name
                ));
            }
            if e.health.settle_secs > e.health.timeout_secs {
                return Err(format!(
                    "environment {}: health settle time must not exceed the timeout",
                    e.name
                ));
            }
        }
        if !envs.contains(&&inst.default_env) {
            return Err(format!(
                "default environment {} is not declared",
                inst.default_env
            ));
        }
        // Directories, configs, secrets: under the app's own prefixes only.
        let dirs: Vec<_> = inst.directories.iter().map(|d| &d.path).collect();
        let repeat = crate::compact::first_repeat(&dirs);
        for (i, d) in inst.directories.iter().enumerate() {
            if !l.owns(&d.path) {
                return Err(format!(
                    "directory {} is outside the app's own prefixes",
                    d.path
                ));
            }
            if d.mode.is_world_writable() || d.mode.has_special_bits() {
                return Err(format!("directory {} has unsafe mode {}", d.path, d.mode));
            }
            if repeat == Some(i) {
                return Err(format!("directory {} is declared twice", d.path));
            }
            for e in d.acl.iter().chain(&d.default_acl) {
                if e.name.as_str() == "root" {
                    return Err(format!(
                        "directory {}: ACL entry {e} names root, which needs no grant",
                        d.path
                    ));
                }
            }
        }
        for prefix in [l.opt(), l.releases(), l.etc()] {
            if !dirs.contains(&&prefix) {
                return Err(format!("directory {prefix} is not declared"));
            }
        }
        for d in &inst.directories {
            let is_opt = d.path.is_within(&l.opt());
            if is_opt && (d.owner.as_str() != "root" || d.mode.bits() & 0o022 != 0) {
                return Err(format!(
                    "directory {} holds releases: it must be root's and not group- or other-writable",
                    d.path
                ));
            }
        }
        let etc = l.etc();
        let dests: Vec<_> = inst.configs.iter().map(|c| (&c.env, &c.dest)).collect();
        let repeat = crate::compact::first_repeat(&dests);
        for (i, c) in inst.configs.iter().enumerate() {
            if !envs.contains(&&c.env) {
                return Err(format!(
                    "config {} names undeclared environment {}",
                    c.dest, c.env
                ));
            }
            if c.dest.parent().as_ref() != Some(&etc) {
                return Err(format!("config {} is not directly in {etc}", c.dest));
            }
            if !has(&c.source, Role::Config) {
                return Err(format!(
                    "config source {} is not a config file in the payload",
                    c.source
                ));
            }
            if c.mode.has_special_bits() || c.mode.is_world_writable() {
                return Err(format!("config {} has unsafe mode {}", c.dest, c.mode));
            }
            if repeat == Some(i) {
                return Err(format!(
                    "config {} is declared twice for environment {}",
                    c.dest, c.env
                ));
            }
        }
        for s in &inst.secrets {
            if s.path.parent().as_ref() != Some(&etc) {
                return Err(format!("secret {} is not directly in {etc}", s.path));
            }
            if s.mode.bits() & 0o077 != 0 {
                return Err(format!(
                    "secret {} must not be readable by group or others (mode {})",
                    s.path, s.mode
                ));
            }
            if inst.configs.iter().any(|c| c.dest == s.path) {
                return Err(format!("secret {} is also a config file", s.path));
            }
        }
        // The service's footprint.
        if let Some(i) = crate::compact::first_repeat(&svc.capabilities) {
            return Err(format!(
                "capability {} is listed twice",
                svc.capabilities[i]
            ));
        }
        for e in &inst.environments {
            if !svc.capabilities.is_empty()
                && e.sandbox
                    .value(crate::sandbox::knob("private_users").expect("knob"))
                    == "yes"
            {
                return Err(format!(
                    "environment {}: capabilities are void under PrivateUsers=yes: the sandbox must set private_users = no",
                    e.name
                ));
            }
        }
        let fams = &svc.address_families;
        if let Some(i) = crate::compact::first_repeat(fams) {
            return Err(format!("address family {} is listed twice", fams[i]));
        }
        if !fams.contains(&AddressFamily::Unix) {
            return Err("address families must include AF_UNIX (sd_notify, the journal)".into());
        }
        let internet = fams.contains(&AddressFamily::Inet) || fams.contains(&AddressFamily::Inet6);
        if !(svc.private_network || internet || svc.ip_address_allow.is_empty()) {
            return Err("an IP address allowance without AF_INET or AF_INET6 means nothing".into());
        }
        if svc.private_network && !svc.ip_address_allow.is_empty() {
            return Err("a private network has no IP addresses to allow".into());
        }
        if let Some(i) = crate::compact::first_repeat(&svc.listen) {
            return Err(format!("listen address {} is listed twice", svc.listen[i]));
        }
        let repeat = crate::compact::first_repeat(&svc.writable_paths);
        for (i, p) in svc.writable_paths.iter().enumerate() {
            let inside = (l.owns(p) && !p.is_within(&l.opt())) || p.is_within(&l.run());
            if !inside {
                return Err(format!(
                    "writable path {p} is outside the app's own prefixes (or is a release)"
                ));
            }
            if repeat == Some(i) {
                return Err(format!("writable path {p} is listed twice"));
            }
        }
        // Text shown to people: no control characters (terminal escapes) anywhere.
        let texts = [
            self.build.go_version.as_str(),
            self.build.ferry_version.as_str(),
            self.build.module.as_str(),
            self.build.package.as_str(),
            self.build.source_revision.as_deref().unwrap_or(""),
        ];
        let more = self
            .build
            .settings
            .iter()
            .flat_map(|(k, v)| [k.as_str(), v.as_str()])
            .chain(self.modules.iter().flat_map(|m| {
                [
                    m.path.as_str(),
                    m.version.as_str(),
                    m.sum.as_deref().unwrap_or(""),
                ]
            }));
        if let Some(t) = texts
            .into_iter()
            .chain(more)
            .find(|t| t.chars().any(char::is_control))
        {
            return Err(format!(
                "build information {:?} contains a control character",
                t.chars().take(60).collect::<String>()
            ));
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

    fn valid() -> Value {
        crate::testdata::manifest_json(&crate::testdata::payload(), 0)
    }

    fn parse(v: &Value) -> Result<Manifest, serde_json::Error> {
        serde_json::from_value(v.clone())
    }

    fn check(v: &Value, limits: &Limits) -> Result<(), BundleError> {
        parse(v).expect("the schema accepts it").validate(limits)
    }

    #[test]
    fn the_valid_manifest_validates() {
        check(&valid(), &Limits::default()).unwrap();
    }

    /// Each limit validate enforces, at exactly the manifest's need and one below it.
    #[test]
    fn limits_fire_just_above_and_not_at_the_limit() {
        let v = valid();
        let m = parse(&v).unwrap();
        let biggest = m.files.iter().map(|f| f.size).max().unwrap();
        let total: u64 = m.files.iter().map(|f| f.size).sum();
        let longest = m.files.iter().map(|f| f.path.as_str().len()).max().unwrap() as u64;
        let generated = m
            .files
            .iter()
            .filter(|f| {
                matches!(
                    f.role,
                    Role::Unit | Role::Sysusers | Role::Tmpfiles | Role::Logrotate
                )
            })
            .map(|f| f.size)
            .max()
            .unwrap();
        let table: [(LimitKind, u64, SetLimit); 5] = [
            (LimitKind::Files, m.files.len() as u64, |l, v| {
                l.files = usize::try_from(v).unwrap();
            }),
            (LimitKind::FileBytes, biggest, |l, v| {
                l.file_bytes = v;
            }),
            (LimitKind::TotalBytes, total, |l, v| {
                l.total_bytes = v;
            }),
            (LimitKind::PathBytes, longest, |l, v| {
                l.path_bytes = usize::try_from(v).unwrap();
            }),
            (LimitKind::GeneratedBytes, generated, |l, v| {
                l.generated_bytes = v;
            }),
        ];
        for (kind, needed, set) in table {
            let mut at = Limits::default();
            set(&mut at, needed);
            check(&v, &at).unwrap_or_else(|e| panic!("{kind} at {needed}: {e}"));
            let mut below = Limits::default();
            set(&mut below, needed - 1);
            match check(&v, &below) {
                Err(BundleError::LimitExceeded { limit, value, max }) => {
                    assert_eq!((limit, value, max), (kind, needed, needed - 1));
                }
                other => panic!("{kind} at {}: {other:?}", needed - 1),
            }
        }
    }

    /// `build.before`: argv lists whose program is absolute or a bare name, no control
    /// characters, and absent from the JSON when there are none.
    #[test]
    fn before_steps_are_argv_lists() {
        let argv = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["npm", "ci"], None),
            (&["/usr/bin/make", "-C", "web", "dist"], None),
            (&["go1.22.1", "generate"], None),
            (&["node", ""], None),
            (&[], Some("it is empty")),
            (&["./build.sh"], Some("absolute path or a name")),
            (&["web/build.sh"], Some("absolute path or a name")),
            (&["-x"], Some("absolute path or a name")),
            (&[""], Some("absolute path or a name")),
            (&["/usr/../bin/sh"], Some("absolute path or a name")),
            (&["npm", "run\nbuild"], Some("control character")),
            (&["npm\u{1b}[2J"], Some("control character")),
        ];
        for (words, want) in cases {
            match (BeforeStep::new(argv(words)), want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => assert!(e.to_string().contains(w), "{words:?}: {e}"),
                (r, w) => panic!("{words:?}: got {r:?}, wanted {w:?}"),
            }
        }
        let step = BeforeStep::new(argv(&["sh", "-c", "echo 'hi' > x", ""])).unwrap();
        assert_eq!(step.to_string(), "sh -c \"echo 'hi' > x\" \"\"");
        assert_eq!(step.bytes(), 3 + 3 + 14 + 1);

        // No steps: the manifest's JSON is what it was before `before` existed.
        let m = parse(&valid()).unwrap();
        assert!(m.build.before.is_empty());
        assert!(!String::from_utf8(m.to_bytes()).unwrap().contains("before"));
        // Steps round-trip, and the schema refuses a malformed one.
        let mut v = valid();
        v["build"]["before"] = json!([["npm", "ci"], ["npm", "run", "build"]]);
        let m = parse(&v).unwrap();
        assert_eq!(m.build.before[1].argv(), ["npm", "run", "build"]);
        assert_eq!(
            serde_json::to_value(&m).unwrap()["build"]["before"],
            v["build"]["before"]
        );
        check(&v, &Limits::default()).unwrap();
        for bad in [
            json!([[]]),
            json!([["./x"]]),
            json!([["a\nb"]]),
            json!(["npm ci"]),
        ] {
            v["build"]["before"] = bad.clone();
            assert!(parse(&v).is_err(), "{bad}");
        }
    }

    /// The step limits fire one above what the manifest needs, not at it.
    #[test]
    fn before_step_limits_fire_just_above_the_limit() {
        let mut v = valid();
        v["build"]["before"] = json!([["npm", "ci"], ["npm", "run", "build"]]);
        let table: [(LimitKind, u64, SetLimit); 2] = [
            (LimitKind::BeforeSteps, 2, |l, v| {
                l.before_steps = usize::try_from(v).unwrap();
            }),
            (LimitKind::BeforeStepBytes, 14, |l, v| {
                l.before_step_bytes = usize::try_from(v).unwrap();
            }),
        ];
        for (kind, needed, set) in table {
            let mut at = Limits::default();
            set(&mut at, needed);
            check(&v, &at).unwrap_or_else(|e| panic!("{kind} at {needed}: {e}"));
            let mut below = Limits::default();
            set(&mut below, needed - 1);
            match check(&v, &below) {
                Err(BundleError::LimitExceeded { limit, value, max }) => {
                    assert_eq!((limit, value, max), (kind, needed, needed - 1));
                }
                other => panic!("{kind} at {}: {other:?}", needed - 1),
            }
        }
    }

    /// Values the types refuse while parsing: a manifest carrying one never reaches
    /// `validate`.
    #[test]
    fn the_schema_refuses_malformed_values() {
        let cases: &[(&str, Value)] = &[
            ("/app/name", json!("Hello")),
            ("/app/name", json!("ferry")),
            ("/app/name", json!("cron.d")),
            ("/app/version", json!("1/../2")),
            ("/app/description", json!("x\nExecStartPre=+/bin/sh")),
            ("/install/user", json!("a b")),
            ("/install/account", json!("borrowed")),
            ("/install/service/capabilities", json!(["CAP_EVERYTHING"])),
            ("/install/service/address_families", json!(["AF_EVIL"])),
            ("/install/service/listen", json!(["localhost:80"])),
            ("/install/service/ip_address_allow", json!(["example.com"])),
            (
                "/install/environments/0/sandbox",
                json!({"no_new_privileges": "no"}),
            ),
            (
                "/install/environments/0/sandbox",
                json!({"proc_subset": "pid"}),
            ),
            ("/install/service/reload_signal", json!("KILL")),
            (
                "/install/environments/0/health/probe",
                json!({"http": {"url": "http://db.example/x"}}),
            ),
            (
                "/install/environments/0/health/probe",
                json!({"exec": {"argv": ["relative/path"]}}),
            ),
            (
                "/install/environments/0/health/probe",
                json!({"exec": {"argv": ["/bin/x", "a\u{1b}b"]}}),
            ),
            ("/install/directories/0/acl", json!(["other::rwx"])),
        ];
        for (pointer, value) in cases {
            let mut v = valid();
            *v.pointer_mut(pointer)
                .unwrap_or_else(|| panic!("{pointer}")) = value.clone();
            assert!(parse(&v).is_err(), "{pointer} = {value}: accepted");
        }
    }

    /// Signed mistakes validate refuses, each with the text its message must contain.
    #[test]
    fn refuses_what_the_installer_must_not_act_on() {
        let cases: &[(&str, &str, Value)] = &[
            ("reserved ferry/", "/files/1/path", json!("ferry/x")),
            ("not sorted and unique", "/files/1/path", json!("bin/hello")),
            ("setuid, setgid", "/files/0/mode", json!("4755")),
            ("world-writable", "/files/1/mode", json!("0666")),
            (
                "bin/hello (role binary) is not in the payload",
                "/files/0/path",
                json!("bin/other"),
            ),
            (
                "not where that role belongs",
                "/files/3/path",
                json!("systemd/ssh.service"),
            ),
            (
                "not where that role belongs",
                "/files/2/role",
                json!("unit"),
            ),
            (
                "systemd/hello.socket must be in the payload",
                "/install/service/listen",
                json!(["8080"]),
            ),
            (
                "logrotate/hello has role logrotate but is not where",
                "/install/log_files",
                json!(null),
            ),
            ("must not be root", "/install/group", json!("root")),
            (
                "supplementary group root",
                "/install/supplementary_groups",
                json!(["adm", "root"]),
            ),
            (
                "listed twice",
                "/install/supplementary_groups",
                json!(["adm", "adm"]),
            ),
            ("default environment", "/install/default_env", json!("dev")),
            (
                "environment prod is declared twice",
                "/install/environments/1",
                json!({"name": "prod", "sandbox": {}, "health": {"probe": "none", "timeout_secs": 1, "settle_secs": 0}}),
            ),
            (
                "outside the app's own prefixes",
                "/install/directories/3/path",
                json!("/var/lib/other"),
            ),
            (
                "outside the app's own prefixes",
                "/install/directories/3/path",
                json!("/var/lib/ferry"),
            ),
            ("unsafe mode", "/install/directories/3/mode", json!("2750")),
            (
                "names root",
                "/install/directories/4/acl",
                json!(["user:root:rwx"]),
            ),
            (
                "holds releases",
                "/install/directories/1/owner",
                json!("hello"),
            ),
            (
                "holds releases",
                "/install/directories/2/mode",
                json!("0775"),
            ),
            (
                "/opt/hello is not declared",
                "/install/directories/1/path",
                json!("/srv/hello"),
            ),
            (
                "undeclared environment",
                "/install/configs/0/env",
                json!("dev"),
            ),
            (
                "not directly in /etc/hello",
                "/install/configs/0/dest",
                json!("/etc/hello2/x"),
            ),
            (
                "not directly in /etc/hello",
                "/install/configs/0/dest",
                json!("/etc/hello/keys/x"),
            ),
            (
                "config/prod/hello.toml has role config but is not where",
                "/install/configs/0/source",
                json!("bin/hello"),
            ),
            ("unsafe mode", "/install/configs/0/mode", json!("0646")),
            (
                "secret /etc/other/token is not directly",
                "/install/secrets/0/path",
                json!("/etc/other/token"),
            ),
            (
                "must not be readable",
                "/install/secrets/0/mode",
                json!("0640"),
            ),
            (
                "also a config file",
                "/install/secrets/0/path",
                json!("/etc/hello/hello.toml"),
            ),
            (
                "capability CAP_SYS_ADMIN is listed twice",
                "/install/service/capabilities",
                json!(["CAP_SYS_ADMIN", "CAP_SYS_ADMIN"]),
            ),
            (
                "void under PrivateUsers=yes",
                "/install/service/capabilities",
                json!(["CAP_NET_RAW"]),
            ),
            (
                "must include AF_UNIX",
                "/install/service/address_families",
                json!(["AF_INET"]),
            ),
            (
                "not under /run/hello",
                "/install/service/listen",
                json!(["/run/other/sock"]),
            ),
            (
                "writable path /etc/shadow is outside",
                "/install/service/writable_paths",
                json!(["/etc/shadow"]),
            ),
            (
                "writable path /opt/hello/current is outside",
                "/install/service/writable_paths",
                json!(["/opt/hello/current"]),
            ),
            (
                "a private network has no IP addresses",
                "/install/service/ip_address_allow",
                json!(["10.0.0.0/8"]),
            ),
            (
                "health timeout",
                "/install/environments/0/health/timeout_secs",
                json!(0),
            ),
            (
                "settle time",
                "/install/environments/0/health/settle_secs",
                json!(31),
            ),
            ("control character", "/build/module", json!("m\u{1b}[2J")),
        ];
        for (message, pointer, value) in cases {
            let mut v = valid();
            if *pointer == "/install/service/ip_address_allow" {
                v["install"]["service"]["private_network"] = json!(true);
            }
            if *pointer == "/install/environments/1" {
                let e = v["install"]["environments"][0].clone();
                v["install"]["environments"].as_array_mut().unwrap().push(e);
            }
            *v.pointer_mut(pointer)
                .unwrap_or_else(|| panic!("{pointer}")) = value.clone();
            match check(&v, &Limits::default()) {
                Err(e) => assert!(e.to_string().contains(message), "{message}: got {e}"),
                Ok(()) => panic!("{message}: accepted"),
            }
        }
    }
}
