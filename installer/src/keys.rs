//! Which public keys this host trusts: root keys, rotation statements that extend trust
//! to new keys, and revocations that always win (see `ferry_format::trust`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use ferry_format::keyring::Keyring;
use ferry_format::minisign::{KeyId, PublicKey};
use ferry_format::trust::{Statement, TrustStore};

use crate::cli::KeyArgs;
use crate::exit::Precondition;

fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd {
                let p = e?.path();
                if p.extension().is_some_and(|x| x == ext) && p.is_file() {
                    v.push(p);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    v.sort();
    Ok(v)
}

fn statement(path: &Path) -> Result<Statement> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if text.len() > 64 << 10 {
        return Err(anyhow!("{} is larger than 64 KiB", path.display()));
    }
    Ok(Statement {
        origin: path.display().to_string(),
        text,
    })
}

/// Key ids listed one per line in the keyring's `revoked` file (`#` starts a comment).
fn revoked_ids(path: &Path) -> Result<Vec<KeyId>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .enumerate()
        .map(|(i, l)| (i, l.split('#').next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            l.parse::<KeyId>()
                .map_err(|_| anyhow!("{}:{}: {l:?} is not a key id", path.display(), i + 1))
        })
        .collect()
}

/// Roots from `--pubkey` (or the keyring directory's `*.pub`), plus the directory's
/// `rotations/*.rotation`, `revocations/*.revocation` and `revoked` list, plus any
/// `--rotation`/`--revocation` files.
pub fn load(args: &KeyArgs, root: &Path) -> Result<Keyring> {
    let dir = if args.keyring.is_absolute() {
        root.join(args.keyring.strip_prefix("/").unwrap_or(&args.keyring))
    } else {
        args.keyring.clone()
    };
    let root_paths = if args.pubkeys.is_empty() {
        files_with_ext(&dir, "pub")?
    } else {
        args.pubkeys.clone()
    };
    if root_paths.is_empty() {
        return Err(anyhow!(Precondition(format!(
            "no trusted keys: pass --pubkey PUB or put *.pub files in {}",
            dir.display()
        ))));
    }
    let roots = root_paths
        .iter()
        .map(|p| PublicKey::load(p).with_context(|| format!("loading trusted key {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let mut rotation_paths = files_with_ext(&dir.join("rotations"), "rotation")?;
    rotation_paths.extend(args.rotations.iter().cloned());
    let mut revocation_paths = files_with_ext(&dir.join("revocations"), "revocation")?;
    revocation_paths.extend(args.revocations.iter().cloned());
    let store = TrustStore {
        roots,
        rotations: rotation_paths
            .iter()
            .map(|p| statement(p))
            .collect::<Result<_>>()?,
        revocations: revocation_paths
            .iter()
            .map(|p| statement(p))
            .collect::<Result<_>>()?,
        revoked_ids: revoked_ids(&dir.join("revoked"))?,
    };
    let resolved = store.resolve().context("resolving trusted keys")?;
    for n in &resolved.notes {
        crate::install::step(n);
    }
    if resolved.keyring.is_empty() {
        return Err(anyhow!(Precondition("every trusted key is revoked".into())));
    }
    Ok(resolved.keyring)
}
