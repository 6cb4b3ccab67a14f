//! `ferry kit`: a directory to copy onto removable media, optionally split into volumes.
//!
//! The kit holds the bundles and their `.minisig`, the static `ferry-install` for each
//! architecture, the public key, `READ-ME-FIRST.txt`, a signed `kit.index` (see
//! `ferry_format::kit`) and `SHA256SUMS` + `SHA256SUMS.sig` covering every file. Split
//! with `--volume-size`, it is `VOL-001/`, `VOL-002/` ...: a file that does not fit the
//! room left on a volume is cut into parts (`NAME.part001` ...) that fill it and the next
//! ones; every volume carries the read-me, the key, the index and its own checksum lists,
//! and the top directory a checksum list over all volumes.
//!
//! Everything is verified and planned before anything is written, and the kit is
//! written into a temporary directory beside OUT that is renamed into place at the end:
//! OUT holds a whole kit or nothing.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::atomic::{sync_dir, write_atomic};
use ferry_format::digest::{sha256_file, Hasher, Sha256};
use ferry_format::keyring::Keyring;
use ferry_format::kit::{self, Index, Kind, KitFile, Part, INDEX_NAME, README_NAME};
use ferry_format::manifest::Arch;
use ferry_format::minisign::{PublicKey, SecretKey};
use ferry_format::signify;
use ferry_format::sums::SumsList;
use ferry_format::verify::{detached_path, verify_path, DetachedPolicy, Failed};
use ferry_format::Limits;
use object::read::elf::{ElfFile64, FileHeader as _};
use serde::Serialize;

use crate::sums::{SUMS, SUMS_SIG};
use crate::{elf, keys};

/// Where `scripts/build-installer` leaves the static `x86_64` installer.
pub const DEFAULT_INSTALLER: &str = "target/x86_64-unknown-linux-gnu/installer/ferry-install";
/// Every file is counted as a whole number of these on a volume (the allocation unit of
/// the media file systems: 2 KiB optical sectors, FAT32 and ext4 clusters of 4 KiB).
pub const BLOCK: u64 = 4096;
/// Room kept free on a disc for its file system (ISO 9660/UDF descriptors, directories).
pub const DISC_RESERVE: u64 = 1 << 20;

/// A `--volume-size`: the bytes of files one volume may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeSize {
    /// As given (preset or bytes).
    pub size: u64,
    /// The part of `size` files may use.
    pub budget: u64,
}

/// Parses `fat32` (4 GiB − 1: FAT32's largest file), `dvd` (4 700 372 992 bytes, a
/// single-layer DVD±R), `bd25` (25 025 314 816 bytes, a single-layer BD-R), or a byte count
/// with an optional binary suffix: `1048576`, `512K`, `512M`, `4G`, `1T` (`KiB`... too).
/// The disc presets keep [`DISC_RESERVE`] for the file system.
pub fn parse_volume_size(s: &str) -> Result<VolumeSize, String> {
    let bad =
        || format!("{s:?}: expected fat32, dvd, bd25 or a byte count such as 1048576, 512M or 4G");
    let (size, reserve) = match s.to_ascii_lowercase().as_str() {
        "fat32" => ((4u64 << 30) - 1, 0),
        "dvd" => (4_700_372_992, DISC_RESERVE),
        "bd25" => (25_025_314_816, DISC_RESERVE),
        _ => {
            let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (num, suffix) = s.split_at(digits_end);
            let shift = match suffix {
                "" => 0,
                "K" | "k" | "KiB" => 10,
                "M" | "MiB" => 20,
                "G" | "GiB" => 30,
                "T" | "TiB" => 40,
                _ => return Err(bad()),
            };
            let n: u64 = num.parse().map_err(|_| bad())?;
            let size = n
                .checked_mul(1 << shift)
                .ok_or_else(|| format!("{s:?} is too large"))?;
            (size, 0)
        }
    };
    Ok(VolumeSize {
        size,
        budget: size - reserve,
    })
}

pub struct KitArgs {
    pub out: PathBuf,
    pub bundles: Vec<PathBuf>,
    pub key: PathBuf,
    pub pubkey: PathBuf,
    pub installers: Vec<PathBuf>,
    pub volume_size: Option<VolumeSize>,
}

#[derive(Debug, Serialize)]
pub struct KitReportFile {
    pub name: String,
    pub kind: &'static str,
    pub size: u64,
    pub sha256: String,
    /// `VOLUME/NAME` of each part, in order (empty: a copy on every volume).
    pub parts: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct KitReport {
    pub out: String,
    pub key_id: String,
    /// 0: not split.
    pub volumes: u32,
    pub volume_size: Option<u64>,
    pub files: Vec<KitReportFile>,
    pub index: String,
    pub sha256sums: String,
    pub sha256sums_sig: String,
}

/// A file to carry, before planning.
struct Item {
    kind: Kind,
    name: String,
    src: PathBuf,
    size: u64,
    sha256: Sha256,
    mode: u32,
}

fn rounded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// The installers' default: `DEFAULT_INSTALLER` from the current directory, else from the
/// target directory the running `ferry` was built into.
fn default_installer() -> Result<PathBuf> {
    let here = PathBuf::from(DEFAULT_INSTALLER);
    if here.is_file() {
        return Ok(here);
    }
    let beside_exe = std::env::current_exe().ok().and_then(|exe| {
        let target = exe.parent()?.parent()?;
        let p = target.join("x86_64-unknown-linux-gnu/installer/ferry-install");
        p.is_file().then_some(p)
    });
    beside_exe.ok_or_else(|| {
        anyhow!(
            "no installer to carry: {DEFAULT_INSTALLER} does not exist; build it with \
             scripts/build-installer or pass --installer PATH"
        )
    })
}

/// The architecture (`uname -m`) an installer is for, from its ELF header; it must be
/// static, since the isolated host may have no matching libc.
fn installer_arch(path: &Path) -> Result<Arch> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let shown = path.display().to_string();
    let file = ElfFile64::<object::Endianness>::parse(&*data)
        .map_err(|_| anyhow!("{shown} is not a 64-bit ELF executable"))?;
    let arch = match file.elf_header().e_machine(file.endian()) {
        object::elf::EM_X86_64 => Arch::Amd64,
        object::elf::EM_AARCH64 => Arch::Arm64,
        m => bail!(
            "{shown} is built for ELF machine {m:#x}; ferry-install runs on x86_64 and aarch64"
        ),
    };
    elf::check_static_bytes(&data, &shown, arch)
        .with_context(|| format!("{shown} cannot go into a kit"))?;
    Ok(arch)
}

fn file_name(path: &Path) -> Result<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{} has no UTF-8 file name", path.display()))?;
    kit::check_name(name).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    Ok(name.to_owned())
}

fn item(kind: Kind, name: String, src: &Path, mode: u32) -> Result<Item> {
    let (sha256, size) = sha256_file(src).with_context(|| format!("reading {}", src.display()))?;
    Ok(Item {
        kind,
        name,
        src: src.to_owned(),
        size,
        sha256,
        mode,
    })
}

/// Verifies the inputs and lists what the kit carries, in volume order: installers first
/// (the first volume is the one to start with), then each bundle's signature and bundle.
fn collect(args: &KitArgs, pk: &PublicKey) -> Result<(Vec<Item>, Vec<Item>)> {
    let keyring = Keyring::new(vec![pk.clone()]);
    let mut items = Vec::new();
    let mut installers = args.installers.clone();
    if installers.is_empty() {
        installers.push(default_installer()?);
    }
    let mut seen = Vec::new();
    for path in &installers {
        let arch = installer_arch(path)?;
        if seen.contains(&arch) {
            bail!(
                "two installers for {}: give one --installer per architecture",
                arch.uname()
            );
        }
        seen.push(arch);
        let name = format!("ferry-install-{}", arch.uname());
        items.push(item(
            Kind::Installer {
                arch: arch.uname().into(),
            },
            name,
            path,
            0o755,
        )?);
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    for bundle in &args.bundles {
        let name = file_name(bundle)?;
        if items.iter().any(|i| i.name == name) {
            bail!("two bundles named {name}");
        }
        let outcome = verify_path(
            bundle,
            &keyring,
            &Limits::default(),
            DetachedPolicy::Required,
            &mut |_, r| io::copy(r, &mut io::sink()).map(|_| ()),
        )
        .map_err(|source| Failed {
            path: bundle.clone(),
            source,
        })
        .with_context(|| {
            format!(
                "{} must verify with {} to go into the kit",
                bundle.display(),
                args.pubkey.display()
            )
        })?;
        let m = &outcome.verified.manifest;
        let sig = detached_path(bundle);
        items.push(item(Kind::Minisig, format!("{name}.minisig"), &sig, 0o644)?);
        let b = item(
            Kind::Bundle {
                app: m.app.name.to_string(),
                version: m.app.version.to_string(),
                target: m.target.to_string(),
            },
            name,
            bundle,
            0o644,
        )?;
        if b.sha256 != outcome.verified.bundle.sha256 {
            bail!("{} changed while it was being read", bundle.display());
        }
        items.push(b);
    }
    let key_name = file_name(&args.pubkey)?;
    let every = vec![
        item(
            Kind::PublicKey {
                key_id: pk.key_id().to_string(),
            },
            key_name,
            &args.pubkey,
            0o644,
        )?,
        // The read-me is rendered once the plan is known.
        Item {
            kind: Kind::Readme,
            name: README_NAME.into(),
            src: PathBuf::new(),
            size: 0,
            sha256: Sha256::of(b""),
            mode: 0o644,
        },
    ];
    let mut names: Vec<&str> = items
        .iter()
        .chain(&every)
        .map(|i| i.name.as_str())
        .collect();
    names.sort_unstable();
    if let Some([a, _]) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("two kit files would be named {a}");
    }
    if let Some(n) = names.iter().find(|n| kit::RESERVED_NAMES.contains(n)) {
        bail!("{n} is a name the kit uses for itself");
    }
    Ok((items, every))
}

/// Places items on volumes of `budget` bytes each; `None` budget: one directory.
/// Returns each item's parts and the number of volumes.
fn plan(items: &[Item], budget: Option<u64>) -> Result<(Vec<Vec<Part>>, u32)> {
    let placeholder = Sha256::of(b"");
    let Some(budget) = budget else {
        let parts = items
            .iter()
            .map(|i| {
                vec![Part {
                    volume: ".".into(),
                    name: i.name.clone(),
                    size: i.size,
                    sha256: placeholder,
                }]
            })
            .collect();
        return Ok((parts, 0));
    };
    let mut vol = 1u32;
    let mut used = 0u64;
    let mut all = Vec::new();
    for (n, it) in items.iter().enumerate() {
        let whole = |vol: u32| Part {
            volume: kit::volume_name(vol),
            name: it.name.clone(),
            size: it.size,
            sha256: placeholder,
        };
        if !it.kind.splittable() {
            // A signature stays with the start of its bundle: keep a block free after it.
            let after = if n + 1 < items.len() { BLOCK } else { 0 };
            if rounded(it.size) + after > budget {
                bail!(
                    "{} ({} bytes) does not fit on a volume of {budget} bytes",
                    it.name,
                    it.size
                );
            }
            if used + rounded(it.size) + after > budget {
                vol += 1;
                used = 0;
            }
            used += rounded(it.size);
            all.push(vec![whole(vol)]);
            continue;
        }
        if used + rounded(it.size) <= budget {
            used += rounded(it.size);
            all.push(vec![whole(vol)]);
            continue;
        }
        let mut pieces: Vec<(u32, u64)> = Vec::new();
        let mut left = it.size;
        while left > 0 {
            let room = (budget - used) / BLOCK * BLOCK;
            if room == 0 {
                vol += 1;
                used = 0;
                continue;
            }
            let take = room.min(left);
            pieces.push((vol, take));
            used += rounded(take);
            left -= take;
        }
        let width = pieces.len().to_string().len().max(3);
        all.push(
            pieces
                .iter()
                .enumerate()
                .map(|(i, &(vol, size))| Part {
                    volume: kit::volume_name(vol),
                    name: format!("{}.part{:0width$}", it.name, i + 1),
                    size,
                    sha256: placeholder,
                })
                .collect(),
        );
    }
    Ok((all, vol))
}

fn index_of(items: &[Item], every: &[Item], parts: &[Vec<Part>], volumes: u32) -> Index {
    let mut files: Vec<KitFile> = items
        .iter()
        .zip(parts)
        .map(|(i, p)| KitFile {
            kind: i.kind.clone(),
            name: i.name.clone(),
            size: i.size,
            sha256: i.sha256,
            parts: p.clone(),
        })
        .collect();
    files.extend(every.iter().map(|i| KitFile {
        kind: i.kind.clone(),
        name: i.name.clone(),
        size: i.size,
        sha256: i.sha256,
        parts: Vec::new(),
    }));
    Index { volumes, files }
}

/// The exact commands of the read-me.
fn readme(index: &Index, key_id: &str, key_name: &str, volume_size: Option<VolumeSize>) -> String {
    let split = index.volumes > 0;
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "FERRY FIELD KIT\n===============\n");
    let key = if split {
        format!("VOL-001/{key_name}")
    } else {
        key_name.to_owned()
    };
    let _ = writeln!(w, "What is here\n");
    for f in &index.files {
        let what = match &f.kind {
            Kind::Bundle {
                app,
                version,
                target,
            } => format!("{app} {version} for {target}"),
            Kind::Minisig => "its detached minisign signature".into(),
            Kind::Installer { arch } => format!("ferry-install for {arch} hosts (static)"),
            Kind::PublicKey { key_id } => format!("the release public key, key id {key_id}"),
            Kind::Readme => "this file".into(),
        };
        let place = if f.parts.is_empty() {
            if split {
                ", on every volume".to_owned()
            } else {
                String::new()
            }
        } else if !split {
            String::new()
        } else if f.parts.len() == 1 {
            format!(", on {}", f.parts[0].volume)
        } else {
            format!(
                ", {} parts on {} to {}",
                f.parts.len(),
                f.parts[0].volume,
                f.parts[f.parts.len() - 1].volume
            )
        };
        let _ = writeln!(w, "  {}: {what}{place}", f.name);
    }
    let _ = writeln!(
        w,
        "  {INDEX_NAME}: the signed list of every file{}",
        if split {
            " and part (file, order, volume, size, SHA-256), on every volume"
        } else {
            ""
        }
    );
    let _ = writeln!(
        w,
        "  {SUMS}, {SUMS_SIG}: SHA-256 of every file{}, and its signify signature\n",
        if split { " on the volume" } else { "" }
    );
    let _ = writeln!(
        w,
        "Trust\n\n  Everything here is signed by key {key_id}. Before you rely on it, check that this\n  \
         id is the one you were given through another channel: a medium that was tampered\n  \
         with can carry another key and a read-me that names it.\n"
    );
    if split {
        let size = volume_size.map_or(0, |v| v.size);
        let _ = writeln!(
            w,
            "Volumes\n\n  The kit is split into {} volumes, VOL-001 to {}, of at most {size} bytes each.\n  \
             Copy each VOL-NNN directory itself (not only its contents) onto its medium. To\n  \
             install, mount or copy the volumes side by side (/media/kit/VOL-001, /media/kit/VOL-002,\n  \
             ...) and run the commands below in the directory that holds them. ferry-install reads\n  \
             the parts of a bundle in order as one stream: nothing is reassembled on disk.\n",
            index.volumes,
            kit::volume_name(index.volumes)
        );
        let _ = writeln!(
            w,
            "1. Check each volume with stock tools, in its VOL-NNN directory:\n"
        );
    } else {
        let _ = writeln!(
            w,
            "1. Check the medium with stock tools, in this directory:\n"
        );
    }
    let _ = writeln!(
        w,
        "     signify-openbsd -C -p {key_name} -x {SUMS_SIG}\n     sha256sum -c {SUMS}\n"
    );
    let _ = writeln!(
        w,
        "2. As root on the host, copy the installer for its architecture (uname -m) off the\n   \
         medium (media are often mounted noexec) and check it:\n"
    );
    for f in index
        .files
        .iter()
        .filter(|f| matches!(f.kind, Kind::Installer { .. }))
    {
        let Kind::Installer { arch } = &f.kind else {
            continue;
        };
        let _ = writeln!(w, "   {arch}:");
        if f.parts.len() == 1 {
            let _ = writeln!(
                w,
                "     cat {} > /var/tmp/ferry-install",
                f.parts[0].label()
            );
        } else {
            let labels: Vec<String> = f.parts.iter().map(Part::label).collect();
            let _ = writeln!(w, "     cat {} > /var/tmp/ferry-install", labels.join(" "));
        }
        let _ = writeln!(
            w,
            "     echo '{}  /var/tmp/ferry-install' | sha256sum -c && chmod 0755 /var/tmp/ferry-install\n",
            f.sha256
        );
    }
    let _ = writeln!(
        w,
        "3. Check the kit: every part, bundle and installer against the signed index:\n"
    );
    let _ = writeln!(
        w,
        "     /var/tmp/ferry-install verify --kit . --pubkey {key}\n"
    );
    if split {
        let _ = writeln!(
            w,
            "   One volume on its own (reports exactly which of its parts are missing or corrupt):\n\n     \
             /var/tmp/ferry-install verify --kit VOL-002 --pubkey VOL-002/{key_name}\n\n   \
             Volumes mounted elsewhere: add --volume DIR for each.\n"
        );
    }
    let _ = writeln!(
        w,
        "4. Install, as root (nothing is written to the medium; scratch space is --tmpdir,\n   \
         default /var/tmp). Pick the bundle for the host's architecture:\n"
    );
    for f in index
        .files
        .iter()
        .filter(|f| matches!(f.kind, Kind::Bundle { .. }))
    {
        let Kind::Bundle { target, .. } = &f.kind else {
            continue;
        };
        let _ = writeln!(
            w,
            "   {target}:\n     /var/tmp/ferry-install install {} --pubkey {key}\n",
            f.parts[0].label()
        );
    }
    let _ = writeln!(
        w,
        "   If the host already trusts the release key (/etc/ferry/keys), leave out --pubkey."
    );
    s
}

/// Fills in the read-me item and renders the per-volume files with placeholder digests,
/// returning the largest bytes (block-rounded) they take on one volume.
fn furniture_size(index: &Index, sk: &SecretKey, key_name: &str) -> Result<u64> {
    let idx = signify::sign_embedded(sk, index.to_string().as_bytes(), &index_comment(key_name))?;
    let mut max = 0;
    for vol in index.volume_names() {
        let mut list = SumsList::new();
        let mut used = rounded(idx.len() as u64);
        for f in &index.files {
            if f.parts.is_empty() {
                list.push(f.name.clone(), [0; 32])?;
                used += rounded(f.size);
            }
            for p in f.parts.iter().filter(|p| p.volume == vol) {
                list.push(p.name.clone(), [0; 32])?;
            }
        }
        list.push(INDEX_NAME, [0; 32])?;
        let sums = list.to_string();
        let sig = signify::sign_embedded(sk, sums.as_bytes(), &sums_comment(key_name))?;
        used += rounded(sums.len() as u64) + rounded(sig.len() as u64);
        max = max.max(used);
    }
    Ok(max)
}

fn index_comment(key_name: &str) -> String {
    format!("ferry kit index: verify with signify -V -e -p {key_name} -x kit.index -m /dev/null")
}

fn sums_comment(key_name: &str) -> String {
    format!("verify with signify -C -p {key_name} -x SHA256SUMS.sig")
}

/// Copies `it` into its parts under `root`, hashing each part and the whole; the source
/// must still be what was verified.
fn write_parts(root: &Path, it: &Item, parts: &mut [Part]) -> Result<()> {
    let mut src = File::open(&it.src).with_context(|| format!("opening {}", it.src.display()))?;
    let mut whole = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    for p in parts.iter_mut() {
        let dir = if p.volume == "." {
            root.to_owned()
        } else {
            root.join(&p.volume)
        };
        let dest = dir.join(&p.name);
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dest)
            .with_context(|| format!("creating {}", dest.display()))?;
        let mut hasher = Hasher::new();
        let mut left = p.size;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).expect("fits a buffer");
            let n = src
                .read(&mut buf[..want])
                .with_context(|| format!("reading {}", it.src.display()))?;
            if n == 0 {
                bail!("{} shrank while the kit was written", it.src.display());
            }
            hasher.update(&buf[..n]);
            whole.update(&buf[..n]);
            out.write_all(&buf[..n])
                .with_context(|| format!("writing {}", dest.display()))?;
            left -= n as u64;
        }
        out.sync_all()?;
        // A part of an installer is not runnable on its own; the whole one is.
        let mode = if p.name == it.name { it.mode } else { 0o644 };
        fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        p.sha256 = hasher.finish();
    }
    if src.read(&mut buf[..1])? != 0 || whole.finish() != it.sha256 {
        bail!("{} changed while the kit was written", it.src.display());
    }
    Ok(())
}

/// `SHA256SUMS` and `SHA256SUMS.sig` over every regular file below `dir` (paths relative
/// to it), except the two lists themselves at its top.
fn write_sums(dir: &Path, sk: &SecretKey, key_name: &str) -> Result<()> {
    fn walk(root: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
        let dir = root.join(rel);
        for e in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let e = e?;
            let name = e
                .file_name()
                .into_string()
                .map_err(|n| anyhow!("{n:?} is not UTF-8"))?;
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if e.file_type()?.is_dir() {
                walk(root, &path, out)?;
            } else if !(rel.is_empty() && (name == SUMS || name == SUMS_SIG)) {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut paths = Vec::new();
    walk(dir, "", &mut paths)?;
    let mut list = SumsList::new();
    for p in paths {
        let (digest, _) = sha256_file(&dir.join(&p)).with_context(|| format!("hashing {p}"))?;
        list.push(p, *digest.as_bytes())?;
    }
    let text = list.to_string();
    write_atomic(&dir.join(SUMS), text.as_bytes(), 0o644)?;
    let sig = signify::sign_embedded(sk, text.as_bytes(), &sums_comment(key_name))?;
    write_atomic(&dir.join(SUMS_SIG), sig.as_bytes(), 0o644)?;
    Ok(())
}

/// Removes the temporary kit directory unless it was renamed into place.
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

pub fn run(args: &KitArgs, passphrase: keys::Passphrase) -> Result<KitReport> {
    let pk = PublicKey::load(&args.pubkey)
        .with_context(|| format!("loading {}", args.pubkey.display()))?;
    if fs::read_dir(&args.out).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{} exists and is not empty: a kit goes into a new directory",
            args.out.display()
        );
    }
    let (items, mut every) = collect(args, &pk)?;
    let sk = keys::load_secret(&args.key, passphrase)?;
    if sk.public_key() != pk {
        bail!(
            "{} (key {}) is not the secret key of {} (key {})",
            args.key.display(),
            sk.key_id(),
            args.pubkey.display(),
            pk.key_id()
        );
    }
    let key_name = every[0].name.clone();
    let key_id = pk.key_id().to_string();

    // Plan: the per-volume files (read-me, key, index, checksum lists) need room on every
    // volume, and their size depends on the plan; grow the reserve until it holds them.
    let mut reserve = 0;
    let (mut parts, volumes, readme_text) = loop {
        let budget = match args.volume_size {
            None => None,
            Some(v) if v.budget > reserve + BLOCK => Some(v.budget - reserve),
            Some(v) => bail!(
                "--volume-size {} is too small: each volume needs {reserve} bytes for the read-me, key, index and checksums",
                v.size
            ),
        };
        let (parts, volumes) = plan(&items, budget)?;
        let text = readme(
            &index_of(&items, &every, &parts, volumes),
            &key_id,
            &key_name,
            args.volume_size,
        );
        every[1].size = text.len() as u64;
        every[1].sha256 = Sha256::of(text.as_bytes());
        let need = furniture_size(&index_of(&items, &every, &parts, volumes), &sk, &key_name)?;
        if budget.is_none() || need <= reserve {
            break (parts, volumes, text);
        }
        reserve = rounded(need);
    };

    // Write into a temporary directory beside OUT, then rename it into place.
    let out_parent = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&out_parent)
        .with_context(|| format!("creating {}", out_parent.display()))?;
    let out_name = args
        .out
        .file_name()
        .ok_or_else(|| anyhow!("{} has no directory name", args.out.display()))?;
    let tmp = out_parent.join(format!(
        ".{}.kit-tmp-{}",
        out_name.to_string_lossy(),
        std::process::id()
    ));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let guard = TempDir(Some(tmp.clone()));
    let volume_names = Index {
        volumes,
        files: Vec::new(),
    }
    .volume_names();
    for v in &volume_names {
        if v != "." {
            fs::create_dir(tmp.join(v))?;
        }
    }
    for (it, p) in items.iter().zip(parts.iter_mut()) {
        write_parts(&tmp, it, p)?;
    }
    let index = index_of(&items, &every, &parts, volumes);
    let index_text = index.to_string();
    // Our own output must read back as what was meant.
    if Index::parse(&index_text).as_ref() != Ok(&index) {
        bail!("internal error: the kit index does not parse back");
    }
    let signed_index =
        signify::sign_embedded(&sk, index_text.as_bytes(), &index_comment(&key_name))?;
    let key_text = fs::read(&args.pubkey)?;
    if Sha256::of(&key_text) != every[0].sha256 {
        bail!(
            "{} changed while the kit was written",
            args.pubkey.display()
        );
    }
    for v in &volume_names {
        let dir = if v == "." { tmp.clone() } else { tmp.join(v) };
        write_atomic(&dir.join(README_NAME), readme_text.as_bytes(), 0o644)?;
        write_atomic(&dir.join(&key_name), &key_text, 0o644)?;
        write_atomic(&dir.join(INDEX_NAME), signed_index.as_bytes(), 0o644)?;
        if v != "." {
            write_sums(&dir, &sk, &key_name)?;
        }
    }
    write_sums(&tmp, &sk, &key_name)?;
    sync_dir(&tmp)?;
    if args.out.exists() {
        fs::remove_dir(&args.out)
            .with_context(|| format!("replacing the empty {}", args.out.display()))?;
    }
    fs::rename(&tmp, &args.out)
        .with_context(|| format!("moving the kit into {}", args.out.display()))?;
    std::mem::forget(guard);
    sync_dir(&out_parent)?;

    Ok(KitReport {
        out: args.out.display().to_string(),
        key_id,
        volumes,
        volume_size: args.volume_size.map(|v| v.size),
        files: index
            .files
            .iter()
            .map(|f| KitReportFile {
                name: f.name.clone(),
                kind: f.kind.name(),
                size: f.size,
                sha256: f.sha256.to_string(),
                parts: f.parts.iter().map(Part::label).collect(),
            })
            .collect(),
        index: if volumes == 0 {
            INDEX_NAME.into()
        } else {
            format!("VOL-NNN/{INDEX_NAME}")
        },
        sha256sums: SUMS.into(),
        sha256sums_sig: SUMS_SIG.into(),
    })
}

pub fn print_human(r: &KitReport) {
    if r.volumes == 0 {
        println!("kit {}: signed by {}", r.out, r.key_id);
    } else {
        println!(
            "kit {}: {} volume(s) of at most {} bytes, signed by {}",
            r.out,
            r.volumes,
            r.volume_size.unwrap_or(0),
            r.key_id
        );
    }
    for f in &r.files {
        let place = match f.parts.len() {
            0 => "every volume".to_owned(),
            1 => f.parts[0].clone(),
            n => format!("{n} parts: {}", f.parts.join(" ")),
        };
        println!("{}  {:<10} {}  ({place})", f.sha256, f.kind, f.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_sizes() {
        let b = |s: &str| parse_volume_size(s).map(|v| (v.size, v.budget));
        assert_eq!(b("fat32").unwrap(), (4_294_967_295, 4_294_967_295));
        assert_eq!(b("FAT32").unwrap().0, 4_294_967_295);
        assert_eq!(
            b("dvd").unwrap(),
            (4_700_372_992, 4_700_372_992 - DISC_RESERVE)
        );
        assert_eq!(b("bd25").unwrap().0, 25_025_314_816);
        assert_eq!(b("1048576").unwrap(), (1 << 20, 1 << 20));
        assert_eq!(b("512M").unwrap().0, 512 << 20);
        assert_eq!(b("512MiB").unwrap().0, 512 << 20);
        assert_eq!(b("4G").unwrap().0, 4 << 30);
        assert_eq!(b("64k").unwrap().0, 64 << 10);
        for bad in [
            "",
            "M",
            "1.5G",
            "10 M",
            "10MB",
            "-1",
            "cd",
            "99999999999999999999T",
        ] {
            assert!(parse_volume_size(bad).is_err(), "{bad:?}");
        }
    }

    fn it(kind: Kind, name: &str, size: u64) -> Item {
        Item {
            kind,
            name: name.into(),
            src: PathBuf::new(),
            size,
            sha256: Sha256::of(b""),
            mode: 0o644,
        }
    }

    #[test]
    fn plan_fills_volumes_and_keeps_signatures_with_bundles() {
        let bundle = Kind::Bundle {
            app: "a".into(),
            version: "1".into(),
            target: "linux/amd64".into(),
        };
        let items = vec![
            it(
                Kind::Installer {
                    arch: "x86_64".into(),
                },
                "inst",
                10_000,
            ),
            it(Kind::Minisig, "b.minisig", 300),
            it(bundle, "b", 30_000),
        ];
        let (parts, vols) = plan(&items, Some(16_384)).unwrap();
        // inst: 10000 bytes whole (12288 rounded); sig 4096 rounded: no block left after it
        // on VOL-001, so it starts VOL-002 with the bundle's first part.
        assert_eq!(parts[0].len(), 1);
        assert_eq!(parts[0][0].volume, "VOL-001");
        assert_eq!(parts[1][0].volume, "VOL-002");
        let b = &parts[2];
        assert_eq!(b[0].volume, "VOL-002");
        assert_eq!(b[0].name, "b.part001");
        assert_eq!(b.iter().map(|p| p.size).sum::<u64>(), 30_000);
        assert!(b.iter().all(|p| p.size <= 16_384));
        assert_eq!(b.last().unwrap().volume, kit::volume_name(vols));
        // Not split: everything whole in ".".
        let (parts, vols) = plan(&items, None).unwrap();
        assert_eq!(vols, 0);
        assert!(parts.iter().all(|p| p.len() == 1 && p[0].volume == "."));
    }
}
