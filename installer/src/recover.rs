//! Going back: finishing what an interrupted run left, rolling a failed install back, and
//! the per-release records that make both possible.

use anyhow::{anyhow, Context as _, Result};
use ferry_format::install::HostPath;
use ferry_format::layout::AppName;
use ferry_format::manifest::Manifest;

use crate::host::{Host, Mode};
use crate::journal::Journal;
use crate::state::{self, AppState};
use crate::steps::step;

/// Releases kept besides the current one.
pub const KEEP_PREVIOUS: usize = 2;

/// Undoes an install that was killed midway, then restarts the recorded release: the host
/// is back exactly on the old release (or on nothing, for a first install).
pub fn recover(host: &Host, app: &AppName) -> Result<bool> {
    // Staging directories of killed runs hold nothing anyone refers to.
    if let Some(opt) = host.system_dir("/opt")? {
        for name in opt.entries()? {
            if name.starts_with(&app.layout().staging_prefix()) {
                step(&format!(
                    "removing /opt/{name}, left by an interrupted install"
                ));
                opt.remove_tree_at(&name)?;
            }
        }
    }
    let Some(journal) = Journal::pending(host, app)? else {
        return Ok(false);
    };
    step(&format!(
        "found an interrupted install of {app} ({} -> {}): undoing it",
        journal.header.from_version.as_deref().unwrap_or("nothing"),
        journal.header.to_version
    ));
    let first = journal.header.from_version.is_none();
    journal
        .undo(&mut |n| step(&format!("warning: {n}")))
        .context("undoing the interrupted install")?;
    if first {
        keep_leftovers(host, app, None)?;
    }
    if host.mode == Mode::Live {
        host.systemctl(&["daemon-reload"])?;
        if let Some(cur) = state::load(host, app)?.and_then(|s| s.current) {
            let m = release_manifest(host, app, &cur.version)?;
            let _ = host.systemctl(&["reset-failed", &app.layout().unit_name()]);
            if let Err(e) = crate::activate::start_and_check(host, &m, &state::env_name(&cur.env)) {
                step(&format!(
                    "warning: {app} {} is not healthy after recovery: {}",
                    cur.version, e.0
                ));
            }
        }
    }
    Ok(true)
}

/// After undoing a first install: directories that could not be removed (the service
/// wrote into them before it failed) stay recorded as the app's, so the next install may
/// use them and `uninstall --purge` can remove them. Returns them.
pub fn keep_leftovers(host: &Host, app: &AppName, m: Option<&Manifest>) -> Result<Vec<HostPath>> {
    let l = app.layout();
    let candidates: Vec<HostPath> = match m {
        Some(m) => m
            .install
            .directories
            .iter()
            .map(|d| d.path.clone())
            .collect(),
        None => l.prefixes().to_vec(),
    };
    let mut left = Vec::new();
    for p in candidates {
        if host.meta(&p)?.is_some() {
            left.push(p);
        }
    }
    if left.is_empty() || state::load(host, app)?.is_some_and(|s| s.current.is_some()) {
        return Ok(left);
    }
    let mut st = state::load(host, app)?.unwrap_or_else(|| AppState::new(app));
    for p in &left {
        if !st.kept.contains(p) {
            st.kept.push(p.clone());
        }
    }
    st.kept.sort();
    ensure_state_dir(host, app)?;
    state::save(host, app, &st)?;
    Ok(left)
}

fn ensure_state_dir(host: &Host, app: &AppName) -> Result<()> {
    let lib = host
        .system_dir("/var/lib")?
        .ok_or_else(|| anyhow!("no /var/lib"))?;
    for (dir, name) in [
        ("/var/lib", "ferry"),
        (ferry_format::layout::STATE_DIR, app.as_str()),
    ] {
        let d = host
            .open_dir(&HostPath::new(dir).expect("valid"))?
            .unwrap_or(lib.dup()?);
        if d.meta_at(name)?.is_none() {
            d.mkdir_at(name, 0o755)?;
            d.sync()?;
        }
    }
    Ok(())
}

fn manifest_path(app: &AppName, version: &str) -> HostPath {
    HostPath::new(&format!(
        "{}/manifests/{version}.json",
        app.layout().state_dir()
    ))
    .expect("a valid app and version make a valid path")
}

pub fn save_release_manifest(app: &AppName, m: &Manifest, journal: &mut Journal) -> Result<()> {
    let p = manifest_path(app, &m.app.version);
    journal.ensure_dir(&p.parent().expect("has a parent"), 0o755)?;
    journal.put_root_file(&p, &m.to_bytes(), 0o644)?;
    Ok(())
}

pub fn release_manifest(host: &Host, app: &AppName, version: &str) -> Result<Manifest> {
    let p = manifest_path(app, version);
    let data = host
        .read_file(&p, 16 << 20)?
        .ok_or_else(|| anyhow!("{p} is missing"))?;
    // from_str, as the bundle reader parses manifests: one copy of the deserializer in
    // the binary instead of two (the installer has a 2 MiB budget).
    let text = std::str::from_utf8(&data).with_context(|| format!("parsing {p}"))?;
    serde_json::from_str(text).with_context(|| format!("parsing {p}"))
}

/// Removes releases beyond the newest `KEEP_PREVIOUS` previous ones.
pub fn prune(host: &Host, app: &AppName, st: &mut AppState) -> Result<()> {
    let l = app.layout();
    while st.previous.len() > KEEP_PREVIOUS {
        let old = st.previous.remove(0);
        if let Some(releases) = host.open_dir(&l.releases())? {
            releases.remove_tree_at(&old.version)?;
        }
        let p = manifest_path(app, &old.version);
        if let Some((d, name)) = host.open_parent(&p)? {
            d.unlink_at(&name)?;
        }
    }
    state::save(host, app, st)
}
