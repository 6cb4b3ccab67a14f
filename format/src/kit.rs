//! Field kits: a directory (or a set of volumes) to carry to an air-gapped host, described
//! by a signed index, and the reader that streams a file's parts back as one.
//!
//! `kit.index` is an OpenBSD signify embedded signature (`signify -V -e` reads it) whose
//! signed message is LF-terminated text, one record per line, fields separated by one space:
//!
//! ```text
//! ferry-kit 1
//! volumes 3
//! file installer ferry-install-x86_64 2065224 <sha256> 2 x86_64
//! part ferry-install-x86_64 1/2 VOL-001 ferry-install-x86_64.part001 1036288 <sha256>
//! part ferry-install-x86_64 2/2 VOL-002 ferry-install-x86_64.part002 1028936 <sha256>
//! file minisig hello-1.0.0-linux-amd64.tar.zst.minisig 326 <sha256> 1
//! part hello-1.0.0-linux-amd64.tar.zst.minisig 1/1 VOL-002 hello-1.0.0-linux-amd64.tar.zst.minisig 326 <sha256>
//! file bundle hello-1.0.0-linux-amd64.tar.zst 2636513 <sha256> 3 hello 1.0.0 linux/amd64
//! part hello-1.0.0-linux-amd64.tar.zst 1/3 VOL-002 hello-1.0.0-linux-amd64.tar.zst.part001 ...
//! file pubkey release.pub 114 <sha256> * 0807060504030201
//! file readme READ-ME-FIRST.txt 2301 <sha256> *
//! ```
//!
//! - `volumes N`: `0` for a kit that is one directory (every part's volume is `.`), else
//!   the kit spans `VOL-001` .. `VOL-N` (at least three digits).
//! - `file KIND NAME SIZE SHA256 PARTS [EXTRA...]`: one file of the kit, whole: its size
//!   and SHA-256. `PARTS` is how many `part` lines follow, or `*` for a file with a copy on
//!   every volume (the public key and the read-me). `KIND` and its extra fields: `bundle APP
//!   VERSION TARGET`, `minisig` (the detached signature of the bundle `NAME` minus
//!   `.minisig`), `installer ARCH` (`uname -m`: `x86_64`, `aarch64`), `pubkey KEYID`,
//!   `readme`.
//! - `part FILE I/N VOLUME NAME SIZE SHA256`: the `I`th of the `N` parts of `FILE`, stored as
//!   `VOLUME/NAME`. Parts follow their `file` line in order; their sizes add up to the
//!   file's. A file kept whole has one part with the file's own name.
//!
//! The index lists every file of the kit except itself and the checksum lists
//! (`SHA256SUMS`, `SHA256SUMS.sig`), which in turn list the index: stock tools check each
//! volume against `SHA256SUMS.sig`, `ferry-install` checks parts and bundles against the
//! index.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::{Hasher, Sha256};
use crate::keyring::{Keyring, KeyringError};
use crate::minisign::{KeyId, SigError};
use crate::signify;

/// The signed index's file name, on every volume.
pub const INDEX_NAME: &str = "kit.index";
/// The plain-text guide, on every volume.
pub const README_NAME: &str = "READ-ME-FIRST.txt";
/// The first line of the signed message.
pub const HEADER: &str = "ferry-kit 1";
/// Largest index accepted.
pub const MAX_INDEX_BYTES: u64 = 16 << 20;
/// Longest file or part name.
pub const MAX_NAME_BYTES: usize = 200;
/// Names the kit writes itself, never used for a listed file or part.
pub const RESERVED_NAMES: [&str; 3] = [INDEX_NAME, "SHA256SUMS", "SHA256SUMS.sig"];

/// What a kit file is, with the fields its `file` line carries for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Bundle {
        app: String,
        version: String,
        target: String,
    },
    /// Detached signature of the bundle named like this file without `.minisig`.
    Minisig,
    /// A static `ferry-install` for the architecture `uname -m` names.
    Installer {
        arch: String,
    },
    PublicKey {
        key_id: String,
    },
    Readme,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bundle { .. } => "bundle",
            Self::Minisig => "minisig",
            Self::Installer { .. } => "installer",
            Self::PublicKey { .. } => "pubkey",
            Self::Readme => "readme",
        }
    }

    /// Whether the kit may cut this file into parts (the rest stay whole).
    pub fn splittable(&self) -> bool {
        matches!(self, Self::Bundle { .. } | Self::Installer { .. })
    }

    /// Whether a copy travels on every volume.
    pub fn on_every_volume(&self) -> bool {
        matches!(self, Self::PublicKey { .. } | Self::Readme)
    }
}

/// One stored piece of a kit file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `VOL-001` and so on, or `.` in a kit that is not split.
    pub volume: String,
    pub name: String,
    pub size: u64,
    pub sha256: Sha256,
}

impl Part {
    /// `VOL-002/NAME`, or `NAME` in a kit that is not split: how messages name a part.
    pub fn label(&self) -> String {
        if self.volume == "." {
            self.name.clone()
        } else {
            format!("{}/{}", self.volume, self.name)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KitFile {
    pub kind: Kind,
    pub name: String,
    pub size: u64,
    pub sha256: Sha256,
    /// In order; empty for a file with a copy on every volume.
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Index {
    /// 0: the kit is one directory; else `VOL-001` ..= this.
    pub volumes: u32,
    pub files: Vec<KitFile>,
}

/// `VOL-001` for 1.
pub fn volume_name(n: u32) -> String {
    format!("VOL-{n:03}")
}

/// The number of a volume directory name, if it is one (`VOL-` and at least three digits).
pub fn volume_number(name: &str) -> Option<u32> {
    let n = u32::try_from(digits(name.strip_prefix("VOL-")?)?).ok()?;
    (n >= 1 && volume_name(n) == name).then_some(n)
}

/// Checks a file or part name: one path component of `[A-Za-z0-9._+~@-]`, starting with a
/// letter or digit, at most [`MAX_NAME_BYTES`]. Every such name is also valid in
/// `SHA256SUMS` and on FAT32, ISO 9660 (Joliet/Rock Ridge) and UDF media.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || b"._+~@-".contains(&c);
    if (1..=MAX_NAME_BYTES).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(ok_char)
    {
        Ok(())
    } else {
        Err("a name must be 1 to 200 bytes of letters, digits and ._+~@-, starting with a letter or digit")
    }
}

impl Index {
    pub fn file(&self, name: &str) -> Option<&KitFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The volume names of the kit: `["."]` when it is not split.
    pub fn volume_names(&self) -> Vec<String> {
        if self.volumes == 0 {
            vec![".".into()]
        } else {
            (1..=self.volumes).map(volume_name).collect()
        }
    }

    /// The detached signature listed for a bundle.
    pub fn minisig_for(&self, bundle: &str) -> Option<&KitFile> {
        let name = format!("{bundle}.minisig");
        self.files
            .iter()
            .find(|f| f.kind == Kind::Minisig && f.name == name)
    }

    /// The file whose first part is stored under `part_name`, and whether it is the first.
    pub fn file_of_part(&self, part_name: &str) -> Option<(&KitFile, usize)> {
        self.files.iter().find_map(|f| {
            f.parts
                .iter()
                .position(|p| p.name == part_name)
                .map(|i| (f, i))
        })
    }

    /// Reads the signed message of an index strictly: the form [`fmt::Display`] writes,
    /// with every name valid and unique in the kit, and parts adding up to their file.
    pub fn parse(text: &str) -> Result<Self, IndexError> {
        let err = |line: usize, detail: &'static str| IndexError { line, detail };
        let body = text
            .strip_suffix('\n')
            .ok_or(err(0, "the last line does not end with LF"))?;
        let mut lines = body.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(err(1, "not a ferry kit index (version 1)"));
        }
        let volumes = lines
            .next()
            .and_then(|l| l.strip_prefix("volumes "))
            .and_then(parse_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n <= 99_999)
            .ok_or(err(2, "expected \"volumes N\""))?;
        let mut index = Self {
            volumes,
            files: Vec::new(),
        };
        // Every stored name, to refuse two files or parts under one name.
        let mut names: Vec<String> = Vec::new();
        let mut expected_parts = 0usize;
        for (i, line) in lines.enumerate() {
            let no = i + 3;
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                ["file", kind, name, size, sha, parts, extra @ ..] if expected_parts == 0 => {
                    let kind = match (*kind, extra) {
                        ("bundle", [app, version, target])
                            if check_name(app).is_ok()
                                && check_name(version).is_ok()
                                && target.starts_with("linux/") =>
                        {
                            Kind::Bundle {
                                app: (*app).into(),
                                version: (*version).into(),
                                target: (*target).into(),
                            }
                        }
                        ("minisig", []) => Kind::Minisig,
                        ("installer", [arch @ ("x86_64" | "aarch64")]) => Kind::Installer {
                            arch: (*arch).into(),
                        },
                        ("pubkey", [id]) => Kind::PublicKey {
                            key_id: (*id).into(),
                        },
                        ("readme", []) => Kind::Readme,
                        _ => return Err(err(no, "unknown file kind, or wrong fields for it")),
                    };
                    expected_parts = match (*parts, kind.on_every_volume()) {
                        ("*", true) => {
                            names.push((*name).into());
                            0
                        }
                        (n, false) => match parse_u64(n).and_then(|n| usize::try_from(n).ok()) {
                            Some(n) if n == 1 || (n > 1 && kind.splittable()) => n,
                            _ => return Err(err(no, "bad part count for this kind of file")),
                        },
                        _ => return Err(err(no, "bad part count for this kind of file")),
                    };
                    if index.file(name).is_some() {
                        return Err(err(no, "a file is listed twice"));
                    }
                    index.files.push(KitFile {
                        kind,
                        name: checked_name(name, no)?,
                        size: parse_u64(size).ok_or(err(no, "bad size"))?,
                        sha256: Sha256::parse(sha).map_err(|_| err(no, "bad SHA-256"))?,
                        parts: Vec::new(),
                    });
                }
                ["part", file, order, volume, name, size, sha] if expected_parts > 0 => {
                    let f = index.files.last_mut().expect("a file line came first");
                    let volume_ok = if volumes == 0 {
                        *volume == "."
                    } else {
                        volume_number(volume).is_some_and(|n| n <= volumes)
                    };
                    let want = format!("{}/{}", f.parts.len() + 1, f.parts.len() + expected_parts);
                    if f.name != *file || *order != want || !volume_ok {
                        return Err(err(
                            no,
                            "part of another file, out of order or on no volume of the kit",
                        ));
                    }
                    names.push(checked_name(name, no)?);
                    f.parts.push(Part {
                        volume: (*volume).into(),
                        name: (*name).into(),
                        size: parse_u64(size).ok_or(err(no, "bad size"))?,
                        sha256: Sha256::parse(sha).map_err(|_| err(no, "bad SHA-256"))?,
                    });
                    expected_parts -= 1;
                    if expected_parts == 0
                        && f.parts.iter().try_fold(0u64, |a, p| a.checked_add(p.size))
                            != Some(f.size)
                    {
                        return Err(err(no, "the parts do not add up to the file's size"));
                    }
                }
                _ => return Err(err(no, "unknown or misplaced record")),
            }
        }
        if expected_parts != 0 || index.files.is_empty() {
            return Err(err(
                0,
                "the last file is missing parts, or no file is listed",
            ));
        }
        // Parts are found by name: a name is stored once in the whole kit.
        crate::compact::sort(&mut names);
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(err(0, "a name is stored twice"));
        }
        if index
            .files
            .iter()
            .any(|f| RESERVED_NAMES.contains(&f.name.as_str()))
            || names.iter().any(|n| RESERVED_NAMES.contains(&n.as_str()))
        {
            return Err(err(0, "a listed file takes a name the kit uses itself"));
        }
        Ok(index)
    }
}

fn checked_name(name: &str, line: usize) -> Result<String, IndexError> {
    check_name(name).map_err(|detail| IndexError { line, detail })?;
    Ok(name.to_owned())
}

/// A decimal number in its one spelling (no sign, no leading zero).
fn parse_u64(s: &str) -> Option<u64> {
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    digits(s)
}

/// Decimal digits (at least one) as a number.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{HEADER}")?;
        writeln!(f, "volumes {}", self.volumes)?;
        for file in &self.files {
            write!(
                f,
                "file {} {} {} {} ",
                file.kind.name(),
                file.name,
                file.size,
                file.sha256
            )?;
            if file.kind.on_every_volume() {
                f.write_str("*")?;
            } else {
                write!(f, "{}", file.parts.len())?;
            }
            match &file.kind {
                Kind::Bundle {
                    app,
                    version,
                    target,
                } => write!(f, " {app} {version} {target}")?,
                Kind::Installer { arch } => write!(f, " {arch}")?,
                Kind::PublicKey { key_id } => write!(f, " {key_id}")?,
                Kind::Minisig | Kind::Readme => {}
            }
            f.write_str("\n")?;
            let n = file.parts.len();
            for (i, p) in file.parts.iter().enumerate() {
                writeln!(
                    f,
                    "part {} {}/{n} {} {} {} {}",
                    file.name,
                    i + 1,
                    p.volume,
                    p.name,
                    p.size,
                    p.sha256
                )?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("kit index line {line}: {detail}")]
pub struct IndexError {
    /// 0: the index as a whole.
    pub line: usize,
    pub detail: &'static str,
}

/// Everything that can be wrong with a kit.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("{} holds no {INDEX_NAME} (neither directly nor in a VOL-NNN directory)", dir.display())]
    NoIndex { dir: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The index is too large, its signature does not verify with a trusted key, or it is
    /// malformed.
    #[error("{}: {detail}", path.display())]
    Index { path: PathBuf, detail: String },
    /// The kit does not hold what was asked for.
    #[error("{0}")]
    NotInKit(String),
    /// Parts or files that are missing or differ from the index, each named.
    #[error("the kit does not match its signed index: {}", problems.join("; "))]
    Bad { problems: Vec<String> },
}

impl KitError {
    /// True when the kit is at fault (exit 3), false when the host could not read it.
    pub fn is_verification(&self) -> bool {
        !matches!(self, Self::Read { .. })
    }
}

/// Checks the index's signify signature with the trusted key whose id it names, and
/// returns that id and the signed message.
pub fn verify_index<'a>(keyring: &Keyring, text: &'a [u8]) -> Result<(KeyId, &'a [u8]), String> {
    let mut signer = None;
    for key in keyring.keys() {
        match signify::verify_embedded(key, text) {
            Ok(message) => return Ok((key.key_id(), message)),
            Err(SigError::KeyIdMismatch { actual, .. }) => signer = Some(actual),
            Err(e) => return Err(format!("signature: {e}")),
        }
    }
    Err(match signer {
        Some(key_id) if keyring.is_revoked(&key_id) => {
            KeyringError::RevokedKey { key_id }.to_string()
        }
        Some(key_id) => format!("signed by key {key_id}, which is not trusted"),
        None => "no trusted keys".into(),
    })
}

/// Reads, verifies and parses an index file: the index, the key that signed it and the
/// file's bytes.
pub fn load_index(keyring: &Keyring, path: &Path) -> Result<(Index, KeyId, Vec<u8>), KitError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_INDEX_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|source| KitError::Read {
            path: path.to_owned(),
            source,
        })?;
    let bad = |detail: String| KitError::Index {
        path: path.to_owned(),
        detail,
    };
    if bytes.len() as u64 > MAX_INDEX_BYTES {
        return Err(bad("larger than 16 MiB".into()));
    }
    let (key_id, message) = verify_index(keyring, &bytes).map_err(bad)?;
    let index = std::str::from_utf8(message)
        .map_err(|_| IndexError {
            line: 0,
            detail: "not UTF-8",
        })
        .and_then(Index::parse)
        .map_err(|e| bad(e.to_string()))?;
    Ok((index, key_id, bytes))
}

/// Finds the index for a kit path: `DIR/kit.index`, else the first `DIR/VOL-NNN/kit.index`.
pub fn find_index(dir: &Path) -> Result<PathBuf, KitError> {
    let direct = dir.join(INDEX_NAME);
    if direct.is_file() {
        return Ok(direct);
    }
    std::fs::read_dir(dir)
        .map_err(|source| KitError::Read {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| {
            let e = e.ok()?;
            let n = volume_number(e.file_name().to_str()?)?;
            let p = e.path().join(INDEX_NAME);
            p.is_file().then_some((n, p))
        })
        .min_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
        .ok_or_else(|| KitError::NoIndex {
            dir: dir.to_owned(),
        })
}

/// Where a kit's volumes are: the directory its index was read from, its siblings, and
/// any directories named on the command line.
#[derive(Debug, Clone)]
pub struct Volumes {
    /// The directory holding the index that was read (absolute, symlinks kept, so a
    /// directory of symlinks to volumes mounted elsewhere works).
    pub base: PathBuf,
    /// More places to look (volumes mounted elsewhere).
    pub extra: Vec<PathBuf>,
}

impl Volumes {
    /// The volume `base` is, when its name says so.
    pub fn base_volume(&self) -> Option<String> {
        let name = self.base.file_name()?.to_str()?;
        volume_number(name).map(|_| name.to_owned())
    }

    /// Where the part `name` of `volume` is: `BASE/NAME` when BASE is that volume (or a
    /// kit that is not split, or a flat copy of all volumes), else `BASE/../VOLUME/NAME`;
    /// then `BASE/VOLUME/NAME`, and `DIR/VOLUME/NAME` and `DIR/NAME` for each extra DIR.
    pub fn locate(&self, volume: &str, name: &str) -> Option<PathBuf> {
        let first = match (self.base_volume(), self.base.parent()) {
            (Some(v), Some(parent)) if v != volume => parent.join(volume),
            _ => self.base.clone(),
        };
        let mut dirs = vec![first, self.base.join(volume)];
        for d in &self.extra {
            dirs.push(d.join(volume));
            dirs.push(d.clone());
        }
        dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
    }
}

/// One part to read: where it is (if found) and what the index says it holds.
#[derive(Debug, Clone)]
pub struct PartSource {
    pub label: String,
    pub path: Option<PathBuf>,
    pub size: u64,
    pub sha256: Sha256,
}

impl PartSource {
    pub fn new(part: &Part, volumes: &Volumes) -> Self {
        Self {
            label: part.label(),
            path: volumes.locate(&part.volume, &part.name),
            size: part.size,
            sha256: part.sha256,
        }
    }
}

/// What reading a part found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartStatus {
    NotRead,
    Ok,
    Missing,
    Unreadable(String),
    WrongSize { actual: u64, expected: u64 },
    WrongDigest,
}

impl PartStatus {
    pub fn is_ok(&self) -> bool {
        *self == Self::Ok
    }
}

impl fmt::Display for PartStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRead => f.write_str("not read"),
            Self::Ok => f.write_str("ok"),
            Self::Missing => f.write_str("MISSING"),
            Self::Unreadable(e) => write!(f, "UNREADABLE: {e}"),
            Self::WrongSize { actual, expected } => {
                write!(
                    f,
                    "CORRUPT: {actual} bytes, the signed index says {expected}"
                )
            }
            Self::WrongDigest => f.write_str("CORRUPT: SHA-256 differs from the signed index"),
        }
    }
}

/// A bad part, as the chained reader reports it through `io::Error`.
#[derive(Debug, thiserror::Error)]
#[error("part {label}: {status}")]
pub struct PartError {
    pub label: String,
    pub status: PartStatus,
}

/// A part size meaning "read to the end, check nothing" ([`PartsReader::from_file`]).
const UNCHECKED: u64 = u64::MAX;

/// Reads a file's parts in order as one stream, checking each part's size and SHA-256
/// as it passes: a part that differs from the index fails the read at its end (a missing
/// one at its start) with a [`PartError`] naming it. After an error the next read goes
/// on with the next part, so [`PartsReader::drain`] can judge every part in one pass.
///
/// Every bundle the verifier reads comes through this one type (a plain bundle file as
/// [`PartsReader::from_file`]), so the reader is compiled once into the installer.
pub struct PartsReader {
    parts: Vec<PartSource>,
    status: Vec<PartStatus>,
    current: usize,
    file: Option<File>,
    part: Hasher,
}

impl PartsReader {
    pub fn new(parts: Vec<PartSource>) -> Self {
        let status = vec![PartStatus::NotRead; parts.len()];
        Self {
            parts,
            status,
            current: 0,
            file: None,
            part: Hasher::new(),
        }
    }

    /// An open file read to its end, with nothing to check.
    pub fn from_file(file: File) -> Self {
        let mut r = Self::new(vec![PartSource {
            label: String::new(),
            path: None,
            size: UNCHECKED,
            sha256: Sha256::from_bytes([0; 32]),
        }]);
        r.file = Some(file);
        r
    }

    pub fn parts(&self) -> &[PartSource] {
        &self.parts
    }

    pub fn status(&self) -> &[PartStatus] {
        &self.status
    }

    /// Labels and statuses of the parts that are not ok (after [`Self::drain`]).
    pub fn problems(&self) -> Vec<String> {
        self.parts
            .iter()
            .zip(&self.status)
            .filter(|(_, s)| !s.is_ok())
            .map(|(p, s)| format!("{}: {s}", p.label))
            .collect()
    }

    /// Reads whatever is left, so every part has a status.
    pub fn drain(&mut self) {
        let mut buf = vec![0u8; 64 << 10];
        while self.current < self.parts.len() {
            let _ = self.read(&mut buf);
        }
    }

    fn fail(&mut self, status: PartStatus) -> io::Error {
        let label = self.parts[self.current].label.clone();
        self.status[self.current] = status.clone();
        self.current += 1;
        self.file = None;
        self.part = Hasher::new();
        io::Error::other(PartError { label, status })
    }
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(src) = self.parts.get(self.current) else {
                return Ok(0);
            };
            let size = src.size;
            if self.file.is_none() {
                let Some(path) = &src.path else {
                    return Err(self.fail(PartStatus::Missing));
                };
                let opened = File::open(path).and_then(|f| f.metadata().map(|m| (f, m.len())));
                match opened {
                    Ok((_, len)) if len != size && size != UNCHECKED => {
                        return Err(self.fail(PartStatus::WrongSize {
                            actual: len,
                            expected: size,
                        }))
                    }
                    Ok((f, _)) => self.file = Some(f),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        return Err(self.fail(PartStatus::Missing))
                    }
                    Err(e) => return Err(self.fail(PartStatus::Unreadable(e.to_string()))),
                }
            }
            let left = size - self.part.len();
            if left == 0 {
                let digest = std::mem::take(&mut self.part).finish();
                if digest != src.sha256 {
                    return Err(self.fail(PartStatus::WrongDigest));
                }
                self.status[self.current] = PartStatus::Ok;
                self.current += 1;
                self.file = None;
                continue;
            }
            if buf.is_empty() {
                return Ok(0);
            }
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let file = self.file.as_mut().expect("opened above");
            match file.read(&mut buf[..want]) {
                Ok(0) if size == UNCHECKED => {
                    self.status[self.current] = PartStatus::Ok;
                    self.current += 1;
                    self.file = None;
                }
                Ok(0) => {
                    let actual = self.part.len();
                    return Err(self.fail(PartStatus::WrongSize {
                        actual,
                        expected: size,
                    }));
                }
                Ok(n) if size == UNCHECKED => return Ok(n),
                Ok(n) => {
                    self.part.update(&buf[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fail(PartStatus::Unreadable(e.to_string()))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: u8) -> Sha256 {
        Sha256::from_bytes([b; 32])
    }

    fn sample() -> Index {
        Index {
            volumes: 2,
            files: vec![
                KitFile {
                    kind: Kind::Installer {
                        arch: "x86_64".into(),
                    },
                    name: "ferry-install-x86_64".into(),
                    size: 30,
                    sha256: sha(1),
                    parts: vec![
                        Part {
                            volume: "VOL-001".into(),
                            name: "ferry-install-x86_64.part001".into(),
                            size: 20,
                            sha256: sha(2),
                        },
                        Part {
                            volume: "VOL-002".into(),
                            name: "ferry-install-x86_64.part002".into(),
                            size: 10,
                            sha256: sha(3),
                        },
                    ],
                },
                KitFile {
                    kind: Kind::Bundle {
                        app: "hello".into(),
                        version: "1.0.0".into(),
                        target: "linux/amd64".into(),
                    },
                    name: "hello-1.0.0-linux-amd64.tar.zst".into(),
                    size: 7,
                    sha256: sha(4),
                    parts: vec![Part {
                        volume: "VOL-002".into(),
                        name: "hello-1.0.0-linux-amd64.tar.zst".into(),
                        size: 7,
                        sha256: sha(4),
                    }],
                },
                KitFile {
                    kind: Kind::PublicKey {
                        key_id: "0807060504030201".into(),
                    },
                    name: "release.pub".into(),
                    size: 100,
                    sha256: sha(5),
                    parts: Vec::new(),
                },
                KitFile {
                    kind: Kind::Readme,
                    name: README_NAME.into(),
                    size: 10,
                    sha256: sha(6),
                    parts: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn index_round_trip() {
        let index = sample();
        let text = index.to_string();
        assert!(text.starts_with("ferry-kit 1\nvolumes 2\nfile installer ferry-install-x86_64 30 "));
        assert!(text.contains(&format!(
            "part ferry-install-x86_64 2/2 VOL-002 ferry-install-x86_64.part002 10 {}\n",
            sha(3)
        )));
        assert!(text.contains(&format!(
            "file pubkey release.pub 100 {} * 0807060504030201\n",
            sha(5)
        )));
        assert_eq!(Index::parse(&text).unwrap(), index);
        assert_eq!(
            index
                .file_of_part("ferry-install-x86_64.part002")
                .map(|(f, i)| (f.name.as_str(), i)),
            Some(("ferry-install-x86_64", 1))
        );
        assert_eq!(index.volume_names(), ["VOL-001", "VOL-002"]);
    }

    #[test]
    fn index_rejects_malformed() {
        let good = sample().to_string();
        let cases: Vec<(&str, String)> = vec![
            ("no final LF", good.trim_end().to_owned()),
            ("CRLF", good.replace('\n', "\r\n")),
            ("bad header", good.replace("ferry-kit 1", "ferry-kit 2")),
            (
                "volume out of range",
                good.replace("volumes 2", "volumes 1"),
            ),
            (
                "unsplit volume name",
                good.replace("volumes 2", "volumes 0"),
            ),
            ("part order", good.replace(" 2/2 ", " 3/3 ")),
            ("sizes do not add up", good.replace(" 10 ", " 11 ")),
            (
                "missing part",
                good.replace("part ferry-install-x86_64 2/2", "x"),
            ),
            (
                "traversal",
                good.replace("ferry-install-x86_64.part001", "../etc/passwd"),
            ),
            ("reserved", good.replace("release.pub", "SHA256SUMS")),
            (
                "split minisig",
                good.replace("file installer", "file minisig")
                    .replace(" 2 x86_64", " 2"),
            ),
            ("leading zero", good.replace(" 30 ", " 030 ")),
            (
                "uppercase digest",
                good.replacen(&sha(4).to_string(), &"AB".repeat(32), 1),
            ),
            (
                "every-volume bundle",
                good.replace("hello-1.0.0-linux-amd64.tar.zst 7 ", "x 7 "),
            ),
            ("unknown record", format!("{good}extra line\n")),
        ];
        for (name, text) in cases {
            assert!(Index::parse(&text).is_err(), "{name}: {text}");
        }
        // The same part name twice.
        let twice = good.replace(
            "ferry-install-x86_64.part002",
            "ferry-install-x86_64.part001",
        );
        assert!(Index::parse(&twice).is_err());
    }

    #[test]
    fn names_and_volumes() {
        for bad in ["", ".hidden", "-x", "a/b", "a b", "a\nb", "ä"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("hello-1.0.0+x~y@z_1.tar.zst.part001").unwrap();
        assert_eq!(volume_number("VOL-001"), Some(1));
        assert_eq!(volume_number("VOL-1234"), Some(1234));
        for bad in ["VOL-01", "VOL-000", "VOL-0001", "vol-001", "VOL-00a"] {
            assert_eq!(volume_number(bad), None, "{bad}");
        }
    }

    fn write_parts(dir: &Path, data: &[&[u8]]) -> Vec<PartSource> {
        data.iter()
            .enumerate()
            .map(|(i, d)| {
                let path = dir.join(format!("p{i}"));
                std::fs::write(&path, d).unwrap();
                PartSource {
                    label: format!("p{i}"),
                    path: Some(path),
                    size: d.len() as u64,
                    sha256: Sha256::of(d),
                }
            })
            .collect()
    }

    #[test]
    fn parts_reader_chains_and_names_bad_parts() {
        let dir = tempfile::tempdir().unwrap();
        let data: [&[u8]; 3] = [b"first ", b"second ", b"third"];
        let parts = write_parts(dir.path(), &data);
        let mut all = String::new();
        let mut r = PartsReader::new(parts.clone());
        r.read_to_string(&mut all).unwrap();
        assert_eq!(all, "first second third");
        assert!(r.problems().is_empty());

        // Corrupt the middle part (same size), remove nothing: only it is named.
        std::fs::write(parts[1].path.as_ref().unwrap(), b"SECOND ").unwrap();
        let mut r = PartsReader::new(parts.clone());
        let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert!(err.to_string().contains("part p1"), "{err}");
        r.drain();
        assert_eq!(
            r.status(),
            [PartStatus::Ok, PartStatus::WrongDigest, PartStatus::Ok]
        );
        assert_eq!(
            r.problems(),
            ["p1: CORRUPT: SHA-256 differs from the signed index"]
        );

        // A plain file, unchecked, read to its end.
        let mut plain = String::new();
        PartsReader::from_file(File::open(parts[0].path.as_ref().unwrap()).unwrap())
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, "first ");

        // A missing first part and a short last part.
        let mut parts2 = parts;
        parts2[0].path = None;
        std::fs::write(parts2[2].path.as_ref().unwrap(), b"thir").unwrap();
        let mut r = PartsReader::new(parts2);
        r.drain();
        assert_eq!(
            r.status(),
            [
                PartStatus::Missing,
                PartStatus::WrongDigest,
                PartStatus::WrongSize {
                    actual: 4,
                    expected: 5
                }
            ]
        );
    }
}
