//! The install transaction: every change to the host is recorded *before* it is made, in
//! a journal under `/var/lib/ferry/APP`, so a failed or killed install can be undone
//! exactly, by this run or by the next one.
//!
//! The journal is append-only: a header line, then one line per action, each batch
//! written with one `write(2)` and made durable with one `fdatasync(2)` before the changes
//! it announces are made. Appending never rewrites what is there, so recording 3,000
//! directories costs one sync, not 3,000 rewrites. A line torn by a crash (no final
//! newline) was never acted on and is ignored.
//!
//! A line is tab-separated fields, the first naming the record (`ferry-journal 1` for the
//! header, `created_file`, ...); text is escaped (`\xHH` for `\` and control characters),
//! an absent value is `-` and a present optional one starts with `+`, bytes are hex. Written
//! and read by hand: derived JSON (de)serialization of these types cost the static
//! installer 25 KiB.
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

use crate::acl;
use crate::host::Host;
use crate::rootfs::{Dir, Kind};

#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Clone)]
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
        let line = header.encode();
        state.write_root_atomic_at(JOURNAL, line.as_bytes(), 0o600)?;
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
        let mut buf = String::new();
        for a in &actions {
            a.encode(&mut buf);
        }
        self.file
            .write_all(buf.as_bytes())
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

    /// Removes the regular file at `dest` if its bytes are `expected` (what ferry wrote
    /// there), backed up first so undo puts it back; returns whether it did. Anything else
    /// there (another file, a link, an operator's edit) is left alone.
    pub fn remove_if_same(&mut self, dest: &HostPath, expected: &[u8]) -> Result<bool> {
        let Some((dir, name)) = self.host.open_parent(dest)? else {
            return Ok(false);
        };
        let Some(m) = dir.meta_at(&name)? else {
            return Ok(false);
        };
        if m.kind != Kind::File {
            return Ok(false);
        }
        let old = dir.read_at(&name, expected.len() as u64 + 1)?;
        if old.as_deref() != Some(expected) {
            return Ok(false);
        }
        self.counter += 1;
        let backup = format!("{}-{name}", self.counter);
        self.backups()?
            .write_root_atomic_at(&backup, expected, 0o600)
            .with_context(|| format!("backing up {dest}"))?;
        self.record(Action::ReplacedFile {
            path: dest.clone(),
            backup,
            uid: m.uid,
            gid: m.gid,
            mode: m.mode,
        })?;
        dir.unlink_at(&name)
            .with_context(|| format!("removing {dest}"))?;
        dir.sync()?;
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
    let first = lines.next().unwrap_or_default();
    if first.starts_with(b"{") {
        bail!("the journal was written by an earlier ferry-install (JSON lines): finish it with that version");
    }
    let header = std::str::from_utf8(first)
        .ok()
        .and_then(Header::decode)
        .ok_or_else(|| anyhow!("the journal header is malformed"))?;
    let mut actions = Vec::new();
    for (i, l) in lines.enumerate() {
        actions.push(
            std::str::from_utf8(l)
                .ok()
                .and_then(Action::decode)
                .ok_or_else(|| anyhow!("journal line {} is malformed", i + 2))?,
        );
    }
    Ok((header, actions))
}

const MAGIC: &str = "ferry-journal 1";

impl Header {
    /// The header line, with its newline.
    fn encode(&self) -> String {
        let mut out = String::from(MAGIC);
        push_text(&mut out, &self.app);
        push_opt(&mut out, self.from_version.as_deref());
        push_text(&mut out, &self.to_version);
        for d in &self.created_state_dirs {
            push_text(&mut out, d.as_str());
        }
        out.push('\n');
        out
    }

    fn decode(line: &str) -> Option<Self> {
        let mut f = Fields(line.split('\t'));
        if f.0.next()? != MAGIC {
            return None;
        }
        let (app, from_version, to_version) = (f.text()?, f.opt().ok()?, f.text()?);
        let created_state_dirs =
            f.0.map(|d| HostPath::new(&unescape(d)?).ok())
                .collect::<Option<_>>()?;
        Some(Self {
            app,
            from_version,
            to_version,
            created_state_dirs,
        })
    }
}

impl Action {
    /// Appends the action's line, with its newline.
    fn encode(&self, out: &mut String) {
        let (name, path) = match self {
            Self::CreatedFile { path } => ("created_file", path),
            Self::ReplacedFile { path, .. } => ("replaced_file", path),
            Self::CreatedDir { path } => ("created_dir", path),
            Self::DirMeta { path, .. } => ("dir_meta", path),
            Self::Symlink { path, .. } => ("symlink", path),
            Self::PlacedRelease { path } => ("placed_release", path),
            Self::ReplacedRelease { path, .. } => ("replaced_release", path),
        };
        out.push_str(name);
        push_text(out, path.as_str());
        match self {
            Self::CreatedFile { .. } | Self::CreatedDir { .. } | Self::PlacedRelease { .. } => {}
            Self::ReplacedFile {
                backup,
                uid,
                gid,
                mode,
                ..
            } => {
                push_text(out, backup);
                push_ids(out, *uid, *gid, *mode);
            }
            Self::DirMeta {
                uid,
                gid,
                mode,
                access,
                default,
                ..
            } => {
                push_ids(out, *uid, *gid, *mode);
                for acl in [access, default] {
                    push_opt(
                        out,
                        acl.as_deref().map(ferry_format::digest::hex).as_deref(),
                    );
                }
            }
            Self::Symlink { previous, .. } => push_opt(out, previous.as_deref()),
            Self::ReplacedRelease { backup, .. } => push_text(out, backup),
        }
        out.push('\n');
    }

    fn decode(line: &str) -> Option<Self> {
        let mut f = Fields(line.split('\t'));
        let name = f.0.next()?;
        let path = HostPath::new(&f.text()?).ok()?;
        let action = match name {
            "created_file" => Self::CreatedFile { path },
            "replaced_file" => Self::ReplacedFile {
                path,
                backup: f.text()?,
                uid: f.number()?,
                gid: f.number()?,
                mode: f.number()?,
            },
            "created_dir" => Self::CreatedDir { path },
            "dir_meta" => Self::DirMeta {
                path,
                uid: f.number()?,
                gid: f.number()?,
                mode: f.number()?,
                access: f.bytes().ok()?,
                default: f.bytes().ok()?,
            },
            "symlink" => Self::Symlink {
                path,
                previous: f.opt().ok()?,
            },
            "placed_release" => Self::PlacedRelease { path },
            "replaced_release" => Self::ReplacedRelease {
                path,
                backup: f.text()?,
            },
            _ => return None,
        };
        // Every field read: more is malformed.
        f.0.next().is_none().then_some(action)
    }
}

/// Appends a tab and `text`, escaped.
fn push_text(out: &mut String, text: &str) {
    push_field(out, "", text);
}

fn push_opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => push_field(out, "+", v),
        None => out.push_str("\t-"),
    }
}

fn push_field(out: &mut String, mark: &str, text: &str) {
    out.push('\t');
    out.push_str(mark);
    for c in text.chars() {
        if c == '\\' || c.is_ascii_control() {
            let hex = b"0123456789abcdef";
            let b = c as u8;
            out.push_str("\\x");
            out.push(char::from(hex[usize::from(b >> 4)]));
            out.push(char::from(hex[usize::from(b & 15)]));
        } else {
            out.push(c);
        }
    }
}

fn push_ids(out: &mut String, uid: u32, gid: u32, mode: u32) {
    for n in [uid, gid, mode] {
        out.push('\t');
        out.push_str(&n.to_string());
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The text of an escaped field; `None` if it is not one `push_field` writes.
fn unescape(field: &str) -> Option<String> {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find(|c: char| c == '\\' || c.is_ascii_control()) {
        out.push_str(&rest[..i]);
        let e = rest.as_bytes().get(i..i + 4)?;
        let b = hex_value(e[2])? << 4 | hex_value(e[3])?;
        if e[1] != b'x' || !(b == b'\\' || b.is_ascii_control()) {
            return None;
        }
        out.push(char::from(b));
        rest = &rest[i + 4..];
    }
    out.push_str(rest);
    Some(out)
}

/// The fields of a line after its name.
struct Fields<'a>(std::str::Split<'a, char>);

impl Fields<'_> {
    fn text(&mut self) -> Option<String> {
        unescape(self.0.next()?)
    }

    /// An optional field: `Err` when malformed.
    fn opt(&mut self) -> Result<Option<String>, Malformed> {
        match self.0.next().ok_or(Malformed)? {
            "-" => Ok(None),
            f => unescape(f.strip_prefix('+').ok_or(Malformed)?)
                .map(Some)
                .ok_or(Malformed),
        }
    }

    fn number(&mut self) -> Option<u32> {
        let f = self.0.next()?;
        // Digits only: no sign.
        if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        f.parse().ok()
    }

    fn bytes(&mut self) -> Result<Option<Vec<u8>>, Malformed> {
        let Some(hex) = self.opt()? else {
            return Ok(None);
        };
        if hex.len() % 2 != 0 {
            return Err(Malformed);
        }
        hex.as_bytes()
            .chunks(2)
            .map(|p| Some(hex_value(p[0])? << 4 | hex_value(p[1])?))
            .collect::<Option<Vec<u8>>>()
            .map(Some)
            .ok_or(Malformed)
    }
}

struct Malformed;

#[cfg(test)]
mod tests;
