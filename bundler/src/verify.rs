//! `ferry verify`: the same check the installer makes, before anything is carried over.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use ferry_format::keyring::Keyring;
use ferry_format::verify::{verify_file, DetachedPolicy, Report};
use ferry_format::Limits;

pub fn run(bundle: &Path, pubkeys: &[PathBuf], policy: DetachedPolicy) -> Result<Report> {
    let keyring = Keyring::load(pubkeys).context("loading trusted public keys")?;
    Ok(verify_file(bundle, &keyring, &Limits::default(), policy)?)
}

pub fn print_human(r: &Report) {
    r.print_human();
}
