//! `ferry.toml`: what a project declares. Every field is documented in README.md.
//!
//! The file deserializes straight into validated types: `ferry_format`'s (`AppName`,
//! `Version`, `Text`, `Name`, `HostPath`, `Mode`, `AclEntry`, `Capability`, `ListenAddr`,
//! `IpAllow`, `Signal`, `Probe`, `Sandbox`, ...) and the bundler's own in [`types`]
//! (`GoPackage`, `GoSymbol`, `LdflagsValue`, `ProjectPath`, ...). A value is checked once,
//! where it is parsed, and the error names the key path and line (`ferry.toml:12:
//! service.capabilities[0]: unknown capability "NET_BIND_SERVICE"`). What is left for
//! [`validate`] are the rules between keys (a config under `/etc/APP`, a watchdog only for
//! notify services, a probe port the service can bind) and the inline-secret scan.

pub mod files;
pub mod secrets;
pub mod types;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use ferry_format::footprint::{
    Account, AddressFamily, Capability, IpAllow, ListenAddr, ServiceType, Signal,
};
use ferry_format::install::{
    AclEntry, Argv, HostPath, HttpUrl, Name, OnUpgrade, Probe, ProbeAddr, SecretKind, Text,
};
use ferry_format::layout::{AppName, Layout};
use ferry_format::manifest::{Target, Version};
use ferry_format::mode::Mode;
use ferry_format::sandbox::Sandbox;
use serde::{Deserialize, Deserializer};

pub use types::RESERVED_VARS;
use types::{
    BeforeStep, BuildTag, EnvName, ExitStatus, ExtraFamily, Frequency, GoPackage, GoSymbol,
    Invalid, LdflagsTemplate, LimitNofile, MaxSize, NotRoot, ProbeKind, ProjectPath, RotateCount,
    SettleSecs, TargetSpec, Threshold, TimeoutSecs, UnitText, Vars, WatchdogSec, ZstdLevel,
};
pub use types::{LogsMode, Templated};

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
    pub vars: Vars,
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
    pub name: AppName,
    pub version: Version,
    /// The unit's `Description=` and the SBOM's: no control characters (a newline would
    /// start a directive of its own in the unit).
    #[serde(default)]
    pub description: Text,
    /// Go package to build: `.`, `./DIR` or an import path; never a flag.
    #[serde(default)]
    pub package: GoPackage,
    /// Go variable that receives the version through `-ldflags -X`. Set: the program
    /// must have it, or the build fails. Unset: `main.version` when the program has it,
    /// else no stamp, reported as a `version-stamp` warning (a program may take its
    /// version from Go's build info, as Caddy does).
    #[serde(default)]
    pub version_variable: Option<GoSymbol>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    #[serde(default = "default_targets")]
    pub targets: Vec<TargetSpec>,
    #[serde(default)]
    pub tags: Vec<BuildTag>,
    /// Extra `-X name=value` link-time assignments; values may use `{{ version }}`,
    /// `{{ revision }}` and `{{ date }}`.
    #[serde(default)]
    pub ldflags_x: BTreeMap<GoSymbol, LdflagsTemplate>,
    #[serde(default = "default_level")]
    pub zstd_level: ZstdLevel,
    /// Keys that look secret-named but are not (e.g. `password_policy`): exempt from the
    /// name rules of the inline-secret check; values that are key material stay refused.
    #[serde(default, deserialize_with = "plain_strings")]
    pub not_secrets: Vec<String>,
    /// Programs run in the build copy before vendoring and compiling (generated assets),
    /// only with `ferry build --run-before`; recorded in the manifest.
    #[serde(default, deserialize_with = "before_steps")]
    pub before: Vec<BeforeStep>,
}

/// Strings that are names, not templates.
fn plain_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    match v.iter().find(|s| types::is_template(s)) {
        Some(t) => Err(serde::de::Error::custom(format!(
            "{t:?}: templates are rendered only in build.ldflags_x values"
        ))),
        None => Ok(v),
    }
}

/// `[build] before`, within the manifest's limits (`ferry_format::Limits`), so a project
/// never builds a bundle a reader refuses.
fn before_steps<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<BeforeStep>, D::Error> {
    let steps = Vec::<BeforeStep>::deserialize(d)?;
    let limits = ferry_format::Limits::default();
    if steps.len() > limits.before_steps {
        return Err(serde::de::Error::custom(format!(
            "{} steps: at most {}",
            steps.len(),
            limits.before_steps
        )));
    }
    if let Some(s) = steps
        .iter()
        .find(|s| s.0.bytes() > limits.before_step_bytes)
    {
        return Err(serde::de::Error::custom(format!(
            "step {:?} is {} bytes long (its words plus one each): at most {}",
            s.0.program(),
            s.0.bytes(),
            limits.before_step_bytes
        )));
    }
    Ok(steps)
}

impl Default for BuildSection {
    fn default() -> Self {
        Self {
            targets: default_targets(),
            tags: Vec::new(),
            ldflags_x: BTreeMap::new(),
            zstd_level: default_level(),
            not_secrets: Vec::new(),
            before: Vec::new(),
        }
    }
}

fn default_targets() -> Vec<TargetSpec> {
    ["linux/amd64", "linux/arm64"]
        .iter()
        .map(|t| TargetSpec(Target::parse(t).expect("a supported target")))
        .collect()
}
fn default_level() -> ZstdLevel {
    ZstdLevel::new(9).expect("in range")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// `notify` (the program sends `READY=1`) or `exec`.
    #[serde(
        default = "default_type",
        rename = "type",
        deserialize_with = "service_type"
    )]
    pub kind: ServiceType,
    /// Arguments after the binary.
    #[serde(default)]
    pub args: Vec<UnitText>,
    pub user: Option<NotRoot>,
    pub group: Option<NotRoot>,
    #[serde(default)]
    pub supplementary_groups: Vec<NotRoot>,
    #[serde(default)]
    pub environment: BTreeMap<EnvName, UnitText>,
    /// Exit codes that mean "bad configuration": systemd does not restart on them.
    #[serde(default = "default_prevent")]
    pub restart_prevent_exit_status: Vec<ExitStatus>,
    #[serde(default = "default_nofile")]
    pub limit_nofile: LimitNofile,
    /// Addresses systemd listens on for socket activation (`ListenStream=`); empty: none.
    #[serde(default)]
    pub listen_stream: Vec<ListenAddr>,
    /// Warn above this `systemd-analyze security` exposure; `ferry build --strict` fails.
    #[serde(default = "default_threshold")]
    pub security_threshold: Threshold,
    /// Capabilities the service keeps (`CAP_NET_BIND_SERVICE` to bind a port < 1024
    /// itself). Any capability turns `PrivateUsers=` off, which would void it; socket
    /// activation (`listen_stream`) is the better way to a low port.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// `PrivateNetwork=`: default yes with socket activation (the service then only has the
    /// sockets systemd passes it), no otherwise. Set false if a socket-activated service
    /// also connects out.
    pub private_network: Option<bool>,
    /// Address families beyond `AF_INET AF_INET6 AF_UNIX`, e.g. `AF_NETLINK` for a
    /// program that enumerates network interfaces.
    #[serde(default)]
    pub extra_address_families: Vec<ExtraFamily>,
    /// When set, `IPAddressDeny=any` plus `IPAddressAllow=` these (`localhost`,
    /// `10.0.0.0/8`, ...): the service may talk to nothing else.
    #[serde(default)]
    pub ip_address_allow: Vec<IpAllow>,
    /// `WatchdogSec=` (notify services only): systemd restarts the service when it stops
    /// sending `WATCHDOG=1`.
    pub watchdog_sec: Option<WatchdogSec>,
    /// `new`: a system account ferry creates (the default); `existing`: `user` names an
    /// account the host already has, which the host's policy must allow.
    #[serde(default = "default_account")]
    pub account: Account,
    /// `[service.sandbox]`: a `profile` and/or knobs by name (`proc_subset = "all"`,
    /// `private_tmp = false`), resolved into the manifest's relaxations on parse.
    #[serde(default, deserialize_with = "sandbox")]
    pub sandbox: Sandbox,
    /// `ExecReload=` sends this signal; unset: the unit offers no reload (a Go program
    /// that does not handle the signal would stop).
    #[serde(default, deserialize_with = "optional_signal")]
    pub reload_signal: Option<Signal>,
}

fn optional_signal<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Signal>, D::Error> {
    signal(d).map(Some)
}

impl Default for ServiceSection {
    fn default() -> Self {
        Self {
            kind: default_type(),
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
            sandbox: Sandbox::default(),
            reload_signal: None,
        }
    }
}

fn default_type() -> ServiceType {
    ServiceType::Notify
}
fn service_type<'de, D: Deserializer<'de>>(d: D) -> Result<ServiceType, D::Error> {
    let s = String::deserialize(d)?;
    ServiceType::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{s:?} is not a service type ferry runs: notify (the program sends READY=1) or exec"
        ))
    })
}

fn default_prevent() -> Vec<ExitStatus> {
    vec![ExitStatus::new(78).expect("in range")]
}
fn default_nofile() -> LimitNofile {
    LimitNofile::new(65536).expect("in range")
}
fn default_threshold() -> Threshold {
    Threshold::new(1.5).expect("in range")
}
fn default_account() -> Account {
    Account::New
}

/// `[service.sandbox]`: `profile` first, then each knob, as `ferry_format::sandbox` has
/// them; a knob set to ferry's hardened value removes the relaxation.
fn sandbox<'de, D: Deserializer<'de>>(d: D) -> Result<Sandbox, D::Error> {
    let raw = BTreeMap::<String, toml::Value>::deserialize(d)?;
    apply_sandbox(Sandbox::default(), &raw).map_err(serde::de::Error::custom)
}

/// `base` with a `[service.sandbox]`-shaped table applied: its `profile`, then each knob.
pub fn apply_sandbox(
    mut s: Sandbox,
    raw: &BTreeMap<String, toml::Value>,
) -> Result<Sandbox, String> {
    use ferry_format::sandbox;
    if let Some(v) = raw.get("profile") {
        let name = v.as_str().ok_or("profile must be a string")?;
        let prof = sandbox::profile(name).ok_or_else(|| {
            format!(
                "profile {name:?} is unknown; known profiles are {}",
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
    for (k, v) in raw.iter().filter(|(k, _)| *k != "profile") {
        let value = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Boolean(true) => "yes".into(),
            toml::Value::Boolean(false) => "no".into(),
            other => return Err(format!("{k} = {other}: expected a string or true/false")),
        };
        s.set(k, &value).map_err(|e| e.to_string())?;
    }
    Ok(s)
}

/// `[health]` (and `[environments.NAME.health]`): which probe, with its values checked on
/// parse when plain and per environment when they use `{{ var }}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawHealth")]
pub struct HealthSection {
    pub probe: ProbeSpec,
    pub timeout_secs: TimeoutSecs,
    pub settle_secs: SettleSecs,
}

/// A probe before rendering: each kind with its own (possibly templated) values.
#[derive(Debug, Clone)]
pub enum ProbeSpec {
    None,
    Http {
        url: Templated<HttpUrl>,
        body_contains: Option<Templated<UnitText>>,
    },
    Tcp {
        address: Templated<ProbeAddr>,
    },
    Exec {
        argv: Vec<Templated<UnitText>>,
    },
}

impl ProbeSpec {
    /// The probe for one environment; `render` renders a template string.
    pub fn resolve(&self, render: &dyn Fn(&str) -> Result<String>) -> Result<Probe> {
        Ok(match self {
            Self::None => Probe::None,
            Self::Http { url, body_contains } => Probe::Http {
                url: url.resolve(render)?,
                body_contains: body_contains
                    .as_ref()
                    .map(|b| -> Result<Text> {
                        let t = b.resolve(render)?;
                        Text::new(t.as_str()).map_err(|e| anyhow!("health.body_contains: {e}"))
                    })
                    .transpose()?,
            },
            Self::Tcp { address } => Probe::Tcp {
                address: address.resolve(render)?,
            },
            Self::Exec { argv } => Probe::Exec {
                argv: Argv::new(
                    argv.iter()
                        .map(|w| w.resolve(render).map(|t| t.as_str().to_owned()))
                        .collect::<Result<_>>()?,
                )
                .map_err(|e| anyhow!("health.argv: {e}"))?,
            },
        })
    }

    /// Every value as written (templates unrendered), for the inline-secret scan.
    pub fn texts(&self) -> Vec<String> {
        fn t<T: std::fmt::Display>(v: &Templated<T>) -> String {
            match v {
                Templated::Plain(p) => p.to_string(),
                Templated::Template(s) => s.clone(),
            }
        }
        match self {
            Self::None => Vec::new(),
            Self::Http { url, body_contains } => {
                let mut v = vec![t(url)];
                v.extend(body_contains.iter().map(t));
                v
            }
            Self::Tcp { address } => vec![t(address)],
            Self::Exec { argv } => argv.iter().map(t).collect(),
        }
    }

    /// The probe when nothing in it needs rendering.
    pub fn plain(&self) -> Option<Probe> {
        self.resolve(&|t| Err(anyhow!("{t:?} is a template"))).ok()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    #[serde(default)]
    probe: ProbeKind,
    url: Option<Templated<HttpUrl>>,
    body_contains: Option<Templated<UnitText>>,
    address: Option<Templated<ProbeAddr>>,
    argv: Option<Vec<Templated<UnitText>>>,
    #[serde(default = "default_timeout")]
    timeout_secs: TimeoutSecs,
    #[serde(default = "default_settle")]
    settle_secs: SettleSecs,
}

impl TryFrom<RawHealth> for HealthSection {
    type Error = Invalid;

    fn try_from(r: RawHealth) -> Result<Self, Invalid> {
        let kind = match r.probe {
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Exec => "exec",
            ProbeKind::None => "none",
        };
        for (key, given, used_by) in [
            ("url", r.url.is_some(), ProbeKind::Http),
            ("body_contains", r.body_contains.is_some(), ProbeKind::Http),
            ("address", r.address.is_some(), ProbeKind::Tcp),
            ("argv", r.argv.is_some(), ProbeKind::Exec),
        ] {
            if given && r.probe != used_by {
                return Err(Invalid(format!(
                    "{key} is set but probe = {kind:?} does not use it"
                )));
            }
        }
        let probe = match r.probe {
            ProbeKind::Http => ProbeSpec::Http {
                url: r.url.ok_or_else(|| {
                    Invalid("probe = \"http\" needs url = \"http://IP:PORT/PATH\"".into())
                })?,
                body_contains: r.body_contains,
            },
            ProbeKind::Tcp => ProbeSpec::Tcp {
                address: r
                    .address
                    .ok_or_else(|| Invalid("probe = \"tcp\" needs address = \"IP:PORT\"".into()))?,
            },
            ProbeKind::Exec => {
                let argv = r.argv.ok_or_else(|| {
                    Invalid("probe = \"exec\" needs argv = [\"/ABSOLUTE/PROGRAM\", ...]".into())
                })?;
                // Plain command lines are checked now; templated ones per environment.
                if argv.iter().all(|w| w.plain().is_some()) {
                    Argv::new(
                        argv.iter()
                            .map(|w| w.plain().expect("plain").as_str().to_owned())
                            .collect(),
                    )
                    .map_err(|e| Invalid(e.to_string()))?;
                }
                ProbeSpec::Exec { argv }
            }
            ProbeKind::None => ProbeSpec::None,
        };
        Ok(Self {
            probe,
            timeout_secs: r.timeout_secs,
            settle_secs: r.settle_secs,
        })
    }
}

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            probe: ProbeSpec::None,
            timeout_secs: default_timeout(),
            settle_secs: default_settle(),
        }
    }
}

fn default_timeout() -> TimeoutSecs {
    TimeoutSecs::new(30).expect("in range")
}
fn default_settle() -> SettleSecs {
    SettleSecs::new(2).expect("in range")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsSection {
    /// `journal` (default): stdout and stderr; `files`: `/var/log/APP/*.log`, rotated.
    #[serde(default)]
    pub mode: LogsMode,
    #[serde(default = "default_rotate")]
    pub rotate: RotateCount,
    #[serde(default)]
    pub frequency: Frequency,
    #[serde(default)]
    pub max_size: MaxSize,
    /// Signal that makes the service reopen its log file.
    #[serde(default = "default_signal", deserialize_with = "signal")]
    pub reopen_signal: Signal,
}

impl Default for LogsSection {
    fn default() -> Self {
        Self {
            mode: LogsMode::default(),
            rotate: default_rotate(),
            frequency: Frequency::default(),
            max_size: MaxSize::default(),
            reopen_signal: default_signal(),
        }
    }
}

fn default_rotate() -> RotateCount {
    RotateCount::new(14).expect("in range")
}
fn default_signal() -> Signal {
    Signal::Hup
}

fn signal<'de, D: Deserializer<'de>>(d: D) -> Result<Signal, D::Error> {
    let s = String::deserialize(d)?;
    Signal::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{s:?} is not HUP, USR1 or USR2 (written without SIG)"
        ))
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSection {
    /// Template file, inside the project directory.
    pub template: ProjectPath,
    /// Installed as; directly in `/etc/APP` (checked against the app name).
    pub dest: HostPath,
    #[serde(default = "default_config_mode")]
    pub mode: Mode,
    #[serde(default = "default_root")]
    pub owner: Name,
    /// Defaults to the service group.
    pub group: Option<Name>,
    /// `preserve` (default) keeps an existing host file on upgrade; `replace` overwrites.
    #[serde(default = "default_on_upgrade")]
    pub on_upgrade: OnUpgrade,
}

fn default_config_mode() -> Mode {
    Mode::new(0o640).expect("valid")
}
fn default_root() -> Name {
    Name::new("root").expect("valid")
}
fn default_on_upgrade() -> OnUpgrade {
    OnUpgrade::Preserve
}

/// `[environments]`: `default` names one; every other key is an environment (a [`Name`])
/// whose table of values overrides `[vars]`, and whose `service` and `health` tables
/// override the top-level ones for that environment.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentsSection {
    pub default: Option<Name>,
    pub values: BTreeMap<Name, EnvSection>,
}

/// One `[environments.NAME]`.
#[derive(Debug, Clone, Default)]
pub struct EnvSection {
    /// Template values, overriding `[vars]`.
    pub vars: Vars,
    /// `[environments.NAME.service]`.
    pub service: EnvService,
    /// `[environments.NAME.health]`: replaces `[health]` for this environment.
    pub health: Option<HealthSection>,
}

/// What an environment may change about the service: its command line, its environment
/// variables, its sandbox.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvService {
    /// Replaces `service.args`.
    pub args: Option<Vec<UnitText>>,
    /// Merged over `service.environment` (same name: this one wins).
    #[serde(default)]
    pub environment: BTreeMap<EnvName, UnitText>,
    /// Applied over `[service.sandbox]` (a `profile` and/or knobs).
    #[serde(default)]
    pub sandbox: BTreeMap<String, toml::Value>,
}

impl<'de> Deserialize<'de> for EnvSection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut table = toml::Table::deserialize(d)?;
        let service = match table.remove("service") {
            Some(v) => v
                .try_into::<EnvService>()
                .map_err(|e| D::Error::custom(format!("service: {}", one_line(&e.to_string()))))?,
            None => EnvService::default(),
        };
        if !service.sandbox.is_empty() {
            apply_sandbox(Sandbox::default(), &service.sandbox)
                .map_err(|e| D::Error::custom(format!("service.sandbox: {e}")))?;
        }
        let health = table
            .remove("health")
            .map(toml::Value::try_into::<HealthSection>)
            .transpose()
            .map_err(|e| D::Error::custom(format!("health: {}", one_line(&e.to_string()))))?;
        let vars = toml::Value::Table(table)
            .try_into::<Vars>()
            .map_err(|e| D::Error::custom(one_line(&e.to_string())))?;
        Ok(Self {
            vars,
            service,
            health,
        })
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

impl<'de> Deserialize<'de> for EnvironmentsSection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EnvironmentsSection;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("default = \"NAME\" and [environments.NAME] tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = EnvironmentsSection::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "default" {
                        out.default = Some(map.next_value()?);
                    } else {
                        let name = Name::new(&key).map_err(|e| {
                            serde::de::Error::custom(format!("environment name: {e}"))
                        })?;
                        out.values.insert(name, map.next_value()?);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySection {
    pub path: HostPath,
    pub owner: Option<Name>,
    pub group: Option<Name>,
    pub mode: Option<Mode>,
    #[serde(default)]
    pub acl: Vec<AclEntry>,
    #[serde(default)]
    pub default_acl: Vec<AclEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSection {
    pub name: Name,
    /// `credential` (`LoadCredential=`) or `environment_file` (`EnvironmentFile=`).
    #[serde(default = "default_secret_kind")]
    pub kind: SecretKind,
}

fn default_secret_kind() -> SecretKind {
    SecretKind::Credential
}

/// Project overrides for the default templates in the repository's `templates/`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TemplatesSection {
    pub unit: Option<ProjectPath>,
    pub socket: Option<ProjectPath>,
    pub logrotate: Option<ProjectPath>,
    pub sysusers: Option<ProjectPath>,
    pub tmpfiles: Option<ProjectPath>,
}

/// A loaded project: the parsed file plus where it lives.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The directory as given (for messages and the Go build).
    pub dir: PathBuf,
    /// The same directory, canonical: every file the project names must resolve inside it.
    pub root: PathBuf,
    pub project: Project,
    pub targets: Vec<Target>,
}

impl Project {
    /// What a `ferry.toml` with only `[app]` declares (`ferry pack`'s footprint).
    pub fn minimal(name: AppName, version: Version) -> Self {
        Self {
            app: AppSection {
                name,
                version,
                description: Text::default(),
                package: GoPackage::default(),
                version_variable: None,
            },
            build: BuildSection::default(),
            service: ServiceSection::default(),
            health: HealthSection::default(),
            logs: LogsSection::default(),
            configs: Vec::new(),
            vars: Vars::default(),
            environments: EnvironmentsSection::default(),
            directories: Vec::new(),
            secrets: Vec::new(),
            templates: TemplatesSection::default(),
        }
    }

    pub fn layout(&self) -> Layout<'_> {
        self.app.name.layout()
    }

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

    pub fn user(&self) -> &Name {
        self.service
            .user
            .as_ref()
            .map_or(self.app.name.as_name(), NotRoot::name)
    }

    pub fn group(&self) -> &Name {
        self.service
            .group
            .as_ref()
            .map_or_else(|| self.user(), NotRoot::name)
    }

    pub fn supplementary_groups(&self) -> Vec<Name> {
        self.service
            .supplementary_groups
            .iter()
            .map(|g| g.name().clone())
            .collect()
    }

    /// `RestrictAddressFamilies=`: `AF_UNIX` always (`sd_notify`, syslog, the journal);
    /// the Internet families unless the service has no network of its own.
    pub fn address_families(&self) -> Vec<AddressFamily> {
        let mut v = if self.private_network() {
            vec![AddressFamily::Unix]
        } else {
            types::BASE_FAMILIES.to_vec()
        };
        for f in &self.service.extra_address_families {
            if !v.contains(&f.0) {
                v.push(f.0);
            }
        }
        v
    }

    pub fn default_env(&self) -> Name {
        self.environments
            .default
            .clone()
            .or_else(|| self.environments.values.keys().next().cloned())
            .unwrap_or_else(|| Name::new("default").expect("valid"))
    }

    pub fn env_names(&self) -> Vec<Name> {
        if self.environments.values.is_empty() {
            vec![self.default_env()]
        } else {
            self.environments.values.keys().cloned().collect()
        }
    }
}

/// A `ferry.toml` that does not parse: where, which key, and why, on one line.
#[derive(Debug, thiserror::Error)]
#[error("{line}: {}{message}", key_prefix(.key))]
pub struct ParseError {
    pub line: usize,
    /// The key path (`service.capabilities[0]`); empty for a syntax error.
    pub key: String,
    pub message: String,
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!("{key}: ")
    }
}

/// Parses `ferry.toml` text into its validated types.
pub fn parse(text: &str) -> Result<Project, ParseError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.span().map_or(0, |s| {
            text[..s.start.min(text.len())].matches('\n').count() + 1
        });
        ParseError {
            line,
            key: if key == "." { String::new() } else { key },
            // toml's syntax messages run over several lines.
            message: inner
                .message()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        }
    })
}

/// Reads and checks `DIR/ferry.toml`. Every error is one line naming the file.
pub fn load(dir: &Path) -> Result<Loaded> {
    let path = dir.join("ferry.toml");
    let root = files::canonical_root(dir)
        .map_err(|e| anyhow!("opening the project directory {}: {e}", dir.display()))?;
    let text = files::read(&root, Path::new("ferry.toml"), "the project file")?;
    let project = parse(&text).map_err(|e| anyhow!("{}:{e}", path.display()))?;
    let targets = validate(&project).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(Loaded {
        dir: dir.to_path_buf(),
        root,
        project,
        targets,
    })
}

/// The rules between keys, once every value has parsed; the build targets, deduplicated.
pub fn validate(p: &Project) -> Result<Vec<Target>> {
    let l = p.layout();
    let mut targets = Vec::new();
    for t in &p.build.targets {
        if !targets.contains(&t.0) {
            targets.push(t.0);
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
    for c in &p.configs {
        if c.dest.parent().as_ref() != Some(&l.etc()) {
            bail!(
                "config dest {}: configs are installed directly in {}/",
                c.dest,
                l.etc()
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for g in &p.service.supplementary_groups {
        if g.name() == p.group() || !seen.insert(g.name()) {
            bail!("service.supplementary_groups: {g} is listed twice or is the primary group");
        }
    }
    for d in &p.directories {
        if p.logs.mode == LogsMode::Journal && d.path.is_within(&l.log()) {
            bail!(
                "directory {}: logs go to the journal (the default), so there is no {}; \
                 set [logs] mode = \"files\" to log there",
                d.path,
                l.log()
            );
        }
        if !l.owns(&d.path) {
            bail!(
                "directory {} must be under one of {}",
                d.path,
                l.prefixes()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &p.secrets {
        if !seen.insert(&s.name) {
            bail!("secret {} is declared twice", s.name);
        }
        let file = l.secret_file(&s.name, s.kind);
        if p.configs.iter().any(|c| c.dest == file) {
            bail!(
                "secret {} would land on {file}, which is also a config file",
                s.name
            );
        }
    }
    validate_service(p)?;
    // Plain probes are checked here; templated ones once rendered, per environment.
    if let Some(probe) = p.health.probe.plain() {
        check_probe_port(p, &probe)?;
    }
    for (env, e) in &p.environments.values {
        if let Some(probe) = e.health.as_ref().and_then(|h| h.probe.plain()) {
            check_probe_port(p, &probe).map_err(|e| anyhow!("[environments.{env}.health]: {e}"))?;
        }
    }
    refuse_inline_secrets(p)?;
    Ok(targets)
}

/// The port a health probe targets, if it names one.
fn probe_port(probe: &Probe) -> Option<u16> {
    match probe {
        Probe::Http { url, .. } => url.parts().map(|(a, _, _)| a.port()),
        Probe::Tcp { address } => address.socket_addr().map(|a| a.port()),
        Probe::Exec { .. } | Probe::None => None,
    }
}

fn validate_service(p: &Project) -> Result<()> {
    let s = &p.service;
    let run = p.layout().run();
    for a in &s.listen_stream {
        if let Some(path) = a.path() {
            if !path.is_within(&run) || path == run {
                bail!("service.listen_stream {a}: a UNIX socket must be under {run}/");
            }
        }
    }
    if s.watchdog_sec.is_some() && s.kind != ServiceType::Notify {
        bail!(
            "service.watchdog_sec needs type = \"notify\": only a notify service sends WATCHDOG=1"
        );
    }
    Ok(())
}

/// A service that binds a port < 1024 itself needs `CAP_NET_BIND_SERVICE`, which
/// `PrivateUsers=` voids: say so at build time (for each environment's resolved probe),
/// not as EACCES on the host.
pub fn check_probe_port(p: &Project, probe: &Probe) -> Result<()> {
    let s = &p.service;
    if let Some(port) = probe_port(probe).filter(|&port| port < 1024) {
        let held = s.listen_stream.iter().any(|a| a.port() == Some(port));
        if !held && !s.capabilities.contains(&Capability::NetBindService) {
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

/// `ferry build` refuses a value that carries a secret inline; see [`secrets`].
fn refuse_inline_secrets(p: &Project) -> Result<()> {
    let allow = &p.build.not_secrets;
    let mut found = Vec::new();
    secrets::scan_table("[vars] (every environment)", &p.vars.0, allow, &mut found);
    for (env, e) in &p.environments.values {
        secrets::scan_table(
            &format!("[environments.{env}]"),
            &e.vars.0,
            allow,
            &mut found,
        );
        let env_table: toml::Table = e
            .service
            .environment
            .iter()
            .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
            .collect();
        secrets::scan_table(
            &format!("[environments.{env}.service] environment"),
            &env_table,
            allow,
            &mut found,
        );
        if let Some(args) = &e.service.args {
            let args: Vec<String> = args.iter().map(ToString::to_string).collect();
            secrets::scan_args(
                &format!("[environments.{env}.service] args"),
                &args,
                allow,
                &mut found,
            );
        }
        if let Some(h) = &e.health {
            secrets::scan_args(
                &format!("[environments.{env}.health]"),
                &h.probe.texts(),
                allow,
                &mut found,
            );
        }
    }
    let env_table: toml::Table = p
        .service
        .environment
        .iter()
        .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
        .collect();
    secrets::scan_table("service.environment", &env_table, allow, &mut found);
    let args: Vec<String> = p.service.args.iter().map(ToString::to_string).collect();
    secrets::scan_args("service.args", &args, allow, &mut found);
    let ldflags: toml::Table = p
        .build
        .ldflags_x
        .iter()
        .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
        .collect();
    secrets::scan_table("build.ldflags_x", &ldflags, allow, &mut found);
    secrets::scan_args("health", &p.health.probe.texts(), allow, &mut found);
    if found.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = found
        .iter()
        .map(|f| format!("{}: {} ({})", f.place, f.key, f.reason.describe()))
        .collect();
    let name_only = found.iter().all(|f| !f.reason.is_value_evidence());
    bail!(
        "carries what looks like a secret inline ({}), and a bundle must never hold one. \
         Declare it as a secret instead: [[secrets]] name = \"NAME\" (kind \"credential\" for \
         LoadCredential=, or \"environment_file\" for EnvironmentFile=); the installer creates \
         the file empty (0600) and an operator fills it on the host. Point the config at \
         {}/NAME (the secret's credential_path in templates).{}",
        lines.join("; "),
        p.layout().credentials_dir(),
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
        let p = parse(&format!("{BASE}{extra}"))?;
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
        let p = parse(&text).unwrap();
        validate(&p).unwrap();
        assert!(!p.socket_activated() && !p.private_network() && p.private_users());
        assert_eq!(p.app.package.as_str(), "./cmd/hello");
        assert_eq!(p.default_env().as_str(), "prod");
    }

    /// Each value is refused where it is parsed, with its line, key path and value.
    #[test]
    fn parse_errors_name_line_key_and_value() {
        let cases: &[(&str, &str)] = &[
            (
                "[app]\nname = \"Hello\"\nversion = \"1\"\n",
                "2: app.name: invalid name \"Hello\"",
            ),
            (
                "[app]\nname = \"ferry\"\nversion = \"1\"\n",
                "2: app.name: app name \"ferry\" is reserved",
            ),
            (
                "[app]\nname = \"a\"\nversion = \"../1\"\n",
                "3: app.version: invalid version \"../1\"",
            ),
            (
                "[app]\nname = \"a\"\nversion = \"1\"\ndescription = \"x\\nExecStartPre=+/bin/sh\"\n",
                "4: app.description: text \"x\\nExecStartPre=+/bin/sh\" contains a control character",
            ),
            (
                "[app]\nname = \"a\"\nversion = \"1\"\npackage = \"-toolexec=./evil.sh\"\n",
                "4: app.package: \"-toolexec=./evil.sh\" is not a Go package ferry builds",
            ),
            (
                "[app]\nname = \"a\"\nversion = \"1\"\nversion_variable = \"main.v -X main.admin\"\n",
                "4: app.version_variable: \"main.v -X main.admin\" is not a Go variable",
            ),
            (
                "[app]\nname = \"a\"\nversion = \"1\"\nbogus = 1\n",
                "4: app.bogus: unknown field `bogus`",
            ),
            ("[app]\nname = \"a\"\n", "1: app: missing field `version`"),
            ("[app\n", "1: invalid table header"),
        ];
        for (text, want) in cases {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.starts_with(want), "{text:?}\n got: {e}\nwant: {want}");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
    }

    #[test]
    fn value_table() {
        let cases: &[(&str, Option<&str>)] = &[
            // [build]
            ("[build]\ntargets = [\"linux/mips\"]\n", Some("build.targets[0]: unsupported target \"linux/mips\"")),
            ("[build]\ntargets = []\n", Some("build.targets is empty")),
            ("[build]\ntags = [\"netgo\", \"osusergo\"]\n", None),
            ("[build]\ntags = [\"a,b\"]\n", Some("build.tags[0]: \"a,b\" is not a Go build tag")),
            ("[build]\ntags = [\"-race\"]\n", Some("build.tags[0]")),
            ("[build]\nldflags_x = { \"main.commit\" = \"abc def\" }\n", None),
            ("[build]\nldflags_x = { \"main.x -X main.y\" = \"1\" }\n", Some("build.ldflags_x.main.x -X main.y: \"main.x -X main.y\" is not a Go variable")),
            ("[build]\nldflags_x = { \"main.x\" = \"a\\nb\" }\n", Some("build.ldflags_x.main.x: \"a\\nb\" contains a control character")),
            ("[build]\nldflags_x = { \"main.x\" = \"'\\\"\" }\n", Some("holds both")),
            ("[build]\nzstd_level = 23\n", Some("build.zstd_level: 23 is out of range")),
            ("[build]\nldflags_x = { \"main.commit\" = \"{{ revision }}\", \"main.date\" = \"{{ date }}\", \"main.v\" = \"v{{ version }}\" }\n", None),
            ("[build]\nldflags_x = { \"main.commit\" = \"{{ commit }}\" }\n", Some("build.ldflags_x.main.commit: \"{{ commit }}\": unknown name \"commit\"; a -X value may use {{ version }}, {{ revision }}, {{ date }}")),
            ("[build]\nldflags_x = { \"main.x\" = \"{% raw %}\" }\n", Some("build.ldflags_x.main.x")),
            ("[build]\nnot_secrets = [\"{{ x }}\"]\n", Some("build.not_secrets: \"{{ x }}\": templates are rendered only in build.ldflags_x values")),
            ("[build]\nbefore = [[\"npm\", \"ci\"], [\"npm\", \"run\", \"build\"]]\n", None),
            ("[build]\nbefore = []\n", None),
            ("[build]\nbefore = [[]]\n", Some("build.before[0]: invalid build step \"\": it is empty")),
            ("[build]\nbefore = [[\"./gen.sh\"]]\n", Some("build.before[0]: invalid build step \"./gen.sh\": the program must be an absolute path")),
            ("[build]\nbefore = [[\"npm\", \"run\", \"{{ env }}\"]]\n", Some("build.before[0]: \"{{ env }}\": build steps are not rendered")),
            ("[build]\nbefore = [[\"npm\", \"a\\nb\"]]\n", Some("control character")),
            ("[build]\nbefore = \"npm ci\"\n", Some("build.before: invalid type")),
            ("[build]\nbefore = [\"npm ci\"]\n", Some("build.before[0]: invalid type")),
            // [service]
            ("[service]\nlisten_stream = [\"127.0.0.1:8080\", \"[::1]:8080\", \"8081\", \"/run/hello/hello.sock\"]\n", None),
            ("[service]\nlisten_stream = [\"localhost:8080\"]\n", Some("service.listen_stream[0]: invalid listen address \"localhost:8080\"")),
            ("[service]\nlisten_stream = [\"0\"]\n", Some("invalid listen address \"0\"")),
            ("[service]\nlisten_stream = [\"/run/other/x.sock\"]\n", Some("must be under /run/hello/")),
            ("[service]\ncapabilities = [\"CAP_NET_BIND_SERVICE\"]\n", None),
            ("[service]\ncapabilities = [\"NET_BIND_SERVICE\"]\n", Some("service.capabilities[0]: unknown capability \"NET_BIND_SERVICE\"")),
            ("[service]\nextra_address_families = [\"AF_NETLINK\"]\n", None),
            ("[service]\nextra_address_families = [\"AF_INET\"]\n", Some("always allowed")),
            ("[service]\nip_address_allow = [\"localhost\", \"10.0.0.0/8\", \"::1/128\"]\n", None),
            ("[service]\nip_address_allow = [\"10.0.0.0/33\"]\n", Some("service.ip_address_allow[0]: invalid IP address allowance")),
            ("[service]\nwatchdog_sec = 30\n", None),
            ("[service]\nwatchdog_sec = 0\n", Some("service.watchdog_sec: 0 is out of range")),
            ("[service]\ntype = \"exec\"\nwatchdog_sec = 30\n", Some("needs type = \"notify\"")),
            ("[service]\ntype = \"forking\"\n", Some("service.type: \"forking\" is not a service type ferry runs")),
            ("[service]\nenvironment = { \"BAD-NAME\" = \"x\" }\n", Some("\"BAD-NAME\" is not an environment variable name")),
            ("[service]\nenvironment = { A = \"line\\nbreak\" }\n", Some("service.environment.A: \"line\\nbreak\" contains a control character")),
            ("[service]\nargs = [\"ok\", \"a\\tb\"]\n", Some("service.args[1]: \"a\\tb\" contains a control character")),
            ("[service]\nlimit_nofile = 0\n", Some("service.limit_nofile: 0 is out of range")),
            ("[service]\nsecurity_threshold = 11.0\n", Some("service.security_threshold: 11 is out of range")),
            ("[service]\nrestart_prevent_exit_status = [0]\n", Some("0 is success")),
            ("[service]\nrestart_prevent_exit_status = [256]\n", Some("service.restart_prevent_exit_status[0]")),
            ("[service]\nuser = \"root\"\n", Some("service.user: root is refused")),
            ("[service]\ngroup = \"root\"\n", Some("service.group: root is refused")),
            ("[service]\nsupplementary_groups = [\"root\"]\n", Some("service.supplementary_groups[0]: root is refused")),
            ("[service]\nsupplementary_groups = [\"adm\", \"adm\"]\n", Some("listed twice")),
            ("[service]\nuser = \"Root\"\n", Some("service.user: invalid name \"Root\"")),
            ("[service]\naccount = \"borrowed\"\n", Some("service.account: unknown variant `borrowed`")),
            ("[service.sandbox]\nproc_subset = \"all\"\nprofile = \"host-metrics\"\n", None),
            ("[service.sandbox]\nprofile = \"wide-open\"\n", Some("service.sandbox: profile \"wide-open\" is unknown; known profiles are default, host-metrics")),
            ("[service.sandbox]\nno_new_privileges = false\n", Some("service.sandbox: unknown sandbox setting \"no_new_privileges\"")),
            ("[service.sandbox]\nproc_subset = \"everything\"\n", Some("sandbox setting proc_subset = \"everything\"")),
            ("[service.sandbox]\nprivate_tmp = 1\n", Some("private_tmp = 1: expected a string or true/false")),
            // [logs]
            ("[logs]\nreopen_signal = \"SIGHUP\"\n", Some("logs.reopen_signal: \"SIGHUP\" is not HUP, USR1 or USR2")),
            ("[logs]\nfrequency = \"hourly\"\n", Some("logs.frequency: unknown variant `hourly`")),
            ("[logs]\nmax_size = \"100MB\"\n", Some("logs.max_size: \"100MB\": expected a number")),
            ("[logs]\nmax_size = \"512k\"\n", None),
            ("[logs]\nrotate = 5000\n", Some("logs.rotate: 5000 is out of range")),
            // [health]
            ("[health]\nprobe = \"http\"\n", Some("health: probe = \"http\" needs url")),
            ("[health]\nprobe = \"tcp\"\naddress = \"127.0.0.1:8080\"\nurl = \"http://127.0.0.1:8080/\"\n", Some("health: url is set but probe = \"tcp\" does not use it")),
            ("[health]\nprobe = \"http\"\nurl = \"http://example.com:8080/\"\n", Some("health.url: invalid health URL")),
            ("[health]\nprobe = \"exec\"\nargv = [\"curl\", \"-f\"]\n", Some("health: invalid command \"curl -f\": expected an absolute program path")),
            ("[health]\nprobe = \"exec\"\nargv = [\"/usr/bin/curl\", \"-f\", \"http://127.0.0.1:8080/\"]\n", None),
            ("[health]\nprobe = \"ping\"\n", Some("health.probe: unknown variant `ping`")),
            ("[health]\ntimeout_secs = 0\n", Some("health.timeout_secs: 0 is out of range")),
            // [[config]], [[directories]], [[secrets]], [templates]
            ("[[config]]\ntemplate = \"/etc/shadow\"\ndest = \"/etc/hello/x\"\n", Some("config[0].template: \"/etc/shadow\" is not a file inside the project")),
            ("[[config]]\ntemplate = \"../../keys/release.key\"\ndest = \"/etc/hello/x\"\n", Some("config[0].template: \"../../keys/release.key\" is not a file inside the project")),
            ("[[config]]\ntemplate = \"c.j2\"\ndest = \"/etc/hello/../shadow\"\n", Some("config[0].dest: invalid host path")),
            ("[[config]]\ntemplate = \"c.j2\"\ndest = \"/etc/hellothere/x\"\n", Some("configs are installed directly in /etc/hello/")),
            ("[[config]]\ntemplate = \"c.j2\"\ndest = \"/etc/hello/x\"\nmode = \"640\"\n", Some("config[0].mode: invalid mode \"640\"")),
            ("[[config]]\ntemplate = \"c.j2\"\ndest = \"/etc/hello/x\"\non_upgrade = \"merge\"\n", Some("config[0].on_upgrade: unknown variant `merge`")),
            ("[[directories]]\npath = \"/var/lib/hello/x\"\nacl = [\"group:adm:rwz\"]\n", Some("directories[0].acl[0]: invalid ACL entry")),
            ("[[secrets]]\nname = \"a\"\nkind = \"file\"\n", Some("secrets[0].kind: unknown variant `file`")),
            ("[templates]\nunit = \"/etc/shadow\"\n", Some("templates.unit: \"/etc/shadow\" is not a file inside the project")),
            ("[templates]\ntmpfiles = \"x/../../y\"\n", Some("templates.tmpfiles")),
            ("[templates]\nunits = \"x\"\n", Some("templates.units: unknown field")),
            // [vars], [environments]
            ("[environments]\ndefault = \"prod\"\n[environments.dev]\nx = 1\n", Some("environments.default = \"prod\" but there is no [environments.prod]")),
            ("[environments.Prod]\nx = 1\n", Some("environment name: invalid name \"Prod\"")),
        ];
        for (extra, want) in cases {
            match (check(extra), want) {
                (Ok(_), None) => {}
                (Err(e), Some(w)) => {
                    let e = format!("{e:#}");
                    assert!(e.contains(w), "{extra}\n got: {e}\nwant: {w}");
                    assert!(!e.contains('\n'), "one line: {e:?}");
                }
                (r, w) => panic!(
                    "{extra}: got {:?}, wanted error containing {w:?}",
                    r.map(|_| ())
                ),
            }
        }
    }

    /// `[build] before` stays within what a manifest reader accepts (`ferry_format::Limits`).
    #[test]
    fn before_steps_are_bounded_by_the_manifest_limits() {
        let l = ferry_format::Limits::default();
        let steps =
            |n: usize| format!("[build]\nbefore = [{}]\n", vec!["[\"true\"]"; n].join(", "));
        check(&steps(l.before_steps)).unwrap();
        assert!(err(&steps(l.before_steps + 1)).contains(&format!(
            "build.before: {} steps: at most {}",
            l.before_steps + 1,
            l.before_steps
        )));
        // "sh" + "-c" + the argument, each plus one.
        let long = |n: usize| {
            format!(
                "[build]\nbefore = [[\"sh\", \"-c\", \"{}\"]]\n",
                "x".repeat(n)
            )
        };
        check(&long(l.before_step_bytes - 7)).unwrap();
        assert!(err(&long(l.before_step_bytes - 6)).contains(&format!(
            "is {} bytes long (its words plus one each): at most {}",
            l.before_step_bytes + 1,
            l.before_step_bytes
        )));
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
    }

    #[test]
    fn vars_may_not_shadow_the_context_and_must_be_identifiers() {
        assert!(err("[vars]\napp = \"x\"\n").contains("vars: \"app\" is reserved"));
        assert!(err("[environments.prod]\nsecrets = \"x\"\n")
            .contains("environments.prod: \"secrets\" is reserved"));
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
    fn sandbox_profile_and_knobs_resolve() {
        let p = parse(&format!(
            "{BASE}[service.sandbox]\nprofile = \"host-metrics\"\nprivate_tmp = false\nprotect_home = \"yes\"\n"
        ))
        .unwrap();
        let relaxed: Vec<(&str, &str)> = p
            .service
            .sandbox
            .relaxations()
            .iter()
            .map(|(k, v)| (k.key, *v))
            .collect();
        assert!(relaxed.contains(&("private_tmp", "no")), "{relaxed:?}");
        assert!(relaxed.contains(&("proc_subset", "all")), "{relaxed:?}");
        // The hardened value given explicitly removes the profile's relaxation.
        assert!(
            !relaxed.iter().any(|(k, _)| *k == "protect_home"),
            "{relaxed:?}"
        );
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
        assert!(err(
            "[health]\nprobe = \"exec\"\nargv = [\"/usr/bin/curl\", \"--token=hunter2\"]\n"
        )
        .contains("health"));
        check("[vars]\ntoken_file = \"/run/credentials/hello.service/admin-token\"\n").unwrap();
        check("[build]\nnot_secrets = [\"password_rules\"]\n[vars]\npassword_rules = \"strict\"\n")
            .unwrap();
    }
}
