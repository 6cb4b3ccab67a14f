//! `ferry-install`, the air-gapped half: verify, lay out, activate, roll back.
//!
//! - [`cli`]: what a command line asks for; [`args`]: the parser.
//! - [`keys`]: trusted keys.
//! - [`verify`]: the `verify` command.
//! - [`kit`]: field kits: `verify --kit`, installing from a kit's parts.
//! - [`install`]: the `install` command, phase by phase:
//!   [`plan`] (policy, preconditions, ownership; writes nothing), [`stage`] (streaming
//!   verification into a staging directory), [`apply`] (journaled changes), activation and
//!   [`recover`] (rollback), records in [`state`].
//! - [`policy`]: the host's policy file.
//! - [`rootfs`]: filesystem access through descriptors, never following symlinks.
//! - [`journal`]: the append-only undo log that makes installs all-or-nothing.
//! - [`lock`]: one changing run per root at a time.
//! - [`directories`]: directories with owners, modes and ACLs.
//! - [`acl`]: POSIX ACL xattrs without libacl.
//! - [`accounts`]: /etc/passwd and /etc/group without NSS.
//! - [`activate`]: restart and health gate; system files of a release.
//! - [`health`]: the probes.
//! - [`host`]: the live host or an offline root; systemctl.
//! - [`state`]: what is installed.
//! - [`manage`]: `status`, `list`, `rollback`, `uninstall`.
//! - [`diff`]: config diffs.
//! - [`steps`]: step names and the crash-test hook.
//! - [`exit`]: errors to exit codes.

pub mod accounts;
pub mod acl;
pub mod activate;
pub mod apply;
pub mod args;
pub mod cli;
pub mod diff;
pub mod directories;
pub mod exit;
pub mod health;
pub mod host;
pub mod install;
pub mod journal;
pub mod keys;
pub mod kit;
pub mod lock;
pub mod manage;
pub mod plan;
pub mod policy;
pub mod recover;
pub mod rootfs;
pub mod stage;
pub mod state;
pub mod steps;
pub mod verify;

#[cfg(test)]
pub(crate) mod testroot;
