//! Filesystem access anchored at opened directories, never following a symlink where
//! someone else could have put one.
//!
//! The installer runs as root and works in directories the service user can write (its
//! data, logs, and whatever `[[directories]]` gives it). Between two path-based calls that
//! user can swap a directory for a symlink to `/etc` or to a setuid binary, and root would
//! follow it. So: the system directory above an app's prefix (`/var/lib`, `/etc`, `/opt`,
//! which only root can change) is opened once, checked to be root's and not group- or
//! other-writable, and everything below it is reached with `openat(2)` one component at a
//! time with `O_NOFOLLOW`, then changed through that descriptor (`fchown`, `fchmod`,
//! `fsetxattr`, `*at` calls). A symlink met on the way is an error, never a detour.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid};

/// What a stat says, in the units the installer compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Meta {
    fn of(st: &rustix::fs::Stat) -> Self {
        let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::RegularFile => Kind::File,
            rustix::fs::FileType::Directory => Kind::Dir,
            rustix::fs::FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        };
        Self {
            kind,
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            size: u64::try_from(st.st_size).unwrap_or(0),
        }
    }

    /// Root's and not writable by group or others: safe to trust as a parent.
    pub fn is_root_only_writable(&self) -> bool {
        self.uid == 0 && self.mode & 0o022 == 0
    }
}

/// An open directory and the path it was opened as (for messages only).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn nofollow_dir() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn io_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

/// A single path component: no `/`, not empty, not `.` or `..`.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single path component"),
        ));
    }
    Ok(())
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Dir {
    /// Opens `path` (following symlinks: this is where the caller says the root is).
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `name` in this directory is, for messages.
    pub fn shown(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Opens the subdirectory `name`, refusing a symlink (ELOOP) or a non-directory
    /// (ENOTDIR); `Ok(None)` when there is nothing there.
    pub fn child(&self, name: &str) -> io::Result<Option<Dir>> {
        check_name(name)?;
        match rustix::fs::openat(&self.fd, name, nofollow_dir(), Mode::empty()) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.path.join(name),
            })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is a symlink or not a directory",
                    self.shown(name).display()
                ),
            )),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Like [`Dir::child`], but a missing directory is an error.
    pub fn must_child(&self, name: &str) -> io::Result<Dir> {
        self.child(name)?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} does not exist", self.shown(name).display()),
            )
        })
    }

    /// Walks `rel` (`a/b/c`) one component at a time, following no symlink.
    pub fn walk(&self, rel: &str) -> io::Result<Option<Dir>> {
        let mut parts = rel.split('/').filter(|p| !p.is_empty());
        let Some(first) = parts.next() else {
            return self.dup().map(Some);
        };
        let Some(mut d) = self.child(first)? else {
            return Ok(None);
        };
        for p in parts {
            match d.child(p)? {
                Some(next) => d = next,
                None => return Ok(None),
            }
        }
        Ok(Some(d))
    }

    /// Opens `rel` relative to this directory as a root directory: symlinks inside are
    /// resolved as if this were `/` (`RESOLVE_IN_ROOT`), never leaving it. For the system
    /// directories above an app's prefixes, which may legitimately be links (`/opt`).
    pub fn open_in_root(&self, rel: &str) -> io::Result<Option<Dir>> {
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            return self.dup().map(Some);
        }
        match rustix::fs::openat2(
            &self.fd,
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.path.join(rel),
            })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(io::Error::new(
                io::Error::from(e).kind(),
                format!("opening {}: {e}", self.path.join(rel).display()),
            )),
        }
    }

    pub fn dup(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// The directory's own metadata.
    pub fn meta(&self) -> io::Result<Meta> {
        rustix::fs::fstat(&self.fd)
            .map(|st| Meta::of(&st))
            .map_err(io_err)
    }

    /// Metadata of `name` itself (a symlink is reported as one); `None` if absent.
    pub fn meta_at(&self, name: &str) -> io::Result<Option<Meta>> {
        check_name(name)?;
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Meta::of(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    pub fn mkdir_at(&self, name: &str, mode: u32) -> io::Result<()> {
        check_name(name)?;
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)).map_err(io_err)
    }

    pub fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        rustix::fs::fchown(&self.fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(io_err)
    }

    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode)).map_err(io_err)
    }

    /// An extended attribute of the directory itself; `None` when it has none.
    pub fn xattr(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        get_xattr(self.fd.as_fd(), name)
    }

    pub fn set_xattr(&self, name: &str, value: &[u8]) -> io::Result<()> {
        rustix::fs::fsetxattr(&self.fd, name, value, rustix::fs::XattrFlags::empty())
            .map_err(io_err)
    }

    /// Removes an attribute; absent is fine.
    pub fn remove_xattr(&self, name: &str) -> io::Result<()> {
        match rustix::fs::fremovexattr(&self.fd, name) {
            Ok(()) | Err(rustix::io::Errno::NODATA) => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Opens the regular file `name` for reading, refusing symlinks and anything that is
    /// not a regular file; `None` if absent.
    pub fn open_file(&self, name: &str) -> io::Result<Option<File>> {
        check_name(name)?;
        match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => {
                let f = File::from(fd);
                let st = rustix::fs::fstat(&f).map_err(io_err)?;
                if Meta::of(&st).kind != Kind::File {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is not a regular file", self.shown(name).display()),
                    ));
                }
                Ok(Some(f))
            }
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(rustix::io::Errno::LOOP) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is a symlink", self.shown(name).display()),
            )),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Reads the regular file `name` (at most `max` bytes, else an error); `None` if absent.
    pub fn read_at(&self, name: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        let Some(f) = self.open_file(name)? else {
            return Ok(None);
        };
        let mut data = Vec::new();
        f.take(max + 1).read_to_end(&mut data)?;
        if data.len() as u64 > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is larger than {max} bytes", self.shown(name).display()),
            ));
        }
        Ok(Some(data))
    }

    /// Replaces (or creates) `name` atomically: a new file under a temporary name with
    /// `O_EXCL|O_NOFOLLOW`, owner and mode set on the descriptor, fsynced, renamed over,
    /// directory fsynced. Nothing already there is followed or opened.
    pub fn write_atomic_at(
        &self,
        name: &str,
        data: &[u8],
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> io::Result<()> {
        check_name(name)?;
        let tmp = format!(".{name}.ferry-tmp-{}", std::process::id());
        let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        let fd = rustix::fs::openat(
            &self.fd,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(io_err)?;
        let result = (|| {
            let mut f = File::from(fd);
            f.write_all(data)?;
            rustix::fs::fchown(&f, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
                .map_err(io_err)?;
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(io_err)?;
            f.sync_all()?;
            rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name).map_err(io_err)?;
            self.sync()
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        }
        result
    }

    /// [`Dir::write_atomic_at`] owned by root (ferry's own records).
    pub fn write_root_atomic_at(&self, name: &str, data: &[u8], mode: u32) -> io::Result<()> {
        let (uid, gid) = crate::host::root_ids();
        self.write_atomic_at(name, data, uid, gid, mode)
    }

    /// Creates `name` only if nothing is there (never opens an existing file or link);
    /// returns whether it created it.
    pub fn create_new_at(
        &self,
        name: &str,
        data: &[u8],
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> io::Result<bool> {
        check_name(name)?;
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::EXIST) => return Ok(false),
            Err(e) => return Err(io_err(e)),
        };
        let mut f = File::from(fd);
        f.write_all(data)?;
        rustix::fs::fchown(&f, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(io_err)?;
        rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(io_err)?;
        f.sync_all()?;
        self.sync()?;
        Ok(true)
    }

    /// Removes the file or symlink `name` (a symlink itself, never its target); absent is
    /// fine.
    pub fn unlink_at(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Removes the empty directory `name`; `Ok(false)` if it is not there, not empty, or
    /// not a directory (a symlink put in its place stays: it is not ours to judge).
    pub fn rmdir_at(&self, name: &str) -> io::Result<bool> {
        check_name(name)?;
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(
                rustix::io::Errno::NOENT
                | rustix::io::Errno::NOTEMPTY
                | rustix::io::Errno::EXIST
                | rustix::io::Errno::NOTDIR,
            ) => Ok(false),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Renames `from` in this directory to `to` in `dest` (same filesystem).
    pub fn rename_at(&self, from: &str, dest: &Dir, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        rustix::fs::renameat(&self.fd, from, &dest.fd, to).map_err(io_err)
    }

    /// Points the symlink `name` at `target` atomically (a new link under a temporary
    /// name, renamed over).
    pub fn set_symlink_at(&self, name: &str, target: &str) -> io::Result<()> {
        check_name(name)?;
        let tmp = format!(".{name}.ferry-tmp-{}", std::process::id());
        let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        rustix::fs::symlinkat(target, &self.fd, tmp.as_str()).map_err(io_err)?;
        rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name).map_err(io_err)?;
        self.sync()
    }

    /// The target of the symlink `name`; `None` if absent or not a symlink.
    pub fn readlink_at(&self, name: &str) -> io::Result<Option<String>> {
        check_name(name)?;
        match rustix::fs::readlinkat(&self.fd, name, Vec::new()) {
            Ok(t) => Ok(Some(t.to_string_lossy().into_owned())),
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::INVAL) => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Removes `name` and everything below it without following a symlink (a link is
    /// removed as a link). Absent is fine.
    pub fn remove_tree_at(&self, name: &str) -> io::Result<()> {
        match self.meta_at(name)? {
            None => Ok(()),
            Some(m) if m.kind == Kind::Dir => {
                let Some(d) = self.child(name)? else {
                    return Ok(());
                };
                for entry in d.entries()? {
                    d.remove_tree_at(&entry)?;
                }
                match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                    Err(e) => Err(io_err(e)),
                }
            }
            Some(_) => self.unlink_at(name),
        }
    }

    /// Names in the directory (without `.` and `..`), sorted.
    pub fn entries(&self) -> io::Result<Vec<String>> {
        let fd =
            rustix::fs::openat(&self.fd, ".", nofollow_dir(), Mode::empty()).map_err(io_err)?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(io_err)?;
        let mut names = Vec::new();
        for e in dir {
            let e = e.map_err(io_err)?;
            let n = e.file_name().to_string_lossy().into_owned();
            if n != "." && n != ".." {
                names.push(n);
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(io_err)
    }
}

fn get_xattr(fd: BorrowedFd<'_>, name: &str) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::fgetxattr(fd, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(rustix::io::Errno::NODATA) => return Ok(None),
            Err(rustix::io::Errno::RANGE) if buf.len() < 64 << 10 => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            Err(e) => return Err(io_err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn tmp() -> (tempfile::TempDir, Dir) {
        let t = tempfile::tempdir().unwrap();
        let d = Dir::open(t.path()).unwrap();
        (t, d)
    }

    #[test]
    fn symlinks_are_never_followed() {
        let (t, d) = tmp();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), t.path().join("flink")).unwrap();
        assert!(d.child("link").is_err(), "a linked directory is refused");
        assert!(d.walk("link/x").is_err());
        assert!(d.read_at("flink", 10).is_err(), "a linked file is refused");
        let (u, g) = crate::host::root_ids();
        assert!(!d.create_new_at("flink", b"x", u, g, 0o600).unwrap());
        d.write_atomic_at("flink", b"new", u, g, 0o600).unwrap();
        assert_eq!(std::fs::read(outside.path().join("secret")).unwrap(), b"s");
        assert_eq!(d.meta_at("flink").unwrap().unwrap().kind, Kind::File);
        d.unlink_at("link").unwrap();
        assert!(outside.path().join("secret").exists());
        for bad in ["..", "a/b", "", "."] {
            assert!(d.child(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_set_owner_and_mode_through_the_descriptor() {
        let (t, d) = tmp();
        d.write_root_atomic_at("f", b"data", 0o640).unwrap();
        let m = std::fs::metadata(t.path().join("f")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o640);
        assert_eq!(d.read_at("f", 100).unwrap().unwrap(), b"data");
        assert!(d.read_at("f", 3).is_err(), "over the limit");
        assert!(d.read_at("missing", 3).unwrap().is_none());
        d.mkdir_at("sub", 0o700).unwrap();
        let sub = d.must_child("sub").unwrap();
        sub.chmod(0o750).unwrap();
        assert_eq!(sub.meta().unwrap().mode, 0o750);
        assert!(!d.rmdir_at("missing").unwrap());
        sub.write_root_atomic_at("x", b"", 0o600).unwrap();
        assert!(!d.rmdir_at("sub").unwrap(), "not empty");
        d.remove_tree_at("sub").unwrap();
        assert!(d.meta_at("sub").unwrap().is_none());
    }

    #[test]
    fn symlinks_switch_atomically_and_read_back() {
        let (_t, d) = tmp();
        d.set_symlink_at("current", "releases/1").unwrap();
        d.set_symlink_at("current", "releases/2").unwrap();
        assert_eq!(
            d.readlink_at("current").unwrap().as_deref(),
            Some("releases/2")
        );
        assert_eq!(d.entries().unwrap(), ["current"]);
    }

    #[test]
    fn in_root_resolution_stays_inside() {
        let (t, d) = tmp();
        std::fs::create_dir_all(t.path().join("data/opt")).unwrap();
        std::os::unix::fs::symlink("/data/opt", t.path().join("opt")).unwrap();
        std::os::unix::fs::symlink("/../../../../etc", t.path().join("escape")).unwrap();
        let opt = d.open_in_root("opt").unwrap().unwrap();
        assert_eq!(
            opt.meta().unwrap(),
            Dir::open(&t.path().join("data/opt"))
                .unwrap()
                .meta()
                .unwrap()
        );
        // `..` above the root stays at the root, as it does for `/`.
        let esc = d.open_in_root("escape").unwrap();
        assert!(
            esc.is_none(),
            "resolved inside the root, where there is no etc"
        );
    }
}
