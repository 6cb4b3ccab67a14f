//! The host being installed into: the live system (systemd running as PID 1) or an
//! offline root directory (`--root`), where only symlink-level systemctl works.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::install::HostPath;

use crate::exit::Precondition;
use crate::rootfs::Dir;

/// Directories of the host that only root changes. A host path is opened by resolving the
/// longest of these that contains it (inside the root, symlinks allowed: `/opt` may be a
/// link), checking it is root's and not world-writable, then walking the rest one
/// component at a time without following any symlink ([`crate::rootfs`]).
pub const SYSTEM_DIRS: &[&str] = &[
    "/etc",
    "/etc/systemd/system",
    "/etc/sysusers.d",
    "/etc/tmpfiles.d",
    "/etc/logrotate.d",
    "/opt",
    "/run",
    "/srv",
    "/var/cache",
    "/var/lib",
    "/var/log",
];

/// The owner of ferry's own files (its state, the units and rules it installs): root, as
/// which the installer runs. Taken from the process so the unit tests run unprivileged;
/// a real install refuses to run as anyone but root.
pub fn root_ids() -> (u32, u32) {
    (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// systemd runs as PID 1: reload, start and probe.
    Live,
    /// An image or container root: lay out and enable, never start.
    Offline,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub root: PathBuf,
    pub mode: Mode,
}

impl Host {
    pub fn new(root: Option<&Path>) -> Self {
        match root {
            // Absolute, because the tools ferry runs (systemd-sysusers, systemctl) resolve
            // --root against their own working directory.
            Some(r) => Self {
                root: std::path::absolute(r).unwrap_or_else(|_| r.to_path_buf()),
                mode: Mode::Offline,
            },
            None => Self {
                root: PathBuf::from("/"),
                mode: Mode::Live,
            },
        }
    }

    /// Where a host path lives on this machine.
    pub fn path(&self, p: &HostPath) -> PathBuf {
        self.root.join(p.relative())
    }

    pub fn rel(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    /// The host root as an open directory.
    pub fn root_dir(&self) -> Result<Dir> {
        Dir::open(&self.root).map_err(|e| {
            anyhow!(Precondition(format!(
                "{} cannot be opened as the root to install into: {e}",
                self.root.display()
            )))
        })
    }

    /// Opens a system directory (one of [`SYSTEM_DIRS`] or `/`); `None` if the host has
    /// none. Refused (exit 4) when someone but root could change it.
    pub fn system_dir(&self, path: &str) -> Result<Option<Dir>> {
        let root = self.root_dir()?;
        let Some(d) = root
            .open_in_root(path)
            .with_context(|| format!("opening {path}"))?
        else {
            return Ok(None);
        };
        let m = d.meta().with_context(|| format!("reading {path}"))?;
        // Root's (or, for tests run unprivileged, the installing user's own).
        let me = rustix::process::geteuid().as_raw();
        if (m.uid != 0 && m.uid != me) || m.mode & 0o002 != 0 {
            return Err(anyhow!(Precondition(format!(
                "{path} is owned by uid {} with mode {:04o}: a system directory must be root's and not world-writable",
                m.uid, m.mode
            ))));
        }
        Ok(Some(d))
    }

    /// Splits `path` into the system directory it is under and the rest.
    fn split(path: &HostPath) -> (&'static str, String) {
        let sys = SYSTEM_DIRS
            .iter()
            .filter(|s| {
                path.as_str()
                    .strip_prefix(**s)
                    .is_some_and(|r| r.starts_with('/'))
            })
            .max_by_key(|s| s.len())
            .copied()
            .unwrap_or("/");
        let rest = path.as_str()[sys.len()..]
            .trim_start_matches('/')
            .to_owned();
        (sys, rest)
    }

    /// Opens the directory `path` without following a symlink below its system directory;
    /// `None` when it (or an ancestor) does not exist. A symlink on the way is an error.
    pub fn open_dir(&self, path: &HostPath) -> Result<Option<Dir>> {
        let (sys, rest) = Self::split(path);
        let Some(base) = self.system_dir(sys)? else {
            return Ok(None);
        };
        base.walk(&rest).with_context(|| format!("opening {path}"))
    }

    /// The directory holding `path` and `path`'s last component; `None` if the directory
    /// does not exist.
    pub fn open_parent(&self, path: &HostPath) -> Result<Option<(Dir, String)>> {
        let name = path.file_name().to_owned();
        let parent = match path.parent() {
            Some(p) => self.open_dir(&p)?,
            None => Some(self.root_dir()?),
        };
        Ok(parent.map(|d| (d, name)))
    }

    /// Reads the regular file `path` (never through a symlink), at most `max` bytes.
    pub fn read_file(&self, path: &HostPath, max: u64) -> Result<Option<Vec<u8>>> {
        match self.open_parent(path)? {
            Some((d, name)) => d
                .read_at(&name, max)
                .with_context(|| format!("reading {path}")),
            None => Ok(None),
        }
    }

    /// Metadata of `path` itself (a symlink is reported as one).
    pub fn meta(&self, path: &HostPath) -> Result<Option<crate::rootfs::Meta>> {
        match self.open_parent(path)? {
            Some((d, name)) => d.meta_at(&name).with_context(|| format!("reading {path}")),
            None => Ok(None),
        }
    }

    pub fn systemd_running(&self) -> bool {
        Path::new("/run/systemd/system").is_dir()
    }

    /// `systemctl ARGS` (with `--root` offline), returning stdout.
    pub fn systemctl(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("systemctl");
        if self.mode == Mode::Offline {
            cmd.arg(format!("--root={}", self.root.display()));
        }
        cmd.args(args);
        run(&mut cmd)
    }

    /// Like `systemctl` but returns the exit status instead of failing.
    pub fn systemctl_status(&self, args: &[&str]) -> Result<(bool, String)> {
        let out = Command::new("systemctl")
            .args(args)
            .output()
            .context("running systemctl")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text.trim().to_owned()))
    }

    /// `systemctl show -p` as a map.
    pub fn unit_properties(
        &self,
        unit: &str,
        props: &[&str],
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let mut args = vec!["show", unit];
        let joined = props.join(",");
        args.push("-p");
        args.push(&joined);
        let out = self.systemctl(&args)?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    /// The service's last journal lines, for an error message after a failed start.
    pub fn journal_tail(&self, unit: &str, lines: u32) -> String {
        Command::new("journalctl")
            .args([
                "-u",
                unit,
                "-n",
                &lines.to_string(),
                "--no-pager",
                "-o",
                "cat",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    /// Creates users and groups from a sysusers.d file.
    pub fn sysusers(&self, conf: &Path) -> Result<()> {
        let mut cmd = Command::new("systemd-sysusers");
        if self.mode == Mode::Offline {
            cmd.arg(format!("--root={}", self.root.display()));
        }
        cmd.arg(conf);
        run(&mut cmd).map(|_| ())
    }
}

pub fn run(cmd: &mut Command) -> Result<String> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd.output().with_context(|| format!("running `{shown}`"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
