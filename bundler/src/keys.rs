//! `ferry keygen` and loading the signing key with its passphrase.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use ferry_format::atomic::write_atomic;
use ferry_format::minisign::{Encryption, SecretKey};
use zeroize::Zeroizing;

/// Where the passphrase comes from when none is in the environment.
pub const PASSPHRASE_ENV: &str = "FERRY_PASSPHRASE";

/// Key protection chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    Scrypt,
    /// For test keys only.
    Unencrypted,
}

pub struct KeyPaths {
    pub secret: PathBuf,
    pub public: PathBuf,
}

/// `--out keys/release` means `keys/release.key` and `keys/release.pub`.
pub fn paths(out: &Path) -> KeyPaths {
    let with = |ext: &str| {
        let mut s = out.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    KeyPaths {
        secret: with(".key"),
        public: with(".pub"),
    }
}

fn passphrase(prompt: &str, confirm: bool) -> Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        bail!("the key is encrypted: set {PASSPHRASE_ENV} or run on a terminal to be asked");
    }
    let p = Zeroizing::new(rpassword::prompt_password(prompt).context("reading passphrase")?);
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("Repeat passphrase: ").context("reading passphrase")?,
        );
        if *again != *p {
            bail!("passphrases differ");
        }
    }
    if p.is_empty() {
        bail!("empty passphrase; use --unencrypted for a test key");
    }
    Ok(p)
}

pub fn keygen(out: &Path, protection: Protection, force: bool) -> Result<KeyPaths> {
    let kp = paths(out);
    for p in [&kp.secret, &kp.public] {
        if p.exists() && !force {
            bail!(
                "{} exists; refusing to overwrite a key (use --force)",
                p.display()
            );
        }
    }
    if let Some(dir) = kp.secret.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let enc = match protection {
        Protection::Scrypt => Encryption::Scrypt {
            passphrase: passphrase("Passphrase for the new key: ", true)?,
        },
        Protection::Unencrypted => Encryption::Unencrypted,
    };
    let sk = SecretKey::generate()?;
    let secret_text = Zeroizing::new(sk.to_file_string(&enc)?);
    write_atomic(&kp.secret, secret_text.as_bytes(), 0o600)
        .with_context(|| format!("writing {}", kp.secret.display()))?;
    write_atomic(
        &kp.public,
        sk.public_key().to_file_string().as_bytes(),
        0o644,
    )
    .with_context(|| format!("writing {}", kp.public.display()))?;
    Ok(kp)
}

/// Loads a minisign secret key (ours or `minisign -G`'s), asking for the passphrase if
/// it is encrypted.
pub fn load_secret(path: &Path) -> Result<SecretKey> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading secret key {}", path.display()))?,
    );
    let encrypted =
        SecretKey::is_encrypted(&text).with_context(|| format!("parsing {}", path.display()))?;
    let pass = if encrypted {
        Some(passphrase(
            &format!("Passphrase for {}: ", path.display()),
            false,
        )?)
    } else {
        None
    };
    SecretKey::parse(&text, pass.as_ref().map(|p| p.as_str()))
        .with_context(|| format!("opening secret key {}", path.display()))
}
