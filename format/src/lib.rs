//! The ferry bundle format, shared by the bundler and the installer.
//!
//! - [`digest`]: SHA-256 newtype and hashing adapters.
//! - [`entry_path`]: validated relative paths for archive members.
//! - [`mode`]: permission bits as octal strings.
//! - [`limits`]: every size limit in one place.
//! - [`manifest`]: the signed description of a bundle.
//! - [`install`]: the install section a manifest declares (users, directories, ACLs, configs).
//! - [`footprint`]: what a service may do to a host, for checks, policy and reviews.
//! - [`sandbox`]: ferry's hardened unit baseline and the knobs a project may relax.
//! - [`layout`]: where every file of an app lives, on the host and in the payload.
//! - [`conform`]: strict parsers for the generated unit, socket, sysusers, tmpfiles and
//!   logrotate files, and the check that they say no more than the manifest.
//! - [`policy`]: the host's policy: who may sign what, the largest footprint accepted.
//! - [`claims`]: what a signature's trusted comment binds.
//! - [`minisign`], [`signify`]: key and signature formats stock tools read.
//! - [`keyring`]: the set of trusted public keys.
//! - [`trust`]: key rotation and revocation statements.
//! - [`sums`]: `SHA256SUMS` checksum lists.
//! - [`archive`]: the deterministic writer and the streaming, verifying reader.
//! - [`verify`]: verifying a bundle file and its detached signature.
//! - [`kit`]: field kits: the signed index of files and parts, and the chained part reader.
//! - [`atomic`]: atomic file writes.
//! - [`report`]: exit codes and the shared output envelope.

pub mod archive;
pub mod atomic;
pub mod claims;
pub mod conform;
pub mod digest;
pub mod entry_path;
pub mod footprint;
pub mod install;
pub mod keyring;
pub mod kit;
pub mod layout;
pub mod limits;
pub mod manifest;
pub mod minisign;
pub mod mode;
pub mod policy;
pub mod report;
pub mod sandbox;
pub mod signify;
pub mod sums;
pub mod trust;
pub mod verify;

#[cfg(test)]
pub(crate) mod testdata;

pub use digest::Sha256;
pub use entry_path::EntryPath;
pub use limits::Limits;
pub use manifest::Manifest;
