//! Finishing what an interrupted run left, and the per-release records rollback needs.

use anyhow::{Context as _, Result};
use ferry_format::manifest::Manifest;

use crate::host::{Host, Mode};
use crate::install::step;
use crate::journal::Journal;
use crate::state::{self, AppState};

/// Releases kept besides the current one.
pub const KEEP_PREVIOUS: usize = 2;

/// Undoes an install that was killed midway, then restarts the recorded release: the host
/// is back exactly on the old release (or on nothing, for a first install).
pub fn recover(host: &Host, app: &str) -> Result<bool> {
    // Staging directories of killed runs hold nothing anyone refers to.
    if let Ok(rd) = std::fs::read_dir(host.rel("/opt")) {
        for e in rd.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!(".ferry-staging-{app}-"))
            {
                step(&format!(
                    "removing {}, left by an interrupted install",
                    e.path().display()
                ));
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let Some(journal) = Journal::pending(host, app)? else {
        return Ok(false);
    };
    step(&format!(
        "found an interrupted install of {app} ({} -> {}): undoing it",
        journal.data.from_version.as_deref().unwrap_or("nothing"),
        journal.data.to_version
    ));
    journal.undo().context("undoing the interrupted install")?;
    if host.mode == Mode::Live {
        host.systemctl(&["daemon-reload"])?;
        if let Some(cur) = state::load(host, app)?.and_then(|s| s.current) {
            let m = release_manifest(host, app, &cur.version)?;
            let unit_name = m.app.name.layout().unit_name();
            let unit = unit_name.as_str();
            let _ = host.systemctl(&["reset-failed", unit]);
            if let Err(e) = crate::activate::start_and_check(host, &m) {
                step(&format!(
                    "warning: {app} {} is not healthy after recovery: {}",
                    cur.version, e.0
                ));
            }
        }
    }
    Ok(true)
}

fn manifest_path(host: &Host, app: &str, version: &str) -> std::path::PathBuf {
    state::dir(host, app)
        .join("manifests")
        .join(format!("{version}.json"))
}

pub fn save_release_manifest(
    host: &Host,
    app: &str,
    m: &Manifest,
    journal: &mut Journal,
) -> Result<()> {
    let p = manifest_path(host, app, &m.app.version);
    std::fs::create_dir_all(p.parent().expect("has parent"))?;
    journal.put_file(&p, &m.to_bytes(), 0, 0, 0o644)?;
    Ok(())
}

pub fn release_manifest(host: &Host, app: &str, version: &str) -> Result<Manifest> {
    let p = manifest_path(host, app, version);
    let data = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    // from_str, as the bundle reader parses manifests: one copy of the deserializer in
    // the binary instead of two (the installer has a 2 MiB budget).
    let text = std::str::from_utf8(&data).with_context(|| format!("parsing {}", p.display()))?;
    serde_json::from_str(text).with_context(|| format!("parsing {}", p.display()))
}

/// Removes releases beyond the newest `KEEP_PREVIOUS` previous ones.
pub fn prune(host: &Host, app: &str, st: &mut AppState) -> Result<()> {
    while st.previous.len() > KEEP_PREVIOUS {
        let old = st.previous.remove(0);
        let dir = host.rel(&format!("/opt/{app}/releases/{}", old.version));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(manifest_path(host, app, &old.version));
    }
    state::save(host, st)
}
