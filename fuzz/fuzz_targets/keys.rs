//! The minisign public and secret key parsers (secret keys without a passphrase: a fuzzer
//! must not make every input run scrypt). Never a panic; accepted public keys round-trip.
#![no_main]

use ferry_format::minisign::{PublicKey, SecretKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pk) = PublicKey::parse(text) {
        let again = PublicKey::parse(&pk.to_file_string()).expect("a written key parses");
        assert_eq!(again.key_id(), pk.key_id());
        assert_eq!(again.as_bytes(), pk.as_bytes());
        let _ = PublicKey::from_base64(text.trim());
    }
    let _ = SecretKey::is_encrypted(text);
    let _ = SecretKey::parse(text, None);
});
