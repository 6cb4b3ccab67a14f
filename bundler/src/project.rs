//! `ferry.toml`: what a project declares. Every field is documented in README.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use ferry_format::install::{AclEntry, HostPath, Name};
use ferry_format::manifest::{valid_version, Target};
use ferry_format::mode::Mode;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub app: AppSection,
    #[serde(default)]
    pub build: BuildSection,
    #[serde(default)]
    pub service: ServiceSection,
    #[serde(default)]
    pub health: HealthSection,
    #[serde(default)]
    pub logs: LogsSection,
    #[serde(default, rename = "config")]
    pub configs: Vec<ConfigSection>,
    #[serde(default)]
    pub vars: toml::Table,
    #[serde(default)]
    pub environments: EnvironmentsSection,
    #[serde(default)]
    pub directories: Vec<DirectorySection>,
    #[serde(default)]
    pub secrets: Vec<SecretSection>,
    #[serde(default)]
    pub templates: TemplatesSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// Go package to build, relative to the project directory.
    #[serde(default = "default_package")]
    pub package: String,
    /// Go variable that receives the version through `-ldflags -X`.
    #[serde(default = "default_version_variable")]
    pub version_variable: String,
}

fn default_package() -> String {
    ".".into()
}
fn default_version_variable() -> String {
    "main.version".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    #[serde(default = "default_targets")]
    pub targets: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Extra `-X name=value` link-time assignments.
    #[serde(default)]
    pub ldflags_x: BTreeMap<String, String>,
    #[serde(default = "default_level")]
    pub zstd_level: i32,
}

impl Default for BuildSection {
    fn default() -> Self {
        Self {
            targets: default_targets(),
            tags: Vec::new(),
            ldflags_x: BTreeMap::new(),
            zstd_level: default_level(),
        }
    }
}

fn default_targets() -> Vec<String> {
    vec!["linux/amd64".into(), "linux/arm64".into()]
}
fn default_level() -> i32 {
    9
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceType {
    /// The program sends READY=1 (sd_notify): the best start gate.
    #[default]
    Notify,
    /// Start succeeds once exec succeeds.
    Exec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    #[serde(default, rename = "type")]
    pub kind: ServiceType,
    /// Arguments after the binary.
    #[serde(default)]
    pub args: Vec<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    #[serde(default)]
    pub supplementary_groups: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Exit codes that mean "bad configuration": systemd does not restart on them.
    #[serde(default = "default_prevent")]
    pub restart_prevent_exit_status: Vec<u8>,
    #[serde(default = "default_nofile")]
    pub limit_nofile: u32,
    /// Addresses systemd listens on for socket activation (`ListenStream=`); empty: none.
    #[serde(default)]
    pub listen_stream: Vec<String>,
    /// Warn above this `systemd-analyze security` exposure; `ferry build --strict` fails.
    #[serde(default = "default_threshold")]
    pub security_threshold: f64,
}

impl Default for ServiceSection {
    fn default() -> Self {
        Self {
            kind: ServiceType::default(),
            args: Vec::new(),
            user: None,
            group: None,
            supplementary_groups: Vec::new(),
            environment: BTreeMap::new(),
            restart_prevent_exit_status: default_prevent(),
            limit_nofile: default_nofile(),
            listen_stream: Vec::new(),
            security_threshold: default_threshold(),
        }
    }
}

fn default_prevent() -> Vec<u8> {
    vec![78]
}
fn default_nofile() -> u32 {
    65536
}
fn default_threshold() -> f64 {
    1.5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    /// `http`, `tcp`, `exec` or `none`.
    #[serde(default = "default_probe")]
    pub probe: String,
    pub url: Option<String>,
    pub address: Option<String>,
    #[serde(default)]
    pub argv: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
    #[serde(default = "default_settle")]
    pub settle_secs: u32,
}

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            probe: default_probe(),
            url: None,
            address: None,
            argv: Vec::new(),
            timeout_secs: default_timeout(),
            settle_secs: default_settle(),
        }
    }
}

fn default_probe() -> String {
    "none".into()
}
fn default_timeout() -> u32 {
    30
}
fn default_settle() -> u32 {
    2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsSection {
    #[serde(default = "default_rotate")]
    pub rotate: u32,
    #[serde(default = "default_frequency")]
    pub frequency: String,
    #[serde(default = "default_maxsize")]
    pub max_size: String,
    /// Signal that makes the service reopen its log file.
    #[serde(default = "default_signal")]
    pub reopen_signal: String,
}

impl Default for LogsSection {
    fn default() -> Self {
        Self {
            rotate: default_rotate(),
            frequency: default_frequency(),
            max_size: default_maxsize(),
            reopen_signal: default_signal(),
        }
    }
}

fn default_rotate() -> u32 {
    14
}
fn default_frequency() -> String {
    "daily".into()
}
fn default_maxsize() -> String {
    "100M".into()
}
fn default_signal() -> String {
    "HUP".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSection {
    /// Template file, relative to the project directory.
    pub template: PathBuf,
    pub dest: String,
    #[serde(default = "default_config_mode")]
    pub mode: String,
    #[serde(default = "default_root")]
    pub owner: String,
    /// Defaults to the service group.
    pub group: Option<String>,
    /// `preserve` (default) keeps an existing host file on upgrade; `replace` overwrites.
    #[serde(default = "default_on_upgrade")]
    pub on_upgrade: String,
}

fn default_config_mode() -> String {
    "0640".into()
}
fn default_root() -> String {
    "root".into()
}
fn default_on_upgrade() -> String {
    "preserve".into()
}

// No deny_unknown_fields: serde cannot combine it with flatten; every other key is an
// environment name, and values must be tables, so typos still fail to parse.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct EnvironmentsSection {
    pub default: Option<String>,
    #[serde(flatten)]
    pub values: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySection {
    pub path: String,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    #[serde(default)]
    pub acl: Vec<String>,
    #[serde(default)]
    pub default_acl: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSection {
    pub name: String,
    /// `credential` (LoadCredential=) or `environment_file` (EnvironmentFile=).
    #[serde(default = "default_secret_kind")]
    pub kind: String,
}

fn default_secret_kind() -> String {
    "credential".into()
}

/// Project overrides for the default templates in the repository's `templates/`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TemplatesSection {
    pub unit: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub logrotate: Option<PathBuf>,
    pub sysusers: Option<PathBuf>,
    pub tmpfiles: Option<PathBuf>,
}

/// A loaded project: the parsed file plus where it lives.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub dir: PathBuf,
    pub project: Project,
    pub targets: Vec<Target>,
}

impl Project {
    pub fn user(&self) -> &str {
        self.service.user.as_deref().unwrap_or(&self.app.name)
    }

    pub fn group(&self) -> &str {
        self.service.group.as_deref().unwrap_or_else(|| self.user())
    }

    pub fn default_env(&self) -> String {
        self.environments
            .default
            .clone()
            .or_else(|| self.environments.values.keys().next().cloned())
            .unwrap_or_else(|| "default".into())
    }

    pub fn env_names(&self) -> Vec<String> {
        if self.environments.values.is_empty() {
            vec![self.default_env()]
        } else {
            self.environments.values.keys().cloned().collect()
        }
    }
}

pub fn load(dir: &Path) -> Result<Loaded> {
    let path = dir.join("ferry.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let project: Project = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let targets = validate(&project).with_context(|| format!("checking {}", path.display()))?;
    Ok(Loaded {
        dir: dir.to_path_buf(),
        project,
        targets,
    })
}

fn validate(p: &Project) -> Result<Vec<Target>> {
    Name::new(&p.app.name).context("app.name")?;
    if !valid_version(&p.app.version) {
        bail!("app.version {:?} must be [0-9A-Za-z._+~-], starting with a letter or digit", p.app.version);
    }
    for n in [p.user(), p.group()] {
        Name::new(n).context("service.user / service.group")?;
        if n == "root" {
            bail!("the service must not run as root");
        }
    }
    for g in &p.service.supplementary_groups {
        Name::new(g).context("service.supplementary_groups")?;
    }
    if !(1..=22).contains(&p.build.zstd_level) {
        bail!("build.zstd_level must be 1..=22");
    }
    let mut targets = Vec::new();
    for t in &p.build.targets {
        let target = Target::parse(t).with_context(|| format!("build.targets: unsupported target {t:?} (linux/amd64 or linux/arm64)"))?;
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    if targets.is_empty() {
        bail!("build.targets is empty");
    }
    if let Some(d) = &p.environments.default {
        if !p.environments.values.is_empty() && !p.environments.values.contains_key(d) {
            bail!("environments.default = {d:?} but there is no [environments.{d}]");
        }
    }
    for e in p.environments.values.keys() {
        Name::new(e).with_context(|| format!("environment name {e:?}"))?;
    }
    for c in &p.configs {
        let dest = HostPath::new(&c.dest).with_context(|| format!("config dest {:?}", c.dest))?;
        if !dest.as_str().starts_with(&format!("/etc/{}/", p.app.name)) {
            bail!("config dest {} must be under /etc/{}/", c.dest, p.app.name);
        }
        Mode::parse(&c.mode).with_context(|| format!("config {} mode", c.dest))?;
        if !matches!(c.on_upgrade.as_str(), "preserve" | "replace") {
            bail!("config {} on_upgrade must be \"preserve\" or \"replace\"", c.dest);
        }
    }
    for d in &p.directories {
        HostPath::new(&d.path).with_context(|| format!("directory {:?}", d.path))?;
        if let Some(m) = &d.mode {
            Mode::parse(m).with_context(|| format!("directory {} mode", d.path))?;
        }
        for a in d.acl.iter().chain(&d.default_acl) {
            AclEntry::new(a).with_context(|| format!("directory {}", d.path))?;
        }
    }
    for s in &p.secrets {
        Name::new(&s.name).with_context(|| format!("secret {:?}", s.name))?;
        if !matches!(s.kind.as_str(), "credential" | "environment_file") {
            bail!("secret {} kind must be \"credential\" or \"environment_file\"", s.name);
        }
    }
    if !matches!(p.health.probe.as_str(), "http" | "tcp" | "exec" | "none") {
        bail!("health.probe must be http, tcp, exec or none");
    }
    Ok(targets)
}
