//! The four-line `.minisig` file.

use std::fmt;
use std::path::Path;

use super::key::KeyId;
use super::{
    decode_b64, describe_tag, encode_b64, read_small_file, split_line, Line, SigError,
    COMMENT_LINE_MAX, COMMENT_PREFIX, MAX_TRUSTED_COMMENT, MAX_UNTRUSTED_COMMENT,
    TRUSTED_COMMENT_PREFIX, TRUSTED_LINE_MAX,
};

/// What the first signature signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// "ED": Ed25519 over the BLAKE2b-512 digest of the file (minisign's default).
    Prehashed,
    /// "Ed": Ed25519 over the file itself (`minisign -S -l`, and what signify reads).
    Legacy,
}

impl Algorithm {
    /// The 2-byte tag that starts the signature payload.
    pub const fn tag(self) -> [u8; 2] {
        match self {
            Self::Prehashed => *b"ED",
            Self::Legacy => *b"Ed",
        }
    }

    fn from_tag(tag: [u8; 2]) -> Option<Self> {
        match &tag {
            b"ED" => Some(Self::Prehashed),
            b"Ed" => Some(Self::Legacy),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Prehashed => "prehashed (ED)",
            Self::Legacy => "legacy (Ed)",
        })
    }
}

/// A minisign signature file.
///
/// The comments are public so a caller can read them; the untrusted one may be changed
/// freely, the trusted one is signed and any change fails verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub algorithm: Algorithm,
    pub key_id: KeyId,
    pub untrusted_comment: String,
    pub trusted_comment: String,
    sig: [u8; 64],
    global_sig: [u8; 64],
}

/// Longest base64 lines minisign's `fgets` buffers take, line ending included. The last
/// line needs no LF (minisign does not look for one), so CRLF fits there too.
const SIG_LINE_MAX: usize = 102;
const GLOBAL_LINE_MAX: usize = 90;

impl Signature {
    const WHAT: &'static str = "signature";

    pub(crate) fn from_parts(
        algorithm: Algorithm,
        key_id: KeyId,
        untrusted_comment: String,
        trusted_comment: String,
        sig: [u8; 64],
        global_sig: [u8; 64],
    ) -> Self {
        Self {
            algorithm,
            key_id,
            untrusted_comment,
            trusted_comment,
            sig,
            global_sig,
        }
    }

    /// The Ed25519 signature over the file (or its digest).
    pub fn signature_bytes(&self) -> &[u8; 64] {
        &self.sig
    }

    /// The Ed25519 signature over `signature ‖ trusted comment`.
    pub fn global_signature_bytes(&self) -> &[u8; 64] {
        &self.global_sig
    }

    /// Second line of the file: base64(tag | keynum | signature).
    pub fn signature_line(&self) -> String {
        let mut raw = Vec::with_capacity(74);
        raw.extend_from_slice(&self.algorithm.tag());
        raw.extend_from_slice(&self.key_id.0);
        raw.extend_from_slice(&self.sig);
        encode_b64(&raw)
    }

    /// Fourth line of the file: base64(global signature).
    pub fn global_signature_line(&self) -> String {
        encode_b64(&self.global_sig)
    }

    /// Reads a signature file strictly: exactly four lines (LF or CRLF endings, the last
    /// one optional), the comment prefixes, the line lengths minisign can read, and no
    /// CR or NUL inside a line, where minisign would cut the line and read other text.
    pub fn parse(text: &str) -> Result<Self, SigError> {
        let mut rest = text;
        let mut next = |label: &'static str, max: usize| -> Result<Line<'_>, SigError> {
            let line = split_line(&mut rest, Self::WHAT)?
                .ok_or_else(|| SigError::malformed(Self::WHAT, format!("missing the {label}")))?;
            if line.len_with_ending > max {
                return Err(SigError::malformed(
                    Self::WHAT,
                    format!(
                        "the {label} is {} bytes, minisign reads at most {max}",
                        line.len_with_ending
                    ),
                ));
            }
            Ok(line)
        };

        let untrusted = next("untrusted comment line", COMMENT_LINE_MAX)?;
        let untrusted_comment = untrusted.text.strip_prefix(COMMENT_PREFIX).ok_or_else(|| {
            SigError::malformed(
                Self::WHAT,
                format!("the first line must start with {COMMENT_PREFIX:?}"),
            )
        })?;

        let payload: [u8; 74] = decode_b64(next("signature line", SIG_LINE_MAX)?.text, Self::WHAT)?;
        let tag = [payload[0], payload[1]];
        let algorithm = Algorithm::from_tag(tag)
            .ok_or_else(|| SigError::UnsupportedAlgorithm(describe_tag(tag)))?;

        let trusted = next("trusted comment line", TRUSTED_LINE_MAX)?;
        let trusted_comment = trusted
            .text
            .strip_prefix(TRUSTED_COMMENT_PREFIX)
            .ok_or_else(|| {
                SigError::malformed(
                    Self::WHAT,
                    format!("the third line must start with {TRUSTED_COMMENT_PREFIX:?}"),
                )
            })?;

        let global_sig: [u8; 64] = decode_b64(
            next("global signature line", GLOBAL_LINE_MAX)?.text,
            Self::WHAT,
        )?;
        if !rest.is_empty() {
            return Err(SigError::malformed(
                Self::WHAT,
                "unexpected text after the global signature",
            ));
        }

        Ok(Self {
            algorithm,
            key_id: KeyId(payload[2..10].try_into().expect("8 bytes")),
            untrusted_comment: untrusted_comment.to_owned(),
            trusted_comment: trusted_comment.to_owned(),
            sig: payload[10..].try_into().expect("64 bytes"),
            global_sig,
        })
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self, SigError> {
        Self::parse(&read_small_file(path.as_ref(), Self::WHAT)?)
    }

    /// The file exactly as minisign writes it.
    ///
    /// A comment edited into something minisign cannot read back (CR, LF, NUL, too long)
    /// is written with those characters replaced by spaces and cut to the limit, so the
    /// file keeps its four lines; an edited trusted comment fails verification anyway.
    pub fn to_file_string(&self) -> String {
        format!(
            "{COMMENT_PREFIX}{}\n{}\n{TRUSTED_COMMENT_PREFIX}{}\n{}\n",
            one_line(&self.untrusted_comment, MAX_UNTRUSTED_COMMENT),
            self.signature_line(),
            one_line(&self.trusted_comment, MAX_TRUSTED_COMMENT),
            self.global_signature_line(),
        )
    }
}

fn one_line(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max && !text.contains(['\r', '\n', '\0']) {
        return text.into();
    }
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].replace(['\r', '\n', '\0'], " ").into()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{vector_key, ED_LINE, GLOBAL_LINE, MSG, TRUSTED};
    use super::*;

    fn vector_file() -> String {
        format!("untrusted comment: c\n{ED_LINE}\ntrusted comment: {TRUSTED}\n{GLOBAL_LINE}\n")
    }

    #[test]
    fn parses_what_minisign_writes() {
        let sig = Signature::parse(&vector_file()).unwrap();
        assert_eq!(sig.algorithm, Algorithm::Prehashed);
        assert_eq!(sig.key_id.to_string(), "0807060504030201");
        assert_eq!(sig.untrusted_comment, "c");
        assert_eq!(sig.trusted_comment, TRUSTED);
        assert_eq!(sig.to_file_string(), vector_file());
        vector_key().public_key().verify(&sig, MSG).unwrap();
    }

    #[test]
    fn accepts_crlf_and_a_missing_final_newline() {
        let crlf = vector_file().replace('\n', "\r\n");
        assert_eq!(
            Signature::parse(&crlf).unwrap(),
            Signature::parse(&vector_file()).unwrap()
        );
        let unterminated = vector_file().trim_end().to_owned();
        assert_eq!(
            Signature::parse(&unterminated).unwrap(),
            Signature::parse(&vector_file()).unwrap()
        );
    }

    #[test]
    fn rejects_malformed_files() {
        let good = vector_file();
        let lines: Vec<&str> = good.lines().collect();
        let with = |i: usize, replacement: &str| {
            let mut l = lines.clone();
            l[i] = replacement;
            l.join("\n") + "\n"
        };
        let truncated_b64 = &ED_LINE[..ED_LINE.len() - 4];
        // 73 bytes: one short of a signature payload.
        let short_payload = encode_b64(&[b'E'; 73]);
        let long_payload = encode_b64(&[b'E'; 75]);
        let mut bad_tag = ED_LINE.to_owned();
        bad_tag.replace_range(..4, "RXgB"); // "Ex" + 0x01
        let non_canonical = format!("{}9==", &GLOBAL_LINE[..GLOBAL_LINE.len() - 3]);
        let long_untrusted = format!("untrusted comment: {}", "u".repeat(1004));
        let long_trusted = format!("trusted comment: {}", "t".repeat(8174));

        let cases: Vec<(&str, String)> = vec![
            ("empty file", String::new()),
            ("only a newline", "\n".into()),
            ("no untrusted prefix", with(0, "comment: c")),
            ("prefix without space", with(0, "untrusted comment:c")),
            ("truncated base64", with(1, truncated_b64)),
            ("short payload", with(1, &short_payload)),
            ("long payload", with(1, &long_payload)),
            ("not base64", with(1, &ED_LINE.replace('B', "*"))),
            ("unknown tag", with(1, &bad_tag)),
            ("no trusted prefix", with(2, TRUSTED)),
            ("non-canonical global base64", with(3, &non_canonical)),
            ("global signature too short", with(3, &GLOBAL_LINE[..84])),
            (
                "CR inside untrusted comment",
                with(0, "untrusted comment: a\rb"),
            ),
            (
                "CR inside trusted comment",
                with(2, "trusted comment: a\rb"),
            ),
            (
                "NUL inside trusted comment",
                with(2, "trusted comment: a\0b"),
            ),
            ("untrusted line too long", with(0, &long_untrusted)),
            ("trusted line too long", with(2, &long_trusted)),
            ("missing global signature", lines[..3].join("\n") + "\n"),
            ("missing trusted comment", lines[..2].join("\n") + "\n"),
            ("extra line", good.clone() + "extra\n"),
            ("extra blank line", good.clone() + "\n"),
            ("CR line endings", good.replace('\n', "\r")),
            ("leading blank line", format!("\n{good}")),
        ];
        for (name, text) in cases {
            match Signature::parse(&text) {
                Err(SigError::Malformed { .. } | SigError::UnsupportedAlgorithm(_)) => {}
                other => panic!("{name}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn line_limits_are_inclusive() {
        let sk = vector_key();
        let at_limit = format!(
            "untrusted comment: {}\n{ED_LINE}\ntrusted comment: {}\n{GLOBAL_LINE}\n",
            "u".repeat(MAX_UNTRUSTED_COMMENT),
            "t".repeat(MAX_TRUSTED_COMMENT)
        );
        let sig = Signature::parse(&at_limit).unwrap();
        // The trusted comment changed, so only the global signature fails.
        assert!(matches!(
            sk.public_key().verify(&sig, MSG),
            Err(SigError::BadGlobalSignature)
        ));
    }

    #[test]
    fn edited_comments_still_write_four_lines() {
        let mut sig = Signature::parse(&vector_file()).unwrap();
        sig.untrusted_comment = "two\nlines\0and\r".into();
        let text = sig.to_file_string();
        assert_eq!(text.lines().count(), 4);
        assert_eq!(
            Signature::parse(&text).unwrap().untrusted_comment,
            "two lines and "
        );
        sig.untrusted_comment = "é".repeat(MAX_UNTRUSTED_COMMENT);
        let reparsed = Signature::parse(&sig.to_file_string()).unwrap();
        assert!(reparsed.untrusted_comment.len() <= MAX_UNTRUSTED_COMMENT);
    }
}
