//! One changing `ferry-install` per root at a time.
//!
//! The lock is an exclusive flock(2) on the root directory itself (`/`, or the `--root`
//! directory): taking it writes nothing, so a refused run still leaves the host exactly as
//! it was, and the kernel drops it when the process dies, so a killed install never leaves
//! a stale lock behind (the next run recovers from the journal instead).

use std::fs::File;
use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::exit::Precondition;

/// Held while the guard lives: closing the descriptor (opened close-on-exec, so no child
/// holds a copy) releases the lock. (rustix's flock, not nix's `Flock`, whose unlock on
/// drop would bring nix's errno table, 8 KiB, into the static installer.)
#[derive(Debug)]
pub struct HostLock {
    _locked: File,
}

/// Takes the lock on `root` or fails at once (exit 4) if another process holds it:
/// configuration tools retry, and a field engineer should see that something else runs.
pub fn acquire(root: &Path) -> Result<HostLock> {
    // A root that is not there is the caller's mistake, found before anything is read.
    let dir = File::open(root).map_err(|e| {
        anyhow!(Precondition(format!(
            "{} cannot be opened as the root to install into: {e}",
            root.display()
        )))
    })?;
    match rustix::fs::flock(&dir, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(HostLock { _locked: dir }),
        Err(Errno::WOULDBLOCK) => Err(anyhow!(Precondition(format!(
            "another ferry-install is changing {} (it holds the lock on that directory); try again when it has finished",
            root.display()
        )))),
        Err(e) => Err(std::io::Error::from(e))
            .with_context(|| format!("locking {}", root.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_root_is_a_precondition_error() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path()).unwrap();
        let err = acquire(dir.path()).unwrap_err();
        assert!(err.is::<Precondition>(), "{err:#}");
        assert!(err.to_string().contains("another ferry-install"), "{err}");
        drop(held);
        acquire(dir.path()).expect("free again once the holder is gone");
    }

    #[test]
    fn a_root_that_is_not_there_is_a_precondition_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = acquire(&dir.path().join("missing")).unwrap_err();
        assert!(err.is::<Precondition>(), "{err:#}");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
