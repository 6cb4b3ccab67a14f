//! `SHA256SUMS` checksum lists in the one form that both `sha256sum -c` (coreutils) and
//! `signify -C` (OpenBSD) accept: BSD tag lines
//!
//! ```text
//! SHA256 (relative/path) = <64 lowercase hex>
//! ```
//!
//! LF endings, sorted by path, no blank lines or comments. signify aborts on uppercase
//! hex, blank lines, comments and GNU two-space lines, and cannot read a path holding `)`.

use std::fmt;

/// Longest path signify reads from a checksum line (its buffer is 1024 bytes).
pub const MAX_PATH_BYTES: usize = 1023;

const PREFIX: &str = "SHA256 (";
const SEPARATOR: &str = ") = ";

/// Why a checksum list or one of its paths was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SumsError {
    #[error("path {path:?} cannot go in a checksum list: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("path {0:?} is listed twice in the checksum list")]
    Duplicate(String),
    #[error("checksum list line {line}: {detail}")]
    Malformed { line: usize, detail: String },
    #[error("checksum list is empty, which sha256sum -c rejects")]
    Empty,
}

/// A list of relative paths and their SHA-256 digests, kept sorted by path (bytewise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SumsList {
    entries: Vec<(String, [u8; 32])>,
}

impl SumsList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file. The path must be one both tools can open relative to the directory
    /// they run in; see [`check_path`].
    pub fn push(&mut self, path: impl Into<String>, digest: [u8; 32]) -> Result<(), SumsError> {
        let path = path.into();
        check_path(&path)?;
        match self
            .entries
            .binary_search_by(|(p, _)| p.as_str().cmp(&path))
        {
            Ok(_) => Err(SumsError::Duplicate(path)),
            Err(at) => {
                self.entries.insert(at, (path, digest));
                Ok(())
            }
        }
    }

    /// The digest listed for `path`.
    pub fn get(&self, path: &str) -> Option<&[u8; 32]> {
        self.entries
            .binary_search_by(|(p, _)| p.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// Entries in path order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &[u8; 32])> + '_ {
        self.entries.iter().map(|(p, d)| (p.as_str(), d))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads a list strictly in the form [`fmt::Display`] writes: every line
    /// `SHA256 (path) = <64 lowercase hex>` ending in LF, paths valid, sorted and unique,
    /// at least one entry.
    pub fn parse(text: &str) -> Result<Self, SumsError> {
        if text.is_empty() {
            return Err(SumsError::Empty);
        }
        let body = text.strip_suffix('\n').ok_or(SumsError::Malformed {
            line: text.split('\n').count(),
            detail: "the last line does not end with LF".into(),
        })?;
        let mut entries: Vec<(String, [u8; 32])> = Vec::new();
        for (i, line) in body.split('\n').enumerate() {
            let line_no = i + 1;
            let malformed = |detail: String| SumsError::Malformed {
                line: line_no,
                detail,
            };
            let (path, hex) = line
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.rsplit_once(SEPARATOR))
                .ok_or_else(|| {
                    malformed(format!(
                        "expected \"SHA256 (path) = <hex>\", found {line:?}"
                    ))
                })?;
            check_path(path)?;
            let digest = parse_hex(hex).ok_or_else(|| {
                malformed(format!("expected 64 lowercase hex digits, found {hex:?}"))
            })?;
            if let Some((last, _)) = entries.last() {
                if last.as_str() == path {
                    return Err(SumsError::Duplicate(path.to_owned()));
                }
                if last.as_str() > path {
                    return Err(malformed(format!(
                        "{path:?} is out of order (paths must be sorted)"
                    )));
                }
            }
            entries.push((path.to_owned(), digest));
        }
        Ok(Self { entries })
    }
}

impl fmt::Display for SumsList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (path, digest) in &self.entries {
            f.write_str(PREFIX)?;
            f.write_str(path)?;
            f.write_str(SEPARATOR)?;
            for b in digest {
                write!(f, "{b:02x}")?;
            }
            f.write_str("\n")?;
        }
        Ok(())
    }
}

/// Checks that `path` is a relative path both `sha256sum -c` and `signify -C` read back
/// as the same file: no `)` (signify ends the name there), no backslash (`sha256sum`
/// treats it as an escape in some lines), no control characters or newlines, no
/// absolute path, no empty, `.` or `..` components, and at most [`MAX_PATH_BYTES`].
pub fn check_path(path: &str) -> Result<(), SumsError> {
    let bad = |reason| {
        Err(SumsError::BadPath {
            path: path.to_owned(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return bad("longer than signify's 1023-byte limit");
    }
    if path.starts_with('/') {
        return bad("absolute");
    }
    if path.contains(')') {
        return bad("contains ')', where signify ends the name");
    }
    if path.contains('\\') {
        return bad("contains a backslash");
    }
    if path.chars().any(char::is_control) {
        return bad("contains a control character or newline");
    }
    if path.starts_with(char::is_whitespace) || path.ends_with(char::is_whitespace) {
        return bad("starts or ends with white space, which the tools may drop");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("has an empty, '.' or '..' component");
    }
    Ok(())
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447";

    fn digest(b: u8) -> [u8; 32] {
        [b; 32]
    }

    #[test]
    fn writes_sorted_bsd_tag_lines() {
        let mut list = SumsList::new();
        list.push("bin/hello", digest(0xab)).unwrap();
        // Looks like a line of its own, yet parses back as one path.
        list.push("SHA256 (odd name.txt", digest(0x01)).unwrap();
        list.push("a dir/z", digest(0x00)).unwrap();
        list.push("héllo", parse_hex(HELLO).unwrap()).unwrap();
        let text = list.to_string();
        assert_eq!(
            text,
            format!(
                "SHA256 (SHA256 (odd name.txt) = {}\n\
                 SHA256 (a dir/z) = {}\n\
                 SHA256 (bin/hello) = {}\n\
                 SHA256 (héllo) = {HELLO}\n",
                "01".repeat(32),
                "00".repeat(32),
                "ab".repeat(32),
            )
        );
        let back = SumsList::parse(&text).unwrap();
        assert_eq!(back, list);
        assert_eq!(back.len(), 4);
        assert_eq!(back.get("bin/hello"), Some(&digest(0xab)));
        assert_eq!(back.get("bin"), None);
        let paths: Vec<&str> = back.iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            ["SHA256 (odd name.txt", "a dir/z", "bin/hello", "héllo"]
        );
    }

    #[test]
    fn rejects_bad_paths() {
        let long = "a".repeat(MAX_PATH_BYTES + 1);
        for path in [
            "",
            "/etc/passwd",
            "a)b",
            "a\\b",
            "a\nb",
            "a\rb",
            "a\tb",
            "a\0b",
            " lead",
            "trail ",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "../a",
            "a/..",
            ".",
            long.as_str(),
        ] {
            let mut list = SumsList::new();
            assert!(
                matches!(list.push(path, digest(0)), Err(SumsError::BadPath { .. })),
                "{path:?}"
            );
        }
        let mut list = SumsList::new();
        list.push("a".repeat(MAX_PATH_BYTES), digest(0)).unwrap();
        list.push(".hidden/..dots/x..y", digest(0)).unwrap();
        assert!(matches!(
            list.push(".hidden/..dots/x..y", digest(1)),
            Err(SumsError::Duplicate(_))
        ));
    }

    #[test]
    fn rejects_malformed_lists() {
        let line = |path: &str, hex: &str| format!("SHA256 ({path}) = {hex}\n");
        let a = line("a", HELLO);
        let b = line("b", HELLO);
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("uppercase hex", line("a", &HELLO.to_uppercase())),
            ("short hex", line("a", &HELLO[..62])),
            ("long hex", line("a", &format!("{HELLO}00"))),
            ("blank line", format!("{a}\n{b}")),
            ("comment", format!("# sums\n{a}")),
            ("GNU two-space form", format!("{HELLO}  a\n")),
            ("CRLF", a.replace('\n', "\r\n")),
            ("no final LF", a.trim_end().to_owned()),
            ("unsorted", format!("{b}{a}")),
            ("duplicate", format!("{a}{a}")),
            ("SHA512 tag", a.replace("SHA256", "SHA512")),
            ("missing space", a.replace(") = ", ")= ")),
            ("absolute path", line("/a", HELLO)),
            ("dot-dot path", line("../a", HELLO)),
            ("paren in path", line("a)b", HELLO)),
            ("trailing space", a.replace('\n', " \n")),
        ];
        for (name, text) in cases {
            assert!(SumsList::parse(&text).is_err(), "{name}: {text:?}");
        }
    }
}
