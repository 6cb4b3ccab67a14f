//! `ferry keygen` and loading the signing key with its passphrase.
//!
//! The passphrase never reaches a child process: [`Passphrase::take_from_env`] reads
//! `FERRY_PASSPHRASE` and removes it from the process environment first thing in `main`,
//! while ferry is one thread and has started nothing, so `go`, `git`, `systemd-analyze`
//! and everything they start inherit an environment without it. (A `go` build runs
//! programs a project chooses: `go:generate` is not run, but a toolchain, a `-toolexec`
//! or a compromised module proxy would otherwise see it.) The key file is opened once,
//! without following a symlink, and refused unless it is the caller's and private, as ssh
//! refuses an unprotected private key.

use std::fs::File;
use std::io::{IsTerminal as _, Read as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::atomic::write_atomic;
use ferry_format::minisign::{Encryption, SecretKey};
use zeroize::Zeroizing;

use crate::exit::Precondition;

/// Where the passphrase comes from when none is in the environment.
pub const PASSPHRASE_ENV: &str = "FERRY_PASSPHRASE";

/// A minisign secret key file is two short lines; anything longer is not one.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Keeps this process's memory from other processes of the same user: no ptrace, no
/// `/proc/PID/mem` or `/proc/PID/environ`, no core dump. The decrypted key lives in this
/// memory, and the initial environment block (what `/proc/PID/environ` shows) still holds
/// `FERRY_PASSPHRASE` after [`Passphrase::take_from_env`] removed it from the environment
/// children inherit. (A child running as root can read it anyway; it could read the key
/// file too.) Children are dumpable again after their `execve`, so nothing else changes.
pub fn protect_process() {
    // Best effort: where prctl is refused, the build goes on as before.
    let _ = nix::sys::prctl::set_dumpable(false);
}

/// The passphrase given in `FERRY_PASSPHRASE`, if any, held outside the environment.
pub struct Passphrase(Option<Zeroizing<String>>);

impl Passphrase {
    /// Takes `FERRY_PASSPHRASE` out of the process environment. Call it first in `main`:
    /// removing a variable is only sound while no other thread reads the environment,
    /// and every child spawned afterwards inherits what is left.
    pub fn take_from_env() -> Self {
        let value = std::env::var_os(PASSPHRASE_ENV);
        std::env::remove_var(PASSPHRASE_ENV);
        // A passphrase that is not UTF-8 cannot be one minisign derives a key from; it is
        // dropped (and the terminal asked) as before.
        Self(value.and_then(|v| v.into_string().ok()).map(Zeroizing::new))
    }

    /// No passphrase given: an encrypted key asks on the terminal.
    pub fn none() -> Self {
        Self(None)
    }

    /// Whether one was given.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

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

fn passphrase(given: Passphrase, prompt: &str, confirm: bool) -> Result<Zeroizing<String>> {
    if let Some(p) = given.0 {
        return Ok(p);
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

pub fn keygen(
    out: &Path,
    protection: Protection,
    force: bool,
    given: Passphrase,
) -> Result<KeyPaths> {
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
            passphrase: passphrase(given, "Passphrase for the new key: ", true)?,
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

/// Opens the secret key file once, without following a symlink, and checks the opened
/// file: a regular file, owned by the user running ferry, with no permission for group
/// or others. Anything else is a precondition the user must fix (exit 4), before any
/// passphrase is asked for.
fn open_private(path: &Path) -> Result<File> {
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| {
            // ELOOP: the last component is a symlink.
            if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                anyhow!(Precondition(format!(
                    "secret key {shown} is a symbolic link: give the key file itself, so what is checked is what is read"
                )))
            } else {
                anyhow!(e).context(format!("reading secret key {shown}"))
            }
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading secret key {shown}"))?;
    if !meta.is_file() {
        return Err(anyhow!(Precondition(format!(
            "secret key {shown} is not a regular file"
        ))));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(anyhow!(Precondition(format!(
            "secret key {shown} is owned by uid {}, not by the user running ferry (uid {me}): \
             a key another user controls could be swapped or read; refusing it, as ssh does",
            meta.uid()
        ))));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(anyhow!(Precondition(format!(
            "secret key {shown} has mode {mode:04o}: group or others may access it; \
             refusing it, as ssh does (chmod 600 {shown})"
        ))));
    }
    Ok(file)
}

/// Loads a minisign secret key (ours or `minisign -G`'s), with the given passphrase or
/// one asked on the terminal if it is encrypted. The passphrase is dropped (zeroed) here.
pub fn load_secret(path: &Path, given: Passphrase) -> Result<SecretKey> {
    let file = open_private(path)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading secret key {}", path.display()))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        bail!("{} is too large to be a secret key", path.display());
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| anyhow!("{} is not a minisign secret key (not text)", path.display()))?;
    let encrypted =
        SecretKey::is_encrypted(text).with_context(|| format!("parsing {}", path.display()))?;
    let pass = if encrypted {
        Some(passphrase(
            given,
            &format!("Passphrase for {}: ", path.display()),
            false,
        )?)
    } else {
        None
    };
    SecretKey::parse(text, pass.as_ref().map(|p| p.as_str()))
        .with_context(|| format!("opening secret key {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn code(e: &anyhow::Error) -> ferry_format::report::Code {
        crate::exit::code(e)
    }

    #[test]
    fn unprotected_or_linked_keys_are_refused_with_exit_4() {
        let tmp = tempfile::tempdir().unwrap();
        let kp = keygen(
            &tmp.path().join("k"),
            Protection::Unencrypted,
            false,
            Passphrase::none(),
        )
        .unwrap();
        load_secret(&kp.secret, Passphrase::none()).unwrap();

        let set_mode = |m: u32| {
            std::fs::set_permissions(&kp.secret, std::fs::Permissions::from_mode(m)).unwrap();
        };
        for mode in [0o640, 0o604, 0o644, 0o660, 0o700 | 0o010] {
            set_mode(mode);
            let e = load_secret(&kp.secret, Passphrase::none()).unwrap_err();
            assert_eq!(
                code(&e),
                ferry_format::report::Code::PreconditionNotMet,
                "{e:#}"
            );
            assert!(e.to_string().contains("chmod 600"), "{e:#}");
        }
        set_mode(0o400);
        load_secret(&kp.secret, Passphrase::none()).unwrap();
        set_mode(0o600);

        let link = tmp.path().join("link.key");
        std::os::unix::fs::symlink(&kp.secret, &link).unwrap();
        let e = load_secret(&link, Passphrase::none()).unwrap_err();
        assert_eq!(
            code(&e),
            ferry_format::report::Code::PreconditionNotMet,
            "{e:#}"
        );
        assert!(e.to_string().contains("symbolic link"), "{e:#}");

        let e = load_secret(tmp.path(), Passphrase::none()).unwrap_err();
        assert_eq!(
            code(&e),
            ferry_format::report::Code::PreconditionNotMet,
            "{e:#}"
        );

        let e = load_secret(&tmp.path().join("missing.key"), Passphrase::none()).unwrap_err();
        assert_eq!(code(&e), ferry_format::report::Code::Failed, "{e:#}");
    }

    #[test]
    fn the_process_is_not_dumpable() {
        protect_process();
        assert!(!nix::sys::prctl::get_dumpable().unwrap());
        // Its own descriptors stay readable (the project file check relies on it).
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&f);
        assert_eq!(
            std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap(),
            Path::new("/dev/null")
        );
    }

    /// Owned by someone else: only root can make such a file here, so the test runs the
    /// check only when it can (CI runs as root).
    #[test]
    fn a_key_owned_by_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: cannot make a file owned by another user; not checked");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let kp = keygen(
            &tmp.path().join("k"),
            Protection::Unencrypted,
            false,
            Passphrase::none(),
        )
        .unwrap();
        nix::unistd::chown(&kp.secret, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let e = load_secret(&kp.secret, Passphrase::none()).unwrap_err();
        assert_eq!(
            code(&e),
            ferry_format::report::Code::PreconditionNotMet,
            "{e:#}"
        );
        assert!(e.to_string().contains("owned by uid 65534"), "{e:#}");
    }
}
