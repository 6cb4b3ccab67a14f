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
    /// Directory of trusted keys (`*.pub`, used when no --pubkey is given), rotation
    /// statements (`rotations/*.rotation`), revocations (`revocations/*.revocation`) and a
    /// `revoked` list of key ids.
    #[arg(long, value_name = "DIR", default_value = "/etc/ferry/keys")]
    pub keyring: PathBuf,
    /// Key rotation statement to accept, signed by a trusted key (repeatable).
    #[arg(long = "rotation", value_name = "FILE")]
    pub rotations: Vec<PathBuf>,
    /// Key revocation statement to enforce (repeatable).
    #[arg(long = "revocation", value_name = "FILE")]
    pub revocations: Vec<PathBuf>,
}

/// Size limits for reading a bundle (defaults in README, "Limits").
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest manifest accepted, bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_manifest_bytes: Option<u64>,
    /// Largest signature accepted, bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_signature_bytes: Option<u64>,
    /// Most payload files.
    #[arg(long, value_name = "N")]
    pub max_files: Option<usize>,
    /// Largest payload file, bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_file_bytes: Option<u64>,
    /// Largest total payload, bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_total_bytes: Option<u64>,
    /// Longest archive path, bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_path_bytes: Option<usize>,
    /// Largest decompression ratio.
    #[arg(long, value_name = "N")]
    pub max_ratio: Option<u64>,
}

impl LimitArgs {
    pub fn limits(&self) -> ferry_format::Limits {
        let mut l = ferry_format::Limits::default();
        if let Some(v) = self.max_manifest_bytes {
            l.manifest_bytes = v;
        }
        if let Some(v) = self.max_signature_bytes {
            l.signature_bytes = v;
        }
        if let Some(v) = self.max_files {
            l.files = v;
        }
        if let Some(v) = self.max_file_bytes {
            l.file_bytes = v;
        }
        if let Some(v) = self.max_total_bytes {
            l.total_bytes = v;
        }
        if let Some(v) = self.max_path_bytes {
            l.path_bytes = v;
        }
        if let Some(v) = self.max_ratio {
            l.ratio = v;
        }
        l
    }
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
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Verify a bundle and install it: user, directories, release, configs, unit; start
    /// it and check its health; roll back on failure.
    Install {
        bundle: PathBuf,
        #[command(flatten)]
        keys: KeyArgs,
        /// Environment whose configuration to install (default: the bundle's default).
        #[arg(long, value_name = "NAME")]
        env: Option<String>,
        /// Install into an offline root (image building): everything but starting.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Verify and print the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Lay out and enable, but do not (re)start the service.
        #[arg(long)]
        no_start: bool,
        /// Allow installing a version older than the installed one.
        #[arg(long)]
        allow_downgrade: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Show an installed application's release, service state and health.
    Status {
        app: String,
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// List installed applications.
    List {
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Return to the previous release.
    Rollback {
        app: String,
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Remove an application; configuration, data and logs stay unless --purge.
    Uninstall {
        app: String,
        /// Also remove configuration, data and logs.
        #[arg(long)]
        purge: bool,
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Verify { .. } => "verify",
            Self::Install { .. } => "install",
            Self::Status { .. } => "status",
            Self::List { .. } => "list",
            Self::Rollback { .. } => "rollback",
            Self::Uninstall { .. } => "uninstall",
        }
    }
}
