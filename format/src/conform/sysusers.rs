//! sysusers.d: only the service account, its group and its declared memberships.
//!
//! `systemd-sysusers` runs as root and creates whatever the file asks for (a `u` line with
//! an explicit uid of 0 is a second root; an `m` line adds a user to any group, creating
//! it if need be), so every line must be one the manifest accounts for.

use std::collections::BTreeSet;

use super::{words, ConformError, Findings};
use crate::footprint::Account;
use crate::manifest::Manifest;

/// Shells that let nobody log in; `-` is systemd-sysusers' default for system users,
/// which is nologin.
const NOLOGIN: &[&str] = &[
    "-",
    "/usr/sbin/nologin",
    "/sbin/nologin",
    "/bin/false",
    "/usr/bin/false",
];

pub(super) fn check(m: &Manifest, f: &Findings, text: &str) -> Result<(), ConformError> {
    let inst = &m.install;
    let (user, group) = (inst.user.as_str(), inst.group.as_str());
    let home = m.app.name.layout().lib();
    let mut saw_user = false;
    let mut saw_group = false;
    let mut members = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let w = words(t).map_err(|p| f.err(n, p))?;
        let field = |k: usize| w.get(k).map_or("-", String::as_str);
        match (w[0].as_str(), inst.account) {
            ("g", Account::New) => {
                if field(1) != group || field(2) != "-" || w.len() > 3 || saw_group {
                    return Err(f.err(
                        n,
                        format!("{t:?}: only \"g {group} -\" (once, no fixed gid) is accepted"),
                    ));
                }
                saw_group = true;
            }
            ("u", Account::New) => {
                let id_ok = field(2) == "-" || field(2) == format!("-:{group}");
                let home_ok = ["-", "/", "/nonexistent", home.as_str()].contains(&field(4));
                if field(1) != user
                    || !id_ok
                    || !home_ok
                    || !NOLOGIN.contains(&field(5))
                    || w.len() > 6
                    || saw_user
                {
                    return Err(f.err(n, format!(
                        "{t:?}: only the service user is accepted, once: \"u {user} -:{group} \\\"DESCRIPTION\\\" {home} /usr/sbin/nologin\" (no fixed uid, no login shell)"
                    )));
                }
                saw_user = true;
            }
            ("m", _) => {
                if field(1) != user || w.len() != 3 {
                    return Err(f.err(n, format!("{t:?}: only memberships of {user} are accepted")));
                }
                if !inst
                    .supplementary_groups
                    .iter()
                    .any(|g| g.as_str() == field(2))
                {
                    return Err(f.err(
                        n,
                        format!(
                            "{t:?}: group {} is not one of the manifest's supplementary groups",
                            field(2)
                        ),
                    ));
                }
                if !members.insert(field(2).to_owned()) {
                    return Err(f.err(n, format!("{t:?}: listed twice")));
                }
            }
            ("u" | "g", Account::Existing) => {
                return Err(f.err(n, format!("{t:?}: the manifest runs the service as the existing account {user}; nothing may be created")));
            }
            (kind, _) => {
                return Err(f.err(
                    n,
                    format!("{t:?}: line type {kind:?} is not accepted (only u, g and m)"),
                ));
            }
        }
    }
    if inst.account == Account::New && !(saw_user && saw_group) {
        return Err(f.err(
            0,
            format!("the file must create user {user} and group {group}"),
        ));
    }
    if members.len() != inst.supplementary_groups.len() {
        return Err(f.err(
            0,
            "not every supplementary group of the manifest has its m line",
        ));
    }
    Ok(())
}
