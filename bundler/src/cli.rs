//! Command-line interface of `ferry`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ferry_format::manifest::Target;

#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about = "Build signed, reproducible bundles of Go services for air-gapped Linux hosts",
    long_about = None,
)]
pub struct Cli {
    /// Print one JSON document on stdout (results or error).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a signing key pair in minisign's formats (PATH.key, PATH.pub).
    Keygen {
        /// Path prefix: writes PATH.key (0600) and PATH.pub.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// Do not encrypt the secret key (test keys only).
        #[arg(long)]
        unencrypted: bool,
        /// Overwrite existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Sign a statement that NEW replaces OLD, with OLD's secret key; hosts that trust
    /// OLD then trust NEW.
    RotateKey {
        /// The old (currently trusted) secret key.
        #[arg(long, value_name = "OLD.key")]
        old: PathBuf,
        /// The new public key.
        #[arg(long, value_name = "NEW.pub")]
        new: PathBuf,
        /// Where to write the statement (e.g. keys/NEW.rotation).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Sign a revocation of key ids; hosts refuse anything those keys signed.
    RevokeKey {
        /// A trusted secret key that signs the revocation (may be the revoked key).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Key id to revoke (16 hex digits, as minisign prints it; repeatable).
        #[arg(long = "revoke", value_name = "KEYID", required = true)]
        revoke: Vec<String>,
        #[arg(long, default_value = "unspecified")]
        reason: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Vendor, cross-compile and pack a Go project into signed bundles.
    Build {
        /// Project directory holding ferry.toml.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// minisign secret key (passphrase from `FERRY_PASSPHRASE` or a prompt).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Output directory.
        #[arg(long, value_name = "OUT", default_value = "out")]
        out: PathBuf,
        /// Target to build (repeatable), e.g. linux/arm64; default: ferry.toml's.
        #[arg(long = "target", value_name = "linux/ARCH", value_parser = parse_target)]
        targets: Vec<Target>,
        /// Fail, instead of warning, when a build-time check fails or a unit's
        /// security exposure is above the project's threshold.
        #[arg(long)]
        strict: bool,
        /// The source revision recorded in the manifest and rendered by
        /// `{{ revision }}`: a commit hash or tag (1-64 of [0-9A-Za-z._+-]). Default: git's
        /// HEAD, else the module cache's record of the module.
        #[arg(long, value_name = "REV", value_parser = parse_revision)]
        revision: Option<crate::project::types::Revision>,
        /// Run ferry.toml's `[build] before` steps (programs run on this machine, in the
        /// build copy); without it a project that has any is refused (exit 4).
        #[arg(long)]
        run_before: bool,
    },
    /// Assemble a field kit for removable media, optionally split into volumes.
    ///
    /// The kit holds the bundles and their signatures, the static installer, the public
    /// key, a signed index, SHA256SUMS with its signature, and a read-me.
    Kit {
        /// Directory to create (must not exist, or be empty).
        out: PathBuf,
        /// Bundles to carry, each with its .minisig beside it.
        #[arg(required = true, value_name = "BUNDLE")]
        bundles: Vec<PathBuf>,
        /// minisign secret key that signs the index and checksum lists.
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Its public key: the bundles must verify with it, and it travels in the kit.
        #[arg(long, value_name = "PUB")]
        pubkey: PathBuf,
        /// Static ferry-install to carry (repeatable, one per architecture, read from the
        /// ELF header). Default: target/x86_64-unknown-linux-gnu/installer/ferry-install.
        #[arg(long = "installer", value_name = "PATH")]
        installers: Vec<PathBuf>,
        /// Split into volumes of at most SIZE: fat32 (4 GiB - 1), dvd, bd25, or bytes
        /// (1048576, 512M, 4G).
        #[arg(long, value_name = "SIZE", value_parser = crate::kit::parse_volume_size)]
        volume_size: Option<crate::kit::VolumeSize>,
    },
    /// Pack an already-built payload tree into a signed bundle (no Go, no templates):
    /// files under DIR become payload entries, their role taken from the top-level
    /// directory (bin/, config/ENV/, systemd/, sysusers/, ...).
    Pack {
        /// The payload tree; needs bin/*, systemd/APP.service and sysusers/APP.conf.
        dir: PathBuf,
        #[arg(long, value_name = "NAME")]
        app: String,
        #[arg(long, value_name = "V")]
        version: String,
        #[arg(long, value_name = "linux/ARCH", value_parser = parse_target)]
        target: Target,
        /// minisign secret key (passphrase from `FERRY_PASSPHRASE` or a prompt).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The bundle file to write (its detached signature goes to OUT.minisig).
        #[arg(long, value_name = "OUT")]
        out: PathBuf,
        /// zstd level (1-22).
        #[arg(long, value_name = "N", default_value_t = 9,
              value_parser = clap::value_parser!(i32).range(1..=22))]
        level: i32,
    },
    /// Show a bundle's manifest, footprint, files, modules and signer (verifies nothing).
    ///
    /// The footprint is what the service may do to a host beyond placing its own files:
    /// account, groups, capabilities, network, writable paths, sandbox relaxations, exec
    /// probe, grants. With --policy, exits 4 when that host policy would refuse the bundle
    /// (with --json, the document then holds both the result and the error).
    Inspect {
        bundle: PathBuf,
        /// The release this one would replace: show what the footprint adds and removes.
        #[arg(long, value_name = "OLD")]
        previous: Option<PathBuf>,
        /// A host policy (/etc/ferry/policy.toml format): would that host accept it?
        /// The signer rule is judged on the key id the bundle claims (not verified).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// The environment to show (each has its own sandbox and probe); default: the
        /// bundle's default environment.
        #[arg(long, value_name = "NAME")]
        env: Option<String>,
    },
    /// Check for silent breakage: run a bundle in a throwaway network-less host under its
    /// unit, then without its sandbox, and name each directive that makes a difference.
    ///
    /// Needs root and systemd-nspawn. Compares the unit's state, the health probe's answer
    /// (and each --url's) and the service's journal error lines; a difference is bisected
    /// over the sandbox knobs and address families down to the settings that remove it.
    /// Exit 0: no difference; 5: a difference (each cause named with its ferry.toml
    /// setting); 1: unhealthy even without the sandbox; 3/4: the installer refused it.
    Try {
        /// The bundle to try (its .minisig beside it is used), or a project directory
        /// (holding ferry.toml), built for this machine and signed with a throwaway key.
        #[arg(required_unless_present = "prepare", value_name = "BUNDLE|PROJECT")]
        bundle: Option<PathBuf>,
        /// Public key the throwaway host trusts (repeatable; not for a PROJECT).
        #[arg(long = "pubkey", value_name = "PUB")]
        pubkeys: Vec<PathBuf>,
        /// The static ferry-install to run there (default: from PATH, else
        /// target/x86_64-unknown-linux-gnu/installer/ferry-install).
        #[arg(long, value_name = "PATH")]
        installer: Option<PathBuf>,
        /// Environment to install (ferry-install --env) and try, with its own unit,
        /// sandbox and health probe; default: the bundle's default environment.
        #[arg(long, value_name = "NAME")]
        env: Option<String>,
        /// Another http:// URL to compare besides the health probe (repeatable).
        #[arg(long = "url", value_name = "URL")]
        urls: Vec<String>,
        /// A host policy for the throwaway host (default: ferry's default policy).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Build (or check) the throwaway host's cached root first: Debian 12 by
        /// debootstrap into /var/cache/ferry/host-bookworm, as scripts/mkhost does.
        #[arg(long)]
        prepare: bool,
    },
    /// Verify a bundle: manifest signature, every file's SHA-256, detached signature.
    Verify {
        bundle: PathBuf,
        /// Trusted minisign public key (repeatable).
        #[arg(long = "pubkey", value_name = "PUB", required = true)]
        pubkeys: Vec<PathBuf>,
        /// Fail if BUNDLE.minisig is missing.
        #[arg(long)]
        require_detached: bool,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Keygen { .. } => "keygen",
            Self::RotateKey { .. } => "rotate-key",
            Self::RevokeKey { .. } => "revoke-key",
            Self::Build { .. } => "build",
            Self::Pack { .. } => "pack",
            Self::Kit { .. } => "kit",
            Self::Inspect { .. } => "inspect",
            Self::Verify { .. } => "verify",
            Self::Try { .. } => "try",
        }
    }
}

/// `--target` values: a bad one is a usage error (exit 2), found before any work.
fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(s).ok_or_else(|| format!("unsupported target {s:?} (linux/amd64 or linux/arm64)"))
}

/// `--revision` values: a bad one is a usage error (exit 2), found before any work.
fn parse_revision(s: &str) -> Result<crate::project::types::Revision, String> {
    crate::project::types::Revision::new(s).map_err(|e| e.0)
}
