//! A cgroup of its own for each container.
//!
//! With `--register=no --keep-unit` (needed here: the outer machine has no systemd and no
//! D-Bus) systemd-nspawn takes the cgroup it was started in as its unit's, moves itself into
//! `<that>/supervisor` and the container into `<that>/payload`. Every test process sits in the
//! root cgroup on this machine, so two containers would share `/payload` and each container's
//! systemd would manage the other's cgroups. Hence each nspawn is started (through a tiny
//! `sh` wrapper that writes its own pid, then `exec`s nspawn) in a fresh `ferry-NAME` cgroup,
//! in every hierarchy nspawn uses: the cgroup2 one (`/sys/fs/cgroup/unified` on this hybrid
//! machine, `/sys/fs/cgroup` on a pure v2 one) and the v1 `name=systemd` one if mounted.
//!
//! The cgroup also gives a precise kill switch: `cgroup.kill` ends nspawn and every process of
//! the container at once. Killing only nspawn is not enough: the container's PID 1 survives it
//! (re-parented to the outer init), as seen here with `kill -9`.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::procfs;

/// Our own path in each hierarchy nspawn uses, joined to where that hierarchy is mounted.
fn own_cgroups() -> Result<Vec<PathBuf>> {
    let mine = fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
    let path_for = |controllers: &str| -> Option<&str> {
        mine.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            (c == controllers).then_some(p)
        })
    };
    let rel = |p: &str| p.trim_start_matches('/').to_string();
    let mut out = Vec::new();
    if let (Some((mount, _)), Some(p)) = (procfs::mounts_of_type("cgroup2").first(), path_for("")) {
        out.push(mount.join(rel(p)));
    }
    let v1 = procfs::mounts_of_type("cgroup")
        .into_iter()
        .find(|(_, opts)| opts.split(',').any(|o| o == "name=systemd"));
    if let (Some((mount, _)), Some(p)) = (v1, path_for("name=systemd")) {
        out.push(mount.join(rel(p)));
    }
    if out.is_empty() {
        bail!("no cgroup2 nor name=systemd cgroup hierarchy is mounted: systemd-nspawn needs one");
    }
    Ok(out)
}

/// Make `ferry-NAME` below our own cgroup in each hierarchy; returns the directories.
pub fn create(name: &str) -> Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    for parent in own_cgroups()? {
        let dir = parent.join(format!("ferry-{name}"));
        if let Err(e) = fs::create_dir(&dir) {
            if e.kind() != std::io::ErrorKind::AlreadyExists {
                remove(&made);
                return Err(e).with_context(|| {
                    format!(
                        "creating cgroup {} (is /sys/fs/cgroup writable? nspawn needs a cgroup \
                         of its own per container)",
                        dir.display()
                    )
                });
            }
        }
        made.push(dir);
    }
    Ok(made)
}

fn subtree(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                subtree(&e.path(), out);
            }
        }
    }
}

fn procs(dir: &Path) -> Vec<u32> {
    let mut dirs = Vec::new();
    subtree(dir, &mut dirs);
    dirs.iter()
        .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Kill every process in these cgroups: `cgroup.kill` where the kernel has it (cgroup2,
/// Linux 5.14+), else SIGKILL to each listed process, repeated until none is left.
pub fn kill_all(dirs: &[PathBuf]) {
    for dir in dirs {
        let switch = dir.join("cgroup.kill");
        if switch.exists() && fs::write(&switch, "1").is_ok() {
            continue;
        }
        for pid in procs(dir) {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Wait (up to 10 s) until these cgroups hold no process, killing stragglers, then remove them
/// bottom-up. Best effort: errors are reported, never raised, since this runs in `Drop`.
pub fn remove(dirs: &[PathBuf]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for dir in dirs {
        if !dir.exists() {
            continue;
        }
        while !procs(dir).is_empty() {
            if Instant::now() > deadline {
                eprintln!(
                    "ferry-host: cgroup {} still has processes {:?}",
                    dir.display(),
                    procs(dir)
                );
                break;
            }
            kill_all(std::slice::from_ref(dir));
            sleep(Duration::from_millis(20));
        }
        let mut all = Vec::new();
        subtree(dir, &mut all);
        all.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in all {
            if let Err(e) = fs::remove_dir(&d) {
                eprintln!("ferry-host: removing cgroup {}: {e}", d.display());
            }
        }
    }
}
