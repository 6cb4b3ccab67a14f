//! The manifest parser: UTF-8 check, `format_version` probe, the typed schema (every
//! newtype's validation) and `Manifest::validate`, as the reader runs them on signed bytes.
//! Must never panic; whatever it accepts must serialize and parse back to the same value.
#![no_main]

use ferry_format::archive::parse_manifest;
use ferry_format::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(m) = parse_manifest(data, &limits) {
        let again = parse_manifest(&m.to_bytes(), &limits).expect("a canonical manifest parses");
        assert_eq!(again, m);
    }
});
