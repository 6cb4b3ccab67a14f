//! The install transaction: every change to the host is recorded *before* it is made, in
//! a journal under `/var/lib/ferry/APP`, so a failed or killed install can be undone
//! exactly, by this run or by the next one.
//!
//! The journal is append-only: a header line, then one JSON line per action, each batch
//! written with one `write(2)` and made durable with one `fdatasync(2)` before the changes
//! it announces are made. Appending never rewrites what is there, so recording 3,000
//! directories costs one sync, not 3,000 rewrites. A line torn by a crash (no final
//! newline) was never acted on and is ignored.
//!
//! Undo tolerates actions that were recorded but never happened (the crash came between
//! the record and the change), because each step checks what is actually there, and it
//! reaches every path through [`crate::rootfs`]: a directory the service user swapped for
//! a symlink since is skipped, never followed.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsFd as _;

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::install::HostPath;
use ferry_format::layout::AppName;
use serde::{Deserialize, Serialize};

use crate::acl;
use crate::host::Host;
use crate::rootfs::{Dir, Kind};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    CreatedFile {
        path: HostPath,
    },
    /// The old file's bytes are in the backup directory under `backup`.
    ReplacedFile {
        path: HostPath,
        backup: String,
        uid: u32,
        gid: u32,
        mode: u32,
    },
    CreatedDir {
        path: HostPath,
    },
    DirMeta {
        path: HostPath,
        uid: u32,
        gid: u32,
        mode: u32,
        access: Option<Vec<u8>>,
        default: Option<Vec<u8>>,
    },
    Symlink {
        path: HostPath,
        previous: Option<String>,
    },
    PlacedRelease {
        path: HostPath,
    },
    /// The release directory that was at `path` now is its sibling `backup`.
    ReplacedRelease {
        path: HostPath,
        backup: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub app: String,
    pub from_version: Option<String>,
    pub to_version: String,
    /// The state directories this transaction created (`/var/lib/ferry/APP` and a missing
    /// `/var/lib/ferry`), deepest first: undoing a first install removes them again if
    /// empty.
    pub created_state_dirs: Vec<HostPath>,
}

const JOURNAL: &str = "journal";
const BACKUPS: &str = "journal-backup";
/// Largest journal read back (a header and one line per action).
const MAX_JOURNAL: u64 = 64 << 20;

pub struct Journal<'h> {
    host: &'h Host,
    state: Dir,
    file: File,
    pub header: Header,
    pub actions: Vec<Action>,
    counter: u32,
}

/// Creates `dir/name` (root's, 0755) if missing; returns whether it did.
fn ensure_state_dir(dir: &Dir, name: &str) -> Result<bool> {
    match dir.meta_at(name)? {
        Some(m) if m.kind == Kind::Dir => Ok(false),
        Some(_) => bail!(
            "{} exists and is not a directory",
            dir.shown(name).display()
        ),
        None => {
            dir.mkdir_at(name, 0o755)
                .with_context(|| format!("creating {}", dir.shown(name).display()))?;
            dir.sync()?;
            Ok(true)
        }
    }
}

impl<'h> Journal<'h> {
    /// Starts a transaction for `app`: creates its state directory if needed and writes
    /// the header durably.
    pub fn begin(host: &'h Host, app: &AppName, from: Option<&str>, to: &str) -> Result<Self> {
        let lib = host
            .system_dir("/var/lib")?
            .ok_or_else(|| anyhow!("{} has no /var/lib", host.root.display()))?;
        let mut created = Vec::new();
        if ensure_state_dir(&lib, "ferry")? {
            created.push(HostPath::new(ferry_format::layout::STATE_DIR).expect("valid"));
        }
        let ferry = lib.must_child("ferry")?;
        if ensure_state_dir(&ferry, app.as_str())? {
            created.insert(0, app.layout().state_dir());
        }
        let state = ferry.must_child(app.as_str())?;
        let header = Header {
            app: app.to_string(),
            from_version: from.map(str::to_owned),
            to_version: to.to_owned(),
            created_state_dirs: created,
        };
        let mut line = serde_json::to_vec(&header)?;
        line.push(b'\n');
        state.write_root_atomic_at(JOURNAL, &line, 0o600)?;
        state.remove_tree_at(BACKUPS)?;
        let file = open_append(&state)?;
        Ok(Self {
            host,
            state,
            file,
            header,
            actions: Vec::new(),
            counter: 0,
        })
    }

    /// An interrupted transaction left by an earlier run, if any.
    pub fn pending(host: &'h Host, app: &AppName) -> Result<Option<Self>> {
        let Some(state) = host.open_dir(&app.layout().state_dir())? else {
            return Ok(None);
        };
        let Some(data) = state.read_at(JOURNAL, MAX_JOURNAL)? else {
            return Ok(None);
        };
        let (header, actions) = parse(&data).with_context(|| {
            format!(
                "reading the interrupted transaction {}",
                state.shown(JOURNAL).display()
            )
        })?;
        let counter = u32::try_from(actions.len()).unwrap_or(u32::MAX);
        let file = open_append(&state)?;
        Ok(Some(Self {
            host,
            state,
            file,
            header,
            actions,
            counter,
        }))
    }

    /// Records one action durably before it is carried out.
    pub fn record(&mut self, a: Action) -> Result<()> {
        self.record_all(vec![a])
    }

    /// Records several actions with one write and one sync.
    pub fn record_all(&mut self, actions: Vec<Action>) -> Result<()> {
        if actions.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for a in &actions {
            serde_json::to_writer(&mut buf, a)?;
            buf.push(b'\n');
        }
        self.file
            .write_all(&buf)
            .and_then(|()| rustix::fs::fdatasync(self.file.as_fd()).map_err(std::io::Error::from))
            .context("appending to the install journal")?;
        self.actions.extend(actions);
        Ok(())
    }

    fn backups(&self) -> Result<Dir> {
        ensure_state_dir(&self.state, BACKUPS)?;
        Ok(self.state.must_child(BACKUPS)?)
    }

    /// Writes a file atomically with owner and mode; returns false when it already had
    /// exactly these contents, owner and mode (nothing recorded, nothing changed). A file
    /// it replaces is copied (root's, 0600) into the journal's backups first.
    pub fn put_file(
        &mut self,
        dest: &HostPath,
        data: &[u8],
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<bool> {
        let (dir, name) = self.host.open_parent(dest)?.ok_or_else(|| {
            anyhow!(
                "{} does not exist",
                dest.parent().map_or_else(String::new, |p| p.to_string())
            )
        })?;
        match dir.meta_at(&name)? {
            Some(m) if m.kind == Kind::File => {
                let old = dir.read_at(&name, u64::MAX / 2)?.unwrap_or_default();
                if m.uid == uid && m.gid == gid && m.mode == mode && old == data {
                    return Ok(false);
                }
                self.counter += 1;
                let backup = format!("{}-{name}", self.counter);
                self.backups()?
                    .write_root_atomic_at(&backup, &old, 0o600)
                    .with_context(|| format!("backing up {dest}"))?;
                self.record(Action::ReplacedFile {
                    path: dest.clone(),
                    backup,
                    uid: m.uid,
                    gid: m.gid,
                    mode: m.mode,
                })?;
            }
            Some(_) => bail!("{dest} exists and is not a regular file"),
            None => self.record(Action::CreatedFile { path: dest.clone() })?,
        }
        dir.write_atomic_at(&name, data, uid, gid, mode)
            .with_context(|| format!("writing {dest}"))?;
        Ok(true)
    }

    /// [`Journal::put_file`] owned by root (ferry's own files, units and rules).
    pub fn put_root_file(&mut self, dest: &HostPath, data: &[u8], mode: u32) -> Result<bool> {
        let (uid, gid) = crate::host::root_ids();
        self.put_file(dest, data, uid, gid, mode)
    }

    /// Creates a file only if nothing is at `dest` (secrets): never overwrites, never
    /// follows a link someone put there.
    pub fn create_if_absent(
        &mut self,
        dest: &HostPath,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<bool> {
        let (dir, name) = self
            .host
            .open_parent(dest)?
            .ok_or_else(|| anyhow!("the directory of {dest} does not exist"))?;
        if dir.meta_at(&name)?.is_some() {
            return Ok(false);
        }
        self.record(Action::CreatedFile { path: dest.clone() })?;
        dir.create_new_at(&name, b"", uid, gid, mode)
            .with_context(|| format!("creating {dest}"))
    }

    /// Creates a missing directory (root's, `mode`), recorded for undo.
    pub fn ensure_dir(&mut self, path: &HostPath, mode: u32) -> Result<()> {
        let (dir, name) = self
            .host
            .open_parent(path)?
            .ok_or_else(|| anyhow!("the parent of {path} does not exist"))?;
        match dir.meta_at(&name)? {
            Some(m) if m.kind == Kind::Dir => Ok(()),
            Some(_) => bail!("{path} exists and is not a directory"),
            None => {
                self.record(Action::CreatedDir { path: path.clone() })?;
                dir.mkdir_at(&name, mode)
                    .with_context(|| format!("creating {path}"))?;
                dir.sync()?;
                Ok(())
            }
        }
    }

    /// Points `link` at `target` atomically; returns whether it changed.
    pub fn switch_symlink(&mut self, link: &HostPath, target: &str) -> Result<bool> {
        let (dir, name) = self
            .host
            .open_parent(link)?
            .ok_or_else(|| anyhow!("the directory of {link} does not exist"))?;
        let previous = dir.readlink_at(&name)?;
        if previous.as_deref() == Some(target) {
            return Ok(false);
        }
        self.record(Action::Symlink {
            path: link.clone(),
            previous,
        })?;
        dir.set_symlink_at(&name, target)
            .with_context(|| format!("switching {link}"))?;
        Ok(true)
    }

    pub fn placed_release(&mut self, path: &HostPath) -> Result<()> {
        self.record(Action::PlacedRelease { path: path.clone() })
    }

    /// Records that the release at `path` is about to move aside; returns the sibling
    /// name to move it to.
    pub fn replaced_release(&mut self, path: &HostPath) -> Result<String> {
        self.counter += 1;
        let backup = format!(".ferry-replaced-{}-{}", path.file_name(), self.counter);
        self.record(Action::ReplacedRelease {
            path: path.clone(),
            backup: backup.clone(),
        })?;
        Ok(backup)
    }

    /// Undoes every recorded action, newest first, then forgets the transaction. What
    /// could not be restored because someone changed it since (a directory replaced by a
    /// symlink) is reported through `note` and left alone.
    pub fn undo(self, note: &mut dyn FnMut(String)) -> Result<()> {
        for a in self.actions.iter().rev() {
            if let Err(e) = self.undo_one(a) {
                return Err(e.context(format!("undoing {a:?}")));
            }
            if let Some(n) = self.skipped(a) {
                note(n);
            }
        }
        let created = self.header.created_state_dirs.clone();
        let host = self.host;
        self.forget()?;
        // Only if empty: an install that failed leaves no trace, anything else stays.
        for d in &created {
            if let Some((parent, name)) = host.open_parent(d)? {
                if parent.rmdir_at(&name)? {
                    parent.sync()?;
                }
            }
        }
        Ok(())
    }

    /// After undoing `a`: a note when its path turned out to be something we must not
    /// touch (so the undo left it).
    fn skipped(&self, a: &Action) -> Option<String> {
        if let Action::DirMeta { path, .. } = a {
            if let Some(m) = self.host.meta(path).unwrap_or(None) {
                if m.kind != Kind::Dir {
                    return Some(format!(
                        "{path} is no longer a directory (replaced since the install began): its owner and mode were not restored"
                    ));
                }
            }
        }
        None
    }

    fn undo_one(&self, a: &Action) -> Result<()> {
        let host = self.host;
        let parent = |p: &HostPath| host.open_parent(p);
        match a {
            Action::CreatedFile { path } => {
                if let Some((d, name)) = parent(path)? {
                    if d.meta_at(&name)?.is_some_and(|m| m.kind != Kind::Dir) {
                        d.unlink_at(&name)?;
                        d.sync()?;
                    }
                }
            }
            Action::ReplacedFile {
                path,
                backup,
                uid,
                gid,
                mode,
            } => {
                let Some(data) = self
                    .state
                    .child(BACKUPS)?
                    .and_then(|b| b.read_at(backup, u64::MAX / 2).transpose())
                    .transpose()?
                else {
                    // Recorded, but the backup never got written: the file was not
                    // replaced either.
                    return Ok(());
                };
                if let Some((d, name)) = parent(path)? {
                    d.write_atomic_at(&name, &data, *uid, *gid, *mode)?;
                }
            }
            Action::CreatedDir { path } => {
                // Only if empty: anything else in it is not ours to delete; a symlink
                // put in its place is not removed (rmdir refuses it).
                if let Some((d, name)) = parent(path)? {
                    if d.rmdir_at(&name)? {
                        d.sync()?;
                    }
                }
            }
            Action::DirMeta {
                path,
                uid,
                gid,
                mode,
                access,
                default,
            } => {
                // Through a descriptor opened without following links: a directory the
                // service swapped for a symlink is left alone, never chmod-ed through.
                let Ok(Some(d)) = host.open_dir(path) else {
                    return Ok(());
                };
                d.chown(*uid, *gid)?;
                d.chmod(*mode)?;
                for (name, value) in [(acl::ACCESS, access), (acl::DEFAULT, default)] {
                    match value {
                        Some(v) => d.set_xattr(name, v)?,
                        None => d.remove_xattr(name)?,
                    }
                }
            }
            Action::Symlink { path, previous } => {
                if let Some((d, name)) = parent(path)? {
                    match previous {
                        Some(p) => d.set_symlink_at(&name, p)?,
                        None => {
                            if d.meta_at(&name)?.is_some_and(|m| m.kind == Kind::Symlink) {
                                d.unlink_at(&name)?;
                                d.sync()?;
                            }
                        }
                    }
                }
            }
            Action::PlacedRelease { path } => {
                if let Some((d, name)) = parent(path)? {
                    d.remove_tree_at(&name)?;
                    d.sync()?;
                }
            }
            Action::ReplacedRelease { path, backup } => {
                if let Some((d, name)) = parent(path)? {
                    if d.meta_at(backup)?.is_some() {
                        d.remove_tree_at(&name)?;
                        d.rename_at(backup, &d, &name)?;
                        d.sync()?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The transaction completed: drop the journal and the backups. Replaced releases
    /// moved aside are removed too.
    pub fn commit(self) -> Result<()> {
        for a in &self.actions {
            if let Action::ReplacedRelease { path, backup } = a {
                if let Some((d, _)) = self.host.open_parent(path)? {
                    d.remove_tree_at(backup)?;
                }
            }
        }
        self.forget()
    }

    fn forget(self) -> Result<()> {
        self.state.remove_tree_at(BACKUPS)?;
        self.state.unlink_at(JOURNAL)?;
        self.state.sync()?;
        Ok(())
    }
}

fn open_append(state: &Dir) -> Result<File> {
    let f = rustix::fs::openat(
        state,
        JOURNAL,
        rustix::fs::OFlags::WRONLY
            | rustix::fs::OFlags::APPEND
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .with_context(|| format!("opening {}", state.shown(JOURNAL).display()))?;
    Ok(File::from(f))
}

/// Reads a journal: the header, then every complete action line. An unfinished last line
/// (no newline: the write was cut) is dropped; anything else malformed is an error.
pub fn parse(data: &[u8]) -> Result<(Header, Vec<Action>)> {
    let complete = match data.iter().rposition(|&b| b == b'\n') {
        Some(i) => &data[..=i],
        None => bail!("the journal has no complete header line"),
    };
    let mut lines = complete.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let header: Header = serde_json::from_slice(lines.next().unwrap_or_default())
        .context("the journal header is malformed")?;
    let mut actions = Vec::new();
    for (i, l) in lines.enumerate() {
        actions.push(
            serde_json::from_slice(l)
                .with_context(|| format!("journal line {} is malformed", i + 2))?,
        );
    }
    Ok((header, actions))
}

#[cfg(test)]
mod tests;
