//! `ferry-install`, the air-gapped half: verify, lay out, activate, roll back.
//!
//! - [`cli`]: the command line.
//! - [`keys`]: trusted keys.
//! - [`verify`]: the `verify` command.
//! - [`exit`]: errors to exit codes.

pub mod cli;
pub mod exit;
pub mod keys;
pub mod verify;
