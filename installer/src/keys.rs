//! Which public keys this host trusts.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use ferry_format::keyring::Keyring;

use crate::cli::KeyArgs;

/// `--pubkey` files if given, else every `*.pub` in the keyring directory (sorted).
pub fn load(args: &KeyArgs, root: &Path) -> Result<Keyring> {
    if !args.pubkeys.is_empty() {
        return Keyring::load(&args.pubkeys).context("loading --pubkey keys");
    }
    let dir = if args.keyring.is_absolute() {
        root.join(args.keyring.strip_prefix("/").unwrap_or(&args.keyring))
    } else {
        args.keyring.clone()
    };
    let mut paths = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "pub") {
                paths.push(p);
            }
        }
    }
    paths.sort();
    if paths.is_empty() {
        bail!(crate::exit::Precondition(format!(
            "no trusted keys: pass --pubkey PUB or put *.pub files in {}",
            dir.display()
        )));
    }
    Keyring::load(&paths).with_context(|| format!("loading keys from {}", dir.display()))
}
