//! Snapshots of a directory tree for "nothing changed" checks: every path with its file
//! type, permission bits (special bits included), owner, group, extended attributes (ACLs
//! are `system.posix_acl_*` xattrs) and content (SHA-256 of a file, target of a symlink,
//! device number of a node). Timestamps are left out: only what a later reader of the
//! host could see as a change counts.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// One path of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub xattrs: BTreeMap<OsString, Vec<u8>>,
    /// SHA-256 of a regular file, target of a symlink, `rdev` of a device, else empty.
    pub content: String,
}

/// Paths relative to the snapshot's root (the root itself is `""`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot(pub BTreeMap<PathBuf, Node>);

fn node(path: &Path, meta: &fs::Metadata) -> Node {
    let ft = meta.file_type();
    let (kind, content) = if ft.is_file() {
        let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        ("file", ferry_format::digest::hex(&Sha256::digest(&data)))
    } else if ft.is_dir() {
        ("dir", String::new())
    } else if ft.is_symlink() {
        let target =
            fs::read_link(path).unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()));
        ("symlink", target.display().to_string())
    } else if ft.is_fifo() {
        ("fifo", String::new())
    } else if ft.is_socket() {
        ("socket", String::new())
    } else if ft.is_char_device() {
        ("char", meta.rdev().to_string())
    } else if ft.is_block_device() {
        ("block", meta.rdev().to_string())
    } else {
        ("other", String::new())
    };
    // `xattr::list`/`get` do not follow symlinks (llistxattr, lgetxattr).
    let xattrs = xattr::list(path)
        .map(|names| {
            names
                .filter_map(|n| {
                    let v = xattr::get(path, &n).ok().flatten()?;
                    Some((n, v))
                })
                .collect()
        })
        .unwrap_or_default();
    Node {
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        xattrs,
        content,
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Node>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let meta =
            fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        out.insert(
            path.strip_prefix(root)
                .expect("below the root")
                .to_path_buf(),
            node(&path, &meta),
        );
        if meta.is_dir() {
            walk(root, &path, out);
        }
    }
}

impl Snapshot {
    /// Snapshots `root` and everything below it (symlinks are recorded, never followed).
    /// A missing `root` is an empty snapshot.
    pub fn take(root: &Path) -> Self {
        let mut out = BTreeMap::new();
        let Ok(meta) = fs::symlink_metadata(root) else {
            return Self(out);
        };
        out.insert(PathBuf::new(), node(root, &meta));
        if meta.is_dir() {
            walk(root, root, &mut out);
        }
        Self(out)
    }

    /// Snapshots several trees at once, keyed by `root/sub`.
    pub fn take_all(root: &Path, subs: &[&str]) -> Self {
        let mut out = BTreeMap::new();
        for sub in subs {
            let base = Path::new(sub.trim_start_matches('/'));
            for (p, n) in Self::take(&root.join(base)).0 {
                out.insert(base.join(p), n);
            }
        }
        Self(out)
    }

    /// Drops the paths `skip` says to, e.g. state a running system keeps changing.
    #[must_use]
    pub fn without(mut self, skip: impl Fn(&Path) -> bool) -> Self {
        self.0.retain(|p, _| !skip(p));
        self
    }

    /// Human-readable differences (empty when equal), at most `max` of them.
    pub fn diff(&self, after: &Self, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        for (p, a) in &self.0 {
            match after.0.get(p) {
                None => out.push(format!("removed: {}", p.display())),
                Some(b) if a != b => out.push(format!("changed: {}: {a:?} -> {b:?}", p.display())),
                Some(_) => {}
            }
        }
        for (p, b) in &after.0 {
            if !self.0.contains_key(p) {
                out.push(format!("added: {} ({b:?})", p.display()));
            }
        }
        out.truncate(max);
        out
    }

    /// Panics with the differences unless `after` equals `self`.
    pub fn assert_unchanged(&self, after: &Self, what: &str) {
        let d = self.diff(after, 20);
        if !d.is_empty() {
            let mut msg = format!("{what}: the tree changed ({} shown):", d.len());
            for line in d {
                let _ = write!(msg, "\n  {line}");
            }
            panic!("{msg}");
        }
    }
}
