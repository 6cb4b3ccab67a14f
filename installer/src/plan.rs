//! Phase 1 of an install: decide, write nothing. Everything that can refuse a verified
//! manifest is here, in this order, each refusal exit 4 with nothing changed:
//!
//! 1. the host's policy: may this key sign this app, is the footprint within what the host
//!    accepts, and does an upgrade widen it without consent;
//! 2. preconditions: root, architecture, systemd, environment, downgrade, space;
//! 3. ferry's own state: `/var/lib/ferry` is root's alone;
//! 4. ownership: the app's prefixes, unit and rule files either do not exist yet or are
//!    recorded as this app's; its account is new, or ferry made it for this app, or the
//!    policy names it as an existing account the app may use.
//!
//! The result is the [`Plan`] a dry run prints and the apply phase carries out.

use anyhow::{anyhow, Result};
use ferry_format::footprint::{Account, Diff, Footprint};
use ferry_format::install::{HostPath, Name};
use ferry_format::manifest::{Arch, Manifest};
use ferry_format::minisign::KeyId;
use ferry_format::policy::Policy;
use serde::Serialize;

use crate::accounts::Accounts;
use crate::exit::Precondition;
use crate::host::{Host, Mode};
use crate::rootfs::{Dir, Kind};
use crate::state::{self, AppState, Registry};

/// Whether an upgrade may widen the footprint without the host policy's consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    Refuse,
    /// `--allow-escalation`: the operator reviewed the added items.
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downgrade {
    Refuse,
    Allow,
}

#[derive(Debug, Serialize)]
pub struct PlannedDir {
    pub path: String,
    pub owner: String,
    pub group: String,
    pub mode: String,
    pub acl: Vec<String>,
    pub default_acl: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PlannedFile {
    pub dest: String,
    pub source: String,
    pub owner: String,
    pub group: String,
    pub mode: String,
}

/// What an install will do: the footprint it grants and the layout it writes.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub footprint: Footprint,
    /// What the footprint adds and removes relative to the installed release.
    pub footprint_changes: Option<Diff>,
    pub user: String,
    pub group: String,
    pub supplementary_groups: Vec<String>,
    pub release_dir: String,
    pub directories: Vec<PlannedDir>,
    pub files: Vec<PlannedFile>,
    pub secrets: Vec<String>,
    pub units: Vec<String>,
    pub unit_actions: Vec<String>,
    /// The policy that judged it.
    pub policy: String,
}

fn pre<T>(msg: String) -> Result<T> {
    Err(anyhow!(Precondition(msg)))
}

fn host_arch() -> Option<Arch> {
    let u = nix::sys::utsname::uname().ok()?;
    Arch::from_uname(&u.machine().to_string_lossy())
}

/// The installed release's manifest, if any.
pub fn installed_manifest(
    host: &Host,
    st: Option<&AppState>,
    app: &ferry_format::layout::AppName,
) -> Result<Option<Manifest>> {
    match st.and_then(|s| s.current.as_ref()) {
        Some(cur) => Ok(Some(crate::recover::release_manifest(
            host,
            app,
            &cur.version,
        )?)),
        None => Ok(None),
    }
}

/// The environment `name` of `m`, or why not (exit 4).
pub fn environment<'m>(
    m: &'m Manifest,
    name: &Name,
) -> Result<&'m ferry_format::install::Environment> {
    m.install.env(name).ok_or_else(|| {
        anyhow!(Precondition(format!(
            "environment {name} is not in the bundle (it has {})",
            m.install
                .environments
                .iter()
                .map(|e| e.name.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    })
}

/// Step 1: the host's policy, for the environment being installed; `installed` is the
/// installed release's manifest and environment.
pub fn check_policy(
    policy: &Policy,
    key: &KeyId,
    m: &Manifest,
    env: &Name,
    installed: Option<(&Manifest, &Name)>,
    escalation: Escalation,
) -> Result<(Footprint, Option<Diff>)> {
    let app = &m.app.name;
    let footprint = policy
        .check(key, app, &m.install, environment(m, env)?)
        .map_err(|v| anyhow!(Precondition(v.to_string())))?;
    let diff = match installed {
        Some((old, old_env)) => match old.install.env(old_env) {
            Some(e) => Some(Footprint::of(app, &old.install, e).diff(&footprint)),
            // The installed environment is gone from the record: judge everything new.
            None => Some(Footprint::default().diff(&footprint)),
        },
        None => None,
    };
    if let Some(d) = &diff {
        policy
            .check_upgrade(app, d, escalation == Escalation::Allow)
            .map_err(|v| anyhow!(Precondition(v.to_string())))?;
    }
    Ok((footprint, diff))
}

/// Checks `dir` and everything below it (`depth` levels) is root's and not writable by
/// group or others, with no symlinks: for `/var/lib/ferry`, whose journal a later root
/// run replays.
pub fn check_root_only(dir: &Dir, depth: u32) -> Result<()> {
    let me = rustix::process::geteuid().as_raw();
    let bad = |path: String, m: &crate::rootfs::Meta| {
        anyhow!(Precondition(format!(
            "{path} is owned by uid {} with mode {:04o}: ferry's state must be root's and not writable by group or others",
            m.uid, m.mode
        )))
    };
    let m = dir.meta()?;
    if (m.uid != 0 && m.uid != me) || m.mode & 0o022 != 0 {
        return Err(bad(dir.path().display().to_string(), &m));
    }
    for name in dir.entries()? {
        let path = dir.shown(&name).display().to_string();
        let Some(m) = dir.meta_at(&name)? else {
            continue;
        };
        match m.kind {
            Kind::Symlink => {
                return pre(format!("{path} is a symlink: ferry's state holds none"));
            }
            Kind::Dir if depth > 0 => check_root_only(&dir.must_child(&name)?, depth - 1)?,
            _ if (m.uid != 0 && m.uid != me) || m.mode & 0o022 != 0 => {
                return Err(bad(path, &m));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Step 3: `/var/lib/ferry` is root's alone, and no app owns it.
pub fn check_state_dir(host: &Host) -> Result<()> {
    let path = HostPath::new(ferry_format::layout::STATE_DIR).expect("valid");
    match host.meta(&path)? {
        None => Ok(()),
        Some(m) if m.kind != Kind::Dir => pre(format!("{path} is not a directory")),
        Some(_) => {
            let d = host
                .open_dir(&path)?
                .ok_or_else(|| anyhow!("{path} vanished"))?;
            check_root_only(&d, 3)
        }
    }
}

/// Host paths that exist and would be written, and whether a record makes them the app's.
pub fn check_ownership(host: &Host, m: &Manifest, st: Option<&AppState>) -> Result<()> {
    let app = &m.app.name;
    let l = app.layout();
    let inst = &m.install;
    // The prefixes this app uses.
    let mut prefixes: Vec<HostPath> = inst
        .directories
        .iter()
        .map(|d| &d.path)
        .chain(&inst.service.writable_paths)
        .filter_map(|p| l.prefix_of(p))
        .collect();
    prefixes.sort();
    prefixes.dedup();
    let mut system = vec![l.unit_file(), l.sysusers_file(), l.tmpfiles_file()];
    if inst.service.socket_activated() {
        system.push(l.socket_file());
    }
    if inst.log_files.is_some() {
        system.push(l.logrotate_file());
    }
    let Some(st) = st else {
        for p in prefixes.iter().chain(&system) {
            if host.meta(p)?.is_some() {
                return pre(format!(
                    "{p} exists but is not recorded as {app}'s (there is no {}/state.json): ferry takes over nothing it did not create; move it aside, or choose another app name",
                    l.state_dir()
                ));
            }
        }
        return Ok(());
    };
    // With a record, the prefixes are the app's; a system file must be one a recorded
    // release installed.
    let recorded: Vec<&str> = st
        .current
        .iter()
        .chain(&st.previous)
        .flat_map(|r| r.files.iter().map(|f| f.path.as_str()))
        .collect();
    for p in &system {
        if host.meta(p)?.is_some() && !recorded.contains(&p.as_str()) {
            return pre(format!(
                "{p} exists but no recorded release of {app} installed it: ferry will not replace it; move it aside"
            ));
        }
    }
    Ok(())
}

/// Step 4b: the service account is new, or ferry's for this app, or an existing one the
/// policy allows (checked in step 1).
pub fn check_accounts(
    host: &Host,
    m: &Manifest,
    accounts: &Accounts,
    registry: &Registry,
    installed: Option<&Manifest>,
) -> Result<()> {
    let app = &m.app.name;
    let inst = &m.install;
    let (user, group) = (inst.user.as_str(), inst.group.as_str());
    match inst.account {
        Account::Existing => {
            if accounts.uid(user).is_none() {
                return pre(format!("user {user} does not exist on this host (the bundle runs as an existing account)"));
            }
            if accounts.gid(group).is_none() {
                return pre(format!("group {group} does not exist on this host"));
            }
        }
        Account::New => {
            // Hosts that had this app before the registry existed: its installed release
            // ran as this very account.
            let legacy = installed.is_some_and(|o| {
                o.install.user.as_str() == user && o.install.account == Account::New
            });
            if let Some(uid) = accounts.uid(user) {
                let ours = registry
                    .user(user)
                    .is_some_and(|r| r.app == app.as_str() && r.uid.is_none_or(|u| u == uid));
                if !ours && !legacy {
                    return pre(format!(
                        "user {user} already exists and ferry did not create it for {app}: a bundle may not take over an account; set service.account = \"existing\" (and allow it in the host policy) or use another name"
                    ));
                }
            }
            if let Some(gid) = accounts.gid(group) {
                let ours = registry
                    .group(group)
                    .is_some_and(|r| r.app == app.as_str() && r.gid.is_none_or(|g| g == gid));
                if !ours && !legacy {
                    return pre(format!(
                        "group {group} already exists and ferry did not create it for {app}: a bundle may not take over a group; use another name"
                    ));
                }
            }
        }
    }
    let _ = host;
    Ok(())
}

/// Step 2: the host can take this release.
#[allow(clippy::too_many_arguments)]
pub fn check_preconditions(
    host: &Host,
    m: &Manifest,
    env: &Name,
    current: Option<&state::Release>,
    downgrade: Downgrade,
    accounts: &Accounts,
    tmpdir: &std::path::Path,
) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return pre("ferry-install must run as root".into());
    }
    match host_arch() {
        Some(a) if a == m.target.arch => {}
        a => {
            return pre(format!(
                "bundle is for {}, this host is {}",
                m.target,
                a.map_or_else(
                    || "an unsupported architecture".into(),
                    |a| format!("linux/{a}")
                )
            ))
        }
    }
    if host.mode == Mode::Live && !host.systemd_running() {
        return pre("systemd is not running (/run/systemd/system is missing); use --root DIR to install into an offline root".into());
    }
    for sys in ["/etc", "/etc/systemd/system", "/opt", "/var/lib"] {
        if host.system_dir(sys)?.is_none() {
            return pre(format!(
                "{} has no {sys}: not a root filesystem ferry can install into",
                host.root.display()
            ));
        }
    }
    environment(m, env)?;
    if let Some(cur) = current {
        if downgrade == Downgrade::Refuse
            && state::compare_versions(&m.app.version, &cur.version) == std::cmp::Ordering::Less
        {
            return pre(format!(
                "{} {} is older than the installed {}: refusing to downgrade (use --allow-downgrade)",
                m.app.name, m.app.version, cur.version
            ));
        }
    }
    // Names other than the service's own must already exist.
    let inst = &m.install;
    let own = |n: &Name| n == &inst.user || n == &inst.group;
    for d in &inst.directories {
        for e in d.acl.iter().chain(&d.default_acl) {
            let known = match e.kind {
                ferry_format::install::AclKind::User => accounts.uid(e.name.as_str()).is_some(),
                ferry_format::install::AclKind::Group => accounts.gid(e.name.as_str()).is_some(),
            };
            if !known && !own(&e.name) {
                return pre(format!(
                    "{}: ACL entry {e} names a user or group this host does not have",
                    d.path
                ));
            }
        }
        for n in [&d.owner, &d.group] {
            if !own(n) && accounts.uid(n.as_str()).is_none() && accounts.gid(n.as_str()).is_none() {
                return pre(format!("{}: owner {n} does not exist on this host", d.path));
            }
        }
    }
    for g in &inst.supplementary_groups {
        if accounts.gid(g.as_str()).is_none() {
            return pre(format!(
                "supplementary group {g} does not exist on this host"
            ));
        }
    }
    // Room for the release plus the staging copy's metadata and a margin.
    let need: u64 = m.files.iter().map(|f| f.size).sum::<u64>() + (32 << 20);
    if let Some(opt) = host.system_dir("/opt")? {
        if let Ok(st) = rustix::fs::fstatvfs(&opt) {
            let free = st.f_bavail * st.f_frsize;
            if free < need {
                return pre(format!(
                    "not enough free space on {}: {} MiB free, {} MiB needed",
                    opt.path().display(),
                    free >> 20,
                    need >> 20
                ));
            }
        }
    }
    if let Some(problem) = crate::kit::tmpdir_problem(tmpdir) {
        return pre(problem);
    }
    Ok(())
}

/// The plan shown by a dry run and carried out by the apply phase.
pub fn plan(
    m: &Manifest,
    env: &Name,
    host: &Host,
    footprint: Footprint,
    changes: Option<Diff>,
    policy: &Policy,
) -> Plan {
    let inst = &m.install;
    let l = m.app.name.layout();
    let mut units = vec![l.unit_file().to_string()];
    if inst.service.socket_activated() {
        units.push(l.socket_file().to_string());
    }
    Plan {
        footprint,
        footprint_changes: changes,
        user: inst.user.to_string(),
        group: inst.group.to_string(),
        supplementary_groups: inst
            .supplementary_groups
            .iter()
            .map(ToString::to_string)
            .collect(),
        release_dir: l.release(&m.app.version).to_string(),
        directories: crate::directories::ordered(&inst.directories)
            .into_iter()
            .map(|d| PlannedDir {
                path: d.path.to_string(),
                owner: d.owner.to_string(),
                group: d.group.to_string(),
                mode: d.mode.to_string(),
                acl: d.acl.iter().map(ToString::to_string).collect(),
                default_acl: d.default_acl.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        files: inst
            .configs
            .iter()
            .filter(|c| &c.env == env)
            .map(|c| PlannedFile {
                dest: c.dest.to_string(),
                source: c.source.to_string(),
                owner: c.owner.to_string(),
                group: c.group.to_string(),
                mode: c.mode.to_string(),
            })
            .chain(
                crate::activate::system_files(m, env)
                    .into_iter()
                    .map(|(src, dest)| PlannedFile {
                        dest: dest.to_string(),
                        source: src.to_string(),
                        owner: "root".into(),
                        group: "root".into(),
                        mode: "0644".into(),
                    }),
            )
            .collect(),
        secrets: inst.secrets.iter().map(|s| s.path.to_string()).collect(),
        units,
        unit_actions: match host.mode {
            Mode::Live => vec![
                "daemon-reload".into(),
                format!("enable {}", l.unit_name()),
                format!("restart {}", l.unit_name()),
            ],
            Mode::Offline => vec![format!("enable {} (offline root)", l.unit_name())],
        },
        policy: policy.origin.clone(),
    }
}

#[cfg(test)]
mod tests;
