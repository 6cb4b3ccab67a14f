//! logrotate rules: only `/var/log/APP/*.log`, rotated as the service user, with the
//! standard reopen script.
//!
//! logrotate runs as root and its scripts run as root even under `su`; `olddir`,
//! `compresscmd` or a `postrotate` of one's own would be root actions of the bundle's
//! choosing, so the file must be one block over the app's logs with allow-listed
//! directives and exactly ferry's reopen script.

use super::{ConformError, Findings};
use crate::footprint::Signal;
use crate::manifest::Manifest;

/// The one `postrotate` script: signal the main process if the service runs.
pub fn reopen_script(unit: &str, sig: Signal) -> String {
    format!(
        "if /bin/systemctl --quiet is-active {unit}; then /bin/systemctl kill --kill-whom=main --signal={sig} {unit}; fi"
    )
}

fn is_size(v: &str) -> bool {
    let digits = v.trim_end_matches(['k', 'K', 'M', 'G']);
    !digits.is_empty()
        && digits.len() <= 12
        && digits.bytes().all(|b| b.is_ascii_digit())
        && v.len() - digits.len() <= 1
}

fn is_count(v: &str) -> bool {
    !v.is_empty() && v.len() <= 6 && v.bytes().all(|b| b.is_ascii_digit())
}

/// Where the line-by-line reader is.
#[derive(PartialEq)]
enum At {
    Outside,
    Block,
    Script,
    Done,
}

pub(super) fn check(m: &Manifest, f: &Findings, text: &str) -> Result<(), ConformError> {
    let inst = &m.install;
    let Some(logs) = &inst.log_files else {
        return Err(f.err(0, "the manifest declares no log files"));
    };
    let l = m.app.name.layout();
    let pattern = format!("{}/*.log", l.log());
    let script = reopen_script(&l.unit_name(), logs.reopen_signal);
    let (user, group) = (inst.user.as_str(), inst.group.as_str());
    let mut at = At::Outside;
    let mut saw_su = false;
    let mut script_lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if t.is_empty() || (t.starts_with('#') && at != At::Script) {
            continue;
        }
        let w: Vec<&str> = t.split_whitespace().collect();
        match at {
            At::Outside => {
                if w != [pattern.as_str(), "{"] {
                    return Err(f.err(
                        n,
                        format!("{t:?}: only one block, \"{pattern} {{\", is accepted"),
                    ));
                }
                at = At::Block;
            }
            At::Done => return Err(f.err(n, format!("{t:?}: nothing may follow the block"))),
            At::Script => {
                if t == "endscript" {
                    if script_lines != [script.as_str()] {
                        return Err(f.err(n, format!("postrotate must be exactly: {script}")));
                    }
                    at = At::Block;
                } else {
                    script_lines.push(t.to_owned());
                }
            }
            At::Block => {
                let ok = match w.as_slice() {
                    ["}"] => {
                        at = At::Done;
                        true
                    }
                    ["postrotate"] if script_lines.is_empty() => {
                        at = At::Script;
                        true
                    }
                    ["su", u, g] => {
                        if (*u, *g) != (user, group) {
                            return Err(
                                f.err(n, format!("{t:?}: logrotate must act as {user} {group}"))
                            );
                        }
                        saw_su = true;
                        true
                    }
                    ["create", mode, u, g] => {
                        let mode_ok = mode.len() == 4
                            && mode.bytes().all(|b| (b'0'..=b'7').contains(&b))
                            && !mode.ends_with(['2', '3', '6', '7'])
                            && mode.starts_with('0');
                        if !mode_ok || (*u, *g) != (user, group) {
                            return Err(f.err(n, format!("{t:?}: expected \"create 0MODE {user} {group}\" (not world-writable)")));
                        }
                        true
                    }
                    ["daily" | "weekly" | "monthly" | "yearly" | "missingok" | "nomissingok"
                    | "notifempty" | "ifempty" | "compress" | "nocompress" | "delaycompress"
                    | "nodelaycompress" | "dateext" | "nodateext" | "dateyesterday"
                    | "sharedscripts" | "nosharedscripts" | "copytruncate" | "nocopytruncate"] => {
                        true
                    }
                    ["maxsize" | "minsize" | "size", v] => is_size(v),
                    ["rotate" | "maxage", v] => is_count(v),
                    ["dateformat", v] => {
                        v.len() <= 64
                            && v.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || matches!(b, b'%' | b'-' | b'_' | b'.')
                            })
                    }
                    _ => false,
                };
                if !ok {
                    return Err(f.err(n, format!(
                        "{t:?}: not accepted (logrotate runs as root: no olddir, scripts of one's own, commands or includes)"
                    )));
                }
            }
        }
    }
    if at != At::Done {
        return Err(f.err(
            0,
            format!("the \"{pattern} {{ ... }}\" block is missing or unfinished"),
        ));
    }
    if !saw_su {
        return Err(f.err(
            0,
            format!("\"su {user} {group}\" is missing: the log directory is the service's"),
        ));
    }
    if script_lines.is_empty() {
        return Err(f.err(
            0,
            format!("the postrotate reopen script is missing: {script}"),
        ));
    }
    Ok(())
}
