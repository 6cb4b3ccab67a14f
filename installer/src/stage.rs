//! Streaming extraction into a private staging directory on the target filesystem. The
//! reader verifies each file's digest as it passes; the caller removes the staging
//! directory if anything fails, so an unverified byte never reaches its final place.

use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use ferry_format::manifest::FileEntry;

/// A staging directory removed on drop unless kept.
pub struct Staging {
    pub path: PathBuf,
    keep: bool,
}

impl Staging {
    pub fn create(parent: &Path, app: &str) -> io::Result<Self> {
        let path = parent.join(format!(".ferry-staging-{app}-{}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self { path, keep: false })
    }

    /// Hands the directory over (it has been renamed into place).
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }

    /// Writes one payload file below the staging directory.
    pub fn write(&self, entry: &FileEntry, data: &mut dyn Read) -> io::Result<()> {
        // EntryPath guarantees a relative path without `..`; O_EXCL and O_NOFOLLOW make
        // sure nothing already there (a planted link) is followed.
        let dest = self.path.join(entry.path.as_str());
        if let Some(parent) = dest.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(parent)?;
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(entry.mode.bits())
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&dest)?;
        io::copy(data, &mut f)?;
        f.sync_all()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
