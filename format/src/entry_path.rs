//! Paths of archive members: untrusted input, validated once into a newtype.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A relative, normalized archive path such as `bin/hello`.
///
/// Components are non-empty, never `.` or `..`, and use only `A-Z a-z 0-9 . _ - +`, so a
/// path can never escape the directory it is joined to, never needs quoting in
/// `SHA256SUMS`, and never collides with another spelling of itself.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryPath(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryPathError {
    #[error("empty path")]
    Empty,
    #[error("path {path:?} is longer than {max} bytes")]
    TooLong { path: String, max: usize },
    #[error("path {path:?} is absolute")]
    Absolute { path: String },
    #[error("path {path:?} has an empty, '.' or '..' component")]
    BadComponent { path: String },
    #[error("path {path:?} has a character outside A-Z a-z 0-9 . _ - + /")]
    BadCharacter { path: String },
}

/// Longest path, in bytes, that fits ustar's name field without extensions.
pub const MAX_LEN: usize = 100;

impl EntryPath {
    pub fn new(path: &str) -> Result<Self, EntryPathError> {
        Self::with_max(path, MAX_LEN)
    }

    pub fn with_max(path: &str, max: usize) -> Result<Self, EntryPathError> {
        let shown = || path.chars().take(120).collect::<String>();
        if path.is_empty() {
            return Err(EntryPathError::Empty);
        }
        if path.len() > max {
            return Err(EntryPathError::TooLong { path: shown(), max });
        }
        if path.starts_with('/') {
            return Err(EntryPathError::Absolute { path: shown() });
        }
        if !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+' | b'/'))
        {
            return Err(EntryPathError::BadCharacter { path: shown() });
        }
        if path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(EntryPathError::BadComponent { path: shown() });
        }
        Ok(Self(path.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<std::path::Path> for EntryPath {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl Serialize for EntryPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EntryPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EntryPath::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let long = "a".repeat(101);
        let cases: &[(&str, bool)] = &[
            ("bin/hello", true),
            ("config/prod/hello.toml", true),
            ("ferry/manifest.json.minisig", true),
            ("a+b_c-d.e", true),
            ("", false),
            ("/etc/passwd", false),
            ("../x", false),
            ("a/../b", false),
            ("a/./b", false),
            ("./a", false),
            ("a//b", false),
            ("a/", false),
            ("a\\b", false),
            ("a b", false),
            ("a\nb", false),
            ("a)b", false),
            ("a\0b", false),
            ("caf\u{e9}", false),
            (&long, false),
            (&long[..100], true),
        ];
        for (path, ok) in cases {
            assert_eq!(EntryPath::new(path).is_ok(), *ok, "{path:?}");
        }
    }

    #[test]
    fn file_name() {
        assert_eq!(EntryPath::new("a/b/c.txt").unwrap().file_name(), "c.txt");
        assert_eq!(EntryPath::new("c").unwrap().file_name(), "c");
    }
}
