//! The bundler's own value types for `ferry.toml`, where `ferry_format` has none: each
//! checks its text once, on parse, so what reaches `go`, a template or a generated file
//! is already known to be safe there (parse, don't validate). A value that would become a
//! flag to `go`, a second `-X` assignment, a new unit line or a path outside the project
//! cannot be constructed.

use std::fmt;
use std::fmt::Write as _;
use std::path::Path;

use ferry_format::footprint::AddressFamily;
use ferry_format::install::{HttpUrl, Name, ProbeAddr};
use ferry_format::manifest::Target;
use serde::{Deserialize, Deserializer};

/// A `ferry.toml` value that is not what its key takes; the message names the value and
/// what is expected (the loader adds the key and line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// At most this many characters of a refused value are quoted back.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    format!("{cut:?}")
}

/// Display, Debug, `as_str` and a `Deserialize` that goes through `new`.
macro_rules! text_type {
    ($t:ty) => {
        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t>::new(&s).map_err(serde::de::Error::custom)
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

/// One element of a Go import path: `[A-Za-z0-9._~+-]`, not starting with `-` or `.`.
fn go_path_element(e: &str) -> bool {
    !e.is_empty()
        && !e.starts_with(['-', '.'])
        && e.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'+' | b'-'))
}

/// The Go package `ferry build` compiles: `.`, `./DIR/...` inside the project, or an
/// import path (`example.com/app/cmd/app`). Never starts with `-` (it would be a flag to
/// `go build`: `-toolexec=./evil.sh` runs a program for every compile step), never
/// absolute, never `..`, never a `...` pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct GoPackage(String);

impl GoPackage {
    pub fn new(text: &str) -> Result<Self, Invalid> {
        let err = || {
            Invalid(format!(
                "{} is not a Go package ferry builds: expected \".\", \"./DIR\" inside the project or an import path such as example.com/app/cmd/app (letters, digits, . _ ~ + - and /; no leading - or /, no .., no ...)",
                shown(text)
            ))
        };
        if text == "." {
            return Ok(Self(text.to_owned()));
        }
        let (rest, local) = match text.strip_prefix("./") {
            Some(r) => (r, true),
            None => (text, false),
        };
        let ok = text.len() <= 256
            && !text.contains("...")
            && (local
                || rest
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric()))
            && rest.split('/').all(go_path_element);
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(err())
        }
    }
}
text_type!(GoPackage);

impl Default for GoPackage {
    fn default() -> Self {
        Self(".".into())
    }
}

/// A Go package-level variable for `-ldflags -X`: `IMPORTPATH.NAME` (`main.version`,
/// `example.com/app/internal/build.Version`). No spaces, quotes or `=`: it cannot end the
/// assignment early or start another linker flag.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoSymbol(String);

impl GoSymbol {
    pub fn new(text: &str) -> Result<Self, Invalid> {
        let ident = |s: &str| {
            s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        let ok = text.len() <= 256
            && text.rsplit_once('.').is_some_and(|(path, name)| {
                ident(name)
                    && path
                        .bytes()
                        .next()
                        .is_some_and(|b| b.is_ascii_alphanumeric())
                    && path.split('/').all(go_path_element)
            });
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid(format!(
                "{} is not a Go variable: expected IMPORTPATH.NAME such as main.version or example.com/app/internal/build.Version",
                shown(text)
            )))
        }
    }
}
text_type!(GoSymbol);

impl Default for GoSymbol {
    fn default() -> Self {
        Self("main.version".into())
    }
}

/// A value for `-X NAME=VALUE`. `go build` splits `-ldflags` at white space, honouring
/// quotes only at the start of a word (`cmd/internal/quoted`), so an unchecked value such
/// as `1 -X main.admin=true` or `1 -extld=./evil.sh` would become linker flags. Control
/// characters and values holding both quote characters are refused; the rest is quoted by
/// [`GoSymbol::assignment`] so it stays one word.
#[derive(Clone, PartialEq, Eq)]
pub struct LdflagsValue(String);

impl LdflagsValue {
    pub fn new(text: &str) -> Result<Self, Invalid> {
        if text.chars().any(char::is_control) {
            return Err(Invalid(format!(
                "{} contains a control character (newline, tab, ...)",
                shown(text)
            )));
        }
        if text.contains('\'') && text.contains('"') {
            return Err(Invalid(format!(
                "{} holds both ' and \": go build could not pass it as one -X value",
                shown(text)
            )));
        }
        if text.len() > 1024 {
            return Err(Invalid(format!(
                "a -X value is at most 1024 bytes, not {}",
                text.len()
            )));
        }
        Ok(Self(text.to_owned()))
    }
}
text_type!(LdflagsValue);

impl GoSymbol {
    /// The name go's linker gives the variable in the symbol table: the import path
    /// escaped as `cmd/internal/objabi.PathToPrefix` does (`.` in the last path element,
    /// `%`, `"`, spaces and non-ASCII become `%xx`), then `.NAME`. `-X` takes the
    /// unescaped form and escapes it the same way.
    pub fn link_name(&self) -> String {
        let (path, name) = self.0.rsplit_once('.').expect("checked on parse");
        let slash = path.rfind('/');
        let mut s = String::with_capacity(self.0.len() + 6);
        for (i, b) in path.bytes().enumerate() {
            let last_element = slash.is_none_or(|sl| i > sl);
            if b <= b' ' || (b == b'.' && last_element) || b == b'%' || b == b'"' || b >= 0x7f {
                let _ = write!(s, "%{b:02x}");
            } else {
                s.push(char::from(b));
            }
        }
        s.push('.');
        s.push_str(name);
        s
    }
}

/// A name a `build.ldflags_x` value may use: `{{ version }}`, `{{ revision }}`,
/// `{{ date }}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampVar {
    /// `app.version`.
    Version,
    /// The source revision: `--revision`, else git, else Go module info.
    Revision,
    /// `SOURCE_DATE_EPOCH` as UTC RFC 3339 (`2023-11-14T22:13:20Z`).
    Date,
}

impl StampVar {
    pub const ALL: [(&'static str, StampVar); 3] = [
        ("version", StampVar::Version),
        ("revision", StampVar::Revision),
        ("date", StampVar::Date),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(StampVar),
}

/// A `build.ldflags_x` value as written: literal text and `{{ version }}`,
/// `{{ revision }}` or `{{ date }}`, nothing else (no filters, no `{%` or `{#`, no other
/// name). The text as written already passes [`LdflagsValue`]'s rules, and so must what
/// it renders to ([`Self::render`]), so no value becomes a linker flag of its own.
#[derive(Clone, PartialEq, Eq)]
pub struct LdflagsTemplate {
    text: String,
    parts: Vec<Part>,
}

/// What the names of an [`LdflagsTemplate`] render to.
#[derive(Debug, Clone, Copy)]
pub struct StampValues<'a> {
    pub version: &'a str,
    pub revision: Option<&'a str>,
    pub date: &'a str,
}

impl LdflagsTemplate {
    pub fn new(text: &str) -> Result<Self, Invalid> {
        LdflagsValue::new(text)?;
        let names = || {
            StampVar::ALL
                .iter()
                .map(|(n, _)| format!("{{{{ {n} }}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let open = ["{{", "{%", "{#"]
                .iter()
                .filter_map(|o| rest.find(o).map(|i| (i, *o)))
                .min();
            let Some((at, open)) = open else {
                parts.push(Part::Text(rest.to_owned()));
                break;
            };
            if at > 0 {
                parts.push(Part::Text(rest[..at].to_owned()));
            }
            if open != "{{" {
                return Err(Invalid(format!(
                    "{}: only {} are rendered in a -X value ({open} is not)",
                    shown(text),
                    names()
                )));
            }
            let after = &rest[at + 2..];
            let Some(close) = after.find("}}") else {
                return Err(Invalid(format!("{}: {{{{ is not closed", shown(text))));
            };
            let name = after[..close].trim();
            let Some((_, var)) = StampVar::ALL.iter().find(|(n, _)| *n == name) else {
                return Err(Invalid(format!(
                    "{}: unknown name {name:?}; a -X value may use {}",
                    shown(text),
                    names()
                )));
            };
            parts.push(Part::Var(*var));
            rest = &after[close + 2..];
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the value uses `var`.
    pub fn uses(&self, var: StampVar) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    /// The value for `-X`, checked again once rendered. `{{ revision }}` with no revision
    /// is an error here; the build reports it, with the ways to supply one, before any
    /// work.
    pub fn render(&self, values: &StampValues<'_>) -> Result<LdflagsValue, Invalid> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(StampVar::Version) => out.push_str(values.version),
                Part::Var(StampVar::Date) => out.push_str(values.date),
                Part::Var(StampVar::Revision) => out.push_str(
                    values
                        .revision
                        .ok_or_else(|| Invalid("no revision is known".into()))?,
                ),
            }
        }
        LdflagsValue::new(&out).map_err(|e| {
            Invalid(format!(
                "{} renders to {}: {e}",
                shown(&self.text),
                shown(&out)
            ))
        })
    }
}

impl fmt::Display for LdflagsTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for LdflagsTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl<'de> Deserialize<'de> for LdflagsTemplate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LdflagsTemplate::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The source revision a build records and `{{ revision }}` renders: a commit hash or a
/// tag, 1 to 64 of `[0-9A-Za-z._+-]` starting with a letter or digit (`ferry build
/// --revision`, git's `HEAD`, a module's `Origin.Hash`). Safe in a `-X` value, a path and
/// a terminal.
#[derive(Clone, PartialEq, Eq)]
pub struct Revision(String);

impl Revision {
    pub fn new(text: &str) -> Result<Self, Invalid> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid(format!(
                "{} is not a revision: expected a commit hash or a tag, 1 to 64 of [0-9A-Za-z._+-] starting with a letter or digit",
                shown(text)
            )))
        }
    }
}
text_type!(Revision);

/// One `[build] before` step as `ferry.toml` writes it: `ferry_format`'s
/// [`ferry_format::manifest::BeforeStep`] (an argv list whose program is absolute or
/// found in `PATH`) that uses no template syntax: steps are not rendered.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BeforeStep(pub ferry_format::manifest::BeforeStep);

impl BeforeStep {
    pub fn new(argv: Vec<String>) -> Result<Self, Invalid> {
        if let Some(w) = argv.iter().find(|w| is_template(w)) {
            return Err(Invalid(format!(
                "{}: build steps are not rendered (only build.ldflags_x values are)",
                shown(w)
            )));
        }
        ferry_format::manifest::BeforeStep::new(argv)
            .map(Self)
            .map_err(|e| Invalid(e.to_string()))
    }
}

impl<'de> Deserialize<'de> for BeforeStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BeforeStep::new(Vec::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl GoSymbol {
    /// `NAME=VALUE` as one word of go's `-ldflags` (quoted when it holds white space or
    /// quotes), for after `-X`.
    pub fn assignment(&self, value: &str) -> String {
        let a = format!("{}={value}", self.0);
        if !a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            a
        } else if !a.contains('\'') {
            format!("'{a}'")
        } else {
            // LdflagsValue and Version never hold both quote characters.
            format!("\"{a}\"")
        }
    }
}

/// A Go build tag: letters, digits, `_` and `.`, as `//go:build` lines spell them.
#[derive(Clone, PartialEq, Eq)]
pub struct BuildTag(String);

impl BuildTag {
    pub fn new(text: &str) -> Result<Self, Invalid> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.'));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid(format!(
                "{} is not a Go build tag (letters, digits, _ and . only)",
                shown(text)
            )))
        }
    }
}
text_type!(BuildTag);

/// `linux/amd64` or `linux/arm64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetSpec(pub Target);

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Target::parse(&s).map(Self).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unsupported target {} (linux/amd64 or linux/arm64)",
                shown(&s)
            ))
        })
    }
}

/// An integer key with a range; the message names the range and why.
macro_rules! bounded {
    ($(#[$m:meta])* $t:ident($inner:ty), $lo:expr, $hi:expr, $why:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $t($inner);

        impl $t {
            pub fn new(n: $inner) -> Result<Self, Invalid> {
                if ($lo..=$hi).contains(&n) {
                    Ok(Self(n))
                } else {
                    Err(Invalid(format!(concat!("{} is out of range: ", $why), n)))
                }
            }
            pub fn get(self) -> $inner {
                self.0
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$t>::new(<$inner>::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

bounded!(
    /// `build.zstd_level`.
    ZstdLevel(i32), 1, 22, "zstd levels are 1..=22"
);
bounded!(
    /// `service.limit_nofile`: soft = hard, at most the kernel's default `nr_open`.
    LimitNofile(u32), 1, 1 << 20, "1..=1048576 (the kernel's default nr_open)"
);
bounded!(
    /// `service.watchdog_sec`.
    WatchdogSec(u32), 1, 3600, "1..=3600 seconds"
);
bounded!(
    /// `health.timeout_secs`.
    TimeoutSecs(u32), 1, 3600, "1..=3600 seconds"
);
bounded!(
    /// `health.settle_secs`.
    SettleSecs(u32), 0, 3600, "0..=3600 seconds"
);
bounded!(
    /// `logs.rotate`.
    RotateCount(u32), 0, 1000, "logs.rotate keeps at most 1000 files"
);
bounded!(
    /// One of `service.restart_prevent_exit_status`: 0 is success, which never restarts.
    ExitStatus(u8), 1, 255, "an exit status that prevents a restart is 1..=255 (0 is success, which never restarts anyway)"
);

/// `service.security_threshold`: `systemd-analyze security`'s exposure scale.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct Threshold(f64);

impl Threshold {
    pub fn new(v: f64) -> Result<Self, Invalid> {
        if v.is_finite() && (0.0..=10.0).contains(&v) {
            Ok(Self(v))
        } else {
            Err(Invalid(format!(
                "{v} is out of range: 0.0..=10.0 (systemd-analyze security's exposure scale)"
            )))
        }
    }
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Threshold::new(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A word of a unit line (`service.args`, `service.environment` values): no control
/// character, so no value can end the line and start a directive of its own
/// (`"x\nExecStartPre=+/bin/sh"`).
#[derive(Clone, PartialEq, Eq)]
pub struct UnitText(String);

impl UnitText {
    pub fn new(text: &str) -> Result<Self, Invalid> {
        if text.chars().any(char::is_control) {
            return Err(Invalid(format!(
                "{} contains a control character (newline, tab, ...): it would break the unit line",
                shown(text)
            )));
        }
        if text.len() > 4096 {
            return Err(Invalid(format!(
                "a unit value is at most 4096 bytes, not {}",
                text.len()
            )));
        }
        Ok(Self(text.to_owned()))
    }
}
text_type!(UnitText);

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EnvName(String);

impl EnvName {
    pub fn new(text: &str) -> Result<Self, Invalid> {
        if is_identifier(text) && text.len() <= 128 {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid(format!(
                "{} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                shown(text)
            )))
        }
    }
}
text_type!(EnvName);

fn is_identifier(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The service account or one of its groups: a [`Name`] that is not root.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NotRoot(Name);

impl NotRoot {
    pub fn new(text: &str) -> Result<Self, Invalid> {
        let name = Name::new(text).map_err(|e| Invalid(e.to_string()))?;
        if text == "root" {
            return Err(Invalid(
                "root is refused: the service must not run as root or with root's group".into(),
            ));
        }
        Ok(Self(name))
    }

    pub fn name(&self) -> &Name {
        &self.0
    }
}

impl fmt::Display for NotRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for NotRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for NotRoot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        NotRoot::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An address family `service.extra_address_families` may add: not one of those every
/// service has anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtraFamily(pub AddressFamily);

impl<'de> Deserialize<'de> for ExtraFamily {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let extra: Vec<&str> = AddressFamily::ALL
            .iter()
            .filter(|f| !BASE_FAMILIES.contains(f))
            .map(|f| f.as_str())
            .collect();
        match AddressFamily::parse(&s) {
            Some(f) if !BASE_FAMILIES.contains(&f) => Ok(Self(f)),
            _ => Err(serde::de::Error::custom(format!(
                "{} is not one of {} (AF_INET, AF_INET6 and AF_UNIX are always allowed)",
                shown(&s),
                extra.join(", ")
            ))),
        }
    }
}

/// What every service may use; `extra_address_families` adds to these.
pub const BASE_FAMILIES: &[AddressFamily] = &[
    AddressFamily::Inet,
    AddressFamily::Inet6,
    AddressFamily::Unix,
];

/// `logs.max_size`: a number with an optional `k`, `K`, `M` or `G` (logrotate's units).
#[derive(Clone, PartialEq, Eq)]
pub struct MaxSize(String);

impl MaxSize {
    pub fn new(text: &str) -> Result<Self, Invalid> {
        let digits = text.strip_suffix(['k', 'K', 'M', 'G']).unwrap_or(text);
        if !digits.is_empty() && digits.len() <= 12 && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid(format!(
                "{}: expected a number with an optional k, M or G suffix (100M)",
                shown(text)
            )))
        }
    }
}
text_type!(MaxSize);

impl Default for MaxSize {
    fn default() -> Self {
        Self("100M".into())
    }
}

/// `logs.frequency` (logrotate runs daily on Debian, so nothing finer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    #[default]
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// `health.probe`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Http,
    Tcp,
    Exec,
    #[default]
    None,
}

/// A file the project names (`[[config]] template`, `[templates]`): relative to the
/// project directory, without `..`. Where it really leads (symlinks) is checked when it is
/// opened, by [`super::files::read`].
#[derive(Clone, PartialEq, Eq)]
pub struct ProjectPath(String);

impl ProjectPath {
    pub fn new(text: &str) -> Result<Self, Invalid> {
        let ok = !text.is_empty()
            && text.len() <= 1024
            && !text.starts_with('/')
            && !text.chars().any(char::is_control)
            && text.split('/').all(|c| !c.is_empty() && c != "..");
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(Invalid(format!(
                "{} is not a file inside the project: expected a relative path such as config/app.toml.j2 (no leading /, no ..)",
                shown(text)
            )))
        }
    }

    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }
}
text_type!(ProjectPath);

/// Names the templates' context already uses: a `[vars]` key must not shadow them.
pub const RESERVED_VARS: &[&str] = &[
    "app",
    "user",
    "group",
    "service",
    "logs",
    "health",
    "paths",
    "directories",
    "secrets",
    "socket",
    "env",
    "sandbox",
    "system_call_filters",
];

/// `[vars]` or one `[environments.NAME]` table: template values under identifier keys that
/// do not shadow the context.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vars(pub toml::Table);

impl<'de> Deserialize<'de> for Vars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        for k in table.keys() {
            if RESERVED_VARS.contains(&k.as_str()) {
                return Err(serde::de::Error::custom(format!(
                    "{} is reserved (templates already get {k}); rename it",
                    shown(k)
                )));
            }
            if !is_identifier(k) {
                return Err(serde::de::Error::custom(format!(
                    "{} is not usable as a template variable (letters, digits and _ only)",
                    shown(k)
                )));
            }
        }
        Ok(Self(table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_packages_are_never_flags_or_outside_the_project() {
        for ok in [
            ".",
            "./cmd/hello",
            "./cmd/hello-v2",
            "example.com/app/cmd/app",
            "hello/cmd/x",
            "gopkg.in/yaml.v3",
        ] {
            GoPackage::new(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "-toolexec=./evil.sh",
            "-o",
            "--",
            "./-x",
            "../x",
            "./../x",
            "./cmd/../../x",
            "/abs/path",
            "./...",
            "example.com/...",
            "",
            "./",
            "./cmd/",
            "cmd x",
            "cmd\nx",
            ".hidden",
            "./a//b",
            "~user/x",
        ] {
            assert!(GoPackage::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn go_symbols_hold_no_flag_or_second_assignment() {
        for ok in [
            "main.version",
            "example.com/app/internal/build.Version",
            "main._x",
        ] {
            GoSymbol::new(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "version",
            "main.",
            ".version",
            "-X",
            "main.v=1",
            "main.v -X main.w",
            "main.1x",
            "-toolexec=x.y",
            "a/../b.c",
            "main.v\n",
        ] {
            assert!(GoSymbol::new(bad).is_err(), "{bad:?}");
        }
    }

    /// go's `cmd/internal/quoted.Split`, which `go build` uses on `-ldflags`.
    fn go_split(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
                i += 1;
            }
            if i == b.len() {
                break;
            }
            if matches!(b[i], b'"' | b'\'') {
                let q = b[i];
                let start = i + 1;
                let end = start + b[start..].iter().position(|&c| c == q).expect("closed");
                out.push(s[start..end].to_owned());
                i = end + 1;
            } else {
                let start = i;
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
                    i += 1;
                }
                out.push(s[start..i].to_owned());
            }
        }
        out
    }

    #[test]
    fn ldflags_values_stay_one_word_for_go() {
        let sym = GoSymbol::new("main.note").unwrap();
        for value in [
            "1.0",
            "",
            "a b",
            "1 -X main.admin=true",
            "1 -extld=./evil.sh -linkmode=external",
            "it's",
            "say \"hi\"",
            "'quoted'",
            "\"dq\" -X x.y=z",
        ] {
            let v = LdflagsValue::new(value).unwrap();
            let flags = format!("-s -w -X {}", sym.assignment(v.as_str()));
            assert_eq!(
                go_split(&flags),
                ["-s", "-w", "-X", &format!("main.note={value}")],
                "{value:?} -> {flags}"
            );
        }
        for bad in ["a\nb", "tab\there", "both ' and \""] {
            assert!(LdflagsValue::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ldflags_templates_use_only_version_revision_and_date() {
        let values = StampValues {
            version: "1.2.3",
            revision: Some("0123abc"),
            date: "2023-11-14T22:13:20Z",
        };
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("", Ok("")),
            ("{{ version }}", Ok("1.2.3")),
            ("{{version}}-{{  revision  }}", Ok("1.2.3-0123abc")),
            (
                "built {{ date }} from {{ revision }}",
                Ok("built 2023-11-14T22:13:20Z from 0123abc"),
            ),
            ("a }} b", Ok("a }} b")),
            ("{{ commit }}", Err("unknown name \"commit\"")),
            ("{{ Version }}", Err("unknown name \"Version\"")),
            (
                "{{ version | upper }}",
                Err("unknown name \"version | upper\""),
            ),
            ("{{ env.HOME }}", Err("unknown name")),
            ("{{ version", Err("is not closed")),
            ("{% if x %}1{% endif %}", Err("({% is not)")),
            ("{# note #}", Err("({# is not)")),
            (
                "{{ version }}\n-X main.admin=true",
                Err("control character"),
            ),
        ];
        for (text, want) in cases {
            let got = LdflagsTemplate::new(text).and_then(|t| t.render(&values));
            match (got, want) {
                (Ok(v), Ok(w)) => assert_eq!(v.as_str(), *w, "{text:?}"),
                (Err(e), Err(w)) => assert!(e.0.contains(w), "{text:?}: {e}"),
                (g, w) => panic!("{text:?}: got {g:?}, wanted {w:?}"),
            }
        }
        let t = LdflagsTemplate::new("{{ revision }}").unwrap();
        assert!(t.uses(StampVar::Revision) && !t.uses(StampVar::Date));
        let none = StampValues {
            revision: None,
            ..values
        };
        assert!(t.render(&none).is_err());
        // A rendered value passes LdflagsValue again: a version with both quote
        // characters cannot reach go.
        let quotes = StampValues {
            version: "it's \"x\"",
            ..values
        };
        let e = LdflagsTemplate::new("{{ version }}")
            .unwrap()
            .render(&quotes)
            .unwrap_err();
        assert!(
            e.0.contains("renders to") && e.0.contains("holds both"),
            "{e}"
        );
    }

    #[test]
    fn revisions_are_hashes_or_tags() {
        for ok in [
            "0123abc",
            &"a".repeat(40),
            &"f".repeat(64),
            "v1.9.1",
            "v2.0.0-rc.1+build.5",
            "release_2024",
            "1",
        ] {
            Revision::new(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            &"a".repeat(65),
            "-x",
            ".hidden",
            "release/1.0",
            "a b",
            "v1\n",
            "{{ x }}",
            "x'y",
        ] {
            assert!(Revision::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn link_names_escape_as_go_does() {
        let cases = [
            ("main.version", "main.version"),
            (
                "example.com/app/internal/build.Version",
                "example.com/app/internal/build.Version",
            ),
            ("gopkg.in/yaml.v3.Version", "gopkg.in/yaml%2ev3.Version"),
            ("example.com/m/ver.sion.V", "example.com/m/ver%2esion.V"),
            ("a.b/c.d/e.f.g.X", "a.b/c.d/e%2ef%2eg.X"),
        ];
        for (symbol, linked) in cases {
            assert_eq!(
                GoSymbol::new(symbol).unwrap().link_name(),
                linked,
                "{symbol}"
            );
        }
    }

    #[test]
    fn before_steps_are_never_templates() {
        let step = |w: &[&str]| BeforeStep::new(w.iter().map(|s| (*s).to_owned()).collect());
        step(&["npm", "ci"]).unwrap();
        step(&["/usr/bin/env", "NODE_ENV=production", "npm", "run", "build"]).unwrap();
        for (bad, why) in [
            (&["npm", "run", "{{ env }}"][..], "not rendered"),
            (&["{% if x %}"][..], "not rendered"),
            (&["./build.sh"][..], "absolute path or a name"),
            (&[][..], "empty"),
        ] {
            let e = step(bad).unwrap_err();
            assert!(e.0.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn small_types() {
        assert!(BuildTag::new("netgo").is_ok() && BuildTag::new("go1.22").is_ok());
        for bad in ["", "a,b", "a b", "-x", "!x", ".x"] {
            assert!(BuildTag::new(bad).is_err(), "{bad:?}");
        }
        assert!(UnitText::new("-config /etc/x").is_ok());
        assert!(UnitText::new("x\nExecStartPre=+/bin/sh").is_err());
        assert!(EnvName::new("GOMAXPROCS").is_ok() && EnvName::new("BAD-NAME").is_err());
        assert!(NotRoot::new("root").is_err() && NotRoot::new("hello").is_ok());
        assert!(MaxSize::new("512k").is_ok() && MaxSize::new("100MB").is_err());
        for ok in ["config/a.j2", "./a.j2", "deploy/x/y.service.j2"] {
            ProjectPath::new(ok).unwrap();
        }
        for bad in [
            "/etc/shadow",
            "../../keys/release.key",
            "a/../../b",
            "",
            "a//b",
            "a\n",
        ] {
            assert!(ProjectPath::new(bad).is_err(), "{bad:?}");
        }
        assert!(ZstdLevel::new(0).is_err() && ZstdLevel::new(22).is_ok());
        assert!(Threshold::new(f64::NAN).is_err() && Threshold::new(1.5).is_ok());
        assert!(ExitStatus::new(0).is_err() && ExitStatus::new(78).is_ok());
    }
}

/// Whether a `ferry.toml` string uses template syntax (rendered per environment).
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// A value parsed from text: what a [`Templated`] becomes once rendered.
pub trait FromText: Sized {
    fn from_text(text: &str) -> Result<Self, String>;
}

impl FromText for HttpUrl {
    fn from_text(text: &str) -> Result<Self, String> {
        HttpUrl::new(text).map_err(|e| e.to_string())
    }
}

impl FromText for ProbeAddr {
    fn from_text(text: &str) -> Result<Self, String> {
        ProbeAddr::new(text).map_err(|e| e.to_string())
    }
}

impl FromText for UnitText {
    fn from_text(text: &str) -> Result<Self, String> {
        UnitText::new(text).map_err(|e| e.0)
    }
}

/// A value that may use `{{ var }}` from the environment's `[vars]`: checked where it is
/// read when it is plain, rendered strictly and checked per environment at build time
/// when it is a template (so `http://127.0.0.1:{{ port }}/healthz` works, and a variable
/// an environment lacks fails the build instead of reaching a host).
#[derive(Debug, Clone)]
pub enum Templated<T> {
    Plain(T),
    Template(String),
}

impl<T: FromText + Clone> Templated<T> {
    /// The value for one environment; `render` renders a template string.
    pub fn resolve(&self, render: &dyn Fn(&str) -> anyhow::Result<String>) -> anyhow::Result<T> {
        match self {
            Self::Plain(v) => Ok(v.clone()),
            Self::Template(t) => {
                let out = render(t)?;
                T::from_text(&out).map_err(|e| anyhow::anyhow!("{t:?} renders to {out:?}: {e}"))
            }
        }
    }

    /// The value when it needs no rendering.
    pub fn plain(&self) -> Option<&T> {
        match self {
            Self::Plain(v) => Some(v),
            Self::Template(_) => None,
        }
    }
}

impl<'de, T: FromText> Deserialize<'de> for Templated<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.chars().any(char::is_control) {
            return Err(serde::de::Error::custom(format!(
                "{} contains a control character",
                shown(&s)
            )));
        }
        if is_template(&s) {
            Ok(Self::Template(s))
        } else {
            T::from_text(&s)
                .map(Self::Plain)
                .map_err(serde::de::Error::custom)
        }
    }
}

/// Where the service's logs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogsMode {
    /// stdout and stderr to the journal: no log directory, no logrotate rules.
    #[default]
    Journal,
    /// Files under `/var/log/APP`, rotated by logrotate, reopened on a signal.
    Files,
}
