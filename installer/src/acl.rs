//! POSIX ACLs written straight to their xattrs (`system.posix_acl_access` and
//! `system.posix_acl_default`), so the installer needs no libacl. Layout: u32 LE version 2,
//! then `{u16 tag, u16 perm, u32 id}` entries in tag order, named ones sorted by id, and a
//! MASK whenever named entries exist (else the kernel answers EINVAL).

use std::io;
use std::path::Path;

pub const ACCESS: &str = "system.posix_acl_access";
pub const DEFAULT: &str = "system.posix_acl_default";

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const UNDEFINED_ID: u32 = u32::MAX;

/// A named entry with a resolved numeric id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Named {
    User { uid: u32, perms: u8 },
    Group { gid: u32, perms: u8 },
}

/// A full ACL: the owner/group/other bits from the mode plus named entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub user_obj: u8,
    pub group_obj: u8,
    pub other: u8,
    pub named: Vec<Named>,
}

impl Acl {
    /// The ACL for a directory of `mode` with `named` entries. The mask is the union of
    /// the group class, as setfacl computes it, so named entries are not silently cut.
    pub fn from_mode(mode: u32, named: &[Named]) -> Self {
        let bits = |shift: u32| u8::try_from((mode >> shift) & 7).unwrap_or(0);
        let mut named = named.to_vec();
        named.sort();
        named.dedup();
        Self {
            user_obj: bits(6),
            group_obj: bits(3),
            other: bits(0),
            named,
        }
    }

    pub fn mask(&self) -> u8 {
        self.named.iter().fold(self.group_obj, |m, n| {
            m | match n {
                Named::User { perms, .. } | Named::Group { perms, .. } => *perms,
            }
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = VERSION.to_le_bytes().to_vec();
        let mut push = |tag: u16, perm: u8, id: u32| {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&u16::from(perm).to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        };
        push(USER_OBJ, self.user_obj, UNDEFINED_ID);
        let mut users: Vec<_> = self
            .named
            .iter()
            .filter_map(|n| match n {
                Named::User { uid, perms } => Some((*uid, *perms)),
                Named::Group { .. } => None,
            })
            .collect();
        users.sort_unstable();
        for (uid, p) in users {
            push(USER, p, uid);
        }
        push(GROUP_OBJ, self.group_obj, UNDEFINED_ID);
        let mut groups: Vec<_> = self
            .named
            .iter()
            .filter_map(|n| match n {
                Named::Group { gid, perms } => Some((*gid, *perms)),
                Named::User { .. } => None,
            })
            .collect();
        groups.sort_unstable();
        for (gid, p) in groups {
            push(GROUP, p, gid);
        }
        if !self.named.is_empty() {
            push(MASK, self.mask(), UNDEFINED_ID);
        }
        push(OTHER, self.other, UNDEFINED_ID);
        out
    }

    pub fn decode(data: &[u8]) -> Option<Self> {
        if data.len() < 4 || (data.len() - 4) % 8 != 0 {
            return None;
        }
        if u32::from_le_bytes(data[..4].try_into().ok()?) != VERSION {
            return None;
        }
        let mut acl = Self {
            user_obj: 0,
            group_obj: 0,
            other: 0,
            named: Vec::new(),
        };
        for e in data[4..].chunks_exact(8) {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u8::try_from(u16::from_le_bytes([e[2], e[3]]) & 7).ok()?;
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            match tag {
                USER_OBJ => acl.user_obj = perm,
                GROUP_OBJ => acl.group_obj = perm,
                OTHER => acl.other = perm,
                USER => acl.named.push(Named::User {
                    uid: id,
                    perms: perm,
                }),
                GROUP => acl.named.push(Named::Group {
                    gid: id,
                    perms: perm,
                }),
                MASK => {}
                _ => return None,
            }
        }
        acl.named.sort();
        Some(acl)
    }
}

/// Sets (or, with no named entries, removes) an ACL xattr, then reads it back.
pub fn apply(path: &Path, name: &str, acl: Option<&Acl>) -> io::Result<()> {
    match acl {
        Some(a) => {
            let bytes = a.encode();
            xattr::set(path, name, &bytes)?;
            let back = xattr::get(path, name)?;
            if back.as_deref().and_then(Acl::decode).as_ref() != Some(a) {
                return Err(io::Error::other(format!(
                    "{name} on {} reads back differently than written",
                    path.display()
                )));
            }
        }
        None => match xattr::remove(path, name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(61) /* ENODATA */ => {}
            Err(e) => return Err(e),
        },
    }
    Ok(())
}

pub fn read(path: &Path, name: &str) -> io::Result<Option<Acl>> {
    Ok(xattr::get(path, name)?.as_deref().and_then(Acl::decode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_g999_rx_on_0750() {
        // target-host.md: `g:999:r-x` on a 0750 dir.
        let acl = Acl::from_mode(0o750, &[Named::Group { gid: 999, perms: 5 }]);
        let hex = ferry_format::digest::hex(&acl.encode());
        assert_eq!(
            hex,
            "02000000\
             01000700ffffffff\
             04000500ffffffff\
             08000500e7030000\
             10000500ffffffff\
             20000000ffffffff"
        );
    }

    #[test]
    fn sorted_named_entries_and_round_trip() {
        let acl = Acl::from_mode(
            0o750,
            &[
                Named::Group { gid: 20, perms: 4 },
                Named::User { uid: 7, perms: 6 },
                Named::Group { gid: 4, perms: 5 },
            ],
        );
        let enc = acl.encode();
        let tags: Vec<u16> = enc[4..]
            .chunks(8)
            .map(|e| u16::from_le_bytes([e[0], e[1]]))
            .collect();
        assert_eq!(tags, [USER_OBJ, USER, GROUP_OBJ, GROUP, GROUP, MASK, OTHER]);
        let ids: Vec<u32> = enc[4..]
            .chunks(8)
            .map(|e| u32::from_le_bytes([e[4], e[5], e[6], e[7]]))
            .collect();
        assert_eq!(ids[3..5], [4, 20], "named groups sorted by id");
        assert_eq!(Acl::decode(&enc), Some(acl));
    }

    #[test]
    fn no_named_entries_no_mask() {
        let enc = Acl::from_mode(0o755, &[]).encode();
        assert_eq!(enc.len(), 4 + 3 * 8);
    }

    #[test]
    fn decode_rejects_garbage() {
        for bad in [
            &b""[..],
            &[1, 0, 0, 0][..],
            &[2, 0, 0, 0, 1][..],
            &[2, 0, 0, 0, 0x40, 0, 7, 0, 0, 0, 0, 0][..],
        ] {
            assert_eq!(Acl::decode(bad), None);
        }
    }
}
