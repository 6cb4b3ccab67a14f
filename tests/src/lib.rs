//! Helpers for ferry's end-to-end tests.
//!
//! The centrepiece is [`Host`]: a real Debian 12 host with systemd as PID 1 and no network but
//! loopback, booted with `systemd-nspawn` from a cached root (built once by `scripts/mkhost`,
//! see [`host_cache`]) on a fresh writable overlay per test, exactly like the air-gapped
//! machines the static installer targets. Tests need root.
//!
//! ```no_run
//! use ferry_tests::Host;
//!
//! let mut host = Host::boot().unwrap();
//! host.write_file("/etc/systemd/system/demo.service", "[Service]\nExecStart=/bin/sleep infinity\n")
//!     .unwrap();
//! host.ok(["systemctl", "enable", "--now", "demo.service"]);
//! host.reboot().unwrap();
//! assert!(host.is_active("demo.service"));
//! ```
//!
//! Environment knobs (all optional):
//! - `FERRY_HOST_CACHE`: the cached root (default `/var/cache/ferry/host-bookworm`).
//! - `FERRY_HOST_RUNDIR`: where per-host state lives (default `/var/tmp/ferry-hosts`).
//! - `FERRY_HOST_MODE`: `overlay` (default, falls back to `copy` if the mount fails) or `copy`.
//! - `FERRY_MAX_HOSTS`: hosts running at once in one test process (default 2).
//! - `FERRY_HOST_BOOT_TIMEOUT`: seconds to wait for `running` (default 90).
//! - `FERRY_EXEC_TIMEOUT`: seconds before a command inside is killed (default 600).

mod cache;
mod cgroup;
mod host;
mod paths;
mod procfs;
mod slots;

pub use cache::{host_cache, host_cache_dir};
pub use host::{Host, HostMode, HostOptions};
pub use paths::{
    debug_bin, ferry_bin, ferry_install_bin, static_installer, target_dir, workspace_root,
};
