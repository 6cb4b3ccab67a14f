//! The archive reader past the zstd layer: the input is a raw tar, wrapped here in a zstd
//! frame of stored blocks, so mutations reach tar headers, the manifest, the signature and
//! the payload checks directly. Seeds are bundles signed with the key below, so the
//! payload streaming code runs too.
#![no_main]

use std::io;
use std::sync::OnceLock;

use ferry_format::archive::read_bundle;
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

/// One zstd frame (128 KiB window, no checksum) holding `data` in raw blocks.
fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(128 << 10).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        let header = (u32::try_from(c.len()).unwrap() << 3) | u32::from(i + 1 == chunks.len());
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(c);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        ratio_floor: 1 << 20,
        ..Limits::default()
    };
    let bundle = stored(data);
    let mut sink = |_: &ferry_format::manifest::FileEntry, r: &mut dyn io::Read| {
        io::copy(r, &mut io::sink()).map(|_| ())
    };
    if let Ok(v) = read_bundle(&bundle[..], keyring(), &limits, &mut sink) {
        // Whatever verifies was signed by the seeds' key: its manifest is the seeds'.
        assert_eq!(v.manifest.app.name, "hello");
    }
});
