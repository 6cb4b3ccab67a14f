//! Renders the unit, logrotate rules, sysusers/tmpfiles snippets and per-environment
//! config files from templates, strictly: an undefined variable is an error naming the
//! file, line and variable.
//!
//! Everything is rendered at build time, so the signed bundle holds the exact bytes that
//! land on the host and the manifest's digests cover them. Host-specific values belong in
//! systemd specifiers (`%H`, `%d` for credentials) or in secrets, never in templates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::footprint::{
    AddressFamily, Capability, IpAllow, ListenAddr, ServiceType, Signal,
};
use ferry_format::install::{
    AclEntry, Argv, ConfigFile, Directory, Health, HostPath, HttpUrl, Install, Keep, LogFiles,
    Name, OnUpgrade, Probe, ProbeAddr, Secret, SecretKind, Service,
};
use ferry_format::manifest::Role;
use ferry_format::mode::Mode;
use ferry_format::sandbox::Sandbox;
use ferry_format::EntryPath;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::project::{Loaded, Project};

/// The default templates, compiled in so an installed `ferry` needs no data files.
const DEFAULTS: &[(&str, &str)] = &[
    (
        "unit.service.j2",
        include_str!("../../templates/unit.service.j2"),
    ),
    (
        "unit.socket.j2",
        include_str!("../../templates/unit.socket.j2"),
    ),
    ("logrotate.j2", include_str!("../../templates/logrotate.j2")),
    (
        "sysusers.conf.j2",
        include_str!("../../templates/sysusers.conf.j2"),
    ),
    (
        "tmpfiles.conf.j2",
        include_str!("../../templates/tmpfiles.conf.j2"),
    ),
];

/// One rendered payload file.
#[derive(Debug, Clone)]
pub struct RenderedFile {
    pub path: EntryPath,
    pub mode: Mode,
    pub role: Role,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Rendered {
    pub files: Vec<RenderedFile>,
    pub install: Install,
}

#[derive(Serialize)]
struct DirCtx {
    path: String,
    owner: String,
    group: String,
    mode: String,
    acl: Vec<String>,
    default_acl: Vec<String>,
}

#[derive(Serialize)]
struct SecretCtx {
    name: String,
    /// Where the installer creates the (empty, 0600) file on the host.
    path: String,
    kind: &'static str,
    /// What the service reads at run time: `/run/credentials/APP.service/NAME` for a
    /// credential (`$CREDENTIALS_DIRECTORY/NAME`); empty for an environment file, whose
    /// variables arrive in the environment.
    credential_path: String,
}

/// A rendering failure that names the template, the line and the variable.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {detail}")]
pub struct TemplateError {
    pub file: String,
    pub line: usize,
    pub detail: String,
}

fn n(s: &str) -> Result<Name> {
    Name::new(s).map_err(Into::into)
}

fn mode(s: &str) -> Result<Mode> {
    Mode::parse(s).map_err(Into::into)
}

/// Directories every service gets, then the project's own, merged by path.
pub fn directories(p: &Project) -> Result<Vec<Directory>> {
    let app = &p.app.name;
    let (user, group) = (p.user(), p.group());
    let mut dirs: BTreeMap<String, Directory> = BTreeMap::new();
    let defaults = [
        (format!("/opt/{app}"), "root", "root", "0755", Keep::Release),
        (
            format!("/opt/{app}/releases"),
            "root",
            "root",
            "0755",
            Keep::Release,
        ),
        (format!("/etc/{app}"), "root", group, "0750", Keep::Config),
        (format!("/var/lib/{app}"), user, group, "0750", Keep::Data),
        (format!("/var/log/{app}"), user, group, "0750", Keep::Data),
    ];
    for (path, owner, grp, m, keep) in defaults {
        dirs.insert(
            path.clone(),
            Directory {
                path: HostPath::new(&path)?,
                owner: n(owner)?,
                group: n(grp)?,
                mode: mode(m)?,
                acl: Vec::new(),
                default_acl: Vec::new(),
                keep,
            },
        );
    }
    for d in &p.directories {
        let existing = dirs.get(&d.path).cloned();
        let keep = existing.as_ref().map_or(Keep::Data, |e| e.keep);
        let dir = Directory {
            path: HostPath::new(&d.path)?,
            owner: n(d
                .owner
                .as_deref()
                .unwrap_or_else(|| existing.as_ref().map_or(user, |e| e.owner.as_str())))?,
            group: n(d
                .group
                .as_deref()
                .unwrap_or_else(|| existing.as_ref().map_or(group, |e| e.group.as_str())))?,
            mode: match &d.mode {
                Some(m) => mode(m)?,
                None => existing.as_ref().map_or(Mode::parse("0750")?, |e| e.mode),
            },
            acl: d
                .acl
                .iter()
                .map(|a| AclEntry::new(a))
                .collect::<Result<_, _>>()?,
            default_acl: d
                .default_acl
                .iter()
                .map(|a| AclEntry::new(a))
                .collect::<Result<_, _>>()?,
            keep,
        };
        dirs.insert(d.path.clone(), dir);
    }
    Ok(dirs.into_values().collect())
}

fn secrets(p: &Project) -> Result<Vec<Secret>> {
    let app = &p.app.name;
    p.secrets
        .iter()
        .map(|s| {
            let (kind, file) = if s.kind == "credential" {
                (SecretKind::Credential, format!("/etc/{app}/{}", s.name))
            } else {
                (
                    SecretKind::EnvironmentFile,
                    format!("/etc/{app}/{}.env", s.name),
                )
            };
            Ok(Secret {
                name: n(&s.name)?,
                path: HostPath::new(&file)?,
                kind,
                owner: n("root")?,
                group: n("root")?,
                mode: mode("0600")?,
            })
        })
        .collect()
}

fn health(p: &Project) -> Result<Health> {
    let h = &p.health;
    let probe = match h.probe.as_str() {
        "http" => Probe::Http {
            url: HttpUrl::new(
                h.url
                    .as_deref()
                    .ok_or_else(|| anyhow!("health.probe = \"http\" needs health.url"))?,
            )
            .context("health.url")?,
        },
        "tcp" => Probe::Tcp {
            address: ProbeAddr::new(
                h.address
                    .as_deref()
                    .ok_or_else(|| anyhow!("health.probe = \"tcp\" needs health.address"))?,
            )
            .context("health.address")?,
        },
        "exec" => {
            if h.argv.is_empty() {
                return Err(anyhow!("health.probe = \"exec\" needs health.argv"));
            }
            Probe::Exec {
                argv: Argv::new(h.argv.clone()).context("health.argv")?,
            }
        }
        _ => Probe::None,
    };
    Ok(Health {
        probe,
        timeout_secs: h.timeout_secs,
        settle_secs: h.settle_secs,
    })
}

/// The sandbox the unit gets: the project's knobs and profile, and `PrivateUsers=no`
/// whenever the service keeps a capability (a user namespace voids them).
pub fn sandbox(p: &Project) -> Result<Sandbox> {
    let mut s = p.service.sandbox.resolve()?;
    if !p.service.capabilities.is_empty() {
        s.set("private_users", "no")
            .expect("private_users = no is a valid setting");
    }
    Ok(s)
}

/// The service's part of the declared footprint.
pub fn service(p: &Project, dirs: &[Directory]) -> Result<Service> {
    let s = &p.service;
    let app = ferry_format::layout::AppName::new(&p.app.name)?;
    let l = app.layout();
    let mut writable = vec![l.lib(), l.log()];
    for d in read_write_paths(p, dirs) {
        writable.push(HostPath::new(&d)?);
    }
    Ok(Service {
        kind: match s.kind {
            crate::project::ServiceType::Notify => ServiceType::Notify,
            crate::project::ServiceType::Exec => ServiceType::Exec,
        },
        capabilities: s
            .capabilities
            .iter()
            .map(|c| {
                Capability::parse(c)
                    .ok_or_else(|| anyhow!("service.capabilities: unknown capability {c:?}"))
            })
            .collect::<Result<_>>()?,
        address_families: address_families(p)
            .iter()
            .map(|f| AddressFamily::parse(f).ok_or_else(|| anyhow!("unknown address family {f:?}")))
            .collect::<Result<_>>()?,
        private_network: p.private_network(),
        ip_address_allow: s
            .ip_address_allow
            .iter()
            .map(|a| IpAllow::new(a).context("service.ip_address_allow"))
            .collect::<Result<_>>()?,
        listen: s
            .listen_stream
            .iter()
            .map(|a| ListenAddr::new(a).context("service.listen_stream"))
            .collect::<Result<_>>()?,
        writable_paths: writable,
        sandbox: sandbox(p)?,
        reload_signal: Some(signal(&p.logs.reopen_signal)?),
    })
}

fn signal(s: &str) -> Result<Signal> {
    Signal::parse(s).ok_or_else(|| anyhow!("signal {s:?}: expected HUP, USR1 or USR2"))
}

fn template_source(
    loaded: &Loaded,
    override_path: Option<&PathBuf>,
    default: &str,
) -> Result<(String, String)> {
    if let Some(p) = override_path {
        let full = loaded.dir.join(p);
        let text = std::fs::read_to_string(&full)
            .with_context(|| format!("reading template {}", full.display()))?;
        return Ok((p.display().to_string(), text));
    }
    let text = DEFAULTS
        .iter()
        .find(|(name, _)| *name == default)
        .map(|(_, t)| (*t).to_owned())
        .expect("default template exists");
    Ok((format!("templates/{default}"), text))
}

/// One word of a systemd command line or a value of `Environment="..."`: as is when that
/// is unambiguous, else double-quoted with backslashes and double quotes escaped. `$VAR` and `%` specifiers
/// are left to systemd on purpose (write `$$` and `%%` for literal ones).
pub fn unit_quote(s: &str) -> String {
    if s == ";" {
        return "\\;".to_owned();
    }
    let plain = !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'));
    if plain {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `Environment=` takes `"NAME=value"` as one quoted word.
fn unit_env(name: &str, value: &str) -> String {
    let q = unit_quote(&format!("{name}={value}"));
    if q.starts_with('"') {
        q
    } else {
        format!("\"{q}\"")
    }
}

/// Strict mode still lets an undefined value through a few builtin filters (`tojson`
/// renders it as `null`, `join` and `escape` as nothing) and inside list and map literals:
/// exactly how values land in TOML and JSON configs. These wrappers refuse it.
fn reject_undefined(v: &minijinja::Value, filter: &str) -> Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    if v.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            format!("undefined value passed to the {filter} filter"),
        ));
    }
    match v.kind() {
        ValueKind::Seq => {
            for item in v.try_iter()? {
                reject_undefined(&item, filter)?;
            }
        }
        ValueKind::Map => {
            for key in v.try_iter()? {
                reject_undefined(&v.get_item(&key)?, filter)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn strict_tojson(
    v: &minijinja::Value,
    indent: Option<minijinja::Value>,
    args: minijinja::value::Kwargs,
) -> Result<minijinja::Value, minijinja::Error> {
    reject_undefined(v, "tojson")?;
    minijinja::filters::tojson(v, indent, args)
}

fn strict_join(
    state: &minijinja::State,
    v: &minijinja::Value,
    joiner: Option<minijinja::value::StringInput<'_>>,
) -> Result<minijinja::Value, minijinja::Error> {
    reject_undefined(v, "join")?;
    minijinja::filters::join(state, v, joiner)
}

fn strict_escape(
    state: &minijinja::State,
    v: &minijinja::Value,
) -> Result<minijinja::Value, minijinja::Error> {
    reject_undefined(v, "escape")?;
    minijinja::filters::escape(state, v)
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_filter("tojson", strict_tojson);
    env.add_filter("join", strict_join);
    env.add_filter("escape", strict_escape);
    env.add_filter("e", strict_escape);
    env.add_filter("default_acl", |s: String| format!("default:{s}"));
    env.add_filter("unit_quote", |s: String| unit_quote(&s));
    env.add_filter("unit_env", |name: String, value: String| {
        unit_env(&name, &value)
    });
    env
}

/// Renders one template; an undefined variable is reported by name and line.
pub fn render_one(
    name: &str,
    source: &str,
    ctx: &minijinja::Value,
) -> Result<String, TemplateError> {
    let env = environment();
    let to_err = |e: &minijinja::Error| TemplateError {
        file: name.to_owned(),
        line: e.line().unwrap_or(0),
        detail: match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        },
    };
    let tmpl = env
        .template_from_named_str(name, source)
        .map_err(|e| to_err(&e))?;
    tmpl.render(ctx).map_err(|e| {
        let mut err = to_err(&e);
        if e.kind() == minijinja::ErrorKind::UndefinedError {
            let missing: Vec<String> = tmpl
                .undeclared_variables(true)
                .into_iter()
                .filter(|v| !defined(ctx, v))
                .collect();
            // Name the ones on the failing line when that can be told.
            let line_text = err
                .line
                .checked_sub(1)
                .and_then(|i| source.lines().nth(i))
                .unwrap_or("");
            let on_line: Vec<&String> = missing.iter().filter(|m| mentions(line_text, m)).collect();
            let named: Vec<&String> = if on_line.is_empty() {
                missing.iter().collect()
            } else {
                on_line
            };
            err.detail = if named.is_empty() {
                "undefined variable".to_owned()
            } else {
                let quoted: Vec<String> = named.iter().map(|m| format!("`{m}`")).collect();
                format!("undefined variable {}", quoted.join(", "))
            };
        }
        err
    })
}

/// Whether `line` mentions the (dotted) name as a whole identifier.
fn mentions(line: &str, name: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    line.match_indices(name).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = line[i + name.len()..].chars().next();
        !before.is_some_and(|c| ident(c) || c == '.') && !after.is_some_and(ident)
    })
}

/// Whether a dotted name (`app.name`) resolves in the context.
fn defined(ctx: &minijinja::Value, dotted: &str) -> bool {
    let mut v = ctx.clone();
    for part in dotted.split('.') {
        match v.get_attr(part) {
            Ok(next) if !next.is_undefined() => v = next,
            _ => return false,
        }
    }
    true
}

/// Directories the service writes outside `StateDirectory=` and `LogsDirectory=`: every
/// declared directory it owns becomes a `ReadWritePaths=` entry (ProtectSystem=strict makes
/// everything else read-only).
fn read_write_paths(p: &Project, dirs: &[Directory]) -> Vec<String> {
    let app = &p.app.name;
    let managed = [format!("/var/lib/{app}"), format!("/var/log/{app}")];
    dirs.iter()
        .filter(|d| d.owner.as_str() == p.user())
        .map(|d| d.path.to_string())
        .filter(|path| {
            !managed.iter().any(|m| {
                path == m
                    || path
                        .strip_prefix(m.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
        })
        .collect()
}

/// `FreeBind=` lets a socket bind an address no interface has yet (early boot); only
/// worth it for a specific, non-loopback IP.
fn needs_free_bind(listen: &[String]) -> bool {
    listen.iter().any(|l| {
        l.parse::<std::net::SocketAddr>()
            .is_ok_and(|a| !a.ip().is_loopback() && !a.ip().is_unspecified())
    })
}

/// `RestrictAddressFamilies=`: `AF_UNIX` always (`sd_notify`, syslog, the journal); the
/// Internet families unless the service has no network of its own.
fn address_families(p: &Project) -> Vec<String> {
    let mut v: Vec<String> = if p.private_network() {
        vec!["AF_UNIX".into()]
    } else {
        vec!["AF_INET".into(), "AF_INET6".into(), "AF_UNIX".into()]
    };
    for f in &p.service.extra_address_families {
        if !v.contains(f) {
            v.push(f.clone());
        }
    }
    v
}

/// The context every template gets (config templates also get `[vars]` and `env`).
fn base_context(
    p: &Project,
    dirs: &[Directory],
    secrets: &[Secret],
    health: &Health,
    sandbox: &Sandbox,
) -> minijinja::Value {
    let app = &p.app.name;
    let unit = format!("{app}.service");
    let credentials = format!("/run/credentials/{unit}");
    let binary = format!("/opt/{app}/current/bin/{app}");
    let dir_ctx: Vec<DirCtx> = dirs
        .iter()
        .map(|d| DirCtx {
            path: d.path.to_string(),
            owner: d.owner.to_string(),
            group: d.group.to_string(),
            mode: d.mode.to_string(),
            acl: d.acl.iter().map(ToString::to_string).collect(),
            default_acl: d.default_acl.iter().map(ToString::to_string).collect(),
        })
        .collect();
    let secret_ctx: Vec<SecretCtx> = secrets
        .iter()
        .map(|s| SecretCtx {
            name: s.name.to_string(),
            path: s.path.to_string(),
            kind: match s.kind {
                SecretKind::Credential => "credential",
                SecretKind::EnvironmentFile => "environment_file",
            },
            credential_path: match s.kind {
                SecretKind::Credential => format!("{credentials}/{}", s.name),
                SecretKind::EnvironmentFile => String::new(),
            },
        })
        .collect();
    let exec_start = std::iter::once(binary.clone())
        .chain(p.service.args.iter().map(|a| unit_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let s = &p.service;
    minijinja::context! {
        app => minijinja::context! {
            name => app, version => &p.app.version, description => &p.app.description, unit => &unit,
        },
        user => p.user(),
        group => p.group(),
        service => minijinja::context! {
            type => s.kind,
            args => &s.args,
            exec_start => exec_start,
            supplementary_groups => &s.supplementary_groups,
            environment => &s.environment,
            restart_prevent_exit_status => &s.restart_prevent_exit_status,
            limit_nofile => s.limit_nofile,
            listen_stream => &s.listen_stream,
            free_bind => needs_free_bind(&s.listen_stream),
            capabilities => &s.capabilities,
            private_network => p.private_network(),
            address_families => address_families(p),
            ip_address_allow => &s.ip_address_allow,
            watchdog_sec => s.watchdog_sec,
            read_write_paths => read_write_paths(p, dirs),
        },
        logs => minijinja::context! {
            rotate => p.logs.rotate, frequency => &p.logs.frequency,
            max_size => &p.logs.max_size, reopen_signal => &p.logs.reopen_signal,
        },
        health => minijinja::context! { timeout_secs => health.timeout_secs },
        paths => minijinja::context! {
            binary => binary,
            etc => format!("/etc/{app}"), lib => format!("/var/lib/{app}"), log => format!("/var/log/{app}"),
            credentials => credentials,
        },
        directories => dir_ctx,
        secrets => secret_ctx,
        socket => p.socket_activated(),
        sandbox => sandbox.effective(),
        system_call_filters => sandbox
            .value(ferry_format::sandbox::knob("system_call_filter").expect("knob"))
            .split(" | ")
            .collect::<Vec<_>>(),
    }
}

/// Renders one template and refuses output that carries key material (a template can
/// hold a secret as easily as ferry.toml can).
fn render_checked(name: &str, source: &str, ctx: &minijinja::Value, what: &str) -> Result<String> {
    let out = render_one(name, source, ctx).with_context(|| format!("rendering {what}"))?;
    if let Some(reason) = crate::project::secrets::value_evidence(&out) {
        bail!(
            "{what}, rendered from {name}, contains a secret ({}); a bundle must never hold one: \
             declare it under [[secrets]] and read it from the credential on the host",
            reason.describe()
        );
    }
    Ok(out)
}

/// The payload's rendered files and the install layout for the manifest.
pub fn render(loaded: &Loaded) -> Result<Rendered> {
    let p = &loaded.project;
    let app = &p.app.name;
    let dirs = directories(p)?;
    let secrets = secrets(p)?;
    let health = health(p)?;
    let socket = p.socket_activated();
    let service = service(p, &dirs)?;
    let base = base_context(p, &dirs, &secrets, &health, &service.sandbox);

    let t = &p.templates;
    let mut files = Vec::new();
    let mut add = |path: String, role: Role, m: &str, data: String| -> Result<()> {
        files.push(RenderedFile {
            path: EntryPath::new(&path)?,
            mode: mode(m)?,
            role,
            data: data.into_bytes(),
        });
        Ok(())
    };
    let mut one = |over: Option<&PathBuf>, default: &str, dest: String, role: Role| -> Result<()> {
        let (name, src) = template_source(loaded, over, default)?;
        let out = render_checked(&name, &src, &base, &dest)?;
        add(dest, role, "0644", out)
    };
    one(
        t.unit.as_ref(),
        "unit.service.j2",
        format!("systemd/{app}.service"),
        Role::Unit,
    )?;
    if socket {
        one(
            t.socket.as_ref(),
            "unit.socket.j2",
            format!("systemd/{app}.socket"),
            Role::Unit,
        )?;
    }
    one(
        t.logrotate.as_ref(),
        "logrotate.j2",
        format!("logrotate/{app}"),
        Role::Logrotate,
    )?;
    one(
        t.sysusers.as_ref(),
        "sysusers.conf.j2",
        format!("sysusers/{app}.conf"),
        Role::Sysusers,
    )?;
    one(
        t.tmpfiles.as_ref(),
        "tmpfiles.conf.j2",
        format!("tmpfiles/{app}.conf"),
        Role::Tmpfiles,
    )?;

    let envs = p.env_names();
    let mut configs = Vec::new();
    for env_name in &envs {
        let mut vars = p.vars.clone();
        if let Some(values) = p.environments.values.get(env_name) {
            for (k, v) in values {
                vars.insert(k.clone(), v.clone());
            }
        }
        let mut ctx_map: BTreeMap<String, minijinja::Value> = BTreeMap::new();
        for (k, v) in &vars {
            ctx_map.insert(k.clone(), minijinja::Value::from_serialize(v));
        }
        ctx_map.insert("env".into(), minijinja::Value::from(env_name.as_str()));
        let ctx =
            minijinja::context! { ..base.clone(), ..minijinja::Value::from_serialize(&ctx_map) };
        for c in &p.configs {
            let (name, src) = template_source(loaded, Some(&c.template), "")?;
            let dest = HostPath::new(&c.dest)?;
            let out = render_checked(
                &name,
                &src,
                &ctx,
                &format!("{dest} for environment {env_name}"),
            )?;
            let source = format!("config/{env_name}/{}", dest.file_name());
            configs.push(ConfigFile {
                env: n(env_name)?,
                source: EntryPath::new(&source)?,
                dest,
                owner: n(&c.owner)?,
                group: n(c.group.as_deref().unwrap_or(p.group()))?,
                mode: mode(&c.mode)?,
                on_upgrade: if c.on_upgrade == "replace" {
                    OnUpgrade::Replace
                } else {
                    OnUpgrade::Preserve
                },
            });
            add(source, Role::Config, "0640", out)?;
        }
    }

    let install = Install {
        account: p.service.account,
        user: n(p.user())?,
        group: n(p.group())?,
        supplementary_groups: p
            .service
            .supplementary_groups
            .iter()
            .map(|g| n(g))
            .collect::<Result<_>>()?,
        service,
        default_env: n(&p.default_env())?,
        environments: envs.iter().map(|e| n(e)).collect::<Result<_>>()?,
        directories: dirs,
        configs,
        secrets,
        health,
        log_files: Some(LogFiles {
            reopen_signal: signal(&p.logs.reopen_signal)?,
        }),
    };
    Ok(Rendered { files, install })
}

/// Holds the generated files against the manifest (`ferry_format::conform`), naming the
/// template a refused file came from.
pub fn conform(m: &ferry_format::Manifest, files: &[RenderedFile]) -> Result<()> {
    let members: Vec<(EntryPath, Vec<u8>)> = files
        .iter()
        .map(|f| (f.path.clone(), f.data.clone()))
        .collect();
    ferry_format::conform::check(m, &ferry_format::conform::Generated::from_members(m, &members))
        .map_err(|e| {
            anyhow!(
                "{e}: a generated file says more than the manifest declares (a [templates] override?); \
                 the installer would refuse it"
            )
        })
}

/// Where the project's template for a config lives, for messages.
pub fn template_path(loaded: &Loaded, rel: &Path) -> PathBuf {
    loaded.dir.join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_variable_names_file_line_and_variable() {
        let ctx = minijinja::context! { app => minijinja::context! { name => "hello" } };
        let err = render_one(
            "config/x.toml.j2",
            "a = 1\nname = \"{{ app.name }}\"\nport = {{ port }}\n",
            &ctx,
        )
        .unwrap_err();
        assert_eq!(err.file, "config/x.toml.j2");
        assert_eq!(err.line, 3);
        assert!(err.detail.contains("port"), "{}", err.detail);
    }

    #[test]
    fn undefined_attribute_is_an_error_too() {
        let ctx = minijinja::context! { app => minijinja::context! { name => "hello" } };
        let err = render_one("t", "{{ app.nmae }}", &ctx).unwrap_err();
        assert!(err.detail.contains("app.nmae"), "{}", err.detail);
    }

    #[test]
    fn the_variable_on_the_failing_line_is_named() {
        let ctx = minijinja::context! { a => 1 };
        let err = render_one(
            "t.j2",
            "x = {{ a }}\ny = {{ first }}\nz = {{ second }}\n",
            &ctx,
        )
        .unwrap_err();
        assert_eq!(
            (err.line, err.detail.as_str()),
            (2, "undefined variable `first`")
        );
        assert_eq!(err.to_string(), "t.j2:2: undefined variable `first`");
    }

    #[test]
    fn undefined_values_do_not_slip_through_filters_or_literals() {
        let ctx = minijinja::context! { ok => "v", list => vec!["a", "b"] };
        for src in [
            "x = {{ missing | tojson }}",
            "x = {{ [ok, missing] | tojson }}",
            "x = {{ {'a': missing} | tojson }}",
            "x = {{ missing | join(',') }}",
            "x = {{ missing | escape }}",
            "x = {{ missing | e }}",
            "x = {{ missing | upper }}",
        ] {
            let err = render_one("t.j2", src, &ctx).expect_err(src);
            assert!(err.detail.contains("`missing`"), "{src}: {err}");
        }
        let out = render_one(
            "t.j2",
            "{{ ok | tojson }} {{ list | join(',') }} {{ list | tojson(indent=2) | length > 0 }}",
            &ctx,
        )
        .unwrap();
        assert_eq!(out, "\"v\" a,b True");
    }

    #[test]
    fn short_names_are_matched_as_whole_identifiers() {
        let ctx = minijinja::context! { name => "x" };
        let err = render_one("t.j2", "{{ name }} {{ a }}\n", &ctx).unwrap_err();
        assert_eq!(err.detail, "undefined variable `a`");
        assert!(
            mentions("x = {{ a }}", "a")
                && !mentions("{{ name }}", "a")
                && !mentions("{{ x.a }}", "a")
        );
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let err = render_one("t.j2", "ok\n{{ a \n", &minijinja::context! {}).unwrap_err();
        assert_eq!(err.file, "t.j2");
        assert!(err.line >= 2, "{err}");
        assert!(err.detail.starts_with("syntax error"), "{err}");
    }

    #[test]
    fn strict_mode_still_allows_defined_tests_and_defaults() {
        let ctx = minijinja::context! {};
        let out = render_one(
            "t",
            "{% if x is defined %}x{% endif %}{{ y | default('d') }}",
            &ctx,
        )
        .unwrap();
        assert_eq!(out, "d");
    }

    #[test]
    fn unit_quoting() {
        assert_eq!(unit_quote("-config"), "-config");
        assert_eq!(unit_quote("/etc/a b/c"), "\"/etc/a b/c\"");
        assert_eq!(unit_quote(r#"say "hi"\n"#), r#""say \"hi\"\\n""#);
        assert_eq!(unit_quote(""), "\"\"");
        assert_eq!(unit_quote(";"), "\\;");
        assert_eq!(unit_quote("it's"), "\"it's\"");
        assert_eq!(unit_env("GOMAXPROCS", "2"), "\"GOMAXPROCS=2\"");
        assert_eq!(unit_env("MSG", "a \"b\""), r#""MSG=a \"b\"""#);
    }

    #[test]
    fn defined_values_render() {
        let ctx = minijinja::context! { greeting => "hi \"there\"" };
        assert_eq!(
            render_one("t", "g = {{ greeting | tojson }}\n", &ctx).unwrap(),
            "g = \"hi \\\"there\\\"\"\n"
        );
    }
}
