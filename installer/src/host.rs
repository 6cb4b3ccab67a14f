//! The host being installed into: the live system (systemd running as PID 1) or an
//! offline root directory (`--root`), where only symlink-level systemctl works.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use ferry_format::install::HostPath;

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
