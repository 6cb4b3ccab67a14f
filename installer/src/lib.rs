//! `ferry-install`, the air-gapped half: verify, lay out, activate, roll back.
//!
//! - [`cli`]: what a command line asks for; [`args`]: the parser.
//! - [`keys`]: trusted keys.
//! - [`verify`]: the `verify` command.
//! - [`kit`]: field kits: `verify --kit`, installing from a kit's parts.
//! - [`install`]: the `install` command: preflight, staging, layout, activation.
//! - [`stage`]: streaming extraction into a staging directory.
//! - [`journal`]: the undo log that makes installs all-or-nothing.
//! - [`lock`]: one changing run per root at a time.
//! - [`recover`]: undoing interrupted installs; per-release records.
//! - [`layout`]: directories with owners, modes and ACLs.
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
pub mod args;
pub mod cli;
pub mod diff;
pub mod exit;
pub mod health;
pub mod host;
pub mod install;
pub mod journal;
pub mod keys;
pub mod kit;
pub mod layout;
pub mod lock;
pub mod manage;
pub mod recover;
pub mod stage;
pub mod state;
pub mod steps;
pub mod verify;
