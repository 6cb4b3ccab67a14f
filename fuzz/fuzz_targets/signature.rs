//! The minisign signature parser, the trusted-comment claims and verification against a
//! fixed key: never a panic, and every accepted file writes back to one that parses equal.
#![no_main]

use std::sync::OnceLock;

use ferry_format::claims::Claims;
use ferry_format::keyring::Keyring;
use ferry_format::minisign::{KeyId, SecretKey, Signature};
use libfuzzer_sys::fuzz_target;

fn keyring() -> &'static Keyring {
    static K: OnceLock<Keyring> = OnceLock::new();
    // The key `scripts/fuzz` signs its seeds with (the reader's unit-test key).
    K.get_or_init(|| {
        Keyring::new(vec![
            SecretKey::from_seed(&[7; 32], KeyId([7; 8])).public_key()
        ])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(sig) = Signature::parse(text) else {
        return;
    };
    let again = Signature::parse(&sig.to_file_string()).expect("a written signature parses");
    assert_eq!(again, sig);
    let _ = Claims::parse(&sig.trusted_comment);
    let _ = keyring().verify(&sig, b"message");
    let _ = keyring().verify_prehashed(&sig, &[0; 64]);
});
