//! `ferry verify`: the same check the installer makes, before anything is carried over.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use ferry_format::keyring::Keyring;
use ferry_format::verify::{verify_path, DetachedPolicy, Report};
use ferry_format::Limits;

pub fn run(bundle: &Path, pubkeys: &[PathBuf], policy: DetachedPolicy) -> Result<Report> {
    let keyring = Keyring::load(pubkeys).context("loading trusted public keys")?;
    let outcome = verify_path(bundle, &keyring, &Limits::default(), policy, &mut |_, r| {
        std::io::copy(r, &mut std::io::sink()).map(|_| ())
    })
    .with_context(|| format!("verifying {}", bundle.display()))?;
    Ok(Report::new(bundle, &outcome))
}

pub fn print_human(r: &Report) {
    println!(
        "OK {} {} {}: signed by {}, {} files ({} bytes) match the manifest; detached signature {}",
        r.app, r.version, r.target, r.key_id, r.files, r.payload_bytes, r.detached_signature
    );
}
