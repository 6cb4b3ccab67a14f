//! The install transaction: every change to the host is recorded *before* it is made,
//! in a journal fsynced under /var/lib/ferry/APP, so a failed or killed install can be
//! undone exactly, by this run or by the next one.
//!
//! Undo tolerates actions that were recorded but never happened (the crash came between
//! the record and the change), because each undo step checks what is actually there.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use ferry_format::atomic::{sync_dir, write_atomic, AtomicFile};
use serde::{Deserialize, Serialize};

use crate::acl;
use crate::host::Host;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreatedFile {
        path: PathBuf,
    },
    ReplacedFile {
        path: PathBuf,
        backup: PathBuf,
    },
    CreatedDir {
        path: PathBuf,
    },
    DirMeta {
        path: PathBuf,
        uid: u32,
        gid: u32,
        mode: u32,
        access: Option<Vec<u8>>,
        default: Option<Vec<u8>>,
    },
    Symlink {
        path: PathBuf,
        previous: Option<PathBuf>,
    },
    PlacedRelease {
        path: PathBuf,
    },
    ReplacedRelease {
        path: PathBuf,
        backup: PathBuf,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TxnData {
    pub app: String,
    pub from_version: Option<String>,
    pub to_version: String,
    pub actions: Vec<Action>,
    /// The state directories this transaction created (/var/lib/ferry/APP and any missing
    /// parent), deepest first: undoing a first install removes them again if empty.
    #[serde(default)]
    pub created_state_dirs: Vec<PathBuf>,
}

pub struct Journal {
    path: PathBuf,
    backups: PathBuf,
    pub data: TxnData,
    counter: u32,
}

fn txn_paths(host: &Host, app: &str) -> (PathBuf, PathBuf) {
    let d = crate::state::dir(host, app);
    (d.join("txn.json"), d.join("txn-backup"))
}

impl Journal {
    pub fn begin(host: &Host, app: &str, from: Option<String>, to: &str) -> Result<Self> {
        let (path, backups) = txn_paths(host, app);
        let created_state_dirs: Vec<PathBuf> = path
            .ancestors()
            .skip(1)
            .take_while(|d| *d != host.root && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        fs::create_dir_all(&backups).with_context(|| format!("creating {}", backups.display()))?;
        let j = Self {
            path,
            backups,
            data: TxnData {
                app: app.to_owned(),
                from_version: from,
                to_version: to.to_owned(),
                actions: Vec::new(),
                created_state_dirs,
            },
            counter: 0,
        };
        j.persist()?;
        Ok(j)
    }

    /// An interrupted transaction left by an earlier run, if any.
    pub fn pending(host: &Host, app: &str) -> Result<Option<Self>> {
        let (path, backups) = txn_paths(host, app);
        match fs::read(&path) {
            Ok(data) => {
                let data: TxnData = serde_json::from_slice(&data).with_context(|| {
                    format!("parsing interrupted transaction {}", path.display())
                })?;
                let counter = u32::try_from(data.actions.len()).unwrap_or(u32::MAX);
                Ok(Some(Self {
                    path,
                    backups,
                    data,
                    counter,
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn persist(&self) -> Result<()> {
        let mut data = serde_json::to_vec_pretty(&self.data)?;
        data.push(b'\n');
        write_atomic(&self.path, &data, 0o600)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    fn record(&mut self, a: Action) -> Result<()> {
        self.data.actions.push(a);
        self.persist()
    }

    fn backup_path(&mut self, name: &Path) -> PathBuf {
        self.counter += 1;
        let base = name
            .file_name()
            .map_or_else(|| "x".into(), |n| n.to_string_lossy().into_owned());
        self.backups.join(format!("{}-{base}", self.counter))
    }

    /// Writes a file atomically with owner and mode; returns false when it already had
    /// exactly these contents, owner and mode (nothing recorded, nothing changed).
    pub fn put_file(
        &mut self,
        dest: &Path,
        data: &[u8],
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<bool> {
        if let Ok(meta) = fs::symlink_metadata(dest) {
            if meta.is_file()
                && meta.uid() == uid
                && meta.gid() == gid
                && meta.permissions().mode() & 0o7777 == mode
                && fs::read(dest).is_ok_and(|d| d == data)
            {
                return Ok(false);
            }
            let backup = self.backup_path(dest);
            self.record(Action::ReplacedFile {
                path: dest.to_owned(),
                backup: backup.clone(),
            })?;
            // A hard link keeps the old bytes reachable without copying them, on the same
            // filesystem; across filesystems, copy.
            if fs::hard_link(dest, &backup).is_err() {
                fs::copy(dest, &backup)
                    .with_context(|| format!("backing up {}", dest.display()))?;
            }
            sync_dir(&self.backups)?;
        } else {
            self.record(Action::CreatedFile {
                path: dest.to_owned(),
            })?;
        }
        let mut f = AtomicFile::create(dest, mode)
            .with_context(|| format!("creating {}", dest.display()))?;
        f.write_all(data)?;
        std::os::unix::fs::fchown(f.file(), Some(uid), Some(gid))
            .with_context(|| format!("chown {}", dest.display()))?;
        f.file().set_permissions(fs::Permissions::from_mode(mode))?;
        f.commit()
            .with_context(|| format!("writing {}", dest.display()))?;
        Ok(true)
    }

    /// Creates a file only if it does not exist (secrets): never overwrites.
    pub fn create_if_absent(&mut self, dest: &Path, uid: u32, gid: u32, mode: u32) -> Result<bool> {
        if fs::symlink_metadata(dest).is_ok() {
            return Ok(false);
        }
        self.put_file(dest, b"", uid, gid, mode)
    }

    pub fn created_dir(&mut self, path: &Path) -> Result<()> {
        self.record(Action::CreatedDir {
            path: path.to_owned(),
        })
    }

    pub fn dir_meta(&mut self, path: &Path) -> Result<()> {
        let meta = fs::symlink_metadata(path)?;
        let access = xattr::get(path, acl::ACCESS).ok().flatten();
        let default = xattr::get(path, acl::DEFAULT).ok().flatten();
        self.record(Action::DirMeta {
            path: path.to_owned(),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.permissions().mode() & 0o7777,
            access,
            default,
        })
    }

    /// Points `link` at `target` atomically (new link under a temp name, rename over).
    pub fn switch_symlink(&mut self, link: &Path, target: &Path) -> Result<bool> {
        let previous = fs::read_link(link).ok();
        if previous.as_deref() == Some(target) {
            return Ok(false);
        }
        self.record(Action::Symlink {
            path: link.to_owned(),
            previous,
        })?;
        set_symlink(link, target)?;
        Ok(true)
    }

    pub fn placed_release(&mut self, path: &Path) -> Result<()> {
        self.record(Action::PlacedRelease {
            path: path.to_owned(),
        })
    }

    pub fn replaced_release(&mut self, path: &Path) -> Result<PathBuf> {
        let backup = self.backup_path(path);
        self.record(Action::ReplacedRelease {
            path: path.to_owned(),
            backup: backup.clone(),
        })?;
        Ok(backup)
    }

    /// Undoes every recorded action, newest first, then forgets the transaction.
    pub fn undo(self) -> Result<()> {
        for a in self.data.actions.iter().rev() {
            undo_one(a).with_context(|| format!("undoing {a:?}"))?;
        }
        let created = self.data.created_state_dirs.clone();
        self.forget()?;
        // Only if empty: an install that failed leaves no trace, anything else stays.
        for d in &created {
            if fs::remove_dir(d).is_ok() {
                if let Some(parent) = d.parent() {
                    sync_dir(parent)?;
                }
            }
        }
        Ok(())
    }

    /// The transaction completed: drop the journal and the backups.
    pub fn commit(self) -> Result<()> {
        self.forget()
    }

    fn forget(self) -> Result<()> {
        let _ = fs::remove_dir_all(&self.backups);
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", self.path.display())),
        }
        if let Some(d) = self.path.parent() {
            sync_dir(d)?;
        }
        Ok(())
    }
}

pub fn set_symlink(link: &Path, target: &Path) -> Result<()> {
    let dir = link.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        link.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    fs::rename(&tmp, link).with_context(|| format!("switching {}", link.display()))?;
    sync_dir(dir)?;
    Ok(())
}

fn undo_one(a: &Action) -> Result<()> {
    match a {
        Action::CreatedFile { path } => match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        },
        Action::ReplacedFile { path, backup } | Action::ReplacedRelease { path, backup } => {
            if fs::symlink_metadata(backup).is_ok() {
                if matches!(a, Action::ReplacedRelease { .. }) {
                    let _ = fs::remove_dir_all(path);
                }
                fs::rename(backup, path)?;
                if let Some(d) = path.parent() {
                    sync_dir(d)?;
                }
            }
            Ok(())
        }
        Action::CreatedDir { path } => {
            // Only if empty: anything else in it is not ours to delete.
            let _ = fs::remove_dir(path);
            Ok(())
        }
        Action::DirMeta {
            path,
            uid,
            gid,
            mode,
            access,
            default,
        } => {
            if fs::symlink_metadata(path).is_err() {
                return Ok(());
            }
            std::os::unix::fs::lchown(path, Some(*uid), Some(*gid))?;
            fs::set_permissions(path, fs::Permissions::from_mode(*mode))?;
            restore_xattr(path, acl::ACCESS, access.as_deref())?;
            restore_xattr(path, acl::DEFAULT, default.as_deref())?;
            Ok(())
        }
        Action::Symlink { path, previous } => match previous {
            Some(p) => set_symlink(path, p),
            None => match fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            },
        },
        Action::PlacedRelease { path } => match fs::remove_dir_all(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        },
    }
}

fn restore_xattr(path: &Path, name: &str, value: Option<&[u8]>) -> Result<()> {
    match value {
        Some(v) => xattr::set(path, name, v)?,
        None => match xattr::remove(path, name) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(61) => {}
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}
