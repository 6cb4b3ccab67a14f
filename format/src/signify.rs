//! OpenBSD signify's embedded signatures (`signify -S -e`, `signify -V -e`, `signify -C`),
//! made with the same Ed25519 keys as minisign: signify's public key file and legacy
//! ("Ed") signature payload are byte for byte minisign's.
//!
//! File layout: `untrusted comment: <text>\n` + base64("Ed" | keynum | Ed25519(message))
//! + `\n` + message.

use crate::minisign::{
    check_comment, decode_b64, describe_tag, encode_b64, split_line, Algorithm, PublicKey,
    SecretKey, SigError, COMMENT_PREFIX, MAX_UNTRUSTED_COMMENT,
};

/// signify refuses to read a signed file larger than this (its `readmsg` limit).
pub const MAX_EMBEDDED_FILE: u64 = 1 << 30;

const WHAT: &str = "signify signature";

/// Signs `message` and embeds it after the signature, as `signify -S -e` does.
///
/// signify rejects an empty untrusted comment, and the message must be text because the
/// file is returned as a `String` (a checksum list always is).
pub fn sign_embedded(
    sk: &SecretKey,
    message: &[u8],
    untrusted_comment: &str,
) -> Result<String, SigError> {
    check_comment(untrusted_comment, "untrusted comment", MAX_UNTRUSTED_COMMENT)?;
    if untrusted_comment.is_empty() {
        return Err(SigError::invalid(
            "untrusted comment",
            "empty, which signify rejects",
        ));
    }
    let message = std::str::from_utf8(message)
        .map_err(|e| SigError::invalid("embedded message", format!("not UTF-8: {e}")))?;

    let mut payload = Vec::with_capacity(74);
    payload.extend_from_slice(&Algorithm::Legacy.tag());
    payload.extend_from_slice(&sk.key_id().0);
    payload.extend_from_slice(&sk.sign_raw(message.as_bytes()));
    let out = format!(
        "{COMMENT_PREFIX}{untrusted_comment}\n{}\n{message}",
        encode_b64(&payload)
    );
    if out.len() as u64 > MAX_EMBEDDED_FILE {
        return Err(SigError::TooLarge {
            what: "embedded signature file",
            size: out.len() as u64,
            limit: MAX_EMBEDDED_FILE,
        });
    }
    // Check our own output before it leaves: a fault while signing must not ship.
    verify_embedded(&sk.public_key(), out.as_bytes())?;
    Ok(out)
}

/// Verifies an embedded signature file and returns the signed message that follows it.
///
/// Stricter than signify where signify is lax: the comment line must have signify's
/// prefix and a non-empty, single-line text, and the base64 line must be canonical.
pub fn verify_embedded<'a>(pk: &PublicKey, text: &'a [u8]) -> Result<&'a [u8], SigError> {
    if text.len() as u64 > MAX_EMBEDDED_FILE {
        return Err(SigError::TooLarge {
            what: "embedded signature file",
            size: text.len() as u64,
            limit: MAX_EMBEDDED_FILE,
        });
    }
    // Only the two header lines need to be text; the message is bytes.
    let header_end = nth_newline(text, 2)
        .ok_or_else(|| SigError::malformed(WHAT, "missing the comment or signature line"))?;
    let (header, message) = text.split_at(header_end + 1);
    let mut rest = std::str::from_utf8(header)
        .map_err(|_| SigError::malformed(WHAT, "the header lines are not UTF-8"))?;

    let comment = split_line(&mut rest, WHAT)?.expect("header has two lines");
    let comment_text = comment.text.strip_prefix(COMMENT_PREFIX).ok_or_else(|| {
        SigError::malformed(WHAT, format!("the first line must start with {COMMENT_PREFIX:?}"))
    })?;
    if comment_text.is_empty() || comment_text.len() > MAX_UNTRUSTED_COMMENT {
        return Err(SigError::malformed(
            WHAT,
            format!(
                "the untrusted comment must be 1 to {MAX_UNTRUSTED_COMMENT} bytes, found {}",
                comment_text.len()
            ),
        ));
    }

    let line = split_line(&mut rest, WHAT)?.expect("header has two lines");
    let payload: [u8; 74] = decode_b64(line.text, WHAT)?;
    let tag = [payload[0], payload[1]];
    if tag != Algorithm::Legacy.tag() {
        // A prehashed minisign signature ("ED") cannot be checked by signify either.
        return Err(SigError::UnsupportedAlgorithm(describe_tag(tag)));
    }
    let key_id = crate::minisign::KeyId(payload[2..10].try_into().expect("8 bytes"));
    if key_id != pk.key_id() {
        return Err(SigError::KeyIdMismatch {
            expected: pk.key_id(),
            actual: key_id,
        });
    }
    let signature: [u8; 64] = payload[10..].try_into().expect("64 bytes");
    pk.verify_raw(message, &signature, SigError::BadSignature)?;
    Ok(message)
}

/// Index of the `n`th LF in `text`.
fn nth_newline(text: &[u8], n: usize) -> Option<usize> {
    text.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(n - 1)
        .map(|(i, _)| i)
}
