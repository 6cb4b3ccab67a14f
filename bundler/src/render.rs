//! Renders the unit, logrotate rules, sysusers/tmpfiles snippets and per-environment
//! config files from templates, strictly: an undefined variable is an error naming the
//! file, line and variable.
//!
//! Everything is rendered at build time, so the signed bundle holds the exact bytes that
//! land on the host and the manifest's digests cover them. Host-specific values belong in
//! systemd specifiers (`%H`, `%d` for credentials) or in secrets, never in templates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use ferry_format::install::{
    AclEntry, ConfigFile, Directory, Health, HostPath, Install, Keep, Name, OnUpgrade, Probe, Secret,
    SecretKind,
};
use ferry_format::manifest::Role;
use ferry_format::mode::Mode;
use ferry_format::EntryPath;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::project::{Loaded, Project};

/// The default templates, compiled in so an installed `ferry` needs no data files.
const DEFAULTS: &[(&str, &str)] = &[
    ("unit.service.j2", include_str!("../../templates/unit.service.j2")),
    ("unit.socket.j2", include_str!("../../templates/unit.socket.j2")),
    ("logrotate.j2", include_str!("../../templates/logrotate.j2")),
    ("sysusers.conf.j2", include_str!("../../templates/sysusers.conf.j2")),
    ("tmpfiles.conf.j2", include_str!("../../templates/tmpfiles.conf.j2")),
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
    path: String,
    kind: &'static str,
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
        (format!("/opt/{app}/releases"), "root", "root", "0755", Keep::Release),
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
            owner: n(d.owner.as_deref().map_or_else(|| existing.as_ref().map_or(user, |e| e.owner.as_str()), |s| s))?,
            group: n(d.group.as_deref().map_or_else(|| existing.as_ref().map_or(group, |e| e.group.as_str()), |s| s))?,
            mode: match &d.mode {
                Some(m) => mode(m)?,
                None => existing.as_ref().map_or(Mode::parse("0750")?, |e| e.mode),
            },
            acl: d.acl.iter().map(|a| AclEntry::new(a)).collect::<Result<_, _>>()?,
            default_acl: d.default_acl.iter().map(|a| AclEntry::new(a)).collect::<Result<_, _>>()?,
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
                (SecretKind::EnvironmentFile, format!("/etc/{app}/{}.env", s.name))
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
            url: h.url.clone().ok_or_else(|| anyhow!("health.probe = \"http\" needs health.url"))?,
        },
        "tcp" => Probe::Tcp {
            address: h
                .address
                .clone()
                .ok_or_else(|| anyhow!("health.probe = \"tcp\" needs health.address"))?,
        },
        "exec" => {
            if h.argv.is_empty() {
                return Err(anyhow!("health.probe = \"exec\" needs health.argv"));
            }
            Probe::Exec { argv: h.argv.clone() }
        }
        _ => Probe::None,
    };
    Ok(Health {
        probe,
        timeout_secs: h.timeout_secs,
        settle_secs: h.settle_secs,
    })
}

fn template_source(loaded: &Loaded, override_path: Option<&PathBuf>, default: &str) -> Result<(String, String)> {
    if let Some(p) = override_path {
        let full = loaded.dir.join(p);
        let text = std::fs::read_to_string(&full).with_context(|| format!("reading template {}", full.display()))?;
        return Ok((p.display().to_string(), text));
    }
    let text = DEFAULTS
        .iter()
        .find(|(name, _)| *name == default)
        .map(|(_, t)| (*t).to_owned())
        .expect("default template exists");
    Ok((format!("templates/{default}"), text))
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.add_filter("default_acl", |s: String| format!("default:{s}"));
    env
}

/// Renders one template; an undefined variable is reported by name and line.
pub fn render_one(name: &str, source: &str, ctx: &minijinja::Value) -> Result<String, TemplateError> {
    let env = environment();
    let to_err = |e: &minijinja::Error| TemplateError {
        file: name.to_owned(),
        line: e.line().unwrap_or(0),
        detail: e.detail().map_or_else(|| e.kind().to_string(), str::to_owned),
    };
    let tmpl = env.template_from_named_str(name, source).map_err(|e| to_err(&e))?;
    tmpl.render(ctx).map_err(|e| {
        let mut err = to_err(&e);
        if e.kind() == minijinja::ErrorKind::UndefinedError {
            let missing: Vec<String> = tmpl
                .undeclared_variables(true)
                .into_iter()
                .filter(|v| !defined(ctx, v))
                .collect();
            err.detail = if missing.is_empty() {
                "undefined variable".to_owned()
            } else {
                format!("undefined variable {}", missing.join(", "))
            };
        }
        err
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

/// The payload's rendered files and the install layout for the manifest.
pub fn render(loaded: &Loaded) -> Result<Rendered> {
    let p = &loaded.project;
    let app = &p.app.name;
    let dirs = directories(p)?;
    let secrets = secrets(p)?;
    let health = health(p)?;
    let socket = !p.service.listen_stream.is_empty();
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
        })
        .collect();
    let base = minijinja::context! {
        app => minijinja::context! { name => app, version => &p.app.version, description => &p.app.description },
        user => p.user(),
        group => p.group(),
        service => minijinja::context! {
            type => p.service.kind,
            args => &p.service.args,
            supplementary_groups => &p.service.supplementary_groups,
            environment => &p.service.environment,
            restart_prevent_exit_status => &p.service.restart_prevent_exit_status,
            limit_nofile => p.service.limit_nofile,
            listen_stream => &p.service.listen_stream,
        },
        logs => minijinja::context! {
            rotate => p.logs.rotate, frequency => &p.logs.frequency,
            max_size => &p.logs.max_size, reopen_signal => &p.logs.reopen_signal,
        },
        health => minijinja::context! { timeout_secs => health.timeout_secs },
        paths => minijinja::context! {
            binary => format!("/opt/{app}/current/bin/{app}"),
            etc => format!("/etc/{app}"), lib => format!("/var/lib/{app}"), log => format!("/var/log/{app}"),
        },
        directories => dir_ctx,
        secrets => secret_ctx,
        socket => socket,
    };

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
        let out = render_one(&name, &src, &base)?;
        add(dest, role, "0644", out)
    };
    one(t.unit.as_ref(), "unit.service.j2", format!("systemd/{app}.service"), Role::Unit)?;
    if socket {
        one(t.socket.as_ref(), "unit.socket.j2", format!("systemd/{app}.socket"), Role::Unit)?;
    }
    one(t.logrotate.as_ref(), "logrotate.j2", format!("logrotate/{app}"), Role::Logrotate)?;
    one(t.sysusers.as_ref(), "sysusers.conf.j2", format!("sysusers/{app}.conf"), Role::Sysusers)?;
    one(t.tmpfiles.as_ref(), "tmpfiles.conf.j2", format!("tmpfiles/{app}.conf"), Role::Tmpfiles)?;

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
        let ctx = minijinja::context! { ..base.clone(), ..minijinja::Value::from_serialize(&ctx_map) };
        for c in &p.configs {
            let (name, src) = template_source(loaded, Some(&c.template), "")?;
            let out = render_one(&name, &src, &ctx)?;
            let dest = HostPath::new(&c.dest)?;
            let source = format!("config/{env_name}/{}", dest.file_name());
            configs.push(ConfigFile {
                env: n(env_name)?,
                source: EntryPath::new(&source)?,
                dest,
                owner: n(&c.owner)?,
                group: n(c.group.as_deref().unwrap_or(p.group()))?,
                mode: mode(&c.mode)?,
                on_upgrade: if c.on_upgrade == "replace" { OnUpgrade::Replace } else { OnUpgrade::Preserve },
            });
            add(source, Role::Config, "0640", out)?;
        }
    }

    let install = Install {
        user: n(p.user())?,
        group: n(p.group())?,
        supplementary_groups: p.service.supplementary_groups.iter().map(|g| n(g)).collect::<Result<_>>()?,
        unit: n(&format!("{app}.service"))?,
        socket_unit: if socket { Some(n(&format!("{app}.socket"))?) } else { None },
        default_env: n(&p.default_env())?,
        environments: envs.iter().map(|e| n(e)).collect::<Result<_>>()?,
        directories: dirs,
        configs,
        secrets,
        health,
    };
    Ok(Rendered { files, install })
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
        let err = render_one("config/x.toml.j2", "a = 1\nname = \"{{ app.name }}\"\nport = {{ port }}\n", &ctx)
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
    fn defined_values_render() {
        let ctx = minijinja::context! { greeting => "hi \"there\"" };
        assert_eq!(render_one("t", "g = {{ greeting | tojson }}\n", &ctx).unwrap(), "g = \"hi \\\"there\\\"\"\n");
    }
}
