//! Small readers of /proc. This kernel has no `/proc/PID/task/TID/children`
//! (`CONFIG_PROC_CHILDREN` is off), so children are found by scanning every `/proc/N/stat`.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};

/// `(ppid, starttime)` of a live process, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (comm) STATE PPID ..." where comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); ppid is field 4, starttime field 22.
    let parent = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((parent, start))
}

/// The kernel's start time of a process (clock ticks since boot): with the pid, a name that
/// survives pid reuse.
pub fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

fn all_pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Direct children of a process.
pub fn children(pid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&p| stat(p).is_some_and(|(ppid, _)| ppid == pid))
        .collect()
}

/// All descendants of a process, children before grandchildren.
pub fn descendants(pid: u32) -> Vec<u32> {
    let table: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|p| stat(p).map(|(ppid, _)| (p, ppid)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &(p, ppid) in &table {
            if ppid == parent && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

/// The pid namespace of a process (`pid:[INODE]`).
pub fn pid_ns(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// Decode the octal escapes (`\040` for a space...) of a mountinfo field.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                out.push(
                    digits
                        .iter()
                        .fold(0_u8, |acc, d| acc.wrapping_mul(8).wrapping_add(d - b'0')),
                );
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Mount points of this mount namespace at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape)
        .filter(|m| m.starts_with(dir))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    out.dedup();
    out
}

/// Mount points of a given filesystem type, with their super options (field after " - ").
pub fn mounts_of_type(fstype: &str) -> Vec<(PathBuf, String)> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut r = right.split(' ');
            if r.next()? != fstype {
                return None;
            }
            let super_opts = r.nth(1).unwrap_or("").to_string();
            Some((unescape(left.split(' ').nth(4)?), super_opts))
        })
        .collect()
}
