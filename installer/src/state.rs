//! What is installed, recorded under /var/lib/ferry/APP so `status`, `rollback`,
//! `uninstall` and an audit can rely on it.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use ferry_format::atomic::write_atomic;
use serde::{Deserialize, Serialize};

use crate::host::Host;

pub const STATE_SCHEMA: u32 = 1;

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
}

pub fn dir(host: &Host, app: &str) -> PathBuf {
    host.rel(&format!("/var/lib/ferry/{app}"))
}

pub fn load(host: &Host, app: &str) -> Result<Option<AppState>> {
    let p = dir(host, app).join("state.json");
    match std::fs::read(&p) {
        Ok(data) => Ok(Some(
            serde_json::from_slice(&data).with_context(|| format!("parsing {}", p.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Writes the state through the install journal, so undoing an install restores it too.
pub fn save_journaled(
    host: &Host,
    state: &AppState,
    journal: &mut crate::journal::Journal,
) -> Result<()> {
    let d = dir(host, &state.app);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    let mut data = serde_json::to_vec_pretty(state)?;
    data.push(b'\n');
    journal.put_file(&d.join("state.json"), &data, 0, 0, 0o644)?;
    Ok(())
}

pub fn save(host: &Host, state: &AppState) -> Result<()> {
    let d = dir(host, &state.app);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    let p = d.join("state.json");
    let mut data = serde_json::to_vec_pretty(state)?;
    data.push(b'\n');
    write_atomic(&p, &data, 0o644).with_context(|| format!("writing {}", p.display()))
}

pub fn list(host: &Host) -> Result<Vec<AppState>> {
    let base = host.rel("/var/lib/ferry");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&base) else {
        return Ok(out);
    };
    let mut names: Vec<String> = rd
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        if let Some(s) = load(host, &n)? {
            out.push(s);
        }
    }
    Ok(out)
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
