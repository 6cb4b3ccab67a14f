//! `ferry-install verify`: check a bundle without installing anything.

use std::path::Path;

use anyhow::Result;
use ferry_format::keyring::Keyring;
use ferry_format::verify::{verify_file, DetachedPolicy, Report};
use ferry_format::Limits;

pub fn run(
    bundle: &Path,
    keyring: &Keyring,
    limits: &Limits,
    policy: DetachedPolicy,
) -> Result<Report> {
    Ok(verify_file(bundle, keyring, limits, policy)?)
}

pub fn print_human(r: &Report) {
    r.print_human();
}
