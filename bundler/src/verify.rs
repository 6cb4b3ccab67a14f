//! `ferry verify`: the same check the installer makes, before anything is carried over.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use ferry_format::keyring::Keyring;
use ferry_format::verify::{verify_path, DetachedPolicy, Failed, Report};
use ferry_format::Limits;

pub fn run(bundle: &Path, pubkeys: &[PathBuf], policy: DetachedPolicy) -> Result<Report> {
    let keyring = Keyring::load(pubkeys).context("loading trusted public keys")?;
    let outcome = verify_path(bundle, &keyring, &Limits::default(), policy, &mut |_, r| {
        std::io::copy(r, &mut std::io::sink()).map(|_| ())
    })
    .map_err(|source| Failed {
        path: bundle.to_owned(),
        source,
    })?;
    Ok(Report::new(bundle, &outcome))
}

pub fn print_human(r: &Report) {
    println!(
        "OK {} {} {}: signed by {}, {} files ({} bytes) match the manifest; detached signature {}",
        r.app, r.version, r.target, r.key_id, r.files, r.payload_bytes, r.detached_signature
    );
}
