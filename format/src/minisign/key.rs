//! Key ids, public keys and secret keys in minisign's file formats.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest as _};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use super::kdf::{self, MEMLIMIT_SENSITIVE, OPSLIMIT_SENSITIVE, STREAM_LEN};
use super::signature::{Algorithm, Signature};
use super::{
    decode_b64, decode_b64_into, describe_tag, encode_b64, global_message, key_file_payload,
    prehash, read_small_file, SigError, COMMENT_PREFIX,
};

/// The tag of every minisign and signify key: Ed25519.
const ED: [u8; 2] = *b"Ed";
const KDF_SCRYPT: [u8; 2] = *b"Sc";
const KDF_NONE: [u8; 2] = [0, 0];
const CHK_BLAKE2B: [u8; 2] = *b"B2";

/// Secret key payload layout (158 bytes).
const SK_LEN: usize = 158;
const SK_KDF: std::ops::Range<usize> = 2..4;
const SK_CHK_ALG: std::ops::Range<usize> = 4..6;
const SK_SALT: std::ops::Range<usize> = 6..38;
const SK_OPSLIMIT: std::ops::Range<usize> = 38..46;
const SK_MEMLIMIT: std::ops::Range<usize> = 46..54;
/// keynum ‖ seed ‖ pk ‖ checksum: the part scrypt's key stream covers.
const SK_ENCRYPTED: std::ops::Range<usize> = 54..158;
const SK_KEYNUM: std::ops::Range<usize> = 54..62;
const SK_SEED: std::ops::Range<usize> = 62..94;
const SK_PK: std::ops::Range<usize> = 94..126;
const SK_CHECKSUM: std::ops::Range<usize> = 126..158;

/// Longest passphrase minisign can read (its buffer is 1024 bytes with the NUL).
const MAX_PASSPHRASE: usize = 1023;

/// The 8 random bytes that name a key pair, stored as generated.
///
/// Displayed as minisign shows it: the hex of the little-endian u64, so bytes
/// 01 02 .. 08 show as `0807060504030201`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = SigError;

    /// Parses the displayed form, 1 to 16 hex digits in either case: minisign 0.11 prints
    /// ids without leading zeros, newer versions pad them to 16.
    fn from_str(s: &str) -> Result<Self, SigError> {
        if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SigError::malformed(
                "key id",
                format!("{s:?} is not 1 to 16 hex digits"),
            ));
        }
        let n = u64::from_str_radix(s, 16).expect("checked to be hex digits");
        Ok(Self(n.to_le_bytes()))
    }
}

/// A minisign (or signify) public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key_id: KeyId,
    key: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .field("key", &self.to_base64())
            .finish()
    }
}

impl PublicKey {
    const WHAT: &'static str = "public key";

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The raw Ed25519 public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Reads the base64 form that `minisign -P` takes: base64("Ed" | keynum | pk).
    pub fn from_base64(s: &str) -> Result<Self, SigError> {
        let raw: [u8; 42] = decode_b64(s.trim_matches([' ', '\t']), Self::WHAT)?;
        let tag = [raw[0], raw[1]];
        if tag != ED {
            return Err(SigError::UnsupportedAlgorithm(describe_tag(tag)));
        }
        let key_id = KeyId(raw[2..10].try_into().expect("8 bytes"));
        let bytes: [u8; 32] = raw[10..].try_into().expect("32 bytes");
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| SigError::malformed(Self::WHAT, "not a valid Ed25519 point"))?;
        // verify_strict would refuse every signature anyway; say so when loading.
        if key.is_weak() {
            return Err(SigError::malformed(Self::WHAT, "a weak (small-order) key"));
        }
        Ok(Self { key_id, key })
    }

    /// The payload line of the key file.
    pub fn to_base64(&self) -> String {
        let mut raw = Vec::with_capacity(42);
        raw.extend_from_slice(&ED);
        raw.extend_from_slice(&self.key_id.0);
        raw.extend_from_slice(self.key.as_bytes());
        encode_b64(&raw)
    }

    /// Reads a public key file as minisign and signify write it.
    pub fn parse(text: &str) -> Result<Self, SigError> {
        Self::from_base64(key_file_payload(text, Self::WHAT)?)
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self, SigError> {
        Self::parse(&read_small_file(path.as_ref(), Self::WHAT)?)
    }

    /// The file as `minisign -G` writes it. The key id in the comment is padded to 16
    /// digits like newer minisign; 0.11 drops leading zeros. Only the base64 line counts.
    pub fn to_file_string(&self) -> String {
        format!(
            "{COMMENT_PREFIX}minisign public key {}\n{}\n",
            self.key_id,
            self.to_base64()
        )
    }

    /// Verifies a signature over a whole message, prehashed ("ED") or legacy ("Ed"),
    /// and the signature over its trusted comment.
    pub fn verify(&self, sig: &Signature, msg: &[u8]) -> Result<(), SigError> {
        match sig.algorithm {
            Algorithm::Prehashed => self.verify_prehashed(sig, &prehash(msg)),
            Algorithm::Legacy => {
                self.check_key_id(sig)?;
                self.verify_raw(msg, sig.signature_bytes(), SigError::BadSignature)?;
                self.verify_global(sig)
            }
        }
    }

    /// Verifies a prehashed ("ED") signature against the BLAKE2b-512 digest of the file,
    /// for callers that hash while streaming. Legacy signatures cannot be checked this way.
    pub fn verify_prehashed(&self, sig: &Signature, blake2b512: &[u8; 64]) -> Result<(), SigError> {
        if sig.algorithm != Algorithm::Prehashed {
            return Err(SigError::AlgorithmMismatch {
                expected: Algorithm::Prehashed,
                actual: sig.algorithm,
            });
        }
        self.check_key_id(sig)?;
        self.verify_raw(blake2b512, sig.signature_bytes(), SigError::BadSignature)?;
        self.verify_global(sig)
    }

    pub(crate) fn check_key_id(&self, sig: &Signature) -> Result<(), SigError> {
        if sig.key_id == self.key_id {
            Ok(())
        } else {
            Err(SigError::KeyIdMismatch {
                expected: self.key_id,
                actual: sig.key_id,
            })
        }
    }

    fn verify_global(&self, sig: &Signature) -> Result<(), SigError> {
        self.verify_raw(
            &global_message(sig.signature_bytes(), &sig.trusted_comment),
            sig.global_signature_bytes(),
            SigError::BadGlobalSignature,
        )
    }

    /// Plain Ed25519 verification, strict as libsodium is.
    pub(crate) fn verify_raw(
        &self,
        msg: &[u8],
        signature: &[u8; 64],
        err: SigError,
    ) -> Result<(), SigError> {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.key.verify_strict(msg, &signature).map_err(|_| err)
    }
}

/// How [`SecretKey::to_file_string`] protects the key.
pub enum Encryption {
    /// scrypt with the limits C minisign uses (N = 2^20, r = 8, p = 1, 1 GiB of memory).
    Scrypt { passphrase: Zeroizing<String> },
    /// Stored in the clear, like `minisign -G -W`; for keys kept in a secrets manager.
    Unencrypted,
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Scrypt { .. } => f.write_str("Scrypt { passphrase: <redacted> }"),
            Self::Unencrypted => f.write_str("Unencrypted"),
        }
    }
}

/// A minisign secret key. The seed lives in a `SigningKey`, which wipes it when dropped.
pub struct SecretKey {
    key_id: KeyId,
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    const WHAT: &'static str = "secret key";

    /// A new key pair from the operating system's random number generator.
    pub fn generate() -> Result<Self, SigError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(seed.as_mut_slice()).map_err(SigError::Random)?;
        let mut key_id = [0u8; 8];
        getrandom::getrandom(&mut key_id).map_err(SigError::Random)?;
        Ok(Self::from_seed(&seed, KeyId(key_id)))
    }

    /// The key pair for a given 32-byte Ed25519 seed (test vectors, key escrow).
    pub fn from_seed(seed: &[u8; 32], key_id: KeyId) -> Self {
        Self {
            key_id,
            key: SigningKey::from_bytes(seed),
        }
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Plain Ed25519 over `msg`.
    pub(crate) fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// Whether a secret key file is encrypted, i.e. whether [`SecretKey::parse`] needs a
    /// passphrase.
    pub fn is_encrypted(text: &str) -> Result<bool, SigError> {
        let raw = decode_secret(text)?;
        match kdf_tag(&raw)? {
            KDF_SCRYPT => Ok(true),
            _ => Ok(false),
        }
    }

    /// Reads a secret key file written by `minisign -G` (scrypt-encrypted), by
    /// `minisign -G -W` (unencrypted) or by [`SecretKey::to_file_string`]. The passphrase
    /// is only used for encrypted keys.
    pub fn parse(text: &str, passphrase: Option<&str>) -> Result<Self, SigError> {
        let mut raw = decode_secret(text)?;
        let checksum_ok = match kdf_tag(&raw)? {
            KDF_SCRYPT => {
                let passphrase = passphrase.ok_or(SigError::PassphraseRequired)?;
                let salt: [u8; 32] = raw[SK_SALT].try_into().expect("32 bytes");
                let stream = kdf::derive_stream(
                    passphrase.as_bytes(),
                    &salt,
                    le64(&raw[SK_OPSLIMIT]),
                    le64(&raw[SK_MEMLIMIT]),
                )?;
                xor(&mut raw[SK_ENCRYPTED], stream.as_slice());
                // The checksum is all that tells a wrong passphrase from garbage.
                if !checksum_matches(&raw) {
                    return Err(SigError::WrongPassphrase);
                }
                true
            }
            // `minisign -G -W` leaves the checksum all zero and never checks it; one
            // decrypted by `minisign -C -W` keeps its valid checksum.
            _ => raw[SK_CHECKSUM].iter().all(|&b| b == 0) || checksum_matches(&raw),
        };
        if !checksum_ok {
            return Err(SigError::malformed(
                Self::WHAT,
                "checksum does not match: the file is corrupt",
            ));
        }
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(raw[SK_SEED].try_into().expect("32 bytes"));
        let key = Self::from_seed(&seed, KeyId(raw[SK_KEYNUM].try_into().expect("8 bytes")));
        // minisign takes the public half from these bytes (`minisign -R`); make sure it is
        // the one that belongs to the seed.
        if key.key.verifying_key().as_bytes()[..] != raw[SK_PK] {
            return Err(SigError::malformed(
                Self::WHAT,
                "the stored public key does not belong to the secret seed",
            ));
        }
        Ok(key)
    }

    pub fn load(path: impl AsRef<Path>, passphrase: Option<&str>) -> Result<Self, SigError> {
        Self::parse(&read_small_file(path.as_ref(), Self::WHAT)?, passphrase)
    }

    /// The secret key file, encrypted as minisign does it or in the clear.
    pub fn to_file_string(&self, enc: &Encryption) -> Result<String, SigError> {
        self.to_file_string_with_limits(enc, OPSLIMIT_SENSITIVE, MEMLIMIT_SENSITIVE)
    }

    /// As [`SecretKey::to_file_string`], with other scrypt limits (tests use cheap ones).
    pub(crate) fn to_file_string_with_limits(
        &self,
        enc: &Encryption,
        opslimit: u64,
        memlimit: u64,
    ) -> Result<String, SigError> {
        let mut raw = Zeroizing::new([0u8; SK_LEN]);
        raw[..2].copy_from_slice(&ED);
        raw[SK_CHK_ALG].copy_from_slice(&CHK_BLAKE2B);
        raw[SK_KEYNUM].copy_from_slice(&self.key_id.0);
        raw[SK_SEED].copy_from_slice(self.key.as_bytes());
        raw[SK_PK].copy_from_slice(self.key.verifying_key().as_bytes());
        // minisign -W writes a zero checksum; a valid one costs nothing and lets a
        // reader detect corruption.
        let checksum = compute_checksum(&raw);
        raw[SK_CHECKSUM].copy_from_slice(&checksum);
        let comment = match enc {
            Encryption::Scrypt { passphrase } => {
                check_passphrase(passphrase)?;
                raw[SK_KDF].copy_from_slice(&KDF_SCRYPT);
                let mut salt = [0u8; 32];
                getrandom::getrandom(&mut salt).map_err(SigError::Random)?;
                raw[SK_SALT].copy_from_slice(&salt);
                raw[SK_OPSLIMIT].copy_from_slice(&opslimit.to_le_bytes());
                raw[SK_MEMLIMIT].copy_from_slice(&memlimit.to_le_bytes());
                let stream = kdf::derive_stream(passphrase.as_bytes(), &salt, opslimit, memlimit)?;
                xor(&mut raw[SK_ENCRYPTED], stream.as_slice());
                "minisign encrypted secret key"
            }
            // Salt and limits stay zero, as `minisign -G -W` leaves them.
            Encryption::Unencrypted => {
                raw[SK_KDF].copy_from_slice(&KDF_NONE);
                "minisign unencrypted secret key"
            }
        };
        let b64 = Zeroizing::new(encode_b64(raw.as_slice()));
        Ok(format!("{COMMENT_PREFIX}{comment}\n{}\n", b64.as_str()))
    }
}

/// Decodes the payload of a secret key file into a buffer that is wiped when dropped, and
/// checks the tags that do not depend on the passphrase.
fn decode_secret(text: &str) -> Result<Zeroizing<[u8; SK_LEN]>, SigError> {
    let mut raw = Zeroizing::new([0u8; SK_LEN]);
    decode_b64_into(
        key_file_payload(text, SecretKey::WHAT)?,
        raw.as_mut_slice(),
        SecretKey::WHAT,
    )?;
    let tag = [raw[0], raw[1]];
    if tag != ED {
        return Err(SigError::UnsupportedAlgorithm(describe_tag(tag)));
    }
    let chk = [raw[SK_CHK_ALG.start], raw[SK_CHK_ALG.start + 1]];
    if chk != CHK_BLAKE2B {
        return Err(SigError::UnsupportedChecksum(describe_tag(chk)));
    }
    Ok(raw)
}

fn kdf_tag(raw: &[u8; SK_LEN]) -> Result<[u8; 2], SigError> {
    let tag = [raw[SK_KDF.start], raw[SK_KDF.start + 1]];
    match tag {
        KDF_SCRYPT | KDF_NONE => Ok(tag),
        _ => Err(SigError::UnsupportedKdf(describe_tag(tag))),
    }
}

/// `BLAKE2b` with a 32-byte output (not truncated BLAKE2b-512) over "Ed" ‖ keynum ‖ sk.
fn compute_checksum(raw: &[u8; SK_LEN]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(&raw[..2]);
    h.update(&raw[SK_KEYNUM]);
    h.update(&raw[SK_SEED.start..SK_PK.end]);
    h.finalize().into()
}

fn checksum_matches(raw: &[u8; SK_LEN]) -> bool {
    let expected = compute_checksum(raw);
    // Constant time: the checksum is computed over secret material.
    expected
        .iter()
        .zip(&raw[SK_CHECKSUM])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Passphrases minisign could not type in: it reads one line and cuts it at CR or LF.
fn check_passphrase(passphrase: &str) -> Result<(), SigError> {
    if passphrase.is_empty() {
        return Err(SigError::invalid(
            "passphrase",
            "empty; use Encryption::Unencrypted for an unencrypted key",
        ));
    }
    if passphrase.contains(['\r', '\n', '\0']) {
        return Err(SigError::invalid(
            "passphrase",
            "contains a CR, LF or NUL character, which minisign cannot read",
        ));
    }
    if passphrase.len() > MAX_PASSPHRASE {
        return Err(SigError::invalid(
            "passphrase",
            format!("longer than minisign's limit of {MAX_PASSPHRASE} bytes"),
        ));
    }
    Ok(())
}

fn le64(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
}

fn xor(dst: &mut [u8], stream: &[u8]) {
    debug_assert_eq!(dst.len(), STREAM_LEN);
    for (d, s) in dst.iter_mut().zip(stream) {
        *d ^= s;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{vector_key, PK_B64};
    use super::super::{b64_len, encode_b64, COMMENT_LINE_MAX};
    use super::*;

    /// Cheap scrypt limits (N = 2^10) so unit tests stay fast; interop tests use the real ones.
    const CHEAP_OPS: u64 = 32_768;
    const CHEAP_MEM: u64 = 1 << 20;

    fn scrypt(passphrase: &str) -> Encryption {
        Encryption::Scrypt {
            passphrase: Zeroizing::new(passphrase.to_owned()),
        }
    }

    fn raw_secret(text: &str) -> [u8; SK_LEN] {
        *decode_secret(text).unwrap()
    }

    fn secret_file(raw: &[u8; SK_LEN]) -> String {
        format!("untrusted comment: k\n{}\n", encode_b64(raw))
    }

    #[test]
    fn key_id_display_and_parse() {
        let id = KeyId([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(id.to_string(), "0807060504030201");
        assert_eq!(format!("{id:?}"), "KeyId(0807060504030201)");
        assert_eq!("0807060504030201".parse::<KeyId>().unwrap(), id);
        assert_eq!(
            "abcdef0123456789".parse::<KeyId>().unwrap().to_string(),
            "ABCDEF0123456789"
        );
        // minisign 0.11 drops leading zeros.
        assert_eq!(
            "3ECB89B732836A3".parse::<KeyId>().unwrap().to_string(),
            "03ECB89B732836A3"
        );
        for bad in [
            "",
            " 0807",
            "08070605040302011",
            "+807060504030201",
            "080706050403020g",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn public_key_files() {
        let pk = vector_key().public_key();
        let file = pk.to_file_string();
        assert_eq!(PublicKey::parse(&file).unwrap(), pk);
        assert_eq!(PublicKey::from_base64(PK_B64).unwrap(), pk);
        // signify's comment, CRLF endings and blank lines around are all fine.
        let signify = format!("\r\nuntrusted comment: signify public key\r\n\r\n{PK_B64}\r\n\n");
        assert_eq!(PublicKey::parse(&signify).unwrap(), pk);
        assert_eq!(
            PublicKey::parse(&format!("untrusted comment: x\n{PK_B64}")).unwrap(),
            pk
        );
    }

    #[test]
    fn rejects_malformed_public_keys() {
        // A y coordinate with no matching x: decompression fails.
        let off_curve = (0u8..=255)
            .map(|b| [b; 32])
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .expect("some constant byte string is off the curve");
        let mut identity = [0u8; 32];
        identity[0] = 1; // the neutral element, a small-order point
        let payload = |tag: &[u8; 2], key: &[u8; 32]| {
            let mut raw = tag.to_vec();
            raw.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
            raw.extend_from_slice(key);
            format!("untrusted comment: k\n{}\n", encode_b64(&raw))
        };
        let long_comment = format!(
            "untrusted comment: {}\n{PK_B64}\n",
            "x".repeat(COMMENT_LINE_MAX)
        );
        let cases: Vec<(&str, String)> = vec![
            ("empty", String::new()),
            ("no comment line", format!("{PK_B64}\n")),
            ("no base64 line", "untrusted comment: k\n".into()),
            (
                "extra line",
                format!("untrusted comment: k\n{PK_B64}\n{PK_B64}\n"),
            ),
            (
                "truncated",
                format!("untrusted comment: k\n{}\n", &PK_B64[..52]),
            ),
            (
                "bad character",
                format!("untrusted comment: k\n{}\n", PK_B64.replace('Q', "!")),
            ),
            (
                "prehashed tag",
                payload(b"ED", vector_key().public_key().as_bytes()),
            ),
            ("off the curve", payload(b"Ed", &off_curve)),
            ("weak key", payload(b"Ed", &identity)),
            ("comment too long", long_comment),
            (
                "CR inside a line",
                format!("untrusted comment: k\n{PK_B64}\rx\n"),
            ),
        ];
        for (name, text) in cases {
            match PublicKey::parse(&text) {
                Err(SigError::Malformed { .. } | SigError::UnsupportedAlgorithm(_)) => {}
                other => panic!("{name}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn unencrypted_secret_key_round_trip() {
        let sk = vector_key();
        let text = sk.to_file_string(&Encryption::Unencrypted).unwrap();
        assert!(text.starts_with("untrusted comment: "));
        assert_eq!(text.lines().nth(1).unwrap().len(), b64_len(SK_LEN));
        assert!(!SecretKey::is_encrypted(&text).unwrap());
        let raw = raw_secret(&text);
        assert_eq!(&raw[..6], b"Ed\0\0B2");
        assert!(raw[SK_SALT.start..SK_MEMLIMIT.end].iter().all(|&b| b == 0));
        // A passphrase is ignored for an unencrypted key.
        for pw in [None, Some("ignored")] {
            let back = SecretKey::parse(&text, pw).unwrap();
            assert_eq!(back.key_id(), sk.key_id());
            assert_eq!(back.public_key(), sk.public_key());
        }
    }

    #[test]
    fn minisign_w_keys_with_a_zero_checksum_load() {
        // `minisign -G -W` writes no checksum.
        let mut raw = raw_secret(
            &vector_key()
                .to_file_string(&Encryption::Unencrypted)
                .unwrap(),
        );
        raw[SK_CHECKSUM].fill(0);
        let back = SecretKey::parse(&secret_file(&raw), None).unwrap();
        assert_eq!(back.public_key(), vector_key().public_key());
    }

    #[test]
    fn encrypted_secret_key_round_trip() {
        let sk = vector_key();
        let text = sk
            .to_file_string_with_limits(&scrypt("correct horse"), CHEAP_OPS, CHEAP_MEM)
            .unwrap();
        assert!(text.starts_with("untrusted comment: minisign encrypted secret key\n"));
        assert!(SecretKey::is_encrypted(&text).unwrap());
        let raw = raw_secret(&text);
        assert_eq!(&raw[..6], b"EdScB2");
        assert_eq!(le64(&raw[SK_OPSLIMIT]), CHEAP_OPS);
        assert_eq!(le64(&raw[SK_MEMLIMIT]), CHEAP_MEM);
        // Nothing of the key is left in the clear.
        assert_ne!(&raw[SK_KEYNUM], &sk.key_id().0);
        assert_ne!(&raw[SK_PK], sk.public_key().as_bytes());

        let back = SecretKey::parse(&text, Some("correct horse")).unwrap();
        assert_eq!(back.key_id(), sk.key_id());
        assert_eq!(back.public_key(), sk.public_key());
        assert!(matches!(
            SecretKey::parse(&text, Some("wrong horse")),
            Err(SigError::WrongPassphrase)
        ));
        assert!(matches!(
            SecretKey::parse(&text, None),
            Err(SigError::PassphraseRequired)
        ));
        // A fresh salt each time.
        let again = sk
            .to_file_string_with_limits(&scrypt("correct horse"), CHEAP_OPS, CHEAP_MEM)
            .unwrap();
        assert_ne!(text, again);
    }

    #[test]
    fn default_encryption_uses_minisigns_limits() {
        // The real thing once (N = 2^20, 1 GiB): what minisign writes and reads.
        let sk = vector_key();
        let text = sk.to_file_string(&scrypt("pw")).unwrap();
        let raw = raw_secret(&text);
        assert_eq!(le64(&raw[SK_OPSLIMIT]), 33_554_432);
        assert_eq!(le64(&raw[SK_MEMLIMIT]), 1_073_741_824);
        let back = SecretKey::parse(&text, Some("pw")).unwrap();
        assert_eq!(back.public_key(), sk.public_key());
    }

    #[test]
    fn rejects_bad_secret_keys() {
        let sk = vector_key();
        let plain = raw_secret(&sk.to_file_string(&Encryption::Unencrypted).unwrap());
        let edit = |f: &dyn Fn(&mut [u8; SK_LEN])| {
            let mut raw = plain;
            f(&mut raw);
            secret_file(&raw)
        };
        let cases: Vec<(&str, String)> = vec![
            (
                "signature algorithm",
                edit(&|r| r[..2].copy_from_slice(b"ED")),
            ),
            ("kdf", edit(&|r| r[SK_KDF].copy_from_slice(b"Xx"))),
            (
                "checksum algorithm",
                edit(&|r| r[SK_CHK_ALG].copy_from_slice(b"B3")),
            ),
            ("corrupt checksum", edit(&|r| r[SK_CHECKSUM.start] ^= 1)),
            ("corrupt seed", edit(&|r| r[SK_SEED.start] ^= 1)),
            (
                "public half of another seed",
                edit(&|r| {
                    let other = SecretKey::from_seed(&[9; 32], sk.key_id());
                    r[SK_PK].copy_from_slice(other.public_key().as_bytes());
                    r[SK_CHECKSUM].fill(0);
                }),
            ),
            (
                "truncated",
                format!("untrusted comment: k\n{}\n", &encode_b64(&plain)[..208]),
            ),
            ("no comment", format!("{}\n", encode_b64(&plain))),
        ];
        for (name, text) in cases {
            match SecretKey::parse(&text, Some("pw")) {
                Err(
                    SigError::Malformed { .. }
                    | SigError::UnsupportedAlgorithm(_)
                    | SigError::UnsupportedKdf(_)
                    | SigError::UnsupportedChecksum(_),
                ) => {}
                other => panic!("{name}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn refuses_a_key_that_asks_for_too_much_memory() {
        let text = vector_key()
            .to_file_string_with_limits(&scrypt("pw"), CHEAP_OPS, CHEAP_MEM)
            .unwrap();
        let mut raw = raw_secret(&text);
        raw[SK_OPSLIMIT].copy_from_slice(&(1u64 << 40).to_le_bytes());
        raw[SK_MEMLIMIT].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(matches!(
            SecretKey::parse(&secret_file(&raw), Some("pw")),
            Err(SigError::KdfTooCostly { .. })
        ));
    }

    #[test]
    fn rejects_passphrases_minisign_cannot_type() {
        let sk = vector_key();
        let long = "p".repeat(MAX_PASSPHRASE + 1);
        for pw in ["", "a\nb", "a\rb", "a\0b", long.as_str()] {
            assert!(
                matches!(
                    sk.to_file_string_with_limits(&scrypt(pw), CHEAP_OPS, CHEAP_MEM),
                    Err(SigError::InvalidInput { .. })
                ),
                "{pw:?}"
            );
        }
    }

    #[test]
    fn generated_keys_differ_and_sign() {
        let a = SecretKey::generate().unwrap();
        let b = SecretKey::generate().unwrap();
        assert_ne!(a.key_id(), b.key_id());
        assert_ne!(a.public_key(), b.public_key());
        let sig = super::super::sign(&a, b"m", "t", "u").unwrap();
        a.public_key().verify(&sig, b"m").unwrap();
        assert!(format!("{a:?}").contains("key_id"));
        assert!(!format!("{:?}", scrypt("secret")).contains("secret\""));
    }
}
