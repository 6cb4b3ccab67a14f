//! `SHA256SUMS` for the whole output directory, and its signify-embedded signature, in
//! the one form both `sha256sum -c` and `signify -C` accept.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use ferry_format::atomic::write_atomic;
use ferry_format::digest::sha256_file;
use ferry_format::minisign::SecretKey;
use ferry_format::signify;
use ferry_format::sums::SumsList;

pub const SUMS: &str = "SHA256SUMS";
pub const SUMS_SIG: &str = "SHA256SUMS.sig";

/// Lists every regular file in `out` (not the lists themselves, not hidden temp files).
pub fn write(out: &Path, sk: &SecretKey) -> Result<(PathBuf, PathBuf)> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file()
            && !name.starts_with('.')
            && name != SUMS
            && name != SUMS_SIG
        {
            names.push(name);
        }
    }
    names.sort();
    let mut list = SumsList::new();
    for name in names {
        let (digest, _) =
            sha256_file(&out.join(&name)).with_context(|| format!("hashing {name}"))?;
        list.push(name.clone(), *digest.as_bytes())
            .with_context(|| format!("{name} cannot be listed in {SUMS}"))?;
    }
    let text = list.to_string();
    let sums = out.join(SUMS);
    write_atomic(&sums, text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", sums.display()))?;
    let sig_text = signify::sign_embedded(
        sk,
        text.as_bytes(),
        "verify with signify -C -p release.pub -x SHA256SUMS.sig",
    )?;
    let sig = out.join(SUMS_SIG);
    write_atomic(&sig, sig_text.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", sig.display()))?;
    Ok((sums, sig))
}
