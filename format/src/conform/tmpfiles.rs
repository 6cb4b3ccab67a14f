//! tmpfiles.d: only the manifest's directories, each with its owner, mode and ACLs.
//!
//! `systemd-tmpfiles` runs as root at every boot: a `z /etc/shadow 0644` line or a `d`
//! line elsewhere would be applied there, so only `d` and `a+` lines for the manifest's own
//! directories, with exactly the manifest's attributes, are accepted.

use std::collections::BTreeSet;

use super::{words, ConformError, Findings};
use crate::install::Directory;
use crate::manifest::Manifest;

pub(super) fn check(m: &Manifest, f: &Findings, text: &str) -> Result<(), ConformError> {
    let dirs = &m.install.directories;
    let find = |p: &str| dirs.iter().find(|d| d.path.as_str() == p);
    let mut seen = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let w = words(t).map_err(|p| f.err(n, p))?;
        let field = |k: usize| w.get(k).map_or("-", String::as_str);
        let Some(d) = find(field(1)) else {
            return Err(f.err(
                n,
                format!(
                    "{t:?}: {} is not one of the manifest's directories",
                    field(1)
                ),
            ));
        };
        if !seen.insert((w[0].clone(), field(1).to_owned())) {
            return Err(f.err(n, format!("{t:?}: a second {} line for {}", w[0], d.path)));
        }
        match w[0].as_str() {
            "d" => {
                let want = [d.mode.to_string(), d.owner.to_string(), d.group.to_string()];
                if w.len() > 6
                    || [field(2), field(3), field(4)]
                        != [want[0].as_str(), want[1].as_str(), want[2].as_str()]
                    || field(5) != "-"
                {
                    return Err(f.err(
                        n,
                        format!(
                            "{t:?}: the manifest has {} {} {}:{}; expected \"d {} {} {} {} -\"",
                            d.path, d.mode, d.owner, d.group, d.path, d.mode, d.owner, d.group
                        ),
                    ));
                }
            }
            "a+" => {
                if w.len() != 7 || (2..6).any(|k| field(k) != "-") {
                    return Err(f.err(n, format!("{t:?}: expected \"a+ PATH - - - - ENTRIES\"")));
                }
                let got: BTreeSet<&str> = field(6).split(',').collect();
                if got != want_acl(d).iter().map(String::as_str).collect() {
                    return Err(f.err(
                        n,
                        format!(
                            "{t:?}: the manifest's ACL of {} is {}",
                            d.path,
                            want_acl(d).join(",")
                        ),
                    ));
                }
            }
            kind => {
                return Err(f.err(
                    n,
                    format!("{t:?}: line type {kind:?} is not accepted (only d and a+)"),
                ));
            }
        }
    }
    Ok(())
}

fn want_acl(d: &Directory) -> Vec<String> {
    d.acl
        .iter()
        .map(ToString::to_string)
        .chain(d.default_acl.iter().map(|e| format!("default:{e}")))
        .collect()
}
