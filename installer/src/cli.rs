//! Command-line interface of `ferry-install`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ferry-install",
    version,
    about = "Verify and install ferry bundles on air-gapped systemd hosts",
    long_about = None,
)]
pub struct Cli {
    /// Print one JSON document on stdout (results or error).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Trusted keys: `--pubkey` files, else every `*.pub` in the keyring directory.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Trusted minisign public key (repeatable).
    #[arg(long = "pubkey", value_name = "PUB")]
    pub pubkeys: Vec<PathBuf>,
    /// Directory of trusted keys, used when no --pubkey is given.
    #[arg(long, value_name = "DIR", default_value = "/etc/ferry/keys")]
    pub keyring: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify a bundle: manifest signature, every file's SHA-256, detached signature.
    Verify {
        bundle: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        /// Fail if BUNDLE.minisig is missing.
        #[arg(long)]
        require_detached: bool,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Verify { .. } => "verify",
        }
    }
}
