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
    check_comment(
        untrusted_comment,
        "untrusted comment",
        MAX_UNTRUSTED_COMMENT,
    )?;
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
        SigError::malformed(
            WHAT,
            format!("the first line must start with {COMMENT_PREFIX:?}"),
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minisign::tests::{vector_key, LEGACY_LINE, MSG, PK_B64};

    #[test]
    fn vector_embedded_signature() {
        let sk = vector_key();
        let file = sign_embedded(&sk, MSG, "verify with ferry.pub").unwrap();
        assert_eq!(
            file,
            format!("untrusted comment: verify with ferry.pub\n{LEGACY_LINE}\nhello world\n")
        );
        let pk = PublicKey::from_base64(PK_B64).unwrap();
        assert_eq!(verify_embedded(&pk, file.as_bytes()).unwrap(), MSG);
    }

    #[test]
    fn empty_message_round_trip() {
        let sk = vector_key();
        let file = sign_embedded(&sk, b"", "c").unwrap();
        assert!(file.ends_with('\n'));
        assert_eq!(
            verify_embedded(&sk.public_key(), file.as_bytes()).unwrap(),
            b""
        );
    }

    #[test]
    fn verification_failures() {
        let sk = vector_key();
        let pk = sk.public_key();
        let file = sign_embedded(&sk, MSG, "c").unwrap();

        let tampered = file.replace("hello world", "hello w0rld");
        assert!(matches!(
            verify_embedded(&pk, tampered.as_bytes()),
            Err(SigError::BadSignature)
        ));
        let appended = format!("{file}more\n");
        assert!(matches!(
            verify_embedded(&pk, appended.as_bytes()),
            Err(SigError::BadSignature)
        ));
        let stranger = SecretKey::from_seed(&[9; 32], crate::minisign::KeyId([9; 8]));
        assert!(matches!(
            verify_embedded(&stranger.public_key(), file.as_bytes()),
            Err(SigError::KeyIdMismatch { .. })
        ));
        // The untrusted comment is not signed.
        let recommented = file.replacen("untrusted comment: c", "untrusted comment: other", 1);
        verify_embedded(&pk, recommented.as_bytes()).unwrap();
    }

    #[test]
    fn rejects_malformed_files() {
        let sk = vector_key();
        let pk = sk.public_key();
        let good = sign_embedded(&sk, MSG, "c").unwrap();
        let sig_line = good.lines().nth(1).unwrap();
        // A prehashed minisign signature line: signify cannot check it either.
        let prehashed = crate::minisign::sign(&sk, MSG, "t", "c")
            .unwrap()
            .signature_line();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("one line", b"untrusted comment: c\n".to_vec()),
            (
                "no newline after signature",
                format!("untrusted comment: c\n{sig_line}").into_bytes(),
            ),
            (
                "empty comment",
                format!("untrusted comment: \n{sig_line}\nhello world\n").into_bytes(),
            ),
            (
                "no prefix",
                format!("comment: c\n{sig_line}\nhello world\n").into_bytes(),
            ),
            (
                "CR inside comment",
                format!("untrusted comment: a\rb\n{sig_line}\nhello world\n").into_bytes(),
            ),
            (
                "truncated base64",
                format!("untrusted comment: c\n{}\nhello world\n", &sig_line[..96]).into_bytes(),
            ),
            (
                "prehashed tag",
                format!("untrusted comment: c\n{prehashed}\nhello world\n").into_bytes(),
            ),
            ("binary header", b"untrusted comment: \xff\nx\n".to_vec()),
        ];
        for (name, text) in cases {
            match verify_embedded(&pk, &text) {
                Err(SigError::Malformed { .. } | SigError::UnsupportedAlgorithm(_)) => {}
                other => panic!("{name}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn sign_rejects_what_signify_cannot_read() {
        let sk = vector_key();
        let long = "c".repeat(MAX_UNTRUSTED_COMMENT + 1);
        for comment in ["", "a\nb", "a\rb", "a\0b", long.as_str()] {
            assert!(
                matches!(
                    sign_embedded(&sk, MSG, comment),
                    Err(SigError::InvalidInput { .. })
                ),
                "{comment:?}"
            );
        }
        assert!(matches!(
            sign_embedded(&sk, b"\xff", "c"),
            Err(SigError::InvalidInput { .. })
        ));
        sign_embedded(&sk, MSG, &"c".repeat(MAX_UNTRUSTED_COMMENT)).unwrap();
    }

    #[test]
    fn binary_messages_verify() {
        // signify signs bytes; only our writer insists on text.
        let sk = vector_key();
        let mut file = sign_embedded(&sk, b"", "c").unwrap().into_bytes();
        let header_len = file.len();
        let message = b"\x00\xff\r\n\x01";
        let mut lines = file.split(|&b| b == b'\n');
        lines.next();
        let b64 = std::str::from_utf8(lines.next().unwrap())
            .unwrap()
            .to_owned();
        let mut payload: [u8; 74] = crate::minisign::decode_b64(&b64, "t").unwrap();
        payload[10..].copy_from_slice(&sk.sign_raw(message));
        file.truncate(header_len - b64.len() - 1);
        file.extend_from_slice(encode_b64(&payload).as_bytes());
        file.push(b'\n');
        file.extend_from_slice(message);
        assert_eq!(verify_embedded(&sk.public_key(), &file).unwrap(), message);
    }
}
