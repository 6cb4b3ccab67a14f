//! Renders the unit, logrotate rules, sysusers/tmpfiles snippets and per-environment
//! config files from templates, strictly: an undefined variable is an error naming the
//! file, line and variable.
//!
//! Everything is rendered at build time, so the signed bundle holds the exact bytes that
//! land on the host and the manifest's digests cover them. Host-specific values belong in
//! systemd specifiers (`%H`, `%d` for credentials) or in secrets, never in templates.
//!
//! Every value here comes from `ferry.toml`'s validated types, and every host and payload
//! path from `ferry_format::layout`. Each rendered file, configs included, goes through
//! the secret scanner before it can be packed, and the generated files are held against
//! the declared footprint (`ferry_format::conform`) as soon as they are rendered, before
//! anything is compiled.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::footprint::ListenAddr;
use ferry_format::install::{
    ConfigFile, Directory, Environment, Health, HostPath, Install, Keep, LogFiles, Name, Secret,
    SecretKind, Service,
};
use ferry_format::layout::Layout;
use ferry_format::manifest::{App, Arch, Build, Manifest, Role, Target, FORMAT_VERSION};
use ferry_format::mode::Mode;
use ferry_format::sandbox::Sandbox;
use ferry_format::EntryPath;
use minijinja::UndefinedBehavior;
use serde::Serialize;

use crate::project::types::{ProjectPath, UnitText};
use crate::project::{files, Loaded, LogsMode, Project};

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
    /// Where its bytes came from, for messages: `templates/unit.service.j2` (ferry's
    /// default), the project's template relative to the project, or a packed file.
    pub template: String,
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

fn root() -> Name {
    Name::new("root").expect("a valid name")
}

fn mode(bits: u32) -> Mode {
    Mode::new(bits).expect("permission bits")
}

/// Directories every service gets, then the project's own, merged by path.
pub fn directories(p: &Project) -> Vec<Directory> {
    let l = p.layout();
    let (user, group) = (p.user(), p.group());
    let mut dirs: BTreeMap<HostPath, Directory> = BTreeMap::new();
    let defaults = [
        (l.opt(), root(), root(), 0o755, Keep::Release),
        (l.releases(), root(), root(), 0o755, Keep::Release),
        (l.etc(), root(), group.clone(), 0o750, Keep::Config),
        (l.lib(), user.clone(), group.clone(), 0o750, Keep::Data),
        (l.log(), user.clone(), group.clone(), 0o750, Keep::Data),
    ];
    // Journal-only services get no log directory.
    let files = p.logs.mode == LogsMode::Files;
    for (path, owner, group, bits, keep) in defaults {
        if path == l.log() && !files {
            continue;
        }
        dirs.insert(
            path.clone(),
            Directory {
                path,
                owner,
                group,
                mode: mode(bits),
                acl: Vec::new(),
                default_acl: Vec::new(),
                keep,
            },
        );
    }
    for d in &p.directories {
        let existing = dirs.get(&d.path);
        let dir = Directory {
            path: d.path.clone(),
            owner: d
                .owner
                .clone()
                .unwrap_or_else(|| existing.map_or_else(|| user.clone(), |e| e.owner.clone())),
            group: d
                .group
                .clone()
                .unwrap_or_else(|| existing.map_or_else(|| group.clone(), |e| e.group.clone())),
            mode: d
                .mode
                .unwrap_or_else(|| existing.map_or(mode(0o750), |e| e.mode)),
            acl: d.acl.clone(),
            default_acl: d.default_acl.clone(),
            keep: existing.map_or(Keep::Data, |e| e.keep),
        };
        dirs.insert(d.path.clone(), dir);
    }
    dirs.into_values().collect()
}

fn secrets(p: &Project) -> Vec<Secret> {
    let l = p.layout();
    p.secrets
        .iter()
        .map(|s| Secret {
            name: s.name.clone(),
            path: l.secret_file(&s.name, s.kind),
            kind: s.kind,
            owner: root(),
            group: root(),
            mode: mode(0o600),
        })
        .collect()
}

/// What one environment makes of the service: `[environments.NAME.service]` and
/// `.health` over the top-level sections, every `{{ var }}` rendered with that
/// environment's values.
pub struct EnvView {
    pub name: Name,
    /// `[vars]` with the environment's values over them, plus `env`.
    pub ctx: minijinja::Value,
    pub args: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub sandbox: Sandbox,
    pub health: Health,
}

/// Renders a `ferry.toml` value that uses `{{ var }}`; plain text is returned as is.
fn render_value(ctx: &minijinja::Value, what: &str, text: &str) -> Result<String> {
    if !crate::project::types::is_template(text) {
        return Ok(text.to_owned());
    }
    let out = render_one(&format!("ferry.toml {what}"), text, ctx)?;
    UnitText::new(&out)
        .map_err(|e| anyhow!("ferry.toml {what}: {text:?} renders to {out:?}: {}", e.0))?;
    Ok(out)
}

/// Each environment's view of the service, in `env_names` order.
pub fn env_views(p: &Project) -> Result<Vec<EnvView>> {
    p.env_names()
        .into_iter()
        .map(|name| env_view(p, name))
        .collect()
}

fn env_view(p: &Project, name: Name) -> Result<EnvView> {
    let section = p.environments.values.get(&name);
    let mut vars = p.vars.0.clone();
    if let Some(e) = section {
        for (k, v) in &e.vars.0 {
            vars.insert(k.clone(), v.clone());
        }
    }
    let mut ctx_map: BTreeMap<String, minijinja::Value> = vars
        .iter()
        .map(|(k, v)| (k.clone(), minijinja::Value::from_serialize(v)))
        .collect();
    ctx_map.insert("env".into(), minijinja::Value::from(name.as_str()));
    let ctx = minijinja::Value::from_serialize(&ctx_map);
    let scope = |key: &str| match section {
        Some(_) => format!("[environments.{name}] {key}"),
        None => key.to_owned(),
    };

    let args_src = section
        .and_then(|e| e.service.args.as_ref())
        .unwrap_or(&p.service.args);
    let args = args_src
        .iter()
        .map(|a| render_value(&ctx, &scope("service.args"), a.as_str()))
        .collect::<Result<Vec<_>>>()?;
    let mut env_src: BTreeMap<String, String> = p
        .service
        .environment
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(e) = section {
        for (k, v) in &e.service.environment {
            env_src.insert(k.to_string(), v.to_string());
        }
    }
    let environment = env_src
        .into_iter()
        .map(|(k, v)| {
            let out = render_value(&ctx, &scope(&format!("service.environment.{k}")), &v)?;
            Ok((k, out))
        })
        .collect::<Result<_>>()?;

    let mut sandbox = p.service.sandbox.clone();
    if let Some(e) = section {
        sandbox = crate::project::apply_sandbox(sandbox, &e.service.sandbox)
            .map_err(|err| anyhow!("[environments.{name}.service.sandbox]: {err}"))?;
    }
    // A user namespace voids every capability, so a service that keeps one runs without.
    if !p.service.capabilities.is_empty() {
        sandbox
            .set("private_users", "no")
            .expect("private_users = no is a valid setting");
    }

    let hs = section.and_then(|e| e.health.as_ref()).unwrap_or(&p.health);
    let probe = hs
        .probe
        .resolve(&|t| render_value(&ctx, &scope("health"), t))
        .with_context(|| format!("the health probe of environment {name}"))?;
    crate::project::check_probe_port(p, &probe).with_context(|| format!("environment {name}"))?;
    let health = Health {
        probe,
        timeout_secs: hs.timeout_secs.get(),
        settle_secs: hs.settle_secs.get(),
    };
    Ok(EnvView {
        name,
        ctx,
        args,
        environment,
        sandbox,
        health,
    })
}

impl EnvView {
    pub fn manifest_env(&self) -> Environment {
        Environment {
            name: self.name.clone(),
            sandbox: self.sandbox.clone(),
            health: self.health.clone(),
        }
    }
}

/// The service's part of the declared footprint.
pub fn service(p: &Project, dirs: &[Directory]) -> Service {
    let s = &p.service;
    let l = p.layout();
    let mut writable = vec![l.lib()];
    if p.logs.mode == LogsMode::Files {
        writable.push(l.log());
    }
    writable.extend(read_write_paths(p, dirs));
    Service {
        kind: s.kind,
        capabilities: s.capabilities.clone(),
        address_families: p.address_families(),
        private_network: p.private_network(),
        ip_address_allow: s.ip_address_allow.clone(),
        listen: s.listen_stream.clone(),
        writable_paths: writable,
        reload_signal: p.service.reload_signal,
    }
}

/// The template's name for messages and its text: the project's own (read safely from
/// inside the project, see [`files::read`]) or ferry's default. `key` names the
/// `ferry.toml` key that chose it.
fn template_source(
    loaded: &Loaded,
    override_path: Option<&ProjectPath>,
    default: &str,
    key: &str,
) -> Result<(String, String)> {
    if let Some(rel) = override_path {
        let text = files::read(&loaded.root, rel.as_path(), key)?;
        return Ok((rel.to_string(), text));
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

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    // Configs are TOML, YAML, JSON, not HTML: values go in as written (`| tojson` quotes).
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
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
fn read_write_paths(p: &Project, dirs: &[Directory]) -> Vec<HostPath> {
    let l = p.layout();
    let managed = [l.lib(), l.log()];
    dirs.iter()
        .filter(|d| &d.owner == p.user())
        .map(|d| d.path.clone())
        .filter(|path| !managed.iter().any(|m| path.is_within(m)))
        .collect()
}

/// `FreeBind=` lets a socket bind an address no interface has yet (early boot); only
/// worth it for a specific, non-loopback IP.
fn needs_free_bind(listen: &[ListenAddr]) -> bool {
    listen.iter().any(|l| {
        l.as_str()
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| !a.ip().is_loopback() && !a.ip().is_unspecified())
    })
}

/// The context every template gets (config templates also get `[vars]` and `env`).
fn base_context(
    p: &Project,
    dirs: &[Directory],
    secrets: &[Secret],
    view: &EnvView,
) -> minijinja::Value {
    let sandbox = &view.sandbox;
    let l = p.layout();
    let credentials = l.credentials_dir();
    let binary = l.binary().to_string();
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
    let s = &p.service;
    let exec_start = std::iter::once(binary.clone())
        .chain(view.args.iter().map(|a| unit_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    minijinja::context! {
        app => minijinja::context! {
            name => p.app.name.as_str(),
            version => p.app.version.as_str(),
            description => p.app.description.as_str(),
            unit => l.unit_name(),
        },
        user => p.user().as_str(),
        group => p.group().as_str(),
        service => minijinja::context! {
            type => s.kind,
            args => &view.args,
            exec_start => exec_start,
            supplementary_groups => p.supplementary_groups(),
            environment => &view.environment,
            reload_signal => s.reload_signal,
            restart_prevent_exit_status => &s.restart_prevent_exit_status,
            limit_nofile => s.limit_nofile,
            listen_stream => &s.listen_stream,
            free_bind => needs_free_bind(&s.listen_stream),
            capabilities => &s.capabilities,
            private_network => p.private_network(),
            address_families => p.address_families(),
            ip_address_allow => &s.ip_address_allow,
            watchdog_sec => s.watchdog_sec,
            read_write_paths => read_write_paths(p, dirs),
        },
        env => view.name.as_str(),
        logs => minijinja::context! {
            files => p.logs.mode == LogsMode::Files,
            rotate => p.logs.rotate,
            frequency => p.logs.frequency,
            max_size => &p.logs.max_size,
            reopen_signal => p.logs.reopen_signal,
        },
        health => minijinja::context! { timeout_secs => view.health.timeout_secs },
        paths => minijinja::context! {
            binary => binary,
            etc => l.etc(),
            lib => l.lib(),
            log => l.log(),
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
/// hold a secret as easily as ferry.toml can). Every rendered file goes through here.
fn render_checked(name: &str, source: &str, ctx: &minijinja::Value, what: &str) -> Result<String> {
    let out = render_one(name, source, ctx).with_context(|| format!("rendering {what}"))?;
    refuse_secrets(what, name, &out)?;
    Ok(out)
}

/// The inline-secret scanner's value rules (key material, tokens, URLs with passwords),
/// applied to a whole generated file.
pub fn refuse_secrets(what: &str, source: &str, text: &str) -> Result<()> {
    if let Some(reason) = crate::project::secrets::value_evidence(text) {
        bail!(
            "{what}, from {source}, contains a secret ({}); a bundle must never hold one: \
             declare it under [[secrets]] and read it from the credential on the host",
            reason.describe()
        );
    }
    Ok(())
}

fn push_rendered(
    files: &mut Vec<RenderedFile>,
    loaded: &Loaded,
    base: &minijinja::Value,
    (over, default, key): (Option<&ProjectPath>, &str, &str),
    dest: EntryPath,
    role: Role,
) -> Result<()> {
    let (name, src) = template_source(loaded, over, default, key)?;
    let out = render_checked(&name, &src, base, dest.as_str())?;
    files.push(RenderedFile {
        path: dest,
        mode: mode(0o644),
        role,
        data: out.into_bytes(),
        template: name,
    });
    Ok(())
}

/// The payload's rendered files and the install layout for the manifest.
pub fn render(loaded: &Loaded) -> Result<Rendered> {
    let p = &loaded.project;
    let l = p.layout();
    let dirs = directories(p);
    let secrets = secrets(p);
    let service = service(p, &dirs);
    let views = env_views(p)?;
    let default_env = p.default_env();
    let default_view = views
        .iter()
        .find(|v| v.name == default_env)
        .expect("the default environment has a view");

    let t = &p.templates;
    let mut files = Vec::new();
    // One unit per environment: its command line, environment variables and sandbox.
    for view in &views {
        push_rendered(
            &mut files,
            loaded,
            &base_context(p, &dirs, &secrets, view),
            (t.unit.as_ref(), "unit.service.j2", "[templates] unit"),
            l.payload_unit(&view.name),
            Role::Unit,
        )?;
    }
    // The rest is the same in every environment.
    let base = base_context(p, &dirs, &secrets, default_view);
    if p.socket_activated() {
        push_rendered(
            &mut files,
            loaded,
            &base,
            (t.socket.as_ref(), "unit.socket.j2", "[templates] socket"),
            l.payload_socket(),
            Role::Unit,
        )?;
    }
    if p.logs.mode == LogsMode::Files {
        push_rendered(
            &mut files,
            loaded,
            &base,
            (
                t.logrotate.as_ref(),
                "logrotate.j2",
                "[templates] logrotate",
            ),
            l.payload_logrotate(),
            Role::Logrotate,
        )?;
    }
    push_rendered(
        &mut files,
        loaded,
        &base,
        (
            t.sysusers.as_ref(),
            "sysusers.conf.j2",
            "[templates] sysusers",
        ),
        l.payload_sysusers(),
        Role::Sysusers,
    )?;
    push_rendered(
        &mut files,
        loaded,
        &base,
        (
            t.tmpfiles.as_ref(),
            "tmpfiles.conf.j2",
            "[templates] tmpfiles",
        ),
        l.payload_tmpfiles(),
        Role::Tmpfiles,
    )?;

    // Each config template is read once, then rendered for every environment.
    let sources: Vec<(String, String)> = p
        .configs
        .iter()
        .map(|c| template_source(loaded, Some(&c.template), "", "[[config]] template"))
        .collect::<Result<_>>()?;
    let mut configs = Vec::new();
    for view in &views {
        let env = &view.name;
        let ctx = minijinja::context! {
            ..base_context(p, &dirs, &secrets, view),
            ..view.ctx.clone()
        };
        for (c, (name, src)) in p.configs.iter().zip(&sources) {
            let what = format!("{} for environment {env}", c.dest);
            let out = render_checked(name, src, &ctx, &what)?;
            check_config_syntax(c.dest.file_name(), &out)
                .with_context(|| format!("{what}, rendered from {name}"))?;
            let source = Layout::payload_config(env, c.dest.file_name())?;
            configs.push(ConfigFile {
                env: env.clone(),
                source: source.clone(),
                dest: c.dest.clone(),
                owner: c.owner.clone(),
                group: c.group.clone().unwrap_or_else(|| p.group().clone()),
                mode: c.mode,
                on_upgrade: c.on_upgrade,
            });
            files.push(RenderedFile {
                path: source,
                mode: mode(0o640),
                role: Role::Config,
                data: out.into_bytes(),
                template: name.clone(),
            });
        }
    }

    let install = Install {
        account: p.service.account,
        user: p.user().clone(),
        group: p.group().clone(),
        supplementary_groups: p.supplementary_groups(),
        service,
        default_env,
        environments: views.iter().map(EnvView::manifest_env).collect(),
        directories: dirs,
        configs,
        secrets,
        log_files: (p.logs.mode == LogsMode::Files).then_some(LogFiles {
            reopen_signal: p.logs.reopen_signal,
        }),
    };
    // Fail on an override that says more than the footprint now, not after compiling:
    // the check needs the install section only (the final one in `build` repeats it on
    // the real manifest).
    conform(&provisional_manifest(p, &install), &files)?;
    Ok(Rendered { files, install })
}

/// A rendered config whose name says JSON, TOML or YAML must parse as such: a value
/// that breaks the syntax (a quote in a string, a missing `| tojson`) fails the build
/// instead of the service on the host.
fn check_config_syntax(file_name: &str, text: &str) -> Result<()> {
    let ext = file_name.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "json" => serde_json::from_str::<serde_json::Value>(text)
            .map(drop)
            .map_err(|e| anyhow!("not valid JSON: {e}")),
        "toml" => text
            .parse::<toml::Table>()
            .map(drop)
            .map_err(|e| anyhow!("not valid TOML: {}", e.message())),
        "yaml" | "yml" => yaml_rust2::YamlLoader::load_from_str(text)
            .map(drop)
            .map_err(|e| anyhow!("not valid YAML: {e}")),
        _ => Ok(()),
    }
}

/// A manifest with everything the conformance check reads (app and install section) and
/// nothing it does not.
fn provisional_manifest(p: &Project, install: &Install) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        app: App {
            name: p.app.name.clone(),
            version: p.app.version.clone(),
            description: p.app.description.clone(),
        },
        target: Target::linux(Arch::Amd64),
        build: Build {
            go_version: String::new(),
            ferry_version: String::new(),
            module: String::new(),
            package: String::new(),
            source_revision: None,
            source_dirty: false,
            source_date_epoch: 0,
            settings: Vec::new(),
            before: Vec::new(),
        },
        modules: Vec::new(),
        files: Vec::new(),
        install: install.clone(),
    }
}

/// No value in a manifest may still hold template syntax: every `{{ var }}` is rendered
/// at build time, so one that survived would reach hosts as text (a URL with `{{ port }}`
/// in it). Names the value by its JSON pointer.
pub fn refuse_unrendered(m: &Manifest) -> Result<()> {
    fn walk(v: &serde_json::Value, at: &mut String) -> Option<(String, String)> {
        match v {
            serde_json::Value::String(s)
                if s.contains("{{") || s.contains("{%") || s.contains("{#") =>
            {
                Some((at.clone(), s.clone()))
            }
            serde_json::Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| {
                let len = at.len();
                let _ = write!(at, "/{i}");
                let r = walk(x, at);
                at.truncate(len);
                r
            }),
            serde_json::Value::Object(o) => o.iter().find_map(|(k, x)| {
                let len = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                let r = walk(x, at);
                at.truncate(len);
                r
            }),
            _ => None,
        }
    }
    let v = serde_json::to_value(m).context("serializing the manifest")?;
    match walk(&v, &mut String::new()) {
        None => Ok(()),
        Some((at, text)) => bail!(
            "the manifest's {at} holds template syntax ({text:?}): every {{{{ var }}}} is \
             rendered at build time, and a value that still has one would reach hosts as text"
        ),
    }
}

/// Holds the generated files against the manifest (`ferry_format::conform`): one line
/// naming the file and line, the rule, and the template it came from.
pub fn conform(m: &Manifest, files: &[RenderedFile]) -> Result<()> {
    let members: Vec<(EntryPath, Vec<u8>)> = files
        .iter()
        .map(|f| (f.path.clone(), f.data.clone()))
        .collect();
    ferry_format::conform::check(
        m,
        &ferry_format::conform::Generated::from_members(m, &members),
    )
    .map_err(|e| {
        let from = files
            .iter()
            .find(|f| f.path == e.file)
            .map_or("", |f| f.template.as_str());
        anyhow!(
            "{e}; the file comes from {from} and says more than the manifest declares, \
             which the installer would refuse"
        )
    })
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
    fn template_syntax_left_in_a_manifest_is_refused_by_its_path() {
        let mut m: Manifest =
            serde_json::from_str(include_str!("../../fuzz/seeds/manifest/hello.json")).unwrap();
        refuse_unrendered(&m).unwrap();
        for (text, edit) in [("a {{ var }}", 0), ("{% if x %}", 1), ("{# note #}", 2)] {
            let mut m2 = m.clone();
            match edit {
                0 => m2.app.description = ferry_format::install::Text::new(text).unwrap(),
                1 => m2.build.module = text.to_owned(),
                _ => m2.build.package = text.to_owned(),
            }
            let e = refuse_unrendered(&m2).unwrap_err().to_string();
            let at = ["/app/description", "/build/module", "/build/package"][edit];
            assert!(
                e.starts_with(&format!("the manifest's {at} holds template syntax")),
                "{e}"
            );
        }
        m.build.module = "{ not a template }".into();
        refuse_unrendered(&m).unwrap();
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
