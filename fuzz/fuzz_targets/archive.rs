//! The archive reader on whole files (zstd, then tar): `read_bundle` with an empty keyring
//! and with the seeds' key, and `read_manifest_unverified` (`ferry inspect`). Never a
//! panic, never unbounded memory (libFuzzer's -rss_limit_mb catches that).
#![no_main]

use std::io;
use std::sync::OnceLock;

use ferry_format::archive::{read_bundle, read_manifest_unverified};
use ferry_format::keyring::Keyring;
use ferry_format::minisign::{KeyId, SecretKey};
use ferry_format::Limits;
use libfuzzer_sys::fuzz_target;

fn keyring() -> &'static Keyring {
    static K: OnceLock<Keyring> = OnceLock::new();
    K.get_or_init(|| {
        Keyring::new(vec![
            SecretKey::from_seed(&[7; 32], KeyId([7; 8])).public_key()
        ])
    })
}

fn limits() -> Limits {
    // Small enough that a fuzzer-made bomb is caught quickly.
    Limits {
        ratio_floor: 1 << 20,
        ..Limits::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = limits();
    let mut sink = |_: &ferry_format::manifest::FileEntry, r: &mut dyn io::Read| {
        io::copy(r, &mut io::sink()).map(|_| ())
    };
    let _ = read_bundle(data, &Keyring::default(), &limits, &mut sink);
    let _ = read_bundle(data, keyring(), &limits, &mut sink);
    let _ = read_manifest_unverified(data, &limits);
});
