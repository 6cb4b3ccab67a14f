//! [`Host`]: a booted, network-less Debian host with systemd as PID 1, one per test.
//!
//! How it runs on this machine (a VM whose PID 1 is not systemd, with no D-Bus, a hybrid
//! cgroup v1 + v2 layout, a hard `RLIMIT_NOFILE` of 20000 and no `CAP_SYS_RESOURCE`):
//!
//! ```text
//! mount -t overlay -o lowerdir=CACHE,upperdir=DIR/upper,workdir=DIR/work overlay DIR/root
//! sh -c 'echo $$ > <each ferry-NAME cgroup>/cgroup.procs; exec "$@"' -- \
//!   systemd-nspawn -D DIR/root --boot --machine=NAME --private-network \
//!     --register=no --keep-unit --console=passive \
//!     --resolv-conf=off --timezone=off --link-journal=no
//! nsenter -t PID1 -a CMD...
//! ```
//!
//! - `--register=no --keep-unit`: no systemd-machined/D-Bus outside to register with or to ask
//!   for a scope; nspawn then uses the cgroup it was started in (see `cgroup.rs` for why that
//!   must be a fresh one per container).
//! - `--private-network`: only `lo` inside, no route out, like the air-gapped target. (With
//!   [`HostOptions::network_namespace`], `--network-namespace-path=` instead: a namespace the
//!   caller wired into a private test network, as `tests/tests/fleet.rs` does.)
//! - `--console=passive`: no tty here; the container's console (boot messages) goes to
//!   nspawn's stdout, which is kept in `DIR/console.log` for diagnostics.
//! - `--resolv-conf=off --timezone=off`: leave the root's own files (no DNS, UTC) alone
//!   instead of copying or bind-mounting the outer machine's.
//! - `--link-journal=no`: keep the container's journal inside it (never on the outer host).
//! - Reboot: `systemctl reboot` inside makes systemd-nspawn exit with status 133; the harness
//!   then starts nspawn again on the same directory, as `systemd-nspawn@.service` does with
//!   `RestartForceExitStatus=133`, so everything written survives.
//! - Inside, services inherit a hard `RLIMIT_NOFILE` of 20000 from the outer sandbox and the
//!   container cannot raise it (no `CAP_SYS_RESOURCE` in the outer bounding set, nspawn warns
//!   "Some capabilities will not be set"): systemd silently clamps `LimitNOFILE=65536` to 20000.
//! - Commands entered with nsenter run in the outer cgroup and with the outer capability set
//!   (not the container's reduced one); services started by the container's systemd get the
//!   container's.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{cgroup, procfs, slots};

/// What nspawn exits with when the container asked for a reboot.
const EXIT_REBOOT: i32 = 133;
/// The environment of every command run inside (the outer one is not passed through).
const INSIDE_ENV: &[(&str, &str)] = &[
    (
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
    ("HOME", "/root"),
    ("USER", "root"),
    ("LOGNAME", "root"),
    ("LANG", "C.UTF-8"),
    ("TERM", "dumb"),
    ("SYSTEMD_PAGER", ""),
    ("SYSTEMD_COLORS", "0"),
    ("PAGER", "cat"),
];
const DEFAULT_RUNDIR: &str = "/var/tmp/ferry-hosts";
/// The wrapper that puts nspawn in its own cgroups before it starts: args are the
/// `cgroup.procs` files, `--`, then the nspawn command line.
const CGROUP_WRAPPER: &str =
    r#"while [ "$1" != -- ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@""#;

fn env_secs(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

fn rundir() -> PathBuf {
    std::env::var_os("FERRY_HOST_RUNDIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_RUNDIR), PathBuf::from)
}

/// How a host gets its own writable copy of the cached root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMode {
    /// overlayfs: the cache as read-only lower layer, an empty upper layer per host. About
    /// 15 ms to set up here; the default.
    Overlay,
    /// `cp -a --reflink=auto` of the whole root (about 0.3 s warm, 2 s cold, 170 MB here).
    Copy,
}

impl HostMode {
    fn from_env() -> Option<Self> {
        match std::env::var("FERRY_HOST_MODE").ok()?.as_str() {
            "copy" => Some(Self::Copy),
            "overlay" => Some(Self::Overlay),
            _ => None,
        }
    }
}

/// Options for [`Host::boot_with`].
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// `None`: `$FERRY_HOST_MODE`, else overlay, falling back to a copy if the mount fails.
    pub mode: Option<HostMode>,
    /// How long to wait for `systemctl is-system-running` to say running or degraded
    /// (default `$FERRY_HOST_BOOT_TIMEOUT` or 90 s), at boot and after each reboot.
    pub boot_timeout: Duration,
    /// How long a command run inside may take before it is killed (default
    /// `$FERRY_EXEC_TIMEOUT` or 600 s).
    pub exec_timeout: Duration,
    /// The `scripts/mkhost --profile` of the cached root to boot: `None` (the default) for the
    /// default root, `Some("fleet")` for `<cache>-fleet`, the same plus sshd, python3 and sudo.
    pub profile: Option<String>,
    /// `None` (the default): `--private-network`, loopback only. `Some(PATH)`:
    /// `--network-namespace-path=PATH` instead, a network namespace the caller made (`ip netns
    /// add`), wired and addressed, and removes.
    pub network_namespace: Option<PathBuf>,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            mode: HostMode::from_env(),
            boot_timeout: env_secs("FERRY_HOST_BOOT_TIMEOUT", 90),
            exec_timeout: env_secs("FERRY_EXEC_TIMEOUT", 600),
            profile: None,
            network_namespace: None,
        }
    }
}

/// A running test host: a fresh writable copy of the cached Debian root, booted with
/// `systemd-nspawn --boot` and no network but loopback. Dropping it kills the container,
/// unmounts and removes everything, also when the test panics.
#[derive(Debug)]
pub struct Host {
    name: String,
    dir: PathBuf,
    root: PathBuf,
    mode: HostMode,
    cgroups: Vec<PathBuf>,
    nspawn: Option<Child>,
    pid1: u32,
    options: HostOptions,
    last_boot: Duration,
    _slot: slots::Slot,
}

impl Host {
    /// Boot a fresh host with the default [`HostOptions`]. Builds the cache first if needed
    /// (see [`crate::host_cache`]). Waits while `FERRY_MAX_HOSTS` hosts already run.
    pub fn boot() -> Result<Self> {
        Self::boot_with(HostOptions::default())
    }

    /// Boot a fresh host.
    pub fn boot_with(options: HostOptions) -> Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let cache = match &options.profile {
            None => crate::host_cache()?,
            Some(profile) => crate::cache::profile_cache(profile)?,
        };
        check_tools()?;
        let slot = slots::acquire();

        let name = format!(
            "ferry-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let base = rundir();
        fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        let dir = base.join(&name);
        if dir.exists() {
            // Left by an earlier process that had our pid and died without cleaning up.
            teardown_dir(&dir, &name);
        }
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let me = std::process::id();
        fs::write(
            dir.join("owner"),
            format!("{me} {}\n", procfs::start_time(me).unwrap_or(0)),
        )?;

        // From here on, Drop cleans up whatever was made.
        let mut host = Host {
            name,
            root: dir.join("root"),
            dir,
            mode: HostMode::Overlay,
            cgroups: Vec::new(),
            nspawn: None,
            pid1: 0,
            options,
            last_boot: Duration::ZERO,
            _slot: slot,
        };
        host.prepare_root(&cache)?;
        let meta = fs::metadata(&host.root)?;
        // nspawn's lock on the image directory, which it leaves behind when killed.
        let lock = format!(
            "/run/systemd/nspawn/locks/inode-{}:{}",
            meta.dev(),
            meta.ino()
        );
        fs::write(host.dir.join("lock"), format!("{lock}\n"))?;
        host.cgroups = cgroup::create(&host.name)?;
        let mut list = String::new();
        for c in &host.cgroups {
            let _ = writeln!(list, "{}", c.display());
        }
        fs::write(host.dir.join("cgroups"), list)?;
        host.start()?;
        Ok(host)
    }

    fn prepare_root(&mut self, cache: &Path) -> Result<()> {
        let want = self.options.mode.unwrap_or(HostMode::Overlay);
        fs::create_dir(&self.root)?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o755))?;
        if want == HostMode::Overlay {
            match self.mount_overlay(cache) {
                Ok(()) => {
                    self.mode = HostMode::Overlay;
                    fs::write(self.dir.join("mode"), "overlay\n")?;
                    return Ok(());
                }
                Err(e) if self.options.mode.is_none() => {
                    eprintln!("ferry-host: overlay failed ({e:#}); copying the root instead");
                }
                Err(e) => return Err(e),
            }
        }
        self.mode = HostMode::Copy;
        fs::write(self.dir.join("mode"), "copy\n")?;
        let out = Command::new("cp")
            .arg("-a")
            .arg("--reflink=auto")
            .arg(cache.join("."))
            .arg(&self.root)
            .output()
            .context("running cp")?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o755))?;
        if !out.status.success() {
            bail!(
                "cp -a {} {} failed: {}",
                cache.display(),
                self.root.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn mount_overlay(&self, cache: &Path) -> Result<()> {
        let upper = self.dir.join("upper");
        let work = self.dir.join("work");
        fs::create_dir(&upper)?;
        fs::create_dir(&work)?;
        // The merged "/" takes its owner and mode from the upper directory, not the umask's.
        fs::set_permissions(&upper, fs::Permissions::from_mode(0o755))?;
        for p in [cache, &upper, &work] {
            let s = p.to_string_lossy();
            if s.contains([',', ':', '\\']) {
                bail!("path {s} has a character overlayfs options cannot hold");
            }
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            cache.display(),
            upper.display(),
            work.display()
        );
        mount(
            Some("overlay"),
            &self.root,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .with_context(|| format!("mount -t overlay -o {opts} overlay {}", self.root.display()))
    }

    /// Start nspawn on the prepared root, find the container's PID 1, wait until it runs.
    fn start(&mut self) -> Result<()> {
        let t0 = Instant::now();
        let log_path = self.dir.join("console.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(CGROUP_WRAPPER).arg("ferry-nspawn");
        for cg in &self.cgroups {
            cmd.arg(cg.join("cgroup.procs"));
        }
        let network = self.options.network_namespace.as_ref().map_or_else(
            || OsString::from("--private-network"),
            |ns| {
                let mut arg = OsString::from("--network-namespace-path=");
                arg.push(ns);
                arg
            },
        );
        cmd.arg("--")
            .arg("systemd-nspawn")
            .arg("--directory")
            .arg(&self.root)
            .arg("--boot")
            .arg(format!("--machine={}", self.name))
            .arg(network)
            .args([
                "--register=no",
                "--keep-unit",
                "--console=passive",
                "--resolv-conf=off",
                "--timezone=off",
                "--link-journal=no",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn().context("spawning systemd-nspawn")?;
        let nspawn_pid = child.id();
        self.nspawn = Some(child);
        self.pid1 = 0;

        let deadline = t0 + self.options.boot_timeout;
        self.pid1 = self.find_pid1(nspawn_pid, deadline)?;
        self.wait_running(deadline)?;
        self.last_boot = t0.elapsed();
        eprintln!(
            "ferry-host: host {} ({:?}) running after {:.2} s",
            self.name,
            self.mode,
            self.last_boot.as_secs_f64()
        );
        Ok(())
    }

    fn nspawn_exited(&mut self) -> Option<ExitStatus> {
        self.nspawn
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn find_pid1(&mut self, nspawn_pid: u32, deadline: Instant) -> Result<u32> {
        let outer_ns = procfs::pid_ns(nspawn_pid);
        loop {
            if let Some(status) = self.nspawn_exited() {
                bail!(
                    "systemd-nspawn exited ({status}) before the container started; its output:\n{}",
                    self.console_tail()
                );
            }
            // nspawn's inner child (CLONE_PARENT) is its direct child in a new pid namespace;
            // the outer child stays in ours.
            for pid in procfs::children(nspawn_pid) {
                let ns = procfs::pid_ns(pid);
                if ns.is_some() && ns != outer_ns {
                    return Ok(pid);
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "no container PID 1 under systemd-nspawn (pid {nspawn_pid}) after {:?}; output:\n{}",
                    self.options.boot_timeout,
                    self.console_tail()
                );
            }
            sleep(Duration::from_millis(10));
        }
    }

    fn wait_running(&mut self, deadline: Instant) -> Result<()> {
        let mut last = String::new();
        loop {
            if let Some(status) = self.nspawn_exited() {
                bail!(
                    "systemd-nspawn exited ({status}) while the host booted (last state {last:?}); \
                     its output:\n{}",
                    self.console_tail()
                );
            }
            // Fails (or says "offline") until the container's systemd listens.
            if let Ok(out) = self.try_exec_with(
                ["systemctl", "is-system-running"],
                None,
                Duration::from_secs(10),
            ) {
                last = String::from_utf8_lossy(&out.stdout).trim().to_string();
                match last.as_str() {
                    "running" => return Ok(()),
                    "degraded" => {
                        eprintln!(
                            "ferry-host: host {} is degraded; failed units:\n{}",
                            self.name,
                            self.failed_units()
                        );
                        return Ok(());
                    }
                    "maintenance" | "stopping" => bail!(
                        "host {} is {last} instead of booting; failed units:\n{}\noutput:\n{}",
                        self.name,
                        self.failed_units(),
                        self.console_tail()
                    ),
                    _ => {}
                }
            }
            if Instant::now() > deadline {
                let jobs = self
                    .try_exec_with(
                        ["systemctl", "list-jobs", "--no-legend"],
                        None,
                        Duration::from_secs(10),
                    )
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                bail!(
                    "host {} not running after {:?} (last state {last:?}); pending jobs:\n{jobs}\n\
                     nspawn output:\n{}",
                    self.name,
                    self.options.boot_timeout,
                    self.console_tail()
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// The machine name given to nspawn (unique per host: `ferry-<test pid>-<n>`). The
    /// hostname inside is always `ferry-host`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pid, in the outer namespace, of the container's systemd (changes on reboot).
    pub fn pid(&self) -> u32 {
        self.pid1
    }

    /// How the root was made writable.
    pub fn mode(&self) -> HostMode {
        self.mode
    }

    /// How long the last boot (or reboot) took until `running`/`degraded`.
    pub fn last_boot_duration(&self) -> Duration {
        self.last_boot
    }

    /// The container's root seen from outside (the overlay's merged directory). Files written
    /// under it are visible inside at once, and the other way round. Beware absolute symlinks
    /// inside the root (`/var/run -> /run`): joining paths naively may leave it; prefer
    /// [`Host::path`], [`Host::write_file`] and [`Host::copy_in`], which resolve them.
    pub fn root_path(&self) -> &Path {
        &self.root
    }

    /// The outside path of an absolute path inside the host, with symlinks resolved as the
    /// host would (absolute ones relative to its root, `..` clamped at its root).
    pub fn path(&self, inside: impl AsRef<Path>) -> Result<PathBuf> {
        resolve_inside(&self.root, inside.as_ref(), true)
    }

    /// Copy a file or a directory tree from the outer machine to `dest_inside` (the full
    /// destination path, parents created), preserving modes, ownership and xattrs (`cp -a`).
    /// Returns the outside path of the copy.
    pub fn copy_in(&self, src: impl AsRef<Path>, dest_inside: impl AsRef<Path>) -> Result<PathBuf> {
        let src = src.as_ref();
        let dest = self.outside_dest(dest_inside.as_ref())?;
        let out = Command::new("cp")
            .arg("-a")
            .arg("--no-target-directory")
            .arg(src)
            .arg(&dest)
            .output()
            .context("running cp")?;
        if !out.status.success() {
            bail!(
                "cp -a {} {} failed: {}",
                src.display(),
                dest.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(dest)
    }

    /// Write a file inside the host (parents created, mode from the umask, owner root).
    pub fn write_file(
        &self,
        dest_inside: impl AsRef<Path>,
        contents: impl AsRef<[u8]>,
    ) -> Result<PathBuf> {
        let dest = self.outside_dest(dest_inside.as_ref())?;
        fs::write(&dest, contents).with_context(|| format!("writing {}", dest.display()))?;
        Ok(dest)
    }

    /// Read a file of the host from outside.
    pub fn read_file(&self, inside: impl AsRef<Path>) -> Result<String> {
        let path = self.path(inside)?;
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    fn outside_dest(&self, dest_inside: &Path) -> Result<PathBuf> {
        let file_name = dest_inside
            .file_name()
            .ok_or_else(|| anyhow!("{} names no file", dest_inside.display()))?;
        let parent = dest_inside.parent().unwrap_or(Path::new("/"));
        let parent = resolve_inside(&self.root, parent, true)?;
        fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        // The last component is not followed: a symlink there is replaced like `cp` would not,
        // but we never write through a link that could point outside the root.
        let dest = parent.join(file_name);
        if dest
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            fs::remove_file(&dest)?;
        }
        Ok(dest)
    }

    fn nsenter<I, S>(&self, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.pid1.to_string())
            .arg("--all")
            .arg("--")
            .args(argv)
            .env_clear()
            .envs(INSIDE_ENV.iter().copied())
            .current_dir("/");
        cmd
    }

    /// Run a command inside (all the container's namespaces, via `nsenter -t PID -a`), with a
    /// clean root environment and cwd `/`, no stdin, killed after `timeout`. `Err` only when
    /// the command could not be run or timed out; a non-zero exit is an `Ok` output.
    pub fn try_exec_with<I, S>(
        &self,
        argv: I,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let argv: Vec<OsString> = argv
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        if self.pid1 == 0 {
            bail!("host {} is not running", self.name);
        }
        run_with_timeout(self.nsenter(&argv), stdin, timeout)
            .with_context(|| format!("on host {}: {}", self.name, show_argv(&argv)))
    }

    /// [`Host::try_exec_with`] with no stdin and the default timeout.
    pub fn try_exec<I, S>(&self, argv: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.try_exec_with(argv, None, self.options.exec_timeout)
    }

    /// Run a command inside and return its output, whatever its exit status. Panics only if it
    /// could not be run or timed out.
    pub fn exec<I, S>(&self, argv: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.try_exec(argv).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// [`Host::exec`] with bytes on stdin.
    pub fn exec_stdin<I, S>(&self, argv: I, stdin: impl AsRef<[u8]>) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.try_exec_with(argv, Some(stdin.as_ref()), self.options.exec_timeout)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Run `/bin/sh -c SCRIPT` inside.
    pub fn sh(&self, script: &str) -> Output {
        self.exec(["/bin/sh", "-c", script])
    }

    /// Run a command inside, panic unless it exits 0 (with the command, status, stdout and
    /// stderr in the message), return its stdout.
    pub fn ok<I, S>(&self, argv: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let argv: Vec<OsString> = argv
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = self.exec(&argv);
        expect_success(&self.name, &argv, &out).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// [`Host::ok`] for `/bin/sh -c SCRIPT`.
    pub fn sh_ok(&self, script: &str) -> String {
        self.ok(["/bin/sh", "-c", script])
    }

    /// Like [`Host::ok`] but returns the failure as an `Err` instead of panicking.
    pub fn try_ok<I, S>(&self, argv: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let argv: Vec<OsString> = argv
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = self.try_exec(&argv)?;
        expect_success(&self.name, &argv, &out)
    }

    /// `systemctl is-active --quiet UNIT`.
    pub fn is_active(&self, unit: &str) -> bool {
        self.exec(["systemctl", "is-active", "--quiet", unit])
            .status
            .success()
    }

    /// The unit's journal of this boot and the previous ones (`journalctl -u UNIT`), for
    /// diagnostics.
    pub fn journal(&self, unit: &str) -> String {
        let out = self.exec([
            "journalctl",
            "--no-pager",
            "-o",
            "short-precise",
            "-u",
            unit,
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl --failed` with each failed unit's status, for diagnostics.
    pub fn failed_units(&self) -> String {
        self.try_exec_with(
            [
                "/bin/sh",
                "-c",
                "systemctl --failed --no-legend --plain; \
                 for u in $(systemctl --failed --no-legend --plain | cut -d' ' -f1); do \
                   systemctl status --no-pager -n 20 \"$u\"; done",
            ],
            None,
            Duration::from_secs(20),
        )
        .map_or_else(
            |e| format!("(could not list failed units: {e:#})"),
            |o| String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    }

    /// Everything the container printed on its console (nspawn's output), all boots.
    pub fn console_log(&self) -> String {
        fs::read(self.dir.join("console.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn console_tail(&self) -> String {
        let log = self.console_log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// Reboot the host: `systemctl reboot` inside, wait for nspawn to exit with the reboot
    /// status (133), start it again on the same root, wait until running. Files, enabled units
    /// and the persistent journal survive; `/run` and `/tmp` (tmpfs) do not.
    pub fn reboot(&mut self) -> Result<()> {
        let t0 = Instant::now();
        // The command may die with the namespace before it reports: its result is no sign.
        let _ = self.try_exec_with(["systemctl", "reboot"], None, Duration::from_secs(30));
        let deadline = t0 + self.options.boot_timeout;
        let status = loop {
            if let Some(status) = self.nspawn_exited() {
                break status;
            }
            if Instant::now() > deadline {
                bail!(
                    "host {} did not go down within {:?} after `systemctl reboot`; output:\n{}",
                    self.name,
                    self.options.boot_timeout,
                    self.console_tail()
                );
            }
            sleep(Duration::from_millis(20));
        };
        self.nspawn = None;
        self.pid1 = 0;
        if status.code() != Some(EXIT_REBOOT) {
            bail!(
                "host {}: systemd-nspawn exited with {status} instead of {EXIT_REBOOT} (reboot); \
                 output:\n{}",
                self.name,
                self.console_tail()
            );
        }
        self.start()
    }

    fn teardown(&mut self) {
        // The cgroup kill ends nspawn, the container's PID 1 and everything under it; the
        // commands entered with nsenter die with the container's pid namespace.
        cgroup::kill_all(&self.cgroups);
        if self.pid1 != 0 {
            if let Ok(pid) = i32::try_from(self.pid1) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        if let Some(mut child) = self.nspawn.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        teardown_dir(&self.dir, &self.name);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn check_tools() -> Result<()> {
    for tool in ["systemd-nspawn", "nsenter", "cp"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()));
        if !found {
            bail!(
                "{tool} not found in PATH: install it (apt-get install -y systemd-container \
                 util-linux coreutils), or run scripts/mkhost which does"
            );
        }
    }
    Ok(())
}

/// Clean up a host's state directory: kill what runs in its cgroups (listed in `cgroups`),
/// remove them, unmount what is mounted below it, remove nspawn's leftovers and the
/// directory. Used by `Drop` and for hosts of dead test processes.
fn teardown_dir(dir: &Path, name: &str) {
    let cgroups: Vec<PathBuf> = fs::read_to_string(dir.join("cgroups"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(PathBuf::from)
        .collect();
    cgroup::kill_all(&cgroups);
    cgroup::remove(&cgroups);
    for m in procfs::mounts_under(dir) {
        if let Err(e) = umount_retrying(&m) {
            eprintln!("ferry-host: unmounting {}: {e}", m.display());
        }
    }
    // nspawn cannot clean this itself here ("Attempted to remove disk file system under
    // /run/systemd/nspawn/propagate/NAME, and we can't allow that": /run is not a tmpfs).
    let _ = fs::remove_dir_all(Path::new("/run/systemd/nspawn/propagate").join(name));
    if let Ok(lock) = fs::read_to_string(dir.join("lock")) {
        if lock.trim().starts_with("/run/systemd/nspawn/locks/inode-") {
            let _ = fs::remove_file(lock.trim());
        }
    }
    if !procfs::mounts_under(dir).is_empty() {
        eprintln!(
            "ferry-host: {} still has mounts; leaving it in place",
            dir.display()
        );
        return;
    }
    if let Err(e) = fs::remove_dir_all(dir) {
        eprintln!("ferry-host: removing {}: {e}", dir.display());
    }
}

fn umount_retrying(path: &Path) -> nix::Result<()> {
    for _ in 0..50 {
        match umount2(path, MntFlags::empty()) {
            Err(nix::errno::Errno::EBUSY) => sleep(Duration::from_millis(20)),
            other => return other,
        }
    }
    umount2(path, MntFlags::MNT_DETACH)
}

/// Tear down the hosts whose test process is gone (killed before its `Drop` ran).
pub(crate) fn reap_stale_hosts() {
    let Ok(entries) = fs::read_dir(rundir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
            continue;
        };
        if !name.starts_with("ferry-") {
            continue;
        }
        // ferry-<pid>-<n>; the owner file adds the pid's start time against pid reuse. A
        // live pid with no (or a half-written) owner file is a host being set up right now.
        let Some(pid) = name.split('-').nth(1).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let recorded = fs::read_to_string(dir.join("owner"))
            .ok()
            .as_deref()
            .and_then(|o| o.split_whitespace().nth(1))
            .and_then(|t| t.parse::<u64>().ok());
        let alive = match (procfs::start_time(pid), recorded) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(now), Some(then)) => now == then,
        };
        if !alive {
            eprintln!("ferry-host: cleaning up stale host {}", dir.display());
            teardown_dir(&dir, &name);
        }
    }
}

fn resolve_inside(root: &Path, inside: &Path, follow_last: bool) -> Result<PathBuf> {
    if !inside.is_absolute() {
        bail!(
            "{} is not an absolute path inside the host",
            inside.display()
        );
    }
    let mut todo: Vec<OsString> = Vec::new(); // reversed: pop() gives the next component
    let push_front = |todo: &mut Vec<OsString>, p: &Path| {
        let comps: Vec<OsString> = p
            .components()
            .map(|c| match c {
                Component::RootDir => OsString::from("/"),
                other => other.as_os_str().to_os_string(),
            })
            .collect();
        todo.extend(comps.into_iter().rev());
    };
    push_front(&mut todo, inside);
    let mut resolved = PathBuf::from("/");
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.to_str() {
            Some("/") => resolved = PathBuf::from("/"),
            Some(".") => {}
            Some("..") => {
                resolved.pop();
            }
            _ => {
                let candidate = resolved.join(&c);
                let outside = root.join(candidate.strip_prefix("/").unwrap_or(&candidate));
                let is_last = todo.is_empty();
                let is_link = outside
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_symlink());
                if is_link && (follow_last || !is_last) {
                    hops += 1;
                    if hops > 40 {
                        bail!(
                            "too many symlinks resolving {} in the host",
                            inside.display()
                        );
                    }
                    let target = fs::read_link(&outside)?;
                    push_front(&mut todo, &target);
                } else {
                    resolved = candidate;
                }
            }
        }
    }
    Ok(root.join(resolved.strip_prefix("/").unwrap_or(&resolved)))
}

fn show_argv(argv: &[OsString]) -> String {
    argv.iter()
        .map(|a| {
            let s = a.to_string_lossy();
            if s.is_empty()
                || s.contains(|c: char| c.is_whitespace() || "'\"\\$`;&|<>()*?".contains(c))
            {
                format!("'{}'", s.replace('\'', r"'\''"))
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn expect_success(host: &str, argv: &[OsString], out: &Output) -> Result<String> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let mut msg = format!(
        "on host {host}: `{}` failed ({})",
        show_argv(argv),
        describe(out.status)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = write!(
        msg,
        "\n--- stdout ---\n{}\n--- stderr ---\n{}",
        stdout.trim_end(),
        stderr.trim_end()
    );
    Err(anyhow!(msg))
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// Reads a pipe to its end in a thread, keeping what it got so far available.
struct Collector {
    buf: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Collector {
    fn start(pipe: Option<Box<dyn Read + Send>>) -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let sink = Arc::clone(&buf);
        thread::spawn(move || {
            if let Some(mut pipe) = pipe {
                let mut chunk = [0_u8; 8192];
                while let Ok(n) = pipe.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&chunk[..n]);
                }
            }
            let _ = tx.send(());
        });
        Self { buf, done }
    }

    fn finish(self, deadline: Instant) -> Vec<u8> {
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Run a command with piped output, optional stdin, and a deadline after which the command and
/// all its descendants (nsenter's child lives in the container) are killed.
fn run_with_timeout(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Output> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let stdout = Collector::start(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = Collector::start(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );

    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_millis(1);
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            timed_out = true;
            for pid in procfs::descendants(child.id()).into_iter().rev() {
                if let Ok(pid) = i32::try_from(pid) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            let _ = child.kill();
            break child.wait()?;
        }
        sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    // A background process the command left behind (`sh -c 'daemon &'`) may hold the pipes
    // open: give the readers a moment, then take what they have.
    let grace = Instant::now() + Duration::from_millis(500);
    let stdout = stdout.finish(grace);
    let stderr = stderr.finish(grace);
    if timed_out {
        bail!(
            "timed out after {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&stdout).trim_end(),
            String::from_utf8_lossy(&stderr).trim_end()
        );
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}
