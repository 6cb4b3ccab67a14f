//! `status`, `list`, `rollback` and `uninstall`: acting on what `install` recorded.

use anyhow::{anyhow, Context as _, Result};
use serde::Serialize;

use crate::exit::{Precondition, RolledBack};
use crate::host::{Host, Mode};
use crate::install::step;
use crate::journal::Journal;
use crate::state::{self, AppState, InstalledFile};
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

fn installed(host: &Host, app: &str) -> Result<AppState> {
    state::load(host, app)?
        .filter(|s| s.current.is_some())
        .ok_or_else(|| {
            anyhow!(Precondition(format!(
                "{app} is not installed (no record under /var/lib/ferry/{app})"
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
    let st = installed(host, app)?;
    let cur = st.current.clone().expect("installed");
    let m = recover::release_manifest(host, app, &cur.version)?;
    let unit = m.app.name.layout().unit_name();
    let (mut active, mut sub, mut restarts, mut healthy) = (None, None, None, None);
    if host.mode == Mode::Live && host.systemd_running() {
        let p = host.unit_properties(&unit, &["ActiveState", "SubState", "NRestarts"])?;
        active = p.get("ActiveState").cloned();
        sub = p.get("SubState").cloned();
        restarts = p.get("NRestarts").cloned();
        healthy = Some(
            active.as_deref() == Some("active")
                && crate::health::probe_once(&m.install.health.probe).is_ok(),
        );
    }
    let modified_files = cur
        .files
        .iter()
        .filter(|f| {
            !ferry_format::digest::sha256_file(&host.rel(&f.path))
                .is_ok_and(|(d, _)| d.to_hex() == f.sha256)
        })
        .map(|f| f.path.clone())
        .collect();
    Ok(Status {
        app: app.to_owned(),
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
    recover::recover(host, app)?;
    let mut st = installed(host, app)?;
    let cur = st.current.clone().expect("installed");
    let prev = st.previous.last().cloned().ok_or_else(|| {
        anyhow!(Precondition(format!(
            "{app} has no previous release to roll back to"
        )))
    })?;
    let m = recover::release_manifest(host, app, &prev.version)?;
    let release = host.rel(&format!("/opt/{app}/releases/{}", prev.version));
    if !release.is_dir() {
        return Err(anyhow!(Precondition(format!(
            "{} is missing",
            release.display()
        ))));
    }
    step(&format!(
        "rolling {app} back from {} to {}",
        cur.version, prev.version
    ));
    let mut journal = Journal::begin(host, app, Some(cur.version.clone()), &prev.version)?;
    let result = (|| -> Result<(Vec<InstalledFile>, Vec<String>)> {
        journal.switch_symlink(
            &host.rel(&format!("/opt/{app}/current")),
            std::path::Path::new(&format!("releases/{}", prev.version)),
        )?;
        let mut files = Vec::new();
        for (src, dest, _) in activate::system_files(&m) {
            let data =
                std::fs::read(release.join(&src)).with_context(|| format!("reading {src}"))?;
            journal.put_file(&host.rel(&dest), &data, 0, 0, 0o644)?;
            files.push(InstalledFile {
                path: dest,
                sha256: ferry_format::Sha256::of(&data).to_string(),
            });
        }
        let restored = restore_default_configs(host, app, &m, &prev.env, &release, &mut journal)?;
        if host.mode == Mode::Live {
            host.systemctl(&["daemon-reload"])?;
        }
        Ok((files, restored))
    })();
    let (files, restored_configs) = match result {
        Ok(f) => f,
        Err(e) => {
            journal.undo()?;
            return Err(e);
        }
    };
    let mut started = false;
    if host.mode == Mode::Live {
        if let Err(u) = activate::start_and_check(host, &m) {
            journal.undo()?;
            host.systemctl(&["daemon-reload"])?;
            let cur_m = recover::release_manifest(host, app, &cur.version)?;
            let _ = activate::start_and_check(host, &cur_m);
            return Err(anyhow!(RolledBack(format!(
                "{app} {} was unhealthy ({}); stayed on {}",
                prev.version, u.0, cur.version
            ))));
        }
        started = true;
    }
    st.previous.retain(|r| r.version != prev.version);
    let mut old = cur.clone();
    old.installed_at = cur.installed_at;
    st.previous.push(old);
    let mut now = prev.clone();
    now.files = files;
    now.installed_at = state::now();
    st.current = Some(now);
    state::save_journaled(host, &st, &mut journal)?;
    journal.commit()?;
    Ok(RollbackReport {
        app: app.to_owned(),
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
    app: &str,
    m: &ferry_format::manifest::Manifest,
    env: &str,
    release: &std::path::Path,
    journal: &mut Journal,
) -> Result<Vec<String>> {
    let mut restored = Vec::new();
    let accounts = crate::accounts::Accounts::load(&host.root)?;
    for c in m.install.configs.iter().filter(|c| c.env.as_str() == env) {
        let dest = host.path(&c.dest);
        let Ok(existing) = std::fs::read(&dest) else {
            continue;
        };
        let data = std::fs::read(release.join(c.source.as_str()))
            .with_context(|| format!("reading {} from the release", c.source.as_str()))?;
        if existing == data || !crate::install::is_recorded_default(host, app, &c.dest, &existing) {
            continue;
        }
        let uid = accounts
            .uid(c.owner.as_str())
            .ok_or_else(|| anyhow!("no user {}", c.owner))?;
        let gid = accounts
            .gid(c.group.as_str())
            .ok_or_else(|| anyhow!("no group {}", c.group))?;
        journal.put_file(&dest, &data, uid, gid, c.mode.bits())?;
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
    pub version: String,
    pub removed: Vec<String>,
    pub kept: Vec<String>,
}

pub fn uninstall(host: &Host, app: &str, purge: Purge) -> Result<UninstallReport> {
    require_root()?;
    recover::recover(host, app)?;
    let st = installed(host, app)?;
    let cur = st.current.clone().expect("installed");
    let m = recover::release_manifest(host, app, &cur.version)?;
    let inst = &m.install;
    let l = m.app.name.layout();
    step(&format!("stopping and disabling {}", l.unit_name()));
    let mut units = vec![l.unit_name()];
    if inst.service.socket_activated() {
        units.push(l.socket_name());
    }
    for u in &units {
        match host.mode {
            Mode::Live => {
                let _ = host.systemctl(&["disable", "--now", u]);
            }
            Mode::Offline => {
                let _ = host.systemctl(&["disable", u]);
            }
        }
    }
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let mut rm_file = |p: String| {
        if std::fs::remove_file(host.rel(&p)).is_ok() {
            removed.push(p);
        }
    };
    for (_, dest, _) in activate::system_files(&m) {
        rm_file(dest);
    }
    rm_file(format!("/etc/sysusers.d/{app}.conf"));
    if host.mode == Mode::Live {
        let _ = host.systemctl(&["daemon-reload"]);
        let _ = host.systemctl(&["reset-failed", m.app.name.layout().unit_name().as_str()]);
    }
    let opt = format!("/opt/{app}");
    if std::fs::remove_dir_all(host.rel(&opt)).is_ok() {
        removed.push(opt);
    }
    for d in &inst.directories {
        let path = d.path.to_string();
        if path.starts_with(&format!("/opt/{app}")) {
            continue;
        }
        match (d.keep, purge) {
            (ferry_format::install::Keep::Release, _) | (_, Purge::Everything) => {
                if std::fs::remove_dir_all(host.path(&d.path)).is_ok() {
                    removed.push(path);
                }
            }
            _ => {
                if host.path(&d.path).exists() {
                    kept.push(path);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(state::dir(host, app));
    removed.push(format!("/var/lib/ferry/{app}"));
    Ok(UninstallReport {
        app: app.to_owned(),
        version: cur.version,
        removed,
        kept,
    })
}
