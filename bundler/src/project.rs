//! `ferry.toml`: what a project declares. Every field is documented in README.md.

pub mod secrets;

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
    /// Keys that look secret-named but are not (e.g. `password_policy`): exempt from the
    /// name rules of the inline-secret check; values that are key material stay refused.
    #[serde(default)]
    pub not_secrets: Vec<String>,
}

impl Default for BuildSection {
    fn default() -> Self {
        Self {
            targets: default_targets(),
            tags: Vec::new(),
            ldflags_x: BTreeMap::new(),
            zstd_level: default_level(),
            not_secrets: Vec::new(),
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
    /// The program sends `READY=1` (`sd_notify`): the best start gate.
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
    /// Capabilities the service keeps (`CAP_NET_BIND_SERVICE` to bind a port < 1024
    /// itself). Any capability turns `PrivateUsers=` off, which would void it; socket
    /// activation (`listen_stream`) is the better way to a low port.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// `PrivateNetwork=`: default yes with socket activation (the service then only has the
    /// sockets systemd passes it), no otherwise. Set false if a socket-activated service
    /// also connects out.
    pub private_network: Option<bool>,
    /// Address families beyond `AF_INET AF_INET6 AF_UNIX`, e.g. `AF_NETLINK` for a
    /// program that enumerates network interfaces.
    #[serde(default)]
    pub extra_address_families: Vec<String>,
    /// When set, `IPAddressDeny=any` plus `IPAddressAllow=` these (`localhost`,
    /// `10.0.0.0/8`, ...): the service may talk to nothing else.
    #[serde(default)]
    pub ip_address_allow: Vec<String>,
    /// `WatchdogSec=` (notify services only): systemd restarts the service when it stops
    /// sending `WATCHDOG=1`.
    pub watchdog_sec: Option<u32>,
    /// `new`: a system account ferry creates (the default); `existing`: `user` names an
    /// account the host already has, which the host's policy must allow.
    #[serde(default = "default_account")]
    pub account: ferry_format::footprint::Account,
    /// Sandbox knobs relaxed from ferry's hardened unit (`ferry_format::sandbox`).
    #[serde(default)]
    pub sandbox: SandboxSection,
}

fn default_account() -> ferry_format::footprint::Account {
    ferry_format::footprint::Account::New
}

/// `[service.sandbox]`: a `profile` and/or knobs by name (`proc_subset = "all"`,
/// `private_tmp = false`). Every key is checked against `ferry_format::sandbox::KNOBS`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SandboxSection {
    pub profile: Option<String>,
    #[serde(flatten)]
    pub knobs: BTreeMap<String, toml::Value>,
}

impl SandboxSection {
    /// The knobs as the manifest has them: the profile's settings, then the project's own.
    pub fn resolve(&self) -> Result<ferry_format::sandbox::Sandbox> {
        use ferry_format::sandbox;
        let mut s = sandbox::Sandbox::default();
        if let Some(name) = &self.profile {
            let prof = sandbox::profile(name).with_context(|| {
                format!(
                    "service.sandbox.profile = {name:?}: known profiles are {}",
                    sandbox::PROFILES
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            for (k, v) in prof.settings {
                s.set(k, v).expect("profiles hold valid settings");
            }
        }
        for (k, v) in &self.knobs {
            let value = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Boolean(true) => "yes".into(),
                toml::Value::Boolean(false) => "no".into(),
                other => bail!("service.sandbox.{k} = {other}: expected a string or true/false"),
            };
            s.set(k, &value)
                .map_err(|e| anyhow::anyhow!("service.sandbox: {e}"))?;
        }
        Ok(s)
    }
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
            capabilities: Vec::new(),
            private_network: None,
            extra_address_families: Vec::new(),
            ip_address_allow: Vec::new(),
            watchdog_sec: None,
            account: default_account(),
            sandbox: SandboxSection::default(),
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
    /// `credential` (`LoadCredential=`) or `environment_file` (`EnvironmentFile=`).
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

/// Names the templates' context already uses: a `[vars]` key must not shadow them.
pub const RESERVED_VARS: &[&str] = &[
    "app",
    "user",
    "group",
    "service",
    "logs",
    "health",
    "paths",
    "directories",
    "secrets",
    "socket",
    "env",
];

/// Capabilities `service.capabilities` may name (capabilities(7)).
const CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
];

/// Address families `service.extra_address_families` may add.
const ADDRESS_FAMILIES: &[&str] = &[
    "AF_NETLINK",
    "AF_PACKET",
    "AF_VSOCK",
    "AF_CAN",
    "AF_BLUETOOTH",
    "AF_ALG",
    "AF_TIPC",
    "AF_XDP",
    "AF_QIPCRTR",
];

impl Project {
    /// Whether systemd holds the listening sockets (`service.listen_stream`).
    pub fn socket_activated(&self) -> bool {
        !self.service.listen_stream.is_empty()
    }

    /// `PrivateNetwork=`: explicit, else on exactly when socket-activated.
    pub fn private_network(&self) -> bool {
        self.service
            .private_network
            .unwrap_or_else(|| self.socket_activated())
    }

    /// `PrivateUsers=` voids every capability in the host's namespace, so it is on only
    /// when the service keeps none.
    pub fn private_users(&self) -> bool {
        self.service.capabilities.is_empty()
    }

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
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let project: Project =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let targets = validate(&project).with_context(|| format!("checking {}", path.display()))?;
    Ok(Loaded {
        dir: dir.to_path_buf(),
        project,
        targets,
    })
}

fn validate(p: &Project) -> Result<Vec<Target>> {
    ferry_format::layout::AppName::new(&p.app.name).context("app.name")?;
    ferry_format::install::Text::new(&p.app.description).context("app.description")?;
    p.service.sandbox.resolve()?;
    if !valid_version(&p.app.version) {
        bail!(
            "app.version {:?} must be [0-9A-Za-z._+~-], starting with a letter or digit",
            p.app.version
        );
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
        let target = Target::parse(t).with_context(|| {
            format!("build.targets: unsupported target {t:?} (linux/amd64 or linux/arm64)")
        })?;
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
            bail!(
                "config {} on_upgrade must be \"preserve\" or \"replace\"",
                c.dest
            );
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
            bail!(
                "secret {} kind must be \"credential\" or \"environment_file\"",
                s.name
            );
        }
    }
    if !matches!(p.health.probe.as_str(), "http" | "tcp" | "exec" | "none") {
        bail!("health.probe must be http, tcp, exec or none");
    }
    validate_service(p)?;
    validate_logs(&p.logs)?;
    validate_vars(p)?;
    validate_layout(p)?;
    refuse_inline_secrets(p)?;
    Ok(targets)
}

/// No byte a unit file or config line could not hold.
fn check_unit_text(what: &str, v: &str) -> Result<()> {
    if v.chars().any(char::is_control) {
        bail!("{what} {v:?} contains a control character (newline, tab, ...)");
    }
    Ok(())
}

/// `PORT`, `IPv4:PORT`, `[IPv6]:PORT` or an absolute path (a UNIX socket); the TCP port.
fn listen_port(addr: &str) -> Result<Option<u16>> {
    if addr.starts_with('/') {
        HostPath::new(addr).with_context(|| format!("service.listen_stream {addr:?}"))?;
        return Ok(None);
    }
    let port = match addr.parse::<u16>() {
        Ok(p) => p,
        Err(_) => addr
            .parse::<std::net::SocketAddr>()
            .map(|a| a.port())
            .map_err(|_| {
                anyhow::anyhow!(
                    "service.listen_stream {addr:?}: expected PORT, IP:PORT, [IPv6]:PORT or /path"
                )
            })?,
    };
    if port == 0 {
        bail!("service.listen_stream {addr:?}: port 0");
    }
    Ok(Some(port))
}

/// The port a health probe targets, if it names one.
fn probe_port(h: &HealthSection) -> Option<u16> {
    let hostport = match h.probe.as_str() {
        "http" => {
            let url = h.url.as_deref()?;
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let authority = rest.split('/').next()?;
            if authority
                .rsplit_once(']')
                .map_or(!authority.contains(':'), |(_, p)| !p.contains(':'))
            {
                return Some(if url.starts_with("https") { 443 } else { 80 });
            }
            authority.to_owned()
        }
        "tcp" => h.address.clone()?,
        _ => return None,
    };
    hostport.rsplit_once(':')?.1.parse().ok()
}

fn validate_service(p: &Project) -> Result<()> {
    let s = &p.service;
    for (k, v) in &s.environment {
        let ok = k
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            bail!("service.environment: {k:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
        }
        check_unit_text(&format!("service.environment.{k}"), v)?;
    }
    for a in &s.args {
        check_unit_text("service.args entry", a)?;
    }
    let mut ports = Vec::new();
    for l in &s.listen_stream {
        ports.extend(listen_port(l)?);
    }
    for c in &s.capabilities {
        if !CAPABILITIES.contains(&c.as_str()) {
            bail!("service.capabilities: unknown capability {c:?} (e.g. CAP_NET_BIND_SERVICE)");
        }
    }
    for f in &s.extra_address_families {
        if !ADDRESS_FAMILIES.contains(&f.as_str()) {
            bail!(
                "service.extra_address_families: {f:?} is not one of {} (AF_INET, AF_INET6 and AF_UNIX are always allowed)",
                ADDRESS_FAMILIES.join(", ")
            );
        }
    }
    for a in &s.ip_address_allow {
        let (ip, prefix) = a
            .split_once('/')
            .map_or((a.as_str(), None), |(i, p)| (i, Some(p)));
        let keyword = matches!(a.as_str(), "any" | "localhost" | "link-local" | "multicast");
        let max = match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => 32,
            Ok(std::net::IpAddr::V6(_)) => 128,
            Err(_) => 0,
        };
        let prefix_ok = prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|n| n <= max));
        if !keyword && (max == 0 || !prefix_ok) {
            bail!("service.ip_address_allow: {a:?} is not an address, a prefix (10.0.0.0/8) or any/localhost/link-local/multicast");
        }
    }
    if let Some(w) = s.watchdog_sec {
        if s.kind != ServiceType::Notify {
            bail!("service.watchdog_sec needs type = \"notify\": only a notify service sends WATCHDOG=1");
        }
        if !(1..=3600).contains(&w) {
            bail!("service.watchdog_sec must be 1..=3600");
        }
    }
    if s.limit_nofile == 0 || s.limit_nofile > 1 << 20 {
        bail!("service.limit_nofile must be 1..=1048576 (the kernel's default nr_open)");
    }
    if !s.security_threshold.is_finite() || !(0.0..=10.0).contains(&s.security_threshold) {
        bail!("service.security_threshold must be 0.0..=10.0 (systemd-analyze security's exposure scale)");
    }
    if s.restart_prevent_exit_status.contains(&0) {
        bail!("service.restart_prevent_exit_status: 0 is success, which never restarts anyway");
    }
    if !(1..=3600).contains(&p.health.timeout_secs) {
        bail!("health.timeout_secs must be 1..=3600");
    }
    // A service that binds a port < 1024 itself needs CAP_NET_BIND_SERVICE, which
    // PrivateUsers= voids: say so at build time, not as EACCES on the host.
    if let Some(port) = probe_port(&p.health).filter(|&port| port < 1024) {
        if !ports.contains(&port) && !s.capabilities.iter().any(|c| c == "CAP_NET_BIND_SERVICE") {
            bail!(
                "the health probe targets port {port} < 1024, which the service cannot bind under ferry's \
                 hardening (no capabilities, PrivateUsers=yes). Prefer socket activation: \
                 service.listen_stream = [\"{port}\"] (systemd binds the port and passes it in); \
                 or service.capabilities = [\"CAP_NET_BIND_SERVICE\"] (turns PrivateUsers= off)"
            );
        }
    }
    Ok(())
}

fn validate_logs(l: &LogsSection) -> Result<()> {
    if !matches!(l.reopen_signal.as_str(), "HUP" | "USR1" | "USR2") {
        bail!("logs.reopen_signal must be HUP, USR1 or USR2 (without SIG)");
    }
    if !matches!(
        l.frequency.as_str(),
        "daily" | "weekly" | "monthly" | "yearly"
    ) {
        bail!("logs.frequency must be daily, weekly, monthly or yearly (logrotate runs daily on Debian)");
    }
    let digits = l.max_size.trim_end_matches(['k', 'K', 'M', 'G']);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || l.max_size.len() - digits.len() > 1
    {
        bail!(
            "logs.max_size {:?}: expected a number with an optional k, M or G suffix",
            l.max_size
        );
    }
    if l.rotate > 1000 {
        bail!("logs.rotate must be at most 1000");
    }
    Ok(())
}

fn validate_vars(p: &Project) -> Result<()> {
    let tables = std::iter::once(("[vars]".to_owned(), &p.vars)).chain(
        p.environments
            .values
            .iter()
            .map(|(e, t)| (format!("[environments.{e}]"), t)),
    );
    for (place, table) in tables {
        for k in table.keys() {
            if RESERVED_VARS.contains(&k.as_str()) {
                bail!("{place}: {k:?} is reserved (templates already get {k}); rename it");
            }
            let ident = k
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ident {
                bail!("{place}: {k:?} is not usable as a template variable (letters, digits and _ only)");
            }
        }
    }
    Ok(())
}

fn validate_layout(p: &Project) -> Result<()> {
    let app = &p.app.name;
    let name = ferry_format::layout::AppName::new(app)?;
    let allowed = name.layout().prefixes();
    for d in &p.directories {
        let inside = HostPath::new(&d.path).is_ok_and(|hp| name.layout().owns(&hp));
        if !inside {
            bail!(
                "directory {} must be under one of {}",
                d.path,
                allowed
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for n in [&d.owner, &d.group].into_iter().flatten() {
            Name::new(n).with_context(|| format!("directory {} owner/group", d.path))?;
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &p.secrets {
        if !seen.insert(&s.name) {
            bail!("secret {} is declared twice", s.name);
        }
        let file = if s.kind == "credential" {
            s.name.clone()
        } else {
            format!("{}.env", s.name)
        };
        if p.configs
            .iter()
            .any(|c| c.dest == format!("/etc/{app}/{file}"))
        {
            bail!(
                "secret {} would land on /etc/{app}/{file}, which is also a config file",
                s.name
            );
        }
    }
    Ok(())
}

/// `ferry build` refuses a value that carries a secret inline; see [`secrets`].
fn refuse_inline_secrets(p: &Project) -> Result<()> {
    let allow = &p.build.not_secrets;
    let mut found = Vec::new();
    secrets::scan_table("[vars] (every environment)", &p.vars, allow, &mut found);
    for (env, table) in &p.environments.values {
        secrets::scan_table(&format!("[environments.{env}]"), table, allow, &mut found);
    }
    let env_table: toml::Table = p
        .service
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), toml::Value::String(v.clone())))
        .collect();
    secrets::scan_table("service.environment", &env_table, allow, &mut found);
    secrets::scan_args("service.args", &p.service.args, allow, &mut found);
    let ldflags: toml::Table = p
        .build
        .ldflags_x
        .iter()
        .map(|(k, v)| (k.clone(), toml::Value::String(v.clone())))
        .collect();
    secrets::scan_table("build.ldflags_x", &ldflags, allow, &mut found);
    let probe = [p.health.url.as_deref(), p.health.address.as_deref()]
        .into_iter()
        .flatten()
        .map(ToOwned::to_owned)
        .chain(p.health.argv.iter().cloned())
        .collect::<Vec<_>>();
    secrets::scan_args("health", &probe, allow, &mut found);
    if found.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = found
        .iter()
        .map(|f| format!("  {}: {} ({})", f.place, f.key, f.reason.describe()))
        .collect();
    let name_only = found.iter().all(|f| !f.reason.is_value_evidence());
    bail!(
        "ferry.toml carries what looks like a secret inline, and a bundle must never hold one:\n{}\n\
         Declare it as a secret instead: [[secrets]] name = \"NAME\" (kind \"credential\" for \
         LoadCredential=, or \"environment_file\" for EnvironmentFile=); the installer creates \
         the file empty (0600) and an operator fills it on the host. Point the config at \
         /run/credentials/{}.service/NAME (the secret's credential_path in templates).{}",
        lines.join("\n"),
        p.app.name,
        if name_only {
            " If a value is not a secret, list its key in [build] not_secrets."
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "[app]\nname = \"hello\"\nversion = \"1.0.0\"\n";

    fn check(extra: &str) -> Result<Vec<Target>> {
        let p: Project = toml::from_str(&format!("{BASE}{extra}"))?;
        validate(&p)
    }

    fn err(extra: &str) -> String {
        format!("{:#}", check(extra).expect_err(extra))
    }

    #[test]
    fn the_example_project_is_valid() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/hello/ferry.toml"
        ))
        .unwrap();
        let p: Project = toml::from_str(&text).unwrap();
        validate(&p).unwrap();
        assert!(!p.socket_activated() && !p.private_network() && p.private_users());
    }

    #[test]
    fn low_ports_need_socket_activation_or_the_capability() {
        let probe80 = "[health]\nprobe = \"http\"\nurl = \"http://127.0.0.1/healthz\"\n";
        assert!(err(probe80).contains("service.listen_stream = [\"80\"]"));
        check(&format!("[service]\nlisten_stream = [\"80\"]\n{probe80}")).unwrap();
        check(&format!(
            "[service]\nlisten_stream = [\"0.0.0.0:80\"]\n{probe80}"
        ))
        .unwrap();
        check(&format!(
            "[service]\ncapabilities = [\"CAP_NET_BIND_SERVICE\"]\n{probe80}"
        ))
        .unwrap();
        check("[health]\nprobe = \"tcp\"\naddress = \"127.0.0.1:8080\"\n").unwrap();
        assert!(err("[health]\nprobe = \"tcp\"\naddress = \"127.0.0.1:443\"\n").contains("443"));
        assert!(err("[health]\nprobe = \"http\"\nurl = \"https://[::1]/x\"\n").contains("443"));
    }

    #[test]
    fn service_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("[service]\nlisten_stream = [\"127.0.0.1:8080\", \"[::1]:8080\", \"8081\", \"/run/hello/hello.sock\"]\n", None),
            ("[service]\nlisten_stream = [\"localhost:8080\"]\n", Some("expected PORT")),
            ("[service]\nlisten_stream = [\"0\"]\n", Some("port 0")),
            ("[service]\ncapabilities = [\"CAP_NET_BIND_SERVICE\"]\n", None),
            ("[service]\ncapabilities = [\"NET_BIND_SERVICE\"]\n", Some("unknown capability")),
            ("[service]\nextra_address_families = [\"AF_NETLINK\"]\n", None),
            ("[service]\nextra_address_families = [\"AF_INET\"]\n", Some("always allowed")),
            ("[service]\nip_address_allow = [\"localhost\", \"10.0.0.0/8\", \"::1/128\"]\n", None),
            ("[service]\nip_address_allow = [\"10.0.0.0/33\"]\n", Some("ip_address_allow")),
            ("[service]\nwatchdog_sec = 30\n", None),
            ("[service]\ntype = \"exec\"\nwatchdog_sec = 30\n", Some("needs type = \"notify\"")),
            ("[service]\nenvironment = { \"BAD-NAME\" = \"x\" }\n", Some("not an environment variable name")),
            ("[service]\nenvironment = { A = \"line\\nbreak\" }\n", Some("control character")),
            ("[service]\nargs = [\"a\\tb\"]\n", Some("control character")),
            ("[service]\nlimit_nofile = 0\n", Some("limit_nofile")),
            ("[service]\nsecurity_threshold = 11.0\n", Some("security_threshold")),
            ("[service]\nrestart_prevent_exit_status = [0]\n", Some("0 is success")),
            ("[service]\nuser = \"root\"\n", Some("must not run as root")),
            ("[logs]\nreopen_signal = \"SIGHUP\"\n", Some("reopen_signal")),
            ("[logs]\nfrequency = \"hourly\"\n", Some("frequency")),
            ("[logs]\nmax_size = \"100MB\"\n", Some("max_size")),
            ("[logs]\nmax_size = \"512k\"\n", None),
        ];
        for (extra, want) in cases {
            match (check(extra), want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => assert!(format!("{e:#}").contains(w), "{extra}: {e:#}"),
                (r, w) => panic!(
                    "{extra}: got {:?}, wanted error containing {w:?}",
                    r.map(|_| ())
                ),
            }
        }
    }

    #[test]
    fn vars_may_not_shadow_the_context_and_must_be_identifiers() {
        assert!(err("[vars]\napp = \"x\"\n").contains("reserved"));
        assert!(err("[environments.prod]\nsecrets = \"x\"\n").contains("[environments.prod]"));
        assert!(
            err("[vars]\n\"log-level\" = \"x\"\n").contains("not usable as a template variable")
        );
        check("[vars]\nlog_level = \"info\"\n").unwrap();
    }

    #[test]
    fn directories_stay_under_the_apps_prefixes() {
        check("[[directories]]\npath = \"/srv/hello/data\"\n").unwrap();
        assert!(err("[[directories]]\npath = \"/home/hello\"\n").contains("must be under"));
        assert!(err("[[directories]]\npath = \"/var/lib/hellothere\"\n").contains("must be under"));
    }

    #[test]
    fn secrets_are_unique_and_do_not_collide_with_configs() {
        let cfg = "[[config]]\ntemplate = \"t.j2\"\ndest = \"/etc/hello/token\"\n";
        assert!(
            err(&format!("{cfg}[[secrets]]\nname = \"token\"\n")).contains("also a config file")
        );
        assert!(err(
            "[[secrets]]\nname = \"a\"\n[[secrets]]\nname = \"a\"\nkind = \"environment_file\"\n"
        )
        .contains("twice"));
    }

    #[test]
    fn inline_secrets_are_refused_with_key_and_environment() {
        let e = err("[environments.prod]\ndb_password = \"hunter2\"\n");
        assert!(
            e.contains("[environments.prod]: db_password") && e.contains("[[secrets]]"),
            "{e}"
        );
        assert!(e.contains("not_secrets"), "{e}");
        let e = err("[vars]\nnote = \"AKIAIOSFODNN7EXAMPLE\"\n");
        assert!(
            e.contains("[vars] (every environment): note") && !e.contains("not_secrets"),
            "{e}"
        );
        assert!(err("[service]\nenvironment = { API_TOKEN = \"abc\" }\n")
            .contains("service.environment: API_TOKEN"));
        assert!(err("[service]\nargs = [\"--password=pw\"]\n").contains("service.args"));
        assert!(err("[build]\nldflags_x = { \"main.apiKey\" = \"k\" }\n")
            .contains("build.ldflags_x: main.apiKey"));
        assert!(
            err("[health]\nprobe = \"http\"\nurl = \"http://u:pw@127.0.0.1:8080/\"\n")
                .contains("health")
        );
        check("[vars]\ntoken_file = \"/run/credentials/hello.service/admin-token\"\n").unwrap();
        check("[build]\nnot_secrets = [\"password_rules\"]\n[vars]\npassword_rules = \"strict\"\n")
            .unwrap();
    }
}
