//! A `CycloneDX` 1.5 JSON SBOM of the shipped binary, from the binary's own build info.
//! Deterministic: the serial number derives from the content, the timestamp from
//! `SOURCE_DATE_EPOCH`.

use ferry_format::digest::Sha256;
use ferry_format::manifest::{Module, Target};
use serde_json::{json, Value};

pub struct SbomInput<'a> {
    pub app: &'a str,
    pub version: &'a str,
    pub description: &'a str,
    pub module: &'a str,
    pub target: Target,
    pub go_version: &'a str,
    pub modules: &'a [Module],
    pub binary_sha256: Sha256,
    pub source_date_epoch: u64,
}

fn purl(path: &str, version: &str) -> String {
    format!("pkg:golang/{path}@{version}")
}

/// RFC 3339 UTC from a Unix time, without a date library.
pub fn rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

pub fn cyclonedx(i: &SbomInput<'_>) -> Vec<u8> {
    let components: Vec<Value> = i
        .modules
        .iter()
        .map(|m| {
            let mut c = json!({
                "type": "library",
                "bom-ref": purl(&m.path, &m.version),
                "name": m.path,
                "version": m.version,
                "purl": purl(&m.path, &m.version),
            });
            if let Some(sum) = &m.sum {
                c["properties"] = json!([{ "name": "go:sum", "value": sum }]);
            }
            c
        })
        .collect();
    let main_ref = purl(i.module, i.version);
    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(i.source_date_epoch),
            "tools": { "components": [{ "type": "application", "name": "ferry", "version": env!("CARGO_PKG_VERSION") }] },
            "component": {
                "type": "application",
                "bom-ref": main_ref,
                "name": i.app,
                "version": i.version,
                "description": i.description,
                "purl": main_ref,
                "hashes": [{ "alg": "SHA-256", "content": i.binary_sha256.to_hex() }],
                "properties": [
                    { "name": "go:version", "value": i.go_version },
                    { "name": "go:module", "value": i.module },
                    { "name": "target", "value": i.target.to_string() },
                ],
            },
        },
        "components": components,
        "dependencies": [{
            "ref": main_ref,
            "dependsOn": i.modules.iter().map(|m| purl(&m.path, &m.version)).collect::<Vec<_>>(),
        }],
    });
    // A stable serial number: a UUID-shaped digest of the document without it.
    let digest = Sha256::of(&serde_json::to_vec(&doc).expect("json")).to_hex();
    doc["serialNumber"] = json!(format!(
        "urn:uuid:{}-{}-5{}-8{}-{}",
        &digest[0..8],
        &digest[8..12],
        &digest[13..16],
        &digest[17..20],
        &digest[20..32]
    ));
    let mut out = serde_json::to_vec_pretty(&doc).expect("json");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
