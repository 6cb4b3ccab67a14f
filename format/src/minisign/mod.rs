//! minisign keys and signatures, byte for byte what minisign 0.11 writes and reads
//! (layouts and test vectors: `shared/specs/signatures.md`).
//!
//! - [`KeyId`], [`PublicKey`], [`SecretKey`] (scrypt-encrypted or not, see [`Encryption`]).
//! - [`Signature`]: the four-line `.minisig` file; [`PublicKey::verify`] checks it.
//! - [`sign`], [`sign_prehashed`], [`Prehasher`]: making prehashed ("ED") signatures.
//! - [`SigError`]: every failure, for this module and [`crate::signify`].
//!
//! Verification always uses `verify_strict`, which also rejects the weak keys and
//! small-order points that libsodium rejects.

mod error;
mod kdf;
mod key;
mod signature;

use std::fmt;
use std::io::{self, Read as _};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use blake2::{Blake2b512, Digest as _};
use zeroize::Zeroizing;

pub use error::SigError;
pub use key::{Encryption, KeyId, PublicKey, SecretKey};
pub use signature::{Algorithm, Signature};

pub(crate) const COMMENT_PREFIX: &str = "untrusted comment: ";
pub(crate) const TRUSTED_COMMENT_PREFIX: &str = "trusted comment: ";

/// Longest untrusted comment (without its prefix) that both minisign and signify read
/// back: they read that line into a 1024-byte buffer, so prefix, text and LF must fit
/// in 1023 bytes. minisign warns from 1004 bytes on for that reason.
pub const MAX_UNTRUSTED_COMMENT: usize = 1003;
/// Longest trusted comment: minisign reads the line into an 8192-byte buffer and refuses
/// to sign anything that would not fit.
pub const MAX_TRUSTED_COMMENT: usize = 8173;

/// The size of the `fgets` buffers minisign reads lines into, less the NUL: a line and
/// its line ending must fit, or minisign sees a different line.
pub(crate) const COMMENT_LINE_MAX: usize = 1023;
pub(crate) const TRUSTED_LINE_MAX: usize = 8191;

/// Largest key or signature file we read; the real ones are below 10 KiB.
pub(crate) const MAX_FILE_BYTES: u64 = 16 << 10;

/// BLAKE2b-512 of a whole file, fed piece by piece, for prehashed ("ED") signatures:
/// the bundler and installer hash the file in the same pass that reads it for other work.
#[derive(Clone, Default)]
pub struct Prehasher(Blake2b512);

impl Prehasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finalize(self) -> [u8; 64] {
        self.0.finalize().into()
    }
}

impl io::Write for Prehasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl fmt::Debug for Prehasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Prehasher(BLAKE2b-512)")
    }
}

/// BLAKE2b-512 of `msg`, what a prehashed ("ED") signature signs.
pub fn prehash(msg: &[u8]) -> [u8; 64] {
    Blake2b512::digest(msg).into()
}

/// Signs `msg` as minisign does by default: prehashed ("ED"), with a signed trusted comment.
pub fn sign(
    sk: &SecretKey,
    msg: &[u8],
    trusted_comment: &str,
    untrusted_comment: &str,
) -> Result<Signature, SigError> {
    sign_prehashed(sk, &prehash(msg), trusted_comment, untrusted_comment)
}

/// Signs a file whose BLAKE2b-512 digest ([`Prehasher`]) was computed while streaming it.
pub fn sign_prehashed(
    sk: &SecretKey,
    blake2b512: &[u8; 64],
    trusted_comment: &str,
    untrusted_comment: &str,
) -> Result<Signature, SigError> {
    check_comment(
        untrusted_comment,
        "untrusted comment",
        MAX_UNTRUSTED_COMMENT,
    )?;
    check_comment(trusted_comment, "trusted comment", MAX_TRUSTED_COMMENT)?;
    let signature = sk.sign_raw(blake2b512);
    let global_signature = sk.sign_raw(&global_message(&signature, trusted_comment));
    let sig = Signature::from_parts(
        Algorithm::Prehashed,
        sk.key_id(),
        untrusted_comment.to_owned(),
        trusted_comment.to_owned(),
        signature,
        global_signature,
    );
    // Check our own output before it leaves, as minisign does: a fault while signing
    // must not produce a file that only fails on the air-gapped host.
    sk.public_key().verify_prehashed(&sig, blake2b512)?;
    Ok(sig)
}

/// What the global signature signs: the 64 signature bytes, then the trusted comment
/// text (no prefix, no newline).
pub(crate) fn global_message(signature: &[u8; 64], trusted_comment: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + trusted_comment.len());
    m.extend_from_slice(signature);
    m.extend_from_slice(trusted_comment.as_bytes());
    m
}

/// Rejects comments that the C tools would read back differently: they cut lines at CR,
/// LF or NUL, and read them into fixed buffers.
pub(crate) fn check_comment(text: &str, what: &'static str, max: usize) -> Result<(), SigError> {
    if text.contains(['\r', '\n', '\0']) {
        return Err(SigError::invalid(
            what,
            "contains a CR, LF or NUL character",
        ));
    }
    if text.len() > max {
        return Err(SigError::invalid(
            what,
            format!("{} bytes long, the limit is {max}", text.len()),
        ));
    }
    Ok(())
}

/// One line of a minisign-style file, without its line ending.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub(crate) text: &'a str,
    /// Bytes the C tools' line buffer must hold: the text plus its line ending.
    pub(crate) len_with_ending: usize,
}

/// Splits the next line off `rest`. Lines end with LF or CRLF. The C tools cut a line at
/// its first CR, LF or NUL, so any of those elsewhere would make them read other text
/// than we do, which we refuse rather than guess.
pub(crate) fn split_line<'a>(
    rest: &mut &'a str,
    what: &'static str,
) -> Result<Option<Line<'a>>, SigError> {
    if rest.is_empty() {
        return Ok(None);
    }
    let (raw, tail, ending) = match rest.find('\n') {
        Some(i) => (&rest[..i], &rest[i + 1..], 1),
        None => (*rest, "", 0),
    };
    *rest = tail;
    let text = raw.strip_suffix('\r').unwrap_or(raw);
    if text.contains(['\r', '\0']) {
        return Err(SigError::malformed(
            what,
            "a line contains a CR or NUL character",
        ));
    }
    Ok(Some(Line {
        text,
        len_with_ending: raw.len() + ending,
    }))
}

/// The base64 line of a key file: the first non-empty line is the untrusted comment, the
/// second one the key, and nothing else may follow.
pub(crate) fn key_file_payload<'a>(text: &'a str, what: &'static str) -> Result<&'a str, SigError> {
    let mut rest = text;
    let mut comment_seen = false;
    let mut payload = None;
    while let Some(line) = split_line(&mut rest, what)? {
        let trimmed = line.text.trim_matches([' ', '\t']);
        if trimmed.is_empty() {
            continue;
        }
        if !comment_seen {
            if !line.text.starts_with(COMMENT_PREFIX) {
                return Err(SigError::malformed(
                    what,
                    format!("the first line must start with {COMMENT_PREFIX:?}"),
                ));
            }
            if line.len_with_ending > COMMENT_LINE_MAX {
                return Err(SigError::malformed(
                    what,
                    format!(
                        "the comment line is {} bytes, the limit is {COMMENT_LINE_MAX}",
                        line.len_with_ending
                    ),
                ));
            }
            comment_seen = true;
        } else if payload.is_none() {
            payload = Some(trimmed);
        } else {
            return Err(SigError::malformed(
                what,
                "unexpected text after the base64 line",
            ));
        }
    }
    payload.ok_or_else(|| SigError::malformed(what, "missing the base64 line"))
}

/// Length of the padded standard base64 encoding of `n` bytes.
pub(crate) const fn b64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Decodes exactly `N` bytes of padded standard base64 (what minisign and signify write).
pub(crate) fn decode_b64<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], SigError> {
    let mut out = [0u8; N];
    decode_b64_into(s, &mut out, what)?;
    Ok(out)
}

/// Decodes into `out`, which must be filled exactly; for secrets the caller owns a
/// zeroizing buffer, so no copy is left behind.
pub(crate) fn decode_b64_into(s: &str, out: &mut [u8], what: &'static str) -> Result<(), SigError> {
    let expected = b64_len(out.len());
    if s.len() != expected {
        return Err(SigError::malformed(
            what,
            format!(
                "expected {expected} base64 characters ({} bytes), found {}",
                out.len(),
                s.len()
            ),
        ));
    }
    match STANDARD.decode_slice(s, out) {
        Ok(n) if n == out.len() => Ok(()),
        Ok(n) => Err(SigError::malformed(
            what,
            format!("decodes to {n} bytes, expected {}", out.len()),
        )),
        Err(e) => Err(SigError::malformed(what, format!("bad base64: {e}"))),
    }
}

pub(crate) fn encode_b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Names a 2-byte algorithm tag for an error message.
pub(crate) fn describe_tag(tag: [u8; 2]) -> String {
    if tag.iter().all(u8::is_ascii_graphic) {
        tag.iter().map(|&b| char::from(b)).collect()
    } else {
        format!("0x{:02x}{:02x}", tag[0], tag[1])
    }
}

/// Reads a small text file into a buffer that is wiped when dropped (it may be a secret key).
pub(crate) fn read_small_file(
    path: &Path,
    what: &'static str,
) -> Result<Zeroizing<String>, SigError> {
    let io_err = |source| SigError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut buf = Zeroizing::new(Vec::new());
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io_err)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(SigError::TooLarge {
            what,
            size: buf.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    match std::str::from_utf8(&buf) {
        Ok(s) => Ok(Zeroizing::new(s.to_owned())),
        Err(_) => Err(SigError::malformed(what, "not UTF-8 text")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Test vectors from shared/specs/signatures.md, checked against the real tools.
    pub(crate) const MSG: &[u8] = b"hello world\n";
    pub(crate) const PK_B64: &str = "RWQBAgMEBQYHCAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
    pub(crate) const ED_LINE: &str = "RUQBAgMEBQYHCBMyWdOFTFZv9QWYN35BjApAX1XuhYjkGw2/W/LzbkOmjByqQCgzAkBBazHdrhIYttE2uBB87idsPQkB6MVdqw0=";
    pub(crate) const TRUSTED: &str = "timestamp:1700000000\tfile:msg.txt\thashed";
    pub(crate) const GLOBAL_LINE: &str =
        "kAIqXMyHShKwayofCDd8pwHgCLZ1Pr/NvJbGTAkEReJO2cAZVN99RLIkvNm4JguXxz3wogYQfAfn37/vpUWoBg==";
    pub(crate) const LEGACY_LINE: &str = "RWQBAgMEBQYHCCg+bw2c/1YcCucowz0aFVRVgHxToB5gUfCj/Jp1WrpQ8NfEC4d7JUhxEHtqwzx+TrSdy6ng41WhOoOdP/Y9XgU=";

    /// seed = 00 01 .. 1f, keynum = 01 02 .. 08.
    pub(crate) fn vector_key() -> SecretKey {
        let seed: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap());
        SecretKey::from_seed(&seed, KeyId([1, 2, 3, 4, 5, 6, 7, 8]))
    }

    /// A legacy ("Ed") signature as `minisign -S -l` makes it.
    pub(crate) fn legacy_sign(sk: &SecretKey, msg: &[u8], trusted: &str) -> Signature {
        let signature = sk.sign_raw(msg);
        let global = sk.sign_raw(&global_message(&signature, trusted));
        Signature::from_parts(
            Algorithm::Legacy,
            sk.key_id(),
            "signature from minisign secret key".into(),
            trusted.into(),
            signature,
            global,
        )
    }

    #[test]
    fn vector_public_key() {
        let pk = vector_key().public_key();
        assert_eq!(pk.key_id().to_string(), "0807060504030201");
        assert_eq!(pk.to_base64(), PK_B64);
        assert_eq!(
            pk.to_file_string(),
            format!("untrusted comment: minisign public key 0807060504030201\n{PK_B64}\n")
        );
    }

    #[test]
    fn vector_prehashed_signature() {
        let sk = vector_key();
        let sig = sign(&sk, MSG, TRUSTED, "signature from ferry").unwrap();
        assert_eq!(sig.algorithm, Algorithm::Prehashed);
        assert_eq!(sig.signature_line(), ED_LINE);
        assert_eq!(sig.global_signature_line(), GLOBAL_LINE);
        assert_eq!(
            sig.to_file_string(),
            format!(
                "untrusted comment: signature from ferry\n{ED_LINE}\n\
                 trusted comment: {TRUSTED}\n{GLOBAL_LINE}\n"
            )
        );
        sk.public_key().verify(&sig, MSG).unwrap();
    }

    #[test]
    fn vector_legacy_signature() {
        let sk = vector_key();
        let sig = legacy_sign(&sk, MSG, TRUSTED);
        assert_eq!(sig.signature_line(), LEGACY_LINE);
        sk.public_key().verify(&sig, MSG).unwrap();
    }

    #[test]
    fn streaming_prehash_matches() {
        let mut h = Prehasher::new();
        io::Write::write_all(&mut h, b"hello ").unwrap();
        h.update(b"world\n");
        let digest = h.finalize();
        assert_eq!(digest, prehash(MSG));
        let sk = vector_key();
        let a = sign_prehashed(&sk, &digest, TRUSTED, "c").unwrap();
        let b = sign(&sk, MSG, TRUSTED, "c").unwrap();
        assert_eq!(a, b);
        sk.public_key().verify_prehashed(&a, &digest).unwrap();
    }

    #[test]
    fn verification_failures() {
        let sk = vector_key();
        let pk = sk.public_key();
        let sig = sign(&sk, MSG, TRUSTED, "c").unwrap();

        assert!(matches!(
            pk.verify(&sig, b"hello world!"),
            Err(SigError::BadSignature)
        ));

        let mut edited = sig.clone();
        edited.trusted_comment.push('x');
        assert!(matches!(
            pk.verify(&edited, MSG),
            Err(SigError::BadGlobalSignature)
        ));

        // The untrusted comment is not signed.
        let mut edited = sig.clone();
        edited.untrusted_comment = "anything".into();
        pk.verify(&edited, MSG).unwrap();

        // Same key id, different key: the signature check must fail, not the id check.
        let other = SecretKey::from_seed(&[9; 32], sk.key_id());
        assert!(matches!(
            other.public_key().verify(&sig, MSG),
            Err(SigError::BadSignature)
        ));

        let stranger = SecretKey::from_seed(&[9; 32], KeyId([9; 8]));
        match stranger.public_key().verify(&sig, MSG) {
            Err(SigError::KeyIdMismatch { expected, actual }) => {
                assert_eq!(expected, KeyId([9; 8]));
                assert_eq!(actual, sk.key_id());
            }
            other => panic!("expected a key id mismatch, got {other:?}"),
        }

        // A legacy signature cannot be checked against a digest.
        let legacy = legacy_sign(&sk, MSG, TRUSTED);
        assert!(matches!(
            pk.verify_prehashed(&legacy, &prehash(MSG)),
            Err(SigError::AlgorithmMismatch { .. })
        ));
        // Nor may a legacy signature pass as a prehashed one or the other way round.
        let mut relabeled = legacy.clone();
        relabeled.algorithm = Algorithm::Prehashed;
        assert!(pk.verify(&relabeled, MSG).is_err());
    }

    #[test]
    fn sign_rejects_comments_minisign_cannot_read() {
        let sk = vector_key();
        let long_untrusted = "u".repeat(MAX_UNTRUSTED_COMMENT + 1);
        let long_trusted = "t".repeat(MAX_TRUSTED_COMMENT + 1);
        let cases: [(&str, &str); 8] = [
            ("a\rb", "ok"),
            ("a\nb", "ok"),
            ("a\0b", "ok"),
            (&long_trusted, "ok"),
            ("ok", "a\rb"),
            ("ok", "a\nb"),
            ("ok", "a\0b"),
            ("ok", &long_untrusted),
        ];
        for (trusted, untrusted) in cases {
            assert!(
                matches!(
                    sign(&sk, MSG, trusted, untrusted),
                    Err(SigError::InvalidInput { .. })
                ),
                "trusted {trusted:?}, untrusted {untrusted:?}"
            );
        }
        // Exactly at the limits, and empty, is fine.
        let at_limit = sign(
            &sk,
            MSG,
            &"t".repeat(MAX_TRUSTED_COMMENT),
            &"u".repeat(MAX_UNTRUSTED_COMMENT),
        )
        .unwrap();
        assert_eq!(
            Signature::parse(&at_limit.to_file_string()).unwrap(),
            at_limit
        );
        sign(&sk, MSG, "", "").unwrap();
    }
}
