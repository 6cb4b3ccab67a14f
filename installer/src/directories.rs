//! Directories with owners, modes and POSIX ACLs: planned, journaled in one batch, set
//! through descriptors opened without following symlinks, then read back and compared.

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::install::{AclEntry, AclKind, Directory, HostPath};

use crate::accounts::Accounts;
use crate::acl::{self, Acl, Named};
use crate::host::Host;
use crate::journal::{Action, Journal};
use crate::rootfs::{Dir, Kind};

fn resolve(entries: &[AclEntry], accounts: &Accounts) -> Result<Vec<Named>> {
    entries
        .iter()
        .map(|e| match e.kind {
            AclKind::User => accounts
                .uid(e.name.as_str())
                .map(|uid| Named::User {
                    uid,
                    perms: e.perms,
                })
                .ok_or_else(|| anyhow!("ACL entry {e}: no user {} on this host", e.name)),
            AclKind::Group => accounts
                .gid(e.name.as_str())
                .map(|gid| Named::Group {
                    gid,
                    perms: e.perms,
                })
                .ok_or_else(|| anyhow!("ACL entry {e}: no group {} on this host", e.name)),
        })
        .collect()
}

/// What a directory should look like, with names resolved to ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub access: Option<Acl>,
    pub default: Option<Acl>,
}

pub fn desired(d: &Directory, accounts: &Accounts) -> Result<Desired> {
    let uid = accounts
        .uid(d.owner.as_str())
        .ok_or_else(|| anyhow!("{}: no user {} on this host", d.path, d.owner))?;
    let gid = accounts
        .gid(d.group.as_str())
        .ok_or_else(|| anyhow!("{}: no group {} on this host", d.path, d.group))?;
    let mode = d.mode.bits();
    let access_named = resolve(&d.acl, accounts)?;
    let default_named = resolve(&d.default_acl, accounts)?;
    Ok(Desired {
        uid,
        gid,
        mode,
        access: (!access_named.is_empty()).then(|| Acl::from_mode(mode, &access_named)),
        default: (!default_named.is_empty()).then(|| Acl::from_mode(mode, &default_named)),
    })
}

/// The mode as the kernel reports it once an access ACL exists: group bits become the mask.
fn effective_mode(want: &Desired) -> u32 {
    match &want.access {
        Some(a) => (want.mode & !0o070) | (u32::from(a.mask()) << 3),
        None => want.mode,
    }
}

fn matches(dir: &Dir, want: &Desired) -> Result<bool> {
    let m = dir.meta()?;
    let read =
        |name| -> Result<Option<Acl>> { Ok(dir.xattr(name)?.as_deref().and_then(Acl::decode)) };
    Ok(m.kind == Kind::Dir
        && m.uid == want.uid
        && m.gid == want.gid
        && m.mode == effective_mode(want)
        && read(acl::ACCESS)? == want.access
        && read(acl::DEFAULT)? == want.default)
}

/// Parents first: `/opt/app` before `/opt/app/releases`.
pub fn ordered(dirs: &[Directory]) -> Vec<&Directory> {
    let mut v: Vec<&Directory> = dirs.iter().collect();
    v.sort_by_key(|d| {
        (
            d.path.as_str().matches('/').count(),
            d.path.as_str().to_owned(),
        )
    });
    v
}

/// One directory's step: create it, or fix what differs, or nothing.
enum Step {
    Create,
    Fix,
    Keep,
}

/// Creates or fixes every directory, parents first. All undo records go to the journal
/// in one batch before the first change; each directory is then made and set through its
/// own descriptor. Returns how many changed.
pub fn apply(
    host: &Host,
    dirs: &[Directory],
    accounts: &Accounts,
    journal: &mut Journal,
) -> Result<usize> {
    let ordered = ordered(dirs);
    let mut steps = Vec::with_capacity(ordered.len());
    let mut records = Vec::new();
    // A directory whose parent is created in this batch is created too.
    let mut creating: Vec<&HostPath> = Vec::new();
    for d in &ordered {
        let want = desired(d, accounts)?;
        let parent_created = d.path.parent().is_some_and(|p| creating.contains(&&p));
        let step = if parent_created {
            Step::Create
        } else {
            match host.meta(&d.path)? {
                None => Step::Create,
                Some(m) if m.kind != Kind::Dir => {
                    bail!("{} exists and is not a directory", d.path)
                }
                Some(_) => {
                    let dir = host
                        .open_dir(&d.path)?
                        .ok_or_else(|| anyhow!("{} vanished", d.path))?;
                    if matches(&dir, &want)? {
                        Step::Keep
                    } else {
                        let m = dir.meta()?;
                        records.push(Action::DirMeta {
                            path: d.path.clone(),
                            uid: m.uid,
                            gid: m.gid,
                            mode: m.mode,
                            access: dir.xattr(acl::ACCESS)?,
                            default: dir.xattr(acl::DEFAULT)?,
                        });
                        Step::Fix
                    }
                }
            }
        };
        if matches!(step, Step::Create) {
            records.push(Action::CreatedDir {
                path: d.path.clone(),
            });
            creating.push(&d.path);
        }
        steps.push((d, want, step));
    }
    journal.record_all(records)?;
    let mut changed = 0;
    for (d, want, step) in steps {
        if matches!(step, Step::Keep) {
            continue;
        }
        let (parent, name) = host
            .open_parent(&d.path)?
            .ok_or_else(|| anyhow!("the parent of {} does not exist", d.path))?;
        if matches!(step, Step::Create) {
            // Made private first, opened without following links, then given its owner.
            parent
                .mkdir_at(&name, 0o700)
                .with_context(|| format!("creating {}", d.path))?;
        }
        let dir = parent.must_child(&name)?;
        set(&dir, &want).with_context(|| format!("setting owner, mode and ACLs of {}", d.path))?;
        if !matches(&dir, &want)? {
            bail!(
                "{}: owner, mode or ACL read back differently than set",
                d.path
            );
        }
        changed += 1;
    }
    Ok(changed)
}

fn set(dir: &Dir, want: &Desired) -> Result<()> {
    dir.chown(want.uid, want.gid)?;
    dir.chmod(want.mode)?;
    for (name, value) in [(acl::ACCESS, &want.access), (acl::DEFAULT, &want.default)] {
        match value {
            Some(a) => {
                dir.set_xattr(name, &a.encode())?;
                if dir.xattr(name)?.as_deref().and_then(Acl::decode).as_ref() != Some(a) {
                    bail!("{name} reads back differently than written");
                }
            }
            None => dir.remove_xattr(name)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
