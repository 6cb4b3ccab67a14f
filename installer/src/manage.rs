//! `status`, `list`, `rollback` and `uninstall`: acting on what `install` recorded.

use anyhow::{anyhow, Context as _, Result};
use ferry_format::install::{HostPath, Keep};
use ferry_format::layout::{AppName, Layout};
use ferry_format::manifest::Manifest;
use serde::Serialize;

use crate::exit::{Precondition, RolledBack};
use crate::host::{Host, Mode};
use crate::journal::Journal;
use crate::state::{self, AppState, InstalledFile};
use crate::steps::step;
use crate::{activate, recover};

fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(anyhow!(Precondition(
            "ferry-install must run as root".into()
        )))
    }
}

fn app_name(app: &str) -> Result<AppName> {
    AppName::new(app).map_err(|e| anyhow!(crate::kit::Usage(e.to_string())))
}

fn installed(host: &Host, app: &AppName) -> Result<AppState> {
    state::load(host, app)?
        .filter(|s| s.current.is_some())
        .ok_or_else(|| {
            anyhow!(Precondition(format!(
                "{app} is not installed (no record under {})",
                app.layout().state_dir()
            )))
        })
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub app: String,
    pub version: String,
    pub env: String,
    pub installed_at: u64,
    pub key_id: String,
    pub bundle_sha256: String,
    pub previous_versions: Vec<String>,
    pub unit: String,
    pub active_state: Option<String>,
    pub sub_state: Option<String>,
    pub n_restarts: Option<String>,
    pub healthy: Option<bool>,
    /// Files ferry installed whose contents no longer match the record.
    pub modified_files: Vec<String>,
}

pub fn status(host: &Host, app: &str) -> Result<Status> {
    let app = app_name(app)?;
    let st = installed(host, &app)?;
    let cur = st.current.clone().expect("installed");
    let m = recover::release_manifest(host, &app, &cur.version)?;
    let unit = app.layout().unit_name();
    let (mut active, mut sub, mut restarts, mut healthy) = (None, None, None, None);
    if host.mode == Mode::Live && host.systemd_running() {
        let p = host.unit_properties(&unit, &["ActiveState", "SubState", "NRestarts"])?;
        active = p.get("ActiveState").cloned();
        sub = p.get("SubState").cloned();
        restarts = p.get("NRestarts").cloned();
        healthy = Some(
            active.as_deref() == Some("active")
                && crate::health::probe_once(host, &m, &crate::state::env_name(&cur.env)).is_ok(),
        );
    }
    let modified_files = cur
        .files
        .iter()
        .filter(|f| {
            !HostPath::new(&f.path).is_ok_and(|p| {
                host.read_file(&p, crate::apply::MAX_CONFIG)
                    .ok()
                    .flatten()
                    .is_some_and(|d| ferry_format::Sha256::of(&d).to_hex() == f.sha256)
            })
        })
        .map(|f| f.path.clone())
        .collect();
    Ok(Status {
        app: app.to_string(),
        version: cur.version,
        env: cur.env,
        installed_at: cur.installed_at,
        key_id: cur.key_id,
        bundle_sha256: cur.bundle_sha256,
        previous_versions: st.previous.iter().map(|r| r.version.clone()).collect(),
        unit,
        active_state: active,
        sub_state: sub,
        n_restarts: restarts,
        healthy,
        modified_files,
    })
}

#[derive(Debug, Serialize)]
pub struct Listed {
    pub app: String,
    pub version: String,
    pub env: String,
    pub installed_at: u64,
    pub previous_versions: Vec<String>,
}

pub fn list(host: &Host) -> Result<Vec<Listed>> {
    Ok(state::list(host)?
        .into_iter()
        .filter_map(|s| {
            let cur = s.current?;
            Some(Listed {
                app: s.app,
                version: cur.version,
                env: cur.env,
                installed_at: cur.installed_at,
                previous_versions: s.previous.iter().map(|r| r.version.clone()).collect(),
            })
        })
        .collect())
}

#[derive(Debug, Serialize)]
pub struct RollbackReport {
    pub app: String,
    pub from_version: String,
    pub to_version: String,
    pub started: bool,
    /// Configuration files that were still the newer release's untouched default and are
    /// the rolled-back-to release's default again (edited files are never touched).
    pub restored_configs: Vec<String>,
}

/// Points `current` back at the newest previous release, reinstalls its unit and rules,
/// restarts and checks it; if that release is unhealthy, returns to where it started.
pub fn rollback(host: &Host, app: &str) -> Result<RollbackReport> {
    require_root()?;
    let app = app_name(app)?;
    crate::plan::check_state_dir(host)?;
    recover::recover(host, &app)?;
    let mut st = installed(host, &app)?;
    let cur = st.current.clone().expect("installed");
    let prev = st.previous.last().cloned().ok_or_else(|| {
        anyhow!(Precondition(format!(
            "{app} has no previous release to roll back to"
        )))
    })?;
    let m = recover::release_manifest(host, &app, &prev.version)?;
    let l = app.layout();
    let release = l.release(&prev.version);
    if host.open_dir(&release)?.is_none() {
        return Err(anyhow!(Precondition(format!("{release} is missing"))));
    }
    step(&format!(
        "rolling {app} back from {} to {}",
        cur.version, prev.version
    ));
    let mut journal = Journal::begin(host, &app, Some(&cur.version), &prev.version)?;
    let result = (|| -> Result<(Vec<InstalledFile>, Vec<String>)> {
        journal.switch_symlink(&l.current(), &Layout::current_target(&prev.version))?;
        let release_path = host.path(&release);
        let sysusers = std::fs::read(release_path.join(l.payload_sysusers().as_str()))
            .context("reading the release's sysusers file")?;
        journal.put_root_file(&l.sysusers_file(), &sysusers, 0o644)?;
        let mut files = vec![InstalledFile {
            path: l.sysusers_file().to_string(),
            sha256: ferry_format::Sha256::of(&sysusers).to_string(),
        }];
        for (src, dest) in activate::system_files(&m, &crate::state::env_name(&prev.env)) {
            let data = std::fs::read(release_path.join(src.as_str()))
                .with_context(|| format!("reading {src}"))?;
            journal.put_root_file(&dest, &data, 0o644)?;
            files.push(InstalledFile {
                path: dest.to_string(),
                sha256: ferry_format::Sha256::of(&data).to_string(),
            });
        }
        let restored = restore_default_configs(host, &app, &m, &prev.env, &mut journal)?;
        if host.mode == Mode::Live {
            host.systemctl(&["daemon-reload"])?;
        }
        Ok((files, restored))
    })();
    let (files, restored_configs) = match result {
        Ok(f) => f,
        Err(e) => {
            journal.undo(&mut |n| step(&format!("warning: {n}")))?;
            return Err(e);
        }
    };
    let mut started = false;
    if host.mode == Mode::Live {
        if let Err(u) = activate::start_and_check(host, &m, &crate::state::env_name(&prev.env)) {
            journal.undo(&mut |n| step(&format!("warning: {n}")))?;
            host.systemctl(&["daemon-reload"])?;
            let cur_m = recover::release_manifest(host, &app, &cur.version)?;
            let _ = activate::start_and_check(host, &cur_m, &crate::state::env_name(&cur.env));
            return Err(anyhow!(RolledBack(format!(
                "{app} {} was unhealthy ({}); stayed on {}",
                prev.version, u.0, cur.version
            ))));
        }
        started = true;
    }
    st.previous.retain(|r| r.version != prev.version);
    st.previous.push(cur.clone());
    let mut now = prev.clone();
    now.files = files;
    now.installed_at = state::now();
    st.current = Some(now);
    state::save_journaled(&st, &app, &mut journal)?;
    journal.commit()?;
    Ok(RollbackReport {
        app: app.to_string(),
        from_version: cur.version,
        to_version: prev.version,
        started,
        restored_configs,
    })
}

/// Puts back the release's default configuration where the host still has, untouched, the
/// default of a release ferry recorded (the one being left): an older release must not run
/// with a newer one's default config, which it may not understand. Edited files stay.
fn restore_default_configs(
    host: &Host,
    app: &AppName,
    m: &Manifest,
    env: &str,
    journal: &mut Journal,
) -> Result<Vec<String>> {
    let mut restored = Vec::new();
    let accounts = crate::accounts::Accounts::load(&host.root)?;
    let release = host.path(&app.layout().release(&m.app.version));
    for c in m.install.configs.iter().filter(|c| c.env.as_str() == env) {
        let Some(existing) = host.read_file(&c.dest, crate::apply::MAX_CONFIG)? else {
            continue;
        };
        let data = std::fs::read(release.join(c.source.as_str()))
            .with_context(|| format!("reading {} from the release", c.source.as_str()))?;
        if existing == data || !crate::apply::is_recorded_default(host, app, &c.dest, &existing) {
            continue;
        }
        let uid = accounts
            .uid(c.owner.as_str())
            .ok_or_else(|| anyhow!("no user {}", c.owner))?;
        let gid = accounts
            .gid(c.group.as_str())
            .ok_or_else(|| anyhow!("no group {}", c.group))?;
        journal.put_file(&c.dest, &data, uid, gid, c.mode.bits())?;
        restored.push(c.dest.to_string());
    }
    Ok(restored)
}

/// Whether `uninstall` also removes configuration, data and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    KeepData,
    Everything,
}

#[derive(Debug, Serialize)]
pub struct UninstallReport {
    pub app: String,
    pub version: Option<String>,
    pub removed: Vec<String>,
    pub kept: Vec<String>,
}

/// Removes `path` (a file, or a directory and everything in it) without following a
/// symlink anywhere below its system directory; returns whether anything was there.
fn remove(host: &Host, path: &HostPath) -> Result<bool> {
    let Some((dir, name)) = host.open_parent(path)? else {
        return Ok(false);
    };
    if dir.meta_at(&name)?.is_none() {
        return Ok(false);
    }
    dir.remove_tree_at(&name)
        .with_context(|| format!("removing {path}"))?;
    dir.sync()?;
    Ok(true)
}

pub fn uninstall(host: &Host, app: &str, purge: Purge) -> Result<UninstallReport> {
    require_root()?;
    let app = app_name(app)?;
    crate::plan::check_state_dir(host)?;
    recover::recover(host, &app)?;
    let Some(mut st) = state::load(host, &app)? else {
        return Err(anyhow!(Precondition(format!(
            "{app} is not installed (no record under {})",
            app.layout().state_dir()
        ))));
    };
    let l = app.layout();
    let manifest = match &st.current {
        Some(cur) => Some(recover::release_manifest(host, &app, &cur.version)?),
        None => None,
    };
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    if let Some(m) = &manifest {
        step(&format!("stopping and disabling {}", l.unit_name()));
        let mut units = vec![l.unit_name()];
        if m.install.service.socket_activated() {
            units.push(l.socket_name());
        }
        for u in &units {
            let _ = match host.mode {
                Mode::Live => host.systemctl(&["disable", "--now", u]),
                Mode::Offline => host.systemctl(&["disable", u]),
            };
        }
        let env = st.current.as_ref().map_or_else(
            || m.install.default_env.clone(),
            |c| crate::state::env_name(&c.env),
        );
        for (_, dest) in activate::system_files(m, &env) {
            if remove(host, &dest)? {
                removed.push(dest.to_string());
            }
        }
        if remove(host, &l.sysusers_file())? {
            removed.push(l.sysusers_file().to_string());
        }
        if host.mode == Mode::Live {
            let _ = host.systemctl(&["daemon-reload"]);
            let _ = host.systemctl(&["reset-failed", &l.unit_name()]);
        }
        if remove(host, &l.opt())? {
            removed.push(l.opt().to_string());
        }
    }
    // Directories: the release's always; configuration, data and logs with --purge.
    let mut dirs: Vec<(HostPath, Keep)> = manifest
        .iter()
        .flat_map(|m| {
            m.install
                .directories
                .iter()
                .map(|d| (d.path.clone(), d.keep))
        })
        .filter(|(p, _)| !p.is_within(&l.opt()))
        .collect();
    for k in &st.kept {
        if !dirs.iter().any(|(p, _)| p == k) {
            dirs.push((k.clone(), Keep::Data));
        }
    }
    dirs.sort_by(|a, b| b.0.cmp(&a.0));
    let mut still = Vec::new();
    for (p, keep) in dirs {
        if keep == Keep::Release || purge == Purge::Everything {
            if remove(host, &p)? {
                removed.push(p.to_string());
            }
        } else if host.meta(&p)?.is_some() {
            kept.push(p.to_string());
            still.push(p);
        }
    }
    if purge == Purge::Everything {
        // An operator's drop-ins (`systemctl edit`) configure a unit that no longer exists.
        if remove(host, &l.unit_dropin_dir())? {
            removed.push(l.unit_dropin_dir().to_string());
        }
    }
    let version = st.current.as_ref().map(|c| c.version.clone());
    if still.is_empty() {
        remove(host, &l.state_dir())?;
        removed.push(l.state_dir().to_string());
    } else {
        // The kept directories stay this app's: a later install may use them and
        // `uninstall --purge` can still remove them.
        let keep_manifests = l.state_dir();
        st.current = None;
        st.previous.clear();
        still.sort();
        st.kept = still;
        state::save(host, &app, &st)?;
        if let Some(d) = host.open_dir(&keep_manifests)? {
            d.remove_tree_at("manifests")?;
        }
    }
    Ok(UninstallReport {
        app: app.to_string(),
        version,
        removed,
        kept,
    })
}
