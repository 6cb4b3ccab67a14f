//! Helpers for ferry's end-to-end tests.
//!
//! The host harness lives in `ferry-host` (`host/`), shared with `ferry try`: a real
//! Debian 12 host with systemd as PID 1 and no network but loopback, booted with
//! `systemd-nspawn` from a cached root (built once by `scripts/mkhost`, see [`host_cache`])
//! on a fresh writable overlay per test, exactly like the air-gapped machines the static
//! installer targets. Tests need root. Its environment knobs (`FERRY_HOST_CACHE`,
//! `FERRY_MAX_HOSTS`, ...) are listed in `ferry_host`'s documentation.
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

mod paths;

pub use ferry_host::trial;
pub use ferry_host::{host_cache, host_cache_dir, Host, HostMode, HostOptions};
pub use paths::{
    debug_bin, ferry_bin, ferry_install_bin, static_installer, target_dir, workspace_root,
};
