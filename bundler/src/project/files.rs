//! Reading the files a project names (`ferry.toml`, config templates, `[templates]`
//! overrides) so that none of them can lead out of the project directory.
//!
//! The build runs as the release engineer, often root, next to the signing key; whatever
//! a template holds is rendered into the signed bundle. A contributor who may edit
//! `ferry.toml` or add a symlink must not be able to ship `/etc/shadow` or
//! `../../keys/release.key` that way. [`super::types::ProjectPath`] already refuses
//! absolute paths and `..`; here the file is opened first, then the path the kernel
//! actually opened (`/proc/self/fd/N`) is checked to be inside the canonical project
//! directory, and the bytes are read from that same descriptor: what is checked is what
//! is read, whatever is swapped on disk in between.

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};

/// Templates and `ferry.toml` are small text files; anything larger is a mistake (or
/// `/dev/zero` behind a symlink), refused before it is read.
pub const MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{what} {shown} does not exist in the project directory {root}")]
    Missing {
        what: String,
        shown: String,
        root: String,
    },
    #[error("{what} {shown} leads outside the project directory {root} (to {real}): files a project names must be inside it")]
    Outside {
        what: String,
        shown: String,
        root: String,
        real: String,
    },
    #[error("{what} {shown} is not a regular file")]
    NotAFile { what: String, shown: String },
    #[error("{what} {shown} has {links} hard links: a file the build reads must not be another file's second name")]
    HardLinked {
        what: String,
        shown: String,
        links: u64,
    },
    #[error("{what} {shown} is larger than {MAX_BYTES} bytes")]
    TooLarge { what: String, shown: String },
    #[error("{what} {shown} is not UTF-8 text")]
    NotUtf8 { what: String, shown: String },
    #[error("reading {what} {shown}: {source}")]
    Io {
        what: String,
        shown: String,
        source: std::io::Error,
    },
}

/// The canonical project directory, against which every file is checked.
pub fn canonical_root(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::canonicalize(dir)
}

/// Reads `rel` (relative to the canonical project directory `root`) as UTF-8 text.
/// `what` names the file in messages (`[templates] unit`, `ferry.toml`).
pub fn read(root: &Path, rel: &Path, what: &str) -> Result<String, FileError> {
    let shown = format!("{:?}", rel.display().to_string());
    let io = |source: std::io::Error| FileError::Io {
        what: what.to_owned(),
        shown: shown.clone(),
        source,
    };
    let file = match File::open(root.join(rel)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FileError::Missing {
                what: what.to_owned(),
                shown,
                root: root.display().to_string(),
            })
        }
        Err(e) => return Err(io(e)),
    };
    // The kernel's name for what was opened, every symlink resolved.
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).map_err(io)?;
    if !opened.starts_with(root) {
        return Err(FileError::Outside {
            what: what.to_owned(),
            shown,
            root: root.display().to_string(),
            real: opened.display().to_string(),
        });
    }
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(FileError::NotAFile {
            what: what.to_owned(),
            shown,
        });
    }
    // A hard link has no "real" path to check: a second name inside the project for a
    // file elsewhere (made by whoever could write both) would pass the check above.
    if meta.nlink() > 1 {
        return Err(FileError::HardLinked {
            what: what.to_owned(),
            shown,
            links: meta.nlink(),
        });
    }
    if meta.len() > MAX_BYTES {
        return Err(FileError::TooLarge {
            what: what.to_owned(),
            shown,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(FileError::TooLarge {
            what: what.to_owned(),
            shown,
        });
    }
    String::from_utf8(bytes).map_err(|_| FileError::NotUtf8 {
        what: what.to_owned(),
        shown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn files_are_read_only_from_inside_the_project() {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("p");
        std::fs::create_dir_all(project.join("config")).unwrap();
        std::fs::write(project.join("config/a.j2"), "inside").unwrap();
        std::fs::write(tmp.path().join("secret.key"), "outside").unwrap();
        symlink("a.j2", project.join("config/inner")).unwrap();
        symlink("../../secret.key", project.join("config/escape")).unwrap();
        symlink("/etc/passwd", project.join("abs")).unwrap();
        symlink("..", project.join("up")).unwrap();
        symlink("/dev/zero", project.join("zero")).unwrap();
        std::fs::hard_link(tmp.path().join("secret.key"), project.join("hard")).unwrap();
        std::fs::create_dir(project.join("dir")).unwrap();
        let root = canonical_root(&project).unwrap();

        assert_eq!(
            read(&root, Path::new("config/a.j2"), "t").unwrap(),
            "inside"
        );
        assert_eq!(
            read(&root, Path::new("config/inner"), "t").unwrap(),
            "inside"
        );
        for (rel, want) in [
            ("config/escape", "leads outside the project directory"),
            ("abs", "leads outside the project directory"),
            ("up/secret.key", "leads outside the project directory"),
            ("zero", "leads outside the project directory"),
            ("hard", "hard links"),
            ("dir", "not a regular file"),
            ("nothing", "does not exist"),
        ] {
            let e = read(&root, Path::new(rel), "[templates] unit").unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains(want) && msg.contains("[templates] unit"),
                "{rel}: {msg}"
            );
        }
    }
}
