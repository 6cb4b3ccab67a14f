//! The cached host root, built by `scripts/mkhost`.
//!
//! The script is compiled into this crate, so `ferry try --prepare` on a build machine and
//! the end-to-end tests run the same recipe (and `scripts/mkhost` stays the one to edit):
//! it is written to a private temporary file and run from there.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};

use anyhow::{bail, Context as _, Result};

const DEFAULT_CACHE: &str = "/var/cache/ferry/host-bookworm";
const STAMP: &str = ".ferry-host-stamp";
/// `scripts/mkhost`, as it was when this crate was built.
const MKHOST: &str = include_str!("../../scripts/mkhost");

/// Where the cached root is: `$FERRY_HOST_CACHE`, else `/var/cache/ferry/host-bookworm`.
/// It may not exist yet; [`host_cache`] makes it.
pub fn host_cache_dir() -> PathBuf {
    std::env::var_os("FERRY_HOST_CACHE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_CACHE), PathBuf::from)
}

/// Whether a cached root is there to boot (built by some `scripts/mkhost` run, possibly an
/// older recipe's): what `ferry try` needs, without building anything.
pub fn host_cache_ready() -> bool {
    host_cache_dir().join(STAMP).is_file()
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
pub fn profile_cache(profile: &str) -> Result<PathBuf> {
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
    let dir = tempfile::Builder::new()
        .prefix("ferry-mkhost-")
        .tempdir()
        .context("creating a directory for scripts/mkhost")?;
    let script = dir.path().join("mkhost");
    fs::write(&script, MKHOST).with_context(|| format!("writing {}", script.display()))?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o700))?;
    if !cache.join(STAMP).is_file() {
        // Not captured by the test harness on purpose: a silent two-minute pause confuses.
        let _ = writeln!(
            std::io::stderr(),
            "ferry-host: no host cache at {}, building it with scripts/mkhost (about 2 minutes, \
             once)",
            cache.display(),
        );
    }
    let out = Command::new(&script)
        .args(profile.map(|p| format!("--profile={p}")))
        .env("FERRY_HOST_CACHE", &base)
        .stdin(Stdio::null())
        .output()
        .context("running scripts/mkhost")?;
    if !out.status.success() {
        bail!(
            "scripts/mkhost failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    if !cache.join(STAMP).is_file() {
        bail!(
            "scripts/mkhost succeeded but {} has no stamp",
            cache.display()
        );
    }
    Ok(cache)
}
