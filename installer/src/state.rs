//! What is installed, recorded under /var/lib/ferry/APP so `status`, `rollback`,
//! `uninstall` and an audit can rely on it; and the registry of accounts ferry created.
//!
//! The record outlives a plain `uninstall` (with `current` empty and the directories that
//! were kept), so the app's prefixes stay provably its own until `--purge`. The account
//! registry outlives even that: an account stays on the host, and so must the proof that
//! ferry made it for this app.

use anyhow::{anyhow, Context as _, Result};
use ferry_format::install::HostPath;
use ferry_format::layout::{AppName, ACCOUNTS_FILE};
use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::journal::Journal;

pub const STATE_SCHEMA: u32 = 2;
const STATE_FILE: &str = "state.json";
/// Largest record read back.
const MAX_RECORD: u64 = 16 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstalledFile {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    pub env: String,
    pub bundle_sha256: String,
    pub manifest_sha256: String,
    pub key_id: String,
    /// Unix seconds.
    pub installed_at: u64,
    /// Files ferry placed outside the release directory (units, rules, configs it wrote).
    pub files: Vec<InstalledFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppState {
    pub schema: u32,
    pub app: String,
    pub current: Option<Release>,
    /// Releases kept on disk for rollback, oldest first (current excluded).
    pub previous: Vec<Release>,
    /// Directories left on the host while no release is installed (after `uninstall`
    /// without `--purge`, or a failed first install whose service wrote into them): still
    /// this app's, so a later install may use them and `uninstall --purge` removes them.
    #[serde(default)]
    pub kept: Vec<HostPath>,
}

impl AppState {
    pub fn new(app: &AppName) -> Self {
        Self {
            schema: STATE_SCHEMA,
            app: app.to_string(),
            current: None,
            previous: Vec::new(),
            kept: Vec::new(),
        }
    }
}

fn state_path(app: &AppName) -> HostPath {
    HostPath::new(&format!("{}/{STATE_FILE}", app.layout().state_dir())).expect("valid")
}

pub fn load(host: &Host, app: &AppName) -> Result<Option<AppState>> {
    let p = state_path(app);
    match host.read_file(&p, MAX_RECORD)? {
        Some(data) => {
            let text = std::str::from_utf8(&data).with_context(|| format!("parsing {p}"))?;
            let st: AppState =
                serde_json::from_str(text).with_context(|| format!("parsing {p}"))?;
            if st.app != app.as_str() {
                return Err(anyhow!("{p} is the record of {:?}, not {app}", st.app));
            }
            Ok(Some(st))
        }
        None => Ok(None),
    }
}

fn bytes(st: &AppState) -> Result<Vec<u8>> {
    let mut data = serde_json::to_vec_pretty(st)?;
    data.push(b'\n');
    Ok(data)
}

/// Writes the record through the install journal, so undoing an install restores it too.
pub fn save_journaled(st: &AppState, app: &AppName, journal: &mut Journal) -> Result<()> {
    journal.put_root_file(&state_path(app), &bytes(st)?, 0o644)?;
    Ok(())
}

/// Writes the record outside a transaction (its directory exists).
pub fn save(host: &Host, app: &AppName, st: &AppState) -> Result<()> {
    let p = state_path(app);
    let (dir, name) = host
        .open_parent(&p)?
        .ok_or_else(|| anyhow!("{} does not exist", app.layout().state_dir()))?;
    dir.write_root_atomic_at(&name, &bytes(st)?, 0o644)
        .with_context(|| format!("writing {p}"))
}

/// Every app with a record, sorted by name.
pub fn list(host: &Host) -> Result<Vec<AppState>> {
    let Some(dir) =
        host.open_dir(&HostPath::new(ferry_format::layout::STATE_DIR).expect("valid"))?
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in dir.entries()? {
        let Ok(app) = AppName::new(&name) else {
            continue;
        };
        if let Some(s) = load(host, &app)? {
            out.push(s);
        }
    }
    Ok(out)
}

/// A recorded environment name as a [`Name`] (records are root's and were written from
/// validated names; a damaged one falls back to a name no manifest declares).
pub fn env_name(recorded: &str) -> ferry_format::install::Name {
    ferry_format::install::Name::new(recorded)
        .unwrap_or_else(|_| ferry_format::install::Name::new("_invalid_").expect("valid"))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Orders versions the way people read them: numeric runs numerically, the rest
/// lexically (`1.10.0` > `1.9.2`, `1.0.0-rc1` < `1.0.0`).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let split = |v: &str| -> (Vec<String>, bool) {
        let (main, pre) = match v.split_once('-') {
            Some((m, _)) => (m.to_owned(), true),
            None => (v.to_owned(), false),
        };
        (
            main.split(['.', '+', '~']).map(str::to_owned).collect(),
            pre,
        )
    };
    let (left, left_pre) = split(a);
    let (right, right_pre) = split(b);
    for i in 0..left.len().max(right.len()) {
        let l = left.get(i).map_or("0", String::as_str);
        let r = right.get(i).map_or("0", String::as_str);
        let ord = match (l.parse::<u64>(), r.parse::<u64>()) {
            (Ok(ln), Ok(rn)) => ln.cmp(&rn),
            _ => l.cmp(r),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    match (left_pre, right_pre) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.cmp(b),
    }
}

// -------------------------------------------------------------------------------------
// The account registry.

/// An account ferry created for an app. Written before systemd-sysusers runs (ids not
/// yet known) and completed after, outside the install journal: an undone install leaves
/// the account on the host, so its record stays too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub app: String,
    pub user: String,
    pub uid: Option<u32>,
    pub group: String,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub schema: u32,
    pub accounts: Vec<AccountRecord>,
}

impl Registry {
    pub fn load(host: &Host) -> Result<Self> {
        let p = HostPath::new(ACCOUNTS_FILE).expect("valid");
        match host.read_file(&p, MAX_RECORD)? {
            Some(data) => {
                let text = std::str::from_utf8(&data).with_context(|| format!("parsing {p}"))?;
                serde_json::from_str(text).with_context(|| format!("parsing {p}"))
            }
            None => Ok(Self {
                schema: 1,
                accounts: Vec::new(),
            }),
        }
    }

    /// The record of `user`, if ferry made it.
    pub fn user(&self, user: &str) -> Option<&AccountRecord> {
        self.accounts.iter().find(|a| a.user == user)
    }

    /// The record that made `group`, if ferry made it.
    pub fn group(&self, group: &str) -> Option<&AccountRecord> {
        self.accounts.iter().find(|a| a.group == group)
    }

    /// Adds (or refreshes) a record and writes the registry durably; nothing if
    /// unchanged. `/var/lib/ferry` exists (the install journal made it).
    pub fn record(mut self, host: &Host, rec: AccountRecord) -> Result<()> {
        if self.accounts.contains(&rec) {
            return Ok(());
        }
        self.accounts.retain(|a| a.user != rec.user);
        self.accounts.push(rec);
        self.accounts.sort_by(|a, b| a.user.cmp(&b.user));
        self.schema = 1;
        let mut data = serde_json::to_vec_pretty(&self)?;
        data.push(b'\n');
        let p = HostPath::new(ACCOUNTS_FILE).expect("valid");
        let (dir, name) = host
            .open_parent(&p)?
            .ok_or_else(|| anyhow!("{} does not exist", ferry_format::layout::STATE_DIR))?;
        dir.write_root_atomic_at(&name, &data, 0o644)
            .with_context(|| format!("writing {p}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn version_order() {
        for (a, b, o) in [
            ("1.0.0", "1.0.0", Equal),
            ("1.10.0", "1.9.2", Greater),
            ("2.0.0", "10.0.0", Less),
            ("1.0.0-rc1", "1.0.0", Less),
            ("1.0", "1.0.1", Less),
            ("1.0.1", "1.0", Greater),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} vs {b}");
        }
    }
}
