//! `ferry-install verify`: check a bundle without installing anything.

use std::path::Path;

use anyhow::Result;
use ferry_format::keyring::Keyring;
use ferry_format::verify::{verify_path, DetachedPolicy, Failed, Report};
use ferry_format::Limits;

pub fn run(bundle: &Path, keyring: &Keyring, limits: &Limits, policy: DetachedPolicy) -> Result<Report> {
    let outcome = verify_path(bundle, keyring, limits, policy, &mut |_, r| {
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
