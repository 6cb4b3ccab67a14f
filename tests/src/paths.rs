//! Where the workspace and its built binaries are. Path helpers only: nothing is built here.

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the ferry-tests crate lives one level below the workspace root")
        .to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace root if relative),
/// else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// A binary of the debug profile: `target/debug/NAME`.
pub fn debug_bin(name: &str) -> PathBuf {
    target_dir().join("debug").join(name)
}

/// `target/debug/ferry`, the bundler CLI.
pub fn ferry_bin() -> PathBuf {
    debug_bin("ferry")
}

/// `target/debug/ferry-install`, the installer as built for the dev machine (dynamically linked).
pub fn ferry_install_bin() -> PathBuf {
    debug_bin("ferry-install")
}

/// The static installer that ships into the air gap:
/// `target/x86_64-unknown-linux-gnu/installer/ferry-install` (profile `installer`).
pub fn static_installer() -> PathBuf {
    target_dir()
        .join("x86_64-unknown-linux-gnu")
        .join("installer")
        .join("ferry-install")
}
