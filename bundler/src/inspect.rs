//! `ferry inspect`: what a bundle says about itself, trusting none of it.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context as _, Result};
use ferry_format::archive::read_manifest_unverified;
use ferry_format::manifest::Manifest;
use ferry_format::Limits;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub bundle: String,
    /// Key id from the embedded signature; not verified by `inspect`.
    pub signer_key_id: String,
    pub trusted_comment: String,
    pub manifest_sha256: String,
    pub manifest: Manifest,
}

pub fn run(path: &Path) -> Result<Inspection> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (manifest, sig, digest) =
        read_manifest_unverified(BufReader::new(file), &Limits::default())
            .with_context(|| format!("reading {}", path.display()))?;
    Ok(Inspection {
        bundle: path.display().to_string(),
        signer_key_id: sig.key_id.to_string(),
        trusted_comment: sig.trusted_comment.clone(),
        manifest_sha256: digest.to_string(),
        manifest,
    })
}

pub fn print_human(i: &Inspection) {
    let m = &i.manifest;
    println!("bundle:     {}", i.bundle);
    println!("app:        {} {}", m.app.name, m.app.version);
    println!("target:     {}", m.target);
    println!(
        "signer:     {} (not verified; use `ferry verify`)",
        i.signer_key_id
    );
    println!("manifest:   sha256:{}", i.manifest_sha256);
    println!("go:         {} ({})", m.build.go_version, m.build.module);
    println!(
        "source:     {}{}",
        m.build
            .source_revision
            .as_deref()
            .unwrap_or("(no revision)"),
        if m.build.source_dirty { " (dirty)" } else { "" }
    );
    println!(
        "built at:   SOURCE_DATE_EPOCH={}",
        m.build.source_date_epoch
    );
    println!(
        "service:    {} as {}:{}",
        m.app.name.layout().unit_name(),
        m.install.user,
        m.install.group
    );
    println!(
        "envs:       {} (default {})",
        m.install
            .environments
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        m.install.default_env
    );
    println!("files:");
    for f in &m.files {
        println!(
            "  {} {:>10} {:<9} {}  {}",
            f.mode,
            f.size,
            format!("{:?}", f.role).to_lowercase(),
            f.sha256,
            f.path
        );
    }
    println!("modules:");
    for md in &m.modules {
        println!(
            "  {}@{} {}",
            md.path,
            md.version,
            md.sum.as_deref().unwrap_or("-")
        );
    }
}
