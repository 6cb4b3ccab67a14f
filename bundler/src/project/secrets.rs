//! Refuses values in `ferry.toml` that look like they carry a secret inline: a bundle is
//! copied, archived and mirrored, so whatever it holds must be publishable. Secrets go in
//! `[[secrets]]` (a `LoadCredential=` or `EnvironmentFile=` the installer creates empty).
//!
//! Two kinds of evidence, from strongest to weakest:
//! - the value itself: a PEM private key, an AWS access key id, a JWT, a URL with a password,
//!   a well-known token prefix. Refused under any key, and also in rendered files.
//! - the key's name: a secret word (`password`, `token`, `api_key`, ...) with a non-empty
//!   literal value, or a weaker word (`key`, `salt`, `hmac`, ...) with a long high-entropy
//!   value. Names that describe a secret rather than hold one (`token_file`,
//!   `password_min_length`) are fine, and so are values that point somewhere else (an
//!   absolute path, `%d/NAME`, `${VAR}`, `env:`/`file:` references).
//!
//! `[build] not_secrets = ["KEY"]` exempts a key from the name rules only; a value that is
//! itself key material is refused whatever its key.

/// Words that make a key secret-named: any non-empty literal value is refused.
const STRONG: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pass",
    "secret",
    "secrets",
    "token",
    "tokens",
    "apikey",
    "credential",
    "credentials",
    "privatekey",
    "secretkey",
    "accesskey",
];

/// Two-word names that are secret-named together (`api_key`, `private-key`, `accessKey`).
const STRONG_PAIRS: &[(&str, &str)] = &[
    ("api", "key"),
    ("private", "key"),
    ("access", "key"),
    ("priv", "key"),
];

/// Words that only hint at a secret: refused when the value is long and high-entropy.
const WEAK: &[&str] = &[
    "key",
    "auth",
    "pwd",
    "salt",
    "hmac",
    "cookie",
    "session",
    "signing",
    "encryption",
    "seed",
    "pin",
    "cert",
    "dsn",
];

/// A key whose last word is one of these describes a secret (where it is, how long it
/// lives) rather than holding one.
const DESCRIPTIVE_SUFFIXES: &[&str] = &[
    "file",
    "files",
    "path",
    "paths",
    "dir",
    "directory",
    "name",
    "names",
    "id",
    "ttl",
    "lifetime",
    "expiry",
    "expires",
    "expiration",
    "timeout",
    "length",
    "len",
    "size",
    "count",
    "limit",
    "min",
    "max",
    "age",
    "url",
    "uri",
    "endpoint",
    "header",
    "headers",
    "type",
    "kind",
    "env",
    "var",
    "variable",
    "enabled",
    "enable",
    "disabled",
    "required",
    "policy",
    "algorithm",
    "alg",
    "format",
    "mode",
    "source",
    "location",
    "ref",
    "hint",
    "prompt",
    "label",
    "field",
    "param",
    "issuer",
    "audience",
    "scope",
    "scopes",
    "rotation",
    "interval",
    "retries",
    "bits",
    "cipher",
    "curve",
];

/// Why a value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    PemPrivateKey,
    SigningKey,
    AwsAccessKey,
    Jwt,
    UrlPassword,
    KnownTokenPrefix,
    SecretNamedKey,
    HighEntropy,
}

impl Reason {
    pub fn describe(self) -> &'static str {
        match self {
            Self::PemPrivateKey => "the value is a PEM private key",
            Self::SigningKey => "the value is a minisign or signify secret key",
            Self::AwsAccessKey => "the value is an AWS access key id",
            Self::Jwt => "the value is a JSON Web Token",
            Self::UrlPassword => "the value is a URL with a password in it",
            Self::KnownTokenPrefix => {
                "the value looks like an API token (GitHub, GitLab, Slack, Stripe, Google)"
            }
            Self::SecretNamedKey => "a secret-named key with a literal value",
            Self::HighEntropy => "a long random-looking value in a key-like name",
        }
    }

    /// Whether the value alone is the evidence (so `not_secrets` does not apply).
    pub fn is_value_evidence(self) -> bool {
        !matches!(self, Self::SecretNamedKey | Self::HighEntropy)
    }
}

/// One refused value: where it is (`[vars]`, `[environments.prod]`, `service.environment`),
/// its dotted key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub place: String,
    pub key: String,
    pub reason: Reason,
}

/// Splits a key into lowercase words at `_`, `-`, `.` and camelCase boundaries.
fn words(key: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

enum NameClass {
    Plain,
    Weak,
    Strong,
}

fn name_class(key: &str) -> NameClass {
    let w = words(key);
    if w.last()
        .is_some_and(|last| DESCRIPTIVE_SUFFIXES.contains(&last.as_str()))
    {
        return NameClass::Plain;
    }
    let strong = w.iter().any(|x| STRONG.contains(&x.as_str()))
        || w.windows(2)
            .any(|p| STRONG_PAIRS.contains(&(p[0].as_str(), p[1].as_str())));
    if strong {
        NameClass::Strong
    } else if w.iter().any(|x| WEAK.contains(&x.as_str())) {
        NameClass::Weak
    } else {
        NameClass::Plain
    }
}

/// A value that names where the secret is instead of being it.
fn is_reference(v: &str) -> bool {
    let v = v.trim();
    v.is_empty()
        || (v.starts_with('/') && !v.contains(char::is_whitespace))
        || v.starts_with("%d/")
        || v.starts_with("${")
        || (v.starts_with('$')
            && v[1..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_'))
        || ["env:", "file:", "vault:", "credential:"]
            .iter()
            .any(|p| v.starts_with(p))
}

fn is_b64url(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn has_jwt(v: &str) -> bool {
    v.match_indices("eyJ").any(|(i, _)| {
        let tail = &v[i..];
        let token: &str = tail
            .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .next()
            .unwrap_or("");
        let parts: Vec<&str> = token.split('.').collect();
        parts.len() == 3
            && parts[1].starts_with("eyJ")
            && parts[0].len() >= 10
            && parts[1].len() >= 10
            && parts.iter().take(2).all(|p| is_b64url(p))
    })
}

fn has_aws_key(v: &str) -> bool {
    let b = v.as_bytes();
    ["AKIA", "ASIA", "ABIA", "ACCA"].iter().any(|prefix| {
        v.match_indices(prefix).any(|(i, _)| {
            let end = i + 20;
            end <= b.len()
                && b[i + 4..end]
                    .iter()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
                && (end == b.len() || !b[end].is_ascii_alphanumeric())
        })
    })
}

fn has_url_password(v: &str) -> bool {
    v.match_indices("://").any(|(i, _)| {
        let authority = v[i + 3..]
            .split(['/', '?', '#', ' ', '"', '\''])
            .next()
            .unwrap_or("");
        let Some((userinfo, _host)) = authority.rsplit_once('@') else {
            return false;
        };
        userinfo
            .split_once(':')
            .is_some_and(|(_, pass)| !pass.is_empty() && !is_reference(pass))
    })
}

/// A minisign or signify secret key file, or its base64 line: the release key itself is
/// the one secret a build machine always has at hand. The payload starts with `Ed` and
/// the KDF: `EdScB2` (minisign, encrypted), `Ed\0\0B2` (minisign, unencrypted), `EdBK`
/// (signify); base64 `RWRTY0Iy`, `RWQAAEIy`, `RWRCSw`.
fn has_signing_key(v: &str) -> bool {
    let comment = v.lines().any(|l| {
        l.trim_start()
            .strip_prefix("untrusted comment:")
            .is_some_and(|c| c.contains("secret key"))
    });
    let payload = v
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
        .any(|w| {
            (w.starts_with("RWRTY0Iy") || w.starts_with("RWQAAEIy")) && w.len() >= 200
                || w.starts_with("RWRCSw") && w.len() >= 130
        });
    comment || payload
}

fn has_token_prefix(v: &str) -> bool {
    const PREFIXES: &[(&str, usize)] = &[
        ("ghp_", 36),
        ("gho_", 36),
        ("ghu_", 36),
        ("ghs_", 36),
        ("ghr_", 36),
        ("github_pat_", 40),
        ("glpat-", 20),
        ("xoxb-", 20),
        ("xoxp-", 20),
        ("xoxa-", 20),
        ("xoxs-", 20),
        ("sk_live_", 20),
        ("rk_live_", 20),
        ("AIza", 35),
    ];
    PREFIXES.iter().any(|(p, min)| {
        v.match_indices(p).any(|(i, _)| {
            let rest = &v[i + p.len()..];
            rest.bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
                .count()
                >= *min
        })
    })
}

/// Evidence in the value alone, under any key and in rendered files.
pub fn value_evidence(v: &str) -> Option<Reason> {
    if v.contains("-----BEGIN") && (v.contains("PRIVATE KEY") || v.contains("PRIVATE KEY BLOCK")) {
        Some(Reason::PemPrivateKey)
    } else if has_signing_key(v) {
        Some(Reason::SigningKey)
    } else if has_aws_key(v) {
        Some(Reason::AwsAccessKey)
    } else if has_jwt(v) {
        Some(Reason::Jwt)
    } else if has_url_password(v) {
        Some(Reason::UrlPassword)
    } else if has_token_prefix(v) {
        Some(Reason::KnownTokenPrefix)
    } else {
        None
    }
}

/// Shannon entropy in bits per character.
fn entropy(v: &str) -> f64 {
    let mut counts = std::collections::BTreeMap::new();
    for c in v.chars() {
        *counts.entry(c).or_insert(0u32) += 1;
    }
    let n = f64::from(u32::try_from(v.chars().count()).unwrap_or(u32::MAX));
    counts
        .values()
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Long, no spaces, several character classes, and close to random.
fn high_entropy(v: &str) -> bool {
    if v.len() < 16 || v.contains(char::is_whitespace) {
        return false;
    }
    let classes = [
        v.bytes().any(|b| b.is_ascii_lowercase()),
        v.bytes().any(|b| b.is_ascii_uppercase()),
        v.bytes().any(|b| b.is_ascii_digit()),
        v.bytes().any(|b| !b.is_ascii_alphanumeric()),
    ]
    .iter()
    .filter(|&&x| x)
    .count();
    classes >= 2 && entropy(v) >= 3.0
}

/// Why the string `value` under the key named `key` is refused, if it is.
pub fn classify(key: &str, value: &str, not_secrets: &[String]) -> Option<Reason> {
    if let Some(r) = value_evidence(value) {
        return Some(r);
    }
    if not_secrets.iter().any(|k| k == key) || is_reference(value) {
        return None;
    }
    match name_class(key) {
        NameClass::Strong => Some(Reason::SecretNamedKey),
        NameClass::Weak if high_entropy(value) => Some(Reason::HighEntropy),
        _ => None,
    }
}

/// Walks a TOML table; strings in arrays are judged under the array's key.
pub fn scan_table(
    place: &str,
    table: &toml::Table,
    not_secrets: &[String],
    out: &mut Vec<Finding>,
) {
    for (k, v) in table {
        scan_value(place, k, k, v, not_secrets, out);
    }
}

fn scan_value(
    place: &str,
    path: &str,
    key: &str,
    v: &toml::Value,
    not_secrets: &[String],
    out: &mut Vec<Finding>,
) {
    match v {
        toml::Value::String(s) => {
            if let Some(reason) = classify(key, s, not_secrets) {
                out.push(Finding {
                    place: place.to_owned(),
                    key: path.to_owned(),
                    reason,
                });
            }
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                scan_value(place, &format!("{path}[{i}]"), key, item, not_secrets, out);
            }
        }
        toml::Value::Table(t) => {
            for (k, item) in t {
                scan_value(place, &format!("{path}.{k}"), k, item, not_secrets, out);
            }
        }
        _ => {}
    }
}

/// Command-line arguments: `--password=x`, `-token x`, and key material anywhere.
pub fn scan_args(place: &str, args: &[String], not_secrets: &[String], out: &mut Vec<Finding>) {
    for (i, a) in args.iter().enumerate() {
        let flag = a.trim_start_matches('-');
        let reason = if a.starts_with('-') {
            if let Some((k, v)) = flag.split_once('=') {
                classify(k, v, not_secrets)
            } else if let Some(next) = args.get(i + 1).filter(|n| !n.starts_with('-')) {
                value_evidence(a).or_else(|| classify(flag, next, not_secrets))
            } else {
                value_evidence(a)
            }
        } else {
            value_evidence(a)
        };
        if let Some(reason) = reason {
            out.push(Finding {
                place: place.to_owned(),
                key: format!("[{i}] {}", a.split('=').next().unwrap_or(a)),
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_snake_kebab_camel_and_dots() {
        assert_eq!(words("db_password"), ["db", "password"]);
        assert_eq!(words("apiKey"), ["api", "key"]);
        assert_eq!(words("X-API-Key"), ["x", "api", "key"]);
        assert_eq!(words("main.adminToken"), ["main", "admin", "token"]);
        assert_eq!(
            words("AWS_SECRET_ACCESS_KEY"),
            ["aws", "secret", "access", "key"]
        );
    }

    #[test]
    fn classification_table() {
        use Reason::*;
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        // The shape of an encrypted minisign key file, not a real key.
        let minisign_enc = "untrusted comment: minisign encrypted secret key\nRWRTY0IyIQDs2X5XZ6Gw5fHhQ1C6Pz0j1mG0VgVZmR8pQyQ1hC8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        // The shape of an unencrypted key's line (212 characters), not a real key.
        let minisign_plain = &format!("RWQAAEIy{}", "A".repeat(204));
        let cases: &[(&str, &str, Option<Reason>)] = &[
            // Secret-named keys with literal values.
            ("password", "hunter2", Some(SecretNamedKey)),
            ("db_password", "changeme", Some(SecretNamedKey)),
            ("passwd", "x", Some(SecretNamedKey)),
            ("admin_token", "abc", Some(SecretNamedKey)),
            ("api_key", "k-123", Some(SecretNamedKey)),
            ("apiKey", "k-123", Some(SecretNamedKey)),
            ("X-API-KEY", "k-123", Some(SecretNamedKey)),
            ("private_key", "MIIEvQIBADANBg", Some(SecretNamedKey)),
            ("client_secret", "s", Some(SecretNamedKey)),
            ("credential", "bob:pw", Some(SecretNamedKey)),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                Some(SecretNamedKey),
            ),
            ("secret_key_base", "abc", Some(SecretNamedKey)),
            (
                "password_hash",
                "$2b$12$abcdefghijklmnopqrstuu",
                Some(SecretNamedKey),
            ),
            ("smtp_pass", "pw", Some(SecretNamedKey)),
            // Names that describe a secret, and values that point to one.
            (
                "token_file",
                "/run/credentials/hello.service/admin-token",
                None,
            ),
            ("password_file", "/etc/hello/db-password", None),
            ("token_file", "relative/path/is/still/a/file/name", None),
            (
                "admin_token",
                "/run/credentials/hello.service/admin-token",
                None,
            ),
            ("admin_token", "%d/admin-token", None),
            ("db_password", "${DB_PASSWORD}", None),
            ("db_password", "$DB_PASSWORD", None),
            ("db_password", "env:DB_PASSWORD", None),
            ("password", "", None),
            ("password_min_length", "12", None),
            ("token_ttl", "1h", None),
            ("token_url", "https://idp.example.com/token", None),
            ("api_key_header", "X-API-Key", None),
            ("secret_name", "admin-token", None),
            ("credentials_dir", "/run/credentials", None),
            ("password_policy", "strict", None),
            ("token_issuer", "https://idp.example.com", None),
            // Plain keys with plain values.
            ("greeting", "Hello from ferry", None),
            ("listen", "127.0.0.1:8080", None),
            ("bypass", "yes", None),
            ("keyboard", "us", None),
            ("monkey", "banana", None),
            ("log_level", "info", None),
            // Weak names: only long random-looking values.
            ("signing_key", "ed25519", None),
            ("cache_key", "users-by-id", None),
            (
                "hmac_key",
                "9f86d081884c7d659a2feaa0c55ad015",
                Some(HighEntropy),
            ),
            ("session_key", "q8Zr2LwX0pT5vB7nK3mJ", Some(HighEntropy)),
            ("salt", "correct horse battery staple", None),
            // Key material under any key.
            ("greeting", pem, Some(PemPrivateKey)),
            ("note", minisign_enc, Some(SigningKey)),
            ("note", minisign_plain, Some(SigningKey)),
            (
                "note",
                minisign_enc.lines().nth(1).unwrap(),
                Some(SigningKey),
            ),
            ("note", "untrusted comment: signify secret key", Some(SigningKey)),
            // A public key is not a secret.
            (
                "pubkey",
                "untrusted comment: minisign public key 5B8AA9A1F5F2B2C1\nRWTBsvL1oamKW6x0GDe4MkrDbbW1OyDG1sRRIDdjFqqvZ7IBvAh8m+4v\n",
                None,
            ),
            (
                "tls",
                "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
                Some(PemPrivateKey),
            ),
            (
                "ca",
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                None,
            ),
            ("aws", "AKIAIOSFODNN7EXAMPLE", Some(AwsAccessKey)),
            ("note", "id=AKIAIOSFODNN7EXAMPLE;", Some(AwsAccessKey)),
            ("note", "AKIAIOSFODNN7EXAMPL", None),
            ("header", jwt, Some(Jwt)),
            ("header", &format!("Bearer {jwt}"), Some(Jwt)),
            (
                "database_url",
                "postgres://app:s3cr3t@db.internal:5432/app",
                Some(UrlPassword),
            ),
            ("database_url", "postgres://app@db.internal:5432/app", None),
            (
                "database_url",
                "postgres://app:${DB_PASSWORD}@db.internal/app",
                None,
            ),
            ("upstream", "http://127.0.0.1:8080/healthz", None),
            ("upstream", "http://[::1]:8080/x", None),
            (
                "gh",
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
                Some(KnownTokenPrefix),
            ),
            ("gh", "ghp_short", None),
            // Value evidence wins even when the key is exempted or descriptive.
            ("token_file", "AKIAIOSFODNN7EXAMPLE", Some(AwsAccessKey)),
        ];
        for (key, value, want) in cases {
            assert_eq!(
                classify(key, value, &[]),
                *want,
                "key {key:?} value {value:?}"
            );
        }
    }

    #[test]
    fn not_secrets_exempts_names_only() {
        let allow = vec!["password".to_owned()];
        assert_eq!(classify("password", "not-really", &allow), None);
        assert_eq!(
            classify("password", "AKIAIOSFODNN7EXAMPLE", &allow),
            Some(Reason::AwsAccessKey)
        );
    }

    #[test]
    fn tables_arrays_and_nesting_name_the_path() {
        let t: toml::Table = toml::from_str(
            r#"
            greeting = "hi"
            tokens = ["/run/credentials/x", "abc"]
            [db]
            password = "pw"
            port = 5432
            token_ttl = 3600
            "#,
        )
        .unwrap();
        let mut out = Vec::new();
        scan_table("[environments.prod]", &t, &[], &mut out);
        let keys: Vec<&str> = out.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["db.password", "tokens[1]"]);
        assert!(out.iter().all(|f| f.place == "[environments.prod]"));
    }

    #[test]
    fn command_line_flags() {
        let args: Vec<String> = [
            "-config",
            "/etc/hello/hello.toml",
            "--password=pw",
            "-token",
            "abc",
            "-v",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let mut out = Vec::new();
        scan_args("service.args", &args, &[], &mut out);
        let keys: Vec<&str> = out.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["[2] --password", "[3] -token"]);
    }
}
