//! A throwaway Linux host to run a service in, and the sandbox trial `ferry try` runs there.
//!
//! [`Host`] is a real Debian 12 host with systemd as PID 1 and no network but loopback,
//! booted with `systemd-nspawn` from a cached root (built once by `scripts/mkhost`, see
//! [`host_cache`]) on a fresh writable overlay, exactly like the air-gapped machines the
//! static installer targets. It needs root. The end-to-end tests (`ferry-tests`) and `ferry
//! try` share it; [`trial`] is the check for silent breakage: install a bundle, observe the
//! service under its unit and without its sandbox, and bisect any difference down to the
//! directives that cause it.
//!
//! ```no_run
//! use ferry_host::Host;
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
//! - `FERRY_MAX_HOSTS`: hosts running at once in one process (default 2).
//! - `FERRY_HOST_BOOT_TIMEOUT`: seconds to wait for `running` (default 90).
//! - `FERRY_EXEC_TIMEOUT`: seconds before a command inside is killed (default 600).

mod cache;
mod cgroup;
mod host;
mod procfs;
mod slots;
pub mod trial;

pub use cache::{host_cache, host_cache_dir, host_cache_ready, profile_cache};
pub use host::{Host, HostMode, HostOptions};
