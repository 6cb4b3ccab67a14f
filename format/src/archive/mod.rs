//! The bundle archive: a zstd-compressed ustar stream whose first member is the manifest,
//! second the manifest's signature, then the payload in manifest order.
//!
//! That order lets a reader verify the manifest before it reads a single payload byte,
//! and check each payload file against its signed digest as it streams past, in one pass.

mod error;
mod reader;
mod tee;
#[cfg(feature = "writer")]
mod writer;

pub use error::BundleError;
pub use reader::{
    parse_manifest, read_bundle, read_manifest_unverified, read_verified_manifest, Verified,
};
pub use tee::{Counter, OutputDigests};
#[cfg(feature = "writer")]
pub use writer::{write_bundle, PackFile, PackOptions};

/// Mode of the manifest and its signature inside the archive.
pub const META_MODE: u32 = 0o644;
