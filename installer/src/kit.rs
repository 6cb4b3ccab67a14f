//! Field kits on the isolated host: `verify --kit` (every part, bundle and installer
//! against the signed index, as a table) and installing a bundle straight from its parts,
//! read in order as one stream. Nothing is ever written to the kit.
//!
//! Written for size: the static installer has a 2 MiB budget.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use ferry_format::digest::Sha256;
use ferry_format::keyring::Keyring;
use ferry_format::kit::{
    self, Index, Kind, KitError, PartSource, PartsReader, Volumes, INDEX_NAME,
};
use ferry_format::manifest::{Arch, FileEntry};
use ferry_format::minisign::KeyId;
use ferry_format::verify::{
    read_detached_signature, verify_path, verify_reader, DetachedPolicy, Failed, Outcome,
    VerifyError,
};
use ferry_format::Limits;
use serde::Serialize;

use crate::exit::Precondition;

/// The invocation is wrong (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Payload files handed to the verifier's sink.
pub type Sink<'a> = &'a mut dyn FnMut(&FileEntry, &mut dyn Read) -> io::Result<()>;

/// A bundle to install from a kit: its parts and detached signature, as the index lists them.
pub struct KitBundle {
    pub name: String,
    pub parts: Vec<PartSource>,
    pub size: u64,
    pub sha256: Sha256,
    pub minisig: PartSource,
}

/// Reads and verifies the index at `path`; volumes are found beside its directory or in
/// `extra`.
fn open(
    path: &Path,
    keyring: &Keyring,
    extra: &[PathBuf],
) -> Result<(Index, KeyId, Vec<u8>, Volumes), KitError> {
    let (index, key_id, bytes) = kit::load_index(keyring, path)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let extra = extra.to_vec();
    Ok((index, key_id, bytes, Volumes { base, extra }))
}

fn is_part_name(name: &str) -> bool {
    name.rsplit_once(".part")
        .is_some_and(|(_, n)| n.len() >= 3 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn bad(problems: Vec<String>) -> Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(KitError::Bad { problems }.into())
    }
}

/// A detached signature the index lists (a part of its own); without a path when the
/// index lists none or no volume has it, so it is reported missing by its name and never
/// looked for anywhere else (such as the working directory).
fn minisig(index: &Index, bundle: &str, vols: &Volumes) -> PartSource {
    index.minisig_for(bundle).map_or_else(
        || PartSource {
            label: format!("{bundle}.minisig"),
            path: None,
            size: 0,
            sha256: Sha256::of(b""),
        },
        |m| PartSource::new(&m.parts[0], vols),
    )
}

/// What `install PATH` means when PATH is a kit: a kit directory or `kit.index` (the
/// kit's bundle for this host's architecture), or a bundle's first part. `None`: a bundle.
pub fn resolve(path: &Path, keyring: &Keyring, extra: &[PathBuf]) -> Result<Option<KitBundle>> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let (index_path, part) = if path.is_dir() {
        (kit::find_index(path)?, None)
    } else if name == INDEX_NAME {
        (path.to_owned(), None)
    } else if is_part_name(name) {
        (path.with_file_name(INDEX_NAME), Some(name))
    } else {
        return Ok(None);
    };
    let (index, _, _, vols) = open(&index_path, keyring, extra)?;
    // The installer runs on the architecture it was built for.
    let target = format!(
        "linux/{}",
        Arch::from_uname(std::env::consts::ARCH).map_or("", Arch::as_str)
    );
    let mut found = index.files.iter().filter(|f| match &f.kind {
        Kind::Bundle { target: t, .. } => part.map_or(*t == target, |p| f.parts[0].name == p),
        _ => false,
    });
    let file = match (found.next(), found.next(), part) {
        (Some(f), None, _) => f,
        (None, _, Some(p)) => return Err(anyhow!(Usage(format!("{p} is not the first part of a bundle of the kit: give its NAME.part001")))),
        (None, _, None) => return Err(anyhow!(Precondition(format!("the kit holds no bundle for {target}")))),
        _ => {
            return Err(anyhow!(Usage(format!(
                "the kit holds several bundles for {target}: give the first part (NAME.part001, or the bundle) of the one to install"
            ))))
        }
    };
    Ok(Some(KitBundle {
        name: file.name.clone(),
        parts: file
            .parts
            .iter()
            .map(|p| PartSource::new(p, &vols))
            .collect(),
        size: file.size,
        sha256: file.sha256,
        minisig: minisig(&index, &file.name, &vols),
    }))
}

/// Every part of the bundle and its signature present with the size and SHA-256 the
/// index lists, checked before anything else happens; the bad ones are named.
pub fn check(kb: &KitBundle) -> Result<()> {
    crate::steps::step(&format!(
        "checking the parts of {} against the signed kit index",
        kb.name
    ));
    let mut r = PartsReader::new(kb.parts.iter().chain([&kb.minisig]).cloned().collect());
    r.drain();
    bad(r.problems())
}

/// The bundle's bytes: the file, or the kit's parts chained; one reader type either way,
/// read as `&mut dyn Read` like the verifier does, so the reader is compiled once.
pub fn open_source(bundle: &Path, kit: Option<&KitBundle>) -> Result<Box<dyn Read>> {
    Ok(match kit {
        Some(kb) => Box::new(PartsReader::new(kb.parts.clone())),
        None => Box::new(PartsReader::from_file(
            std::fs::File::open(bundle)
                .map_err(|e| anyhow!(e).context(format!("opening {}", bundle.display())))?,
        )),
    })
}

/// Streams `parts` through the bundle verifier with the detached signature `sig` (which
/// must be there) and judges every part, even after a failure.
fn verify_parts(
    parts: Vec<PartSource>,
    sig: &PartSource,
    keyring: &Keyring,
    limits: &Limits,
    sink: Sink<'_>,
) -> (PartsReader, Result<Outcome, VerifyError>) {
    let mut r = PartsReader::new(parts);
    let result = match &sig.path {
        None => Err(VerifyError::DetachedMissing {
            path: PathBuf::from(&sig.label),
        }),
        Some(sig) => read_detached_signature(sig, limits, DetachedPolicy::Required).and_then(|s| {
            verify_reader(&mut r, s.map(|s| (sig.clone(), s)), keyring, limits, sink)
        }),
    };
    r.drain();
    (r, result)
}

/// `verify_path` for a bundle file, or the chained parts of a kit bundle: bad parts are
/// named, and the joined parts must be the bundle the index lists.
pub fn verify_source(
    bundle: &Path,
    kit: Option<&KitBundle>,
    keyring: &Keyring,
    limits: &Limits,
    sink: Sink<'_>,
) -> Result<Outcome> {
    let Some(kb) = kit else {
        return Ok(
            verify_path(bundle, keyring, limits, DetachedPolicy::IfPresent, sink).map_err(
                |source| Failed {
                    path: bundle.to_owned(),
                    source,
                },
            )?,
        );
    };
    let (r, result) = verify_parts(kb.parts.clone(), &kb.minisig, keyring, limits, sink);
    bad(r.problems())?;
    let outcome = result.map_err(|source| Failed {
        path: PathBuf::from(&kb.name),
        source,
    })?;
    // Each part matched the index, so this only fails if the index contradicts itself.
    if outcome.verified.bundle.sha256 != kb.sha256 {
        bad(vec![format!(
            "{}: the joined parts differ from the signed index",
            kb.name
        )])?;
    }
    Ok(outcome)
}

/// Free space `--tmpdir` must have: the programs the installer runs need little.
pub const TMPDIR_MIN_FREE: u64 = 16 << 20;

/// Why `--tmpdir` cannot serve as scratch space, if it cannot: not a writable directory,
/// or less than [`TMPDIR_MIN_FREE`] free.
pub fn tmpdir_problem(dir: &Path) -> Option<String> {
    // No nix error text: its errno table would cost the installer kilobytes.
    let free = nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK)
        .and_then(|()| nix::sys::statvfs::statvfs(dir))
        .map(|st| st.blocks_available() * st.fragment_size());
    match free {
        Ok(free) if free >= TMPDIR_MIN_FREE => None,
        Ok(free) => Some(format!(
            "--tmpdir {}: {} MiB free, 16 MiB needed",
            dir.display(),
            free >> 20
        )),
        Err(_) => Some(format!(
            "--tmpdir {} is not a writable directory",
            dir.display()
        )),
    }
}

/// One line of the `verify --kit` table: a part, or a copy every volume carries.
#[derive(Debug, Serialize)]
pub struct Row {
    /// `VOL-002/NAME` (`NAME` in a kit that is not split).
    pub part: String,
    /// `2/3`, or `copy`.
    pub order: String,
    pub bytes: u64,
    pub status: String,
}

#[derive(Debug, Serialize)]
pub struct KitReport {
    pub kit: String,
    pub key_id: String,
    /// 0: not split.
    pub volumes: u32,
    /// `kit`, or the one volume that was checked on its own.
    pub checked: String,
    pub parts: Vec<Row>,
    /// Each bundle and installer read whole: `NAME: verdict`.
    pub files: Vec<String>,
}

/// Adds a row per part `r` has read (in `order`); returns whether all are ok.
fn record(
    r: &PartsReader,
    order: Vec<String>,
    report: &mut KitReport,
    problems: &mut Vec<String>,
) -> bool {
    let bad = r.problems();
    for ((src, st), order) in r.parts().iter().zip(r.status()).zip(order) {
        report.parts.push(Row {
            part: src.label.clone(),
            order,
            bytes: src.size,
            status: st.to_string(),
        });
    }
    let ok = bad.is_empty();
    problems.extend(bad);
    ok
}

fn discard(_: &FileEntry, r: &mut dyn Read) -> io::Result<()> {
    io::copy(r, &mut io::sink()).map(|_| ())
}

/// `verify --kit DIR`: DIR is a kit (all of it is checked) or one volume of a split kit
/// (only what that volume holds). Prints the table (or JSON); any problem fails with
/// every bad part named.
pub fn verify_command(
    dir: &Path,
    keyring: &Keyring,
    limits: &Limits,
    extra: &[PathBuf],
    json: bool,
) -> Result<()> {
    let index_path = kit::find_index(dir)?;
    let (index, key_id, bytes, vols) = open(&index_path, keyring, extra)?;
    // Pointed at a volume of a split kit: that volume on its own.
    let only = if index.volumes > 0 && index_path.parent() == Some(dir) {
        vols.base_volume()
    } else {
        None
    };
    let mut report = KitReport {
        kit: dir.display().to_string(),
        key_id: key_id.to_string(),
        volumes: index.volumes,
        checked: only.clone().unwrap_or_else(|| "kit".into()),
        parts: Vec::new(),
        files: Vec::new(),
    };
    let mut problems = Vec::new();
    for f in &index.files {
        let scope: Vec<usize> = (0..f.parts.len())
            .filter(|&i| only.as_ref().is_none_or(|v| f.parts[i].volume == *v))
            .collect();
        let sources: Vec<PartSource> = scope
            .iter()
            .map(|&i| PartSource::new(&f.parts[i], &vols))
            .collect();
        let order = scope
            .iter()
            .map(|i| format!("{}/{}", i + 1, f.parts.len()))
            .collect();
        let whole = !f.parts.is_empty() && scope.len() == f.parts.len();
        let (r, verdict) = match &f.kind {
            Kind::Bundle { .. } if whole => {
                let (r, result) = verify_parts(
                    sources,
                    &minisig(&index, &f.name, &vols),
                    keyring,
                    limits,
                    &mut discard,
                );
                let verdict = match result {
                    Err(e) => format!("FAILED: {e}"),
                    Ok(o) if o.verified.bundle.sha256 != f.sha256 => {
                        "FAILED: the joined parts differ from the signed index".into()
                    }
                    Ok(o) => {
                        let m = &o.verified.manifest;
                        format!("ok: {} {} for {}, every file matches its signed manifest, detached signature verified", m.app.name, m.app.version, m.target)
                    }
                };
                (r, Some(verdict))
            }
            kind => {
                let mut r = PartsReader::new(sources);
                r.drain();
                (
                    r,
                    (whole && matches!(kind, Kind::Installer { .. }))
                        .then(|| "ok: every part matches the signed index".to_owned()),
                )
            }
        };
        let parts_ok = record(&r, order, &mut report, &mut problems);
        if let Some(mut verdict) = verdict {
            if !parts_ok {
                verdict = "NOT VERIFIED: a part is missing or corrupt".into();
            }
            let line = format!("{}: {verdict}", f.name);
            if parts_ok && !verdict.starts_with("ok") {
                problems.push(line.clone());
            }
            report.files.push(line);
        }
    }
    // Every volume carries the same signed index (one from another kit is caught) and
    // copies of the key and read-me.
    let mut copies = Vec::new();
    for v in only.map_or_else(|| index.volume_names(), |v| vec![v]) {
        let label = |name: &str| {
            if v == "." {
                name.to_owned()
            } else {
                format!("{v}/{name}")
            }
        };
        copies.push(PartSource {
            label: label(INDEX_NAME),
            path: vols.locate(&v, INDEX_NAME),
            size: bytes.len() as u64,
            sha256: Sha256::of(&bytes),
        });
        for f in index.files.iter().filter(|f| f.parts.is_empty()) {
            copies.push(PartSource {
                label: label(&f.name),
                path: vols.locate(&v, &f.name),
                size: f.size,
                sha256: f.sha256,
            });
        }
    }
    let mut r = PartsReader::new(copies);
    r.drain();
    record(
        &r,
        vec!["copy".into(); r.parts().len()],
        &mut report,
        &mut problems,
    );
    if json {
        if problems.is_empty() {
            ferry_format::report::print_json("ferry-install", "verify", &report);
        }
    } else {
        println!(
            "{} at {}: {} volumes (0: one directory), index signed by {}\n",
            report.checked, report.kit, report.volumes, report.key_id
        );
        let w = report.parts.iter().map(|x| x.part.len()).max().unwrap_or(0);
        println!("{:<w$}  PART  {:>12}  STATUS", "FILE", "BYTES");
        for x in &report.parts {
            println!(
                "{:<w$}  {:<4}  {:>12}  {}",
                x.part, x.order, x.bytes, x.status
            );
        }
        println!("\n{}", report.files.join("\n"));
    }
    bad(problems)
}

#[cfg(test)]
mod tests {
    #[test]
    fn part_names() {
        assert!(super::is_part_name(
            "hello-1.0.0-linux-amd64.tar.zst.part001"
        ));
        assert!(super::is_part_name("x.part1234"));
        for n in ["hello.tar.zst", "x.part01", "x.part001a", "kit.index"] {
            assert!(!super::is_part_name(n), "{n}");
        }
    }
}
