//! Which public keys this host trusts: root keys, rotation statements that extend trust
//! to new keys, and revocations that always win (see `ferry_format::trust`).
//!
//! The trust store is checked as sshd's `StrictModes` checks `~/.ssh`: `/etc/ferry`, the
//! keyring directory, its subdirectories and every file in them must be root's and not
//! writable by group or others, and nothing in them may be a symlink; otherwise the
//! install stops (exit 4) naming the path. Whoever could write there could trust any key.

use std::path::PathBuf;

use anyhow::{anyhow, Context as _, Result};
use ferry_format::install::HostPath;
use ferry_format::keyring::Keyring;
use ferry_format::minisign::{KeyId, PublicKey};
use ferry_format::trust::{Statement, TrustStore};

use crate::cli::KeyArgs;
use crate::exit::Precondition;
use crate::host::Host;
use crate::rootfs::{Dir, Kind, Meta};

/// Largest key, statement or list file read.
const MAX_TRUST_FILE: u64 = 64 << 10;

fn unsafe_path(path: &str, m: &Meta) -> anyhow::Error {
    anyhow!(Precondition(format!(
        "{path} is owned by uid {} with mode {:04o}: the trust store must be root's and not writable by group or others",
        m.uid, m.mode
    )))
}

fn strict(path: &str, m: &Meta) -> Result<()> {
    let me = rustix::process::geteuid().as_raw();
    if (m.uid != 0 && m.uid != me) || m.mode & 0o022 != 0 {
        return Err(unsafe_path(path, m));
    }
    Ok(())
}

/// Checks a trust directory and everything in it (one level of subdirectories).
fn check_tree(dir: &Dir, depth: u32) -> Result<()> {
    let shown = dir.path().display().to_string();
    strict(&shown, &dir.meta()?)?;
    for name in dir.entries()? {
        let path = dir.shown(&name).display().to_string();
        let m = dir
            .meta_at(&name)?
            .ok_or_else(|| anyhow!("{path} vanished"))?;
        match m.kind {
            Kind::Symlink => {
                return Err(anyhow!(Precondition(format!(
                    "{path} is a symlink: the trust store holds files only"
                ))))
            }
            Kind::Dir if depth > 0 => check_tree(&dir.must_child(&name)?, depth - 1)?,
            _ => strict(&path, &m)?,
        }
    }
    Ok(())
}

/// Opens the keyring directory and checks it (and `/etc/ferry` above the default one).
fn open_keyring(args: &KeyArgs, host: &Host) -> Result<Option<Dir>> {
    let dir = if args.keyring.is_absolute() {
        let hp = HostPath::new(&args.keyring.to_string_lossy())
            .map_err(|e| anyhow!(crate::kit::Usage(format!("--keyring: {e}"))))?;
        if let Some(parent) = hp.parent() {
            if let Some(p) = host.open_dir(&parent)? {
                if parent.as_str() != "/etc" {
                    strict(&parent.to_string(), &p.meta()?)?;
                }
            }
        }
        host.open_dir(&hp)?
    } else {
        match Dir::open(&args.keyring) {
            Ok(d) => Some(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("opening {}", args.keyring.display())),
        }
    };
    if let Some(d) = &dir {
        check_tree(d, 1)?;
    }
    Ok(dir)
}

fn read_in(dir: &Dir, name: &str) -> Result<Vec<u8>> {
    dir.read_at(name, MAX_TRUST_FILE)
        .with_context(|| format!("reading {}", dir.shown(name).display()))?
        .ok_or_else(|| anyhow!("{} vanished", dir.shown(name).display()))
}

fn files_with_ext(dir: Option<&Dir>, ext: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let Some(dir) = dir else {
        return Ok(Vec::new());
    };
    let mut v = Vec::new();
    for name in dir.entries()? {
        if name.ends_with(&format!(".{ext}"))
            && dir.meta_at(&name)?.is_some_and(|m| m.kind == Kind::File)
        {
            v.push((dir.shown(&name).display().to_string(), read_in(dir, &name)?));
        }
    }
    Ok(v)
}

fn read_path(p: &PathBuf) -> Result<Vec<u8>> {
    let data = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    if data.len() as u64 > MAX_TRUST_FILE {
        return Err(anyhow!("{} is larger than 64 KiB", p.display()));
    }
    Ok(data)
}

fn public_key(origin: &str, data: &[u8]) -> Result<PublicKey> {
    let text = std::str::from_utf8(data)
        .map_err(|_| anyhow!("loading trusted key {origin}: not UTF-8"))?;
    PublicKey::parse(text).map_err(|e| {
        let hint = if text.contains("secret key") {
            " (this is a secret key: pass the .pub file)"
        } else {
            ""
        };
        anyhow!("loading trusted key {origin}: {e}{hint}")
    })
}

/// Key ids listed one per line in the keyring's `revoked` file (`#` starts a comment).
fn revoked_ids(origin: &str, data: &[u8]) -> Result<Vec<KeyId>> {
    let text = std::str::from_utf8(data).map_err(|_| anyhow!("{origin}: not UTF-8"))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| (i, l.split('#').next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            l.parse::<KeyId>()
                .map_err(|_| anyhow!("{origin}:{}: {l:?} is not a key id", i + 1))
        })
        .collect()
}

/// Roots from `--pubkey` (or the keyring directory's `*.pub`), plus the directory's
/// `rotations/*.rotation`, `revocations/*.revocation` and `revoked` list, plus any
/// `--rotation`/`--revocation` files. `note` receives how each key came to be trusted.
pub fn load(args: &KeyArgs, host: &Host, note: &mut dyn FnMut(&str)) -> Result<Keyring> {
    let dir = open_keyring(args, host)?;
    let shown = dir.as_ref().map_or_else(
        || args.keyring.display().to_string(),
        |d| d.path().display().to_string(),
    );
    let host_keys = files_with_ext(dir.as_ref(), "pub")?;
    let (roots, revokers): (Vec<(String, Vec<u8>)>, _) = if args.pubkeys.is_empty() {
        (host_keys, Vec::new())
    } else {
        // `--pubkey` replaces the host's keys for this run; their revocations still count.
        let given = args
            .pubkeys
            .iter()
            .map(|p| Ok((p.display().to_string(), read_path(p)?)))
            .collect::<Result<_>>()?;
        (given, host_keys)
    };
    if roots.is_empty() {
        return Err(anyhow!(Precondition(format!(
            "no trusted keys: pass --pubkey PUB or put *.pub files in {shown}"
        ))));
    }
    let roots = roots
        .iter()
        .map(|(origin, data)| public_key(origin, data))
        .collect::<Result<Vec<_>>>()?;
    let revokers = revokers
        .iter()
        .map(|(origin, data)| public_key(origin, data))
        .collect::<Result<Vec<_>>>()?;
    let sub = |name: &str| -> Result<Option<Dir>> {
        match &dir {
            Some(d) => Ok(d.child(name)?),
            None => Ok(None),
        }
    };
    let statement = |(origin, text): (String, Vec<u8>)| Statement { origin, text };
    let mut rotations: Vec<Statement> = files_with_ext(sub("rotations")?.as_ref(), "rotation")?
        .into_iter()
        .map(statement)
        .collect();
    for p in &args.rotations {
        rotations.push(statement((p.display().to_string(), read_path(p)?)));
    }
    let mut revocations: Vec<Statement> =
        files_with_ext(sub("revocations")?.as_ref(), "revocation")?
            .into_iter()
            .map(statement)
            .collect();
    for p in &args.revocations {
        revocations.push(statement((p.display().to_string(), read_path(p)?)));
    }
    let revoked = match &dir {
        Some(d) if d.meta_at("revoked")?.is_some() => revoked_ids(
            &d.shown("revoked").display().to_string(),
            &read_in(d, "revoked")?,
        )?,
        _ => Vec::new(),
    };
    let store = TrustStore {
        roots,
        rotations,
        revocations,
        revoked_ids: revoked,
        revokers,
    };
    // The statement's own error names it and the problem: one line.
    let resolved = store.resolve()?;
    for n in &resolved.notes {
        note(n);
    }
    if resolved.keyring.is_empty() {
        return Err(anyhow!(Precondition("every trusted key is revoked".into())));
    }
    Ok(resolved.keyring)
}

#[cfg(test)]
mod tests;
