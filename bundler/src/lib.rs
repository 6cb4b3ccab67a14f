//! `ferry`, the connected-side half: Go project in, signed reproducible bundle out.
//!
//! - [`cli`]: the command line.
//! - [`project`]: the `ferry.toml` file.
//! - [`gobuild`]: vendoring, cross-compiling, build info.
//! - [`source`]: the source revision and date of a build (git, module cache, flags).
//! - [`before`]: the `[build] before` steps, run only with `--run-before`.
//! - [`elf`]: the static-binary check and the check that every `-X` variable exists.
//! - [`render`]: templates for the unit, logrotate, sysusers, tmpfiles and configs.
//! - [`checks`]: build-time checks with systemd-analyze and logrotate.
//! - [`sbom`]: the `CycloneDX` SBOM.
//! - [`build`]: the `build` command, packing and signing.
//! - [`sums`]: `SHA256SUMS` and its signature.
//! - [`pack_cmd`]: the `pack` command: a built payload tree into a signed bundle.
//! - [`keys`]: `keygen` and loading the signing key.
//! - [`kit`]: the `kit` command: field kits for removable media, split into volumes.
//! - [`trust_cmd`]: `rotate-key` and `revoke-key` statements.
//! - [`inspect`], [`verify`]: reading bundles back.
//! - [`try_cmd`]: the `try` command: a bundle in a throwaway host, with and without its
//!   sandbox.
//! - [`progress`]: terminal progress.
//! - [`exit`]: errors to exit codes.

pub mod before;
pub mod build;
pub mod checks;
pub mod cli;
pub mod elf;
pub mod exit;
pub mod gobuild;
pub mod inspect;
pub mod keys;
pub mod kit;
pub mod pack_cmd;
pub mod progress;
pub mod project;
pub mod render;
pub mod sbom;
pub mod source;
pub mod sums;
pub mod trust_cmd;
pub mod try_cmd;
pub mod verify;
