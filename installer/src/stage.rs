//! Streaming extraction into a private staging directory on the target filesystem. The
//! reader verifies each file's digest as it passes; the caller removes the staging
//! directory if anything fails, so an unverified byte never reaches its final place.
//!
//! Durability: nothing leaves the staging directory before it is on disk. Instead of an
//! fsync per file (a journal commit each, thousands for a bundle of small files), a
//! background thread runs syncfs(2) on the staging filesystem while extraction goes on,
//! again whenever more was written, and [`Staging::keep`] waits for one last syncfs that
//! starts after the last write and fails if any writeback failed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;

use ferry_format::manifest::FileEntry;

/// Largest write buffer per file.
const BUF: usize = 256 << 10;

/// A staging directory removed on drop unless kept.
pub struct Staging {
    pub path: PathBuf,
    keep: bool,
    syncer: Option<Syncer>,
}

/// The background syncfs(2) loop. `dirty` means "written since the last sync started";
/// `last` that nothing more will be written. Flags and park/unpark rather than a channel:
/// each channel's element type adds 4 KiB of std's channel code to the static installer.
struct Syncer {
    flags: Arc<SyncFlags>,
    done: Option<JoinHandle<io::Result<()>>>,
}

#[derive(Default)]
struct SyncFlags {
    dirty: AtomicBool,
    last: AtomicBool,
}

impl Syncer {
    fn start(dir: &Path) -> io::Result<Self> {
        let dir = File::open(dir)?;
        let flags = Arc::new(SyncFlags::default());
        let theirs = Arc::clone(&flags);
        let done = std::thread::Builder::new()
            .name("ferry-syncfs".into())
            .spawn(move || {
                let sync = || nix::unistd::syncfs(dir.as_raw_fd()).map_err(io::Error::from);
                loop {
                    if theirs.dirty.swap(false, SeqCst) {
                        sync()?;
                    } else if theirs.last.load(SeqCst) {
                        // Every write is done: this sync starts after all of them.
                        return sync();
                    } else {
                        // Returns at once if unparked since the flags were read.
                        std::thread::park();
                    }
                }
            })?;
        Ok(Self {
            flags,
            done: Some(done),
        })
    }

    fn wake(&self) {
        if let Some(d) = &self.done {
            // Does nothing to a thread that stopped on an error; `finish` reports it.
            d.thread().unpark();
        }
    }

    /// Called after a file was written and closed.
    fn written(&self) {
        self.flags.dirty.store(true, SeqCst);
        self.wake();
    }

    /// Waits until everything written is on disk.
    fn finish(mut self) -> io::Result<()> {
        self.flags.last.store(true, SeqCst);
        self.wake();
        self.done
            .take()
            .expect("finished once")
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the syncfs thread panicked")))
    }
}

impl Drop for Syncer {
    /// Not finished (the staging directory is dropped): let the thread end on its own.
    fn drop(&mut self) {
        self.flags.last.store(true, SeqCst);
        self.wake();
    }
}

impl Staging {
    pub fn create(parent: &Path, app: &str) -> io::Result<Self> {
        let path = parent.join(format!(".ferry-staging-{app}-{}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        // Without a thread (none could start), `keep` syncs on its own.
        let syncer = Syncer::start(&path).ok();
        Ok(Self {
            path,
            keep: false,
            syncer,
        })
    }

    /// Hands the directory over (it is then renamed into place), once everything written
    /// to it is on disk.
    pub fn keep(mut self) -> io::Result<PathBuf> {
        match self.syncer.take() {
            Some(syncer) => syncer.finish()?,
            None => nix::unistd::syncfs(File::open(&self.path)?.as_raw_fd())?,
        }
        self.keep = true;
        Ok(self.path.clone())
    }

    /// Writes one payload file below the staging directory.
    pub fn write(&self, entry: &FileEntry, data: &mut dyn Read) -> io::Result<()> {
        // EntryPath guarantees a relative path without `..`; O_EXCL and O_NOFOLLOW make
        // sure nothing already there (a planted link) is followed.
        let dest = self.path.join(entry.path.as_str());
        if let Some(parent) = dest.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)?;
        }
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(entry.mode.bits())
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&dest)?;
        // io::copy reads straight into a BufWriter's buffer: large reads, few writes.
        let cap = usize::try_from(entry.size).map_or(BUF, |s| s.clamp(1, BUF));
        let mut w = BufWriter::with_capacity(cap, f);
        io::copy(data, &mut w)?;
        w.flush()?;
        drop(w);
        if let Some(s) = &self.syncer {
            s.written();
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            // Not kept: nothing to make durable; let the thread end on its own.
            drop(self.syncer.take());
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_format::digest::Sha256;
    use ferry_format::manifest::Role;
    use ferry_format::mode::Mode;
    use ferry_format::EntryPath;

    fn entry(path: &str, data: &[u8]) -> FileEntry {
        FileEntry {
            path: EntryPath::new(path).unwrap(),
            size: data.len() as u64,
            mode: Mode::parse("0640").unwrap(),
            role: Role::Doc,
            sha256: Sha256::of(data),
        }
    }

    #[test]
    fn written_files_are_kept_with_their_bytes_and_modes() {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = tempfile::tempdir().unwrap();
        let staging = Staging::create(parent.path(), "app").unwrap();
        let big: Vec<u8> = (0..700_000u32).map(|i| i.to_le_bytes()[0] ^ 0x5a).collect();
        for (path, data) in [
            ("bin/app", &big[..]),
            ("empty", &b""[..]),
            ("a/b/c.txt", &b"hello"[..]),
        ] {
            staging.write(&entry(path, data), &mut &data[..]).unwrap();
        }
        let kept = staging.keep().unwrap();
        assert_eq!(fs::read(kept.join("bin/app")).unwrap(), big);
        assert_eq!(fs::read(kept.join("empty")).unwrap(), b"");
        assert_eq!(fs::read(kept.join("a/b/c.txt")).unwrap(), b"hello");
        let mode = fs::metadata(kept.join("a/b/c.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o640);
    }

    #[test]
    fn a_staging_directory_not_kept_is_removed() {
        let parent = tempfile::tempdir().unwrap();
        let staging = Staging::create(parent.path(), "app").unwrap();
        staging.write(&entry("x", b"1"), &mut &b"1"[..]).unwrap();
        let path = staging.path.clone();
        drop(staging);
        assert!(!path.exists());
    }

    #[test]
    fn nothing_already_there_is_followed() {
        let parent = tempfile::tempdir().unwrap();
        let staging = Staging::create(parent.path(), "app").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", staging.path.join("x")).unwrap();
        assert!(staging.write(&entry("x", b"1"), &mut &b"1"[..]).is_err());
    }
}
