//! Directories with owners, modes and POSIX ACLs, set and then read back and compared.

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::install::{AclEntry, AclKind, Directory};

use crate::accounts::Accounts;
use crate::acl::{self, Acl, Named};
use crate::host::Host;
use crate::journal::Journal;

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
        Some(a) => {
            let mask = u32::from(
                a.encode()[4..]
                    .chunks(8)
                    .find_map(|e| (u16::from_le_bytes([e[0], e[1]]) == 0x10).then_some(e[2]))
                    .unwrap_or(0),
            );
            (want.mode & !0o070) | (mask << 3)
        }
        None => want.mode,
    }
}

fn matches(path: &std::path::Path, want: &Desired) -> Result<bool> {
    let meta = fs::symlink_metadata(path)?;
    Ok(meta.is_dir()
        && meta.uid() == want.uid
        && meta.gid() == want.gid
        && meta.permissions().mode() & 0o7777 == effective_mode(want)
        && acl::read(path, acl::ACCESS)? == want.access
        && acl::read(path, acl::DEFAULT)? == want.default)
}

/// Creates or fixes one directory; returns whether anything changed.
pub fn apply(
    host: &Host,
    d: &Directory,
    accounts: &Accounts,
    journal: &mut Journal,
) -> Result<bool> {
    let path = host.path(&d.path);
    let want = desired(d, accounts)?;
    match fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
            bail!("{} exists and is not a directory", path.display())
        }
        Ok(_) => {
            if matches(&path, &want)? {
                return Ok(false);
            }
            journal.dir_meta(&path)?;
        }
        Err(_) => {
            journal.created_dir(&path)?;
            fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        }
    }
    std::os::unix::fs::lchown(&path, Some(want.uid), Some(want.gid))
        .with_context(|| format!("chown {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(want.mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    acl::apply(&path, acl::ACCESS, want.access.as_ref())
        .with_context(|| format!("setting the access ACL of {}", path.display()))?;
    acl::apply(&path, acl::DEFAULT, want.default.as_ref())
        .with_context(|| format!("setting the default ACL of {}", path.display()))?;
    if !matches(&path, &want)? {
        bail!(
            "{}: owner, mode or ACL read back differently than set",
            path.display()
        );
    }
    Ok(true)
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
