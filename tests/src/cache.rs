//! The cached host root, built by `scripts/mkhost`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};

use anyhow::{bail, Context as _, Result};

use crate::paths::workspace_root;

const DEFAULT_CACHE: &str = "/var/cache/ferry/host-bookworm";
const STAMP: &str = ".ferry-host-stamp";

/// Where the cached root is: `$FERRY_HOST_CACHE`, else `/var/cache/ferry/host-bookworm`.
/// It may not exist yet; [`host_cache`] makes it.
pub fn host_cache_dir() -> PathBuf {
    std::env::var_os("FERRY_HOST_CACHE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_CACHE), PathBuf::from)
}

/// The cached host root, ready to boot. The first call in a process runs `scripts/mkhost`,
/// which returns at once when the cache is up to date and otherwise (re)builds it (about two
/// minutes); mkhost takes a lock file (`<cache>.lock`), so parallel test processes never build
/// it twice, and calls from several threads of one process wait for the first. The first call
/// also cleans up hosts left behind by test processes that died without running their `Drop`.
pub fn host_cache() -> Result<PathBuf> {
    static CACHE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CACHE
        .get_or_init(|| {
            let cache = build(None).map_err(|e| format!("{e:#}"))?;
            crate::host::reap_stale_hosts();
            Ok(cache)
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The cached root of a `scripts/mkhost --profile PROFILE` (`fleet`: the default root plus
/// sshd, python3 and sudo, for hosts driven by Ansible), `<host_cache_dir()>-PROFILE`, built like
/// [`host_cache`] builds the default one (that one first, since the profile derives from it).
pub(crate) fn profile_cache(profile: &str) -> Result<PathBuf> {
    static CACHES: Mutex<BTreeMap<String, Result<PathBuf, String>>> = Mutex::new(BTreeMap::new());
    let mut caches = CACHES.lock().unwrap_or_else(PoisonError::into_inner);
    caches
        .entry(profile.to_owned())
        .or_insert_with(|| {
            let cache = build(Some(profile)).map_err(|e| format!("{e:#}"))?;
            crate::host::reap_stale_hosts();
            Ok(cache)
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build(profile: Option<&str>) -> Result<PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        bail!("ferry end-to-end hosts need root (debootstrap, mount, systemd-nspawn, nsenter)");
    }
    let base = host_cache_dir();
    let cache = match profile {
        None => base.clone(),
        Some(p) => PathBuf::from(format!("{}-{p}", base.display())),
    };
    let script = workspace_root().join("scripts").join("mkhost");
    if !cache.join(STAMP).is_file() {
        // Not captured by the test harness on purpose: a silent two-minute pause confuses.
        let _ = writeln!(
            std::io::stderr(),
            "ferry-tests: no host cache at {}, building it with {} (about 2 minutes, once)",
            cache.display(),
            script.display()
        );
    }
    let out = Command::new(&script)
        .args(profile.map(|p| format!("--profile={p}")))
        .env("FERRY_HOST_CACHE", &base)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    if !cache.join(STAMP).is_file() {
        bail!(
            "{} succeeded but {} has no stamp",
            script.display(),
            cache.display()
        );
    }
    Ok(cache)
}
