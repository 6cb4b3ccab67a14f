//! Command-line interface of `ferry-install`: what a command line asks for (parsed by
//! [`crate::args`]).

use std::path::PathBuf;

#[derive(Debug)]
pub struct Cli {
    /// Print one JSON document on stdout (results or error).
    pub json: bool,
    pub command: Command,
}

/// Trusted keys: `--pubkey` files, else every `*.pub` in the keyring directory.
#[derive(Debug, Clone)]
pub struct KeyArgs {
    /// Trusted minisign public key (repeatable).
    pub pubkeys: Vec<PathBuf>,
    /// Directory of trusted keys (`*.pub`, used when no --pubkey is given), rotation
    /// statements (`rotations/*.rotation`), revocations (`revocations/*.revocation`) and a
    /// `revoked` list of key ids.
    pub keyring: PathBuf,
    /// Key rotation statement to accept, signed by a trusted key (repeatable).
    pub rotations: Vec<PathBuf>,
    /// Key revocation statement to enforce (repeatable).
    pub revocations: Vec<PathBuf>,
}

/// Size limits for reading a bundle (defaults in README, "Limits").
#[derive(Debug, Clone)]
pub struct LimitArgs {
    /// Largest manifest accepted, bytes.
    pub max_manifest_bytes: Option<u64>,
    /// Largest signature accepted, bytes.
    pub max_signature_bytes: Option<u64>,
    /// Most payload files.
    pub max_files: Option<usize>,
    /// Largest payload file, bytes.
    pub max_file_bytes: Option<u64>,
    /// Largest total payload, bytes.
    pub max_total_bytes: Option<u64>,
    /// Longest archive path, bytes.
    pub max_path_bytes: Option<usize>,
    /// Largest decompression ratio.
    pub max_ratio: Option<u64>,
    /// Largest generated file (unit, rules), bytes.
    pub max_generated_bytes: Option<u64>,
    /// Most `build.before` steps a manifest records.
    pub max_before_steps: Option<usize>,
    /// Longest `build.before` step, bytes.
    pub max_before_step_bytes: Option<usize>,
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
        if let Some(v) = self.max_generated_bytes {
            l.generated_bytes = v;
        }
        if let Some(v) = self.max_ratio {
            l.ratio = v;
        }
        if let Some(v) = self.max_before_steps {
            l.before_steps = v;
        }
        if let Some(v) = self.max_before_step_bytes {
            l.before_step_bytes = v;
        }
        l
    }
}

#[derive(Debug)]
pub enum Command {
    /// Verify a bundle: manifest signature, every file's SHA-256, detached signature.
    Verify {
        bundle: Option<PathBuf>,
        /// Check a field kit instead: every part, bundle and installer against its signed
        /// index (DIR: the kit, or one VOL-NNN volume on its own), as a table.
        kit: Option<PathBuf>,
        /// Another directory holding kit volumes (repeatable: volumes mounted elsewhere).
        volumes: Vec<PathBuf>,
        keys: KeyArgs,
        /// Fail if BUNDLE.minisig is missing.
        require_detached: bool,
        limits: LimitArgs,
    },
    /// Verify a bundle and install it: user, directories, release, configs, unit; start
    /// it and check its health; roll back on failure.
    Install {
        /// A bundle, or a field kit: its directory, its kit.index, or a bundle's first part
        /// (NAME.part001); parts are read in order as one stream, never joined on disk.
        bundle: PathBuf,
        /// Another directory holding kit volumes (repeatable: volumes mounted elsewhere).
        volumes: Vec<PathBuf>,
        /// Scratch space on the host (TMPDIR of the programs the installer runs); nothing
        /// is ever written beside the bundle.
        tmpdir: PathBuf,
        keys: KeyArgs,
        /// Environment whose configuration to install (default: the bundle's default).
        env: Option<String>,
        /// Install into an offline root (image building): everything but starting.
        root: Option<PathBuf>,
        /// Verify and print the plan; change nothing.
        dry_run: bool,
        /// Lay out and enable, but do not (re)start the service.
        no_start: bool,
        /// Allow installing a version older than the installed one.
        allow_downgrade: bool,
        /// Allow an upgrade that widens the footprint.
        allow_escalation: bool,
        limits: LimitArgs,
    },
    /// Show an installed application's release, service state and health.
    Status { app: String, root: Option<PathBuf> },
    /// List installed applications.
    List { root: Option<PathBuf> },
    /// Return to the previous release.
    Rollback { app: String, root: Option<PathBuf> },
    /// Remove an application; configuration, data and logs stay unless --purge.
    Uninstall {
        app: String,
        /// Also remove configuration, data and logs.
        purge: bool,
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
