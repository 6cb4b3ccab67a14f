//! Every size limit the reader enforces, in one place, with documented defaults.
//!
//! The reader checks a limit before it allocates or reads past it, so a hostile bundle
//! cannot make the installer use memory or disk in proportion to what the bundle claims.

/// Size limits for reading a bundle. `Limits::default()` fits any reasonable service;
/// the installer has flags to raise each one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest `manifest.json` accepted (bytes). Default 1 MiB.
    pub manifest_bytes: u64,
    /// Largest manifest signature accepted (bytes). Default 8 KiB.
    pub signature_bytes: u64,
    /// Most payload files in one bundle. Default 10 000.
    pub files: usize,
    /// Largest single payload file (bytes). Default 4 GiB.
    pub file_bytes: u64,
    /// Largest sum of payload sizes (bytes). Default 16 GiB.
    pub total_bytes: u64,
    /// Longest archive path (bytes); ustar's name field holds 100. Default 100.
    pub path_bytes: usize,
    /// Most decompressed bytes per compressed byte, checked once past `ratio_floor`.
    /// Default 200 (a zstd bomb expands by thousands).
    pub ratio: u64,
    /// Decompressed bytes allowed before the ratio is enforced. Default 16 MiB.
    pub ratio_floor: u64,
    /// Largest generated file (unit, socket, sysusers, tmpfiles, logrotate), which the
    /// reader holds in memory to check it against the manifest. Default 256 KiB.
    pub generated_bytes: u64,
    /// Most `build.before` steps a manifest records (the generate steps `ferry build
    /// --run-before` ran on the release machine; never run on a host). Default 16.
    pub before_steps: usize,
    /// Longest `build.before` step: its words' bytes plus one per word. Default 4 KiB.
    pub before_step_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            manifest_bytes: 1 << 20,
            signature_bytes: 8 << 10,
            files: 10_000,
            file_bytes: 4 << 30,
            total_bytes: 16 << 30,
            path_bytes: 100,
            ratio: 200,
            ratio_floor: 16 << 20,
            generated_bytes: 256 << 10,
            before_steps: 16,
            before_step_bytes: 4 << 10,
        }
    }
}

/// The limit that a bundle exceeded, named for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    ManifestBytes,
    SignatureBytes,
    Files,
    FileBytes,
    TotalBytes,
    PathBytes,
    Ratio,
    GeneratedBytes,
    BeforeSteps,
    BeforeStepBytes,
}

impl LimitKind {
    /// The installer flag that raises this limit.
    pub const fn flag(self) -> &'static str {
        match self {
            Self::ManifestBytes => "--max-manifest-bytes",
            Self::SignatureBytes => "--max-signature-bytes",
            Self::Files => "--max-files",
            Self::FileBytes => "--max-file-bytes",
            Self::TotalBytes => "--max-total-bytes",
            Self::PathBytes => "--max-path-bytes",
            Self::Ratio => "--max-ratio",
            Self::GeneratedBytes => "--max-generated-bytes",
            Self::BeforeSteps => "--max-before-steps",
            Self::BeforeStepBytes => "--max-before-step-bytes",
        }
    }
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ManifestBytes => "manifest size",
            Self::SignatureBytes => "signature size",
            Self::Files => "file count",
            Self::FileBytes => "file size",
            Self::TotalBytes => "total size",
            Self::PathBytes => "path length",
            Self::Ratio => "decompression ratio",
            Self::GeneratedBytes => "generated file size",
            Self::BeforeSteps => "build step count",
            Self::BeforeStepBytes => "build step length",
        })
    }
}
