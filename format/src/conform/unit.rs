//! systemd unit files: a strict parser and the allow-list checks for the app's service
//! and socket units.
//!
//! The parser accepts the subset ferry's templates produce: `[Section]` headers,
//! `Key=Value` lines, `#`/`;` comments and blank lines. It refuses line continuations (a
//! trailing `\`), entries before the first section, repeated sections, and keys that are
//! not plain words, so what it reads is what systemd reads.

use std::collections::BTreeSet;

use super::{ConformError, Findings};
use crate::footprint::{ServiceType, Signal};
use crate::install::{HostPath, SecretKind};
use crate::manifest::Manifest;
use crate::sandbox::{FLOOR, KNOBS};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub line: usize,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFile {
    pub sections: Vec<Section>,
}

impl UnitFile {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

impl Section {
    /// Every entry with this key, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.key == key)
    }
}

/// Parses a unit file; the error is `(line, problem)`.
pub fn parse(text: &str) -> Result<UnitFile, (usize, String)> {
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.ends_with('\\') {
            return Err((n, "line continuations are not accepted".into()));
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()))
                .ok_or_else(|| (n, format!("malformed section header {line:?}")))?;
            if sections.iter().any(|s| s.name == name) {
                return Err((n, format!("section [{name}] appears twice")));
            }
            sections.push(Section {
                name: name.to_owned(),
                line: n,
                entries: Vec::new(),
            });
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| (n, format!("expected Key=Value, found {line:?}")))?;
        let key = key.trim_end();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err((n, format!("malformed directive name {key:?}")));
        }
        let section = sections
            .last_mut()
            .ok_or_else(|| (n, "directive before the first section".to_string()))?;
        section.entries.push(Entry {
            key: key.to_owned(),
            value: value.trim_start().to_owned(),
            line: n,
        });
    }
    Ok(UnitFile { sections })
}

/// The documented reload command: sends `sig` to the main process (Debian's minimal
/// install has no /bin/kill; sh's builtin is always there).
pub fn reload_command(sig: Signal) -> String {
    format!("/bin/sh -c 'kill -s {sig} \"$$MAINPID\"'")
}

fn words(v: &str) -> Vec<&str> {
    v.split_whitespace().collect()
}

fn is_unit_name(w: &str) -> bool {
    !w.is_empty()
        && w.len() <= 256
        && w.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'_' | b':' | b'-' | b'\\')
        })
        && w.contains('.')
}

fn is_simple(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b'_' | b'-' | b':' | b'%')
        })
}

fn is_octal_mode(v: &str) -> bool {
    (3..=4).contains(&v.len()) && v.bytes().all(|b| (b'0'..=b'7').contains(&b))
}

fn is_uint(v: &str) -> bool {
    !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit())
}

/// A path a unit directive names for the service: absolute, normalized, no specifiers or
/// variables (`%h`, `$HOME` could point anywhere).
fn plain_path(v: &str) -> Option<HostPath> {
    HostPath::new(v).ok()
}

/// `-` (ignore if missing) is the only prefix a path directive may carry.
fn strip_dash(v: &str) -> &str {
    v.strip_prefix('-').unwrap_or(v)
}

/// One directive's rule.
enum Rule {
    /// Any value without control characters (the parser already refused them).
    Any,
    /// A value from `is_simple` (numbers, time spans, keywords).
    Simple,
    /// One of these exact values.
    OneOf(&'static [&'static str]),
    /// An unsigned integer.
    Uint,
    /// Unit names, space-separated.
    Units,
    /// Octal mode.
    Mode,
    /// Checked by dedicated code below.
    Special,
}

/// Directives of `[Service]` a unit may carry, and how their values are judged. Anything
/// not here is refused; the footprint and sandbox directives are `Special`.
const SERVICE: &[(&str, Rule, bool)] = &[
    // (directive, rule, may repeat)
    ("Type", Rule::Special, false),
    ("NotifyAccess", Rule::OneOf(&["main", "exec"]), false),
    ("WatchdogSec", Rule::Simple, false),
    ("ExecStart", Rule::Special, false),
    ("ExecStartPre", Rule::Special, true),
    ("ExecStartPost", Rule::Special, true),
    ("ExecCondition", Rule::Special, true),
    ("ExecStop", Rule::Special, true),
    ("ExecStopPost", Rule::Special, true),
    ("ExecReload", Rule::Special, false),
    ("User", Rule::Special, false),
    ("Group", Rule::Special, false),
    ("SupplementaryGroups", Rule::Special, true),
    ("Environment", Rule::Any, true),
    ("EnvironmentFile", Rule::Special, true),
    ("LoadCredential", Rule::Special, true),
    (
        "Restart",
        Rule::OneOf(&[
            "no",
            "on-success",
            "on-failure",
            "on-abnormal",
            "on-watchdog",
            "on-abort",
            "always",
        ]),
        false,
    ),
    ("RestartSec", Rule::Simple, false),
    ("RestartPreventExitStatus", Rule::Simple, true),
    ("SuccessExitStatus", Rule::Simple, true),
    ("TimeoutStartSec", Rule::Simple, false),
    ("TimeoutStopSec", Rule::Simple, false),
    ("TimeoutSec", Rule::Simple, false),
    ("RuntimeMaxSec", Rule::Simple, false),
    ("LimitNOFILE", Rule::Simple, false),
    ("UMask", Rule::Mode, false),
    ("StateDirectory", Rule::Special, true),
    ("StateDirectoryMode", Rule::Mode, false),
    ("LogsDirectory", Rule::Special, true),
    ("LogsDirectoryMode", Rule::Mode, false),
    ("CacheDirectory", Rule::Special, true),
    ("CacheDirectoryMode", Rule::Mode, false),
    ("RuntimeDirectory", Rule::Special, true),
    ("RuntimeDirectoryMode", Rule::Mode, false),
    ("WorkingDirectory", Rule::Special, false),
    ("ReadWritePaths", Rule::Special, true),
    ("ReadOnlyPaths", Rule::Any, true),
    ("InaccessiblePaths", Rule::Any, true),
    ("KillMode", Rule::OneOf(&["control-group", "mixed"]), false),
    ("KillSignal", Rule::Simple, false),
    ("SendSIGKILL", Rule::OneOf(&["yes", "no"]), false),
    ("MemoryMax", Rule::Simple, false),
    ("MemoryHigh", Rule::Simple, false),
    ("CPUQuota", Rule::Simple, false),
    ("CPUWeight", Rule::Simple, false),
    ("IOWeight", Rule::Simple, false),
    ("TasksMax", Rule::Simple, false),
    // Lowering them asks PID 1 (root) for more than a user could take.
    ("OOMScoreAdjust", Rule::Uint, false),
    ("Nice", Rule::Uint, false),
    ("CapabilityBoundingSet", Rule::Special, false),
    ("AmbientCapabilities", Rule::Special, false),
    ("PrivateNetwork", Rule::Special, false),
    ("RestrictAddressFamilies", Rule::Special, false),
    ("IPAddressAllow", Rule::Special, true),
    ("IPAddressDeny", Rule::Special, false),
    ("SystemCallFilter", Rule::Special, true),
];

const UNIT_SECTION: &[(&str, Rule, bool)] = &[
    ("Description", Rule::Any, false),
    ("Documentation", Rule::Any, true),
    ("After", Rule::Units, true),
    ("Before", Rule::Units, true),
    ("Requires", Rule::Special, true),
    ("Wants", Rule::Special, true),
    ("StartLimitIntervalSec", Rule::Simple, false),
    ("StartLimitBurst", Rule::Uint, false),
];

const SOCKET: &[(&str, Rule, bool)] = &[
    ("ListenStream", Rule::Special, true),
    ("FreeBind", Rule::OneOf(&["yes", "no"]), false),
    ("NoDelay", Rule::OneOf(&["yes", "no"]), false),
    ("ReusePort", Rule::OneOf(&["yes", "no"]), false),
    ("KeepAlive", Rule::OneOf(&["yes", "no"]), false),
    ("Backlog", Rule::Uint, false),
    (
        "BindIPv6Only",
        Rule::OneOf(&["default", "both", "ipv6-only"]),
        false,
    ),
    ("SocketMode", Rule::Mode, false),
    ("DirectoryMode", Rule::Mode, false),
];

/// Checks each entry of `section` against `rules` (the generic part); `Special` entries
/// and the sandbox directives are judged by the caller.
fn generic(
    f: &Findings,
    section: &Section,
    rules: &[(&str, Rule, bool)],
) -> Result<(), ConformError> {
    let mut seen = BTreeSet::new();
    for e in &section.entries {
        let Some((_, rule, repeat)) = rules.iter().find(|(k, _, _)| *k == e.key) else {
            let sandbox = section.name == "Service"
                && (KNOBS.iter().any(|k| k.directive == e.key)
                    || FLOOR.iter().any(|(d, _)| *d == e.key));
            if sandbox {
                if !seen.insert(e.key.as_str()) && e.key != "SystemCallFilter" {
                    return Err(f.err(e.line, format!("{}= appears twice", e.key)));
                }
                continue;
            }
            return Err(f.err(
                e.line,
                format!(
                    "{}= is not allowed in [{}] (ferry accepts a fixed set of directives; see templates/README.md)",
                    e.key, section.name
                ),
            ));
        };
        if !repeat && !seen.insert(e.key.as_str()) {
            return Err(f.err(e.line, format!("{}= appears twice", e.key)));
        }
        let ok = match rule {
            Rule::Any | Rule::Special => true,
            Rule::Simple => is_simple(&e.value),
            Rule::OneOf(v) => v.contains(&e.value.as_str()),
            Rule::Uint => is_uint(&e.value),
            Rule::Units => !e.value.is_empty() && words(&e.value).iter().all(|w| is_unit_name(w)),
            Rule::Mode => is_octal_mode(&e.value),
        };
        if !ok {
            return Err(f.err(e.line, format!("{}={}: value not accepted", e.key, e.value)));
        }
    }
    Ok(())
}

fn unit_or_err(f: &Findings, text: &str) -> Result<UnitFile, ConformError> {
    parse(text).map_err(|(line, p)| f.err(line, p))
}

fn only_sections(f: &Findings, u: &UnitFile, allowed: &[&str]) -> Result<(), ConformError> {
    for s in &u.sections {
        if !allowed.contains(&s.name.as_str()) {
            return Err(f.err(
                s.line,
                format!(
                    "section [{}] is not allowed (only {})",
                    s.name,
                    allowed
                        .iter()
                        .map(|a| format!("[{a}]"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn check_install_section(f: &Findings, u: &UnitFile, wanted_by: &str) -> Result<(), ConformError> {
    let Some(s) = u.section("Install") else {
        return Ok(());
    };
    for e in &s.entries {
        if e.key != "WantedBy" {
            return Err(f.err(e.line, format!("{}= is not allowed in [Install] (only WantedBy={wanted_by}): enabling must create no other links", e.key)));
        }
        if e.value != wanted_by {
            return Err(f.err(
                e.line,
                format!("WantedBy={}: only {wanted_by} is accepted", e.value),
            ));
        }
    }
    Ok(())
}

fn check_unit_section(
    f: &Findings,
    m: &Manifest,
    u: &UnitFile,
    socket: bool,
) -> Result<(), ConformError> {
    let Some(s) = u.section("Unit") else {
        return Ok(());
    };
    generic(f, s, UNIT_SECTION)?;
    let l = m.app.name.layout();
    for e in s
        .entries
        .iter()
        .filter(|e| e.key == "Requires" || e.key == "Wants")
    {
        for w in words(&e.value) {
            let ok = w == "network-online.target"
                || (!socket && m.install.service.socket_activated() && w == l.socket_name());
            if !ok {
                return Err(f.err(
                    e.line,
                    format!(
                        "{}={w}: a unit may pull in only network-online.target{}",
                        e.key,
                        if socket { "" } else { " and its own socket" }
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The program of an `Exec*=` line must be under `/opt/APP/current/`, with no prefix.
fn check_exec(f: &Findings, m: &Manifest, e: &Entry) -> Result<(), ConformError> {
    let root = m.app.name.layout().exec_root();
    let v = e.value.as_str();
    if let Some(c) = v
        .chars()
        .next()
        .filter(|c| matches!(c, '+' | '!' | '@' | '-' | ':' | '|'))
    {
        return Err(f.err(e.line, format!("{}={v}: the {c:?} prefix is not allowed (it changes privileges or how the command runs)", e.key)));
    }
    let program = v.split_whitespace().next().unwrap_or("");
    let ok = plain_path(program).is_some_and(|p| p.as_str().starts_with(&root));
    if !ok {
        return Err(f.err(
            e.line,
            format!(
                "{}={v}: runs {program:?}; only programs under {root} may run",
                e.key
            ),
        ));
    }
    Ok(())
}

fn set_of(values: impl Iterator<Item = String>) -> BTreeSet<String> {
    values.collect()
}

fn describe(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "(none)".into()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(" ")
    }
}

/// A directive that must appear once (or, when `absent_ok`, not at all) with a value
/// whose words form exactly `want`.
fn check_word_set(
    f: &Findings,
    s: &Section,
    key: &str,
    want: &BTreeSet<String>,
    absent_ok: bool,
    what: &str,
) -> Result<(), ConformError> {
    let entries: Vec<&Entry> = s.all(key).collect();
    let got: BTreeSet<String> = entries
        .iter()
        .flat_map(|e| words(&e.value))
        .map(str::to_owned)
        .collect();
    if let Some(e) = entries.iter().find(|e| e.value.starts_with('~')) {
        return Err(f.err(
            e.line,
            format!(
                "{key}={}: deny lists (~) are not accepted; list exactly {what}",
                e.value
            ),
        ));
    }
    if entries.is_empty() && !(absent_ok && want.is_empty()) {
        return Err(f.err(
            s.line,
            format!(
                "{key}= is missing: it must list exactly {what}: {}",
                describe(want)
            ),
        ));
    }
    if &got != want {
        let line = entries.first().map_or(s.line, |e| e.line);
        return Err(f.err(
            line,
            format!(
                "{key}= says {} but the manifest declares {what}: {}",
                describe(&got),
                describe(want)
            ),
        ));
    }
    Ok(())
}

pub(super) fn check_service(
    m: &Manifest,
    env: &crate::install::Environment,
    f: &Findings,
    text: &str,
) -> Result<(), ConformError> {
    let u = unit_or_err(f, text)?;
    only_sections(f, &u, &["Unit", "Service", "Install"])?;
    check_unit_section(f, m, &u, false)?;
    check_install_section(f, &u, "multi-user.target")?;
    let s = u
        .section("Service")
        .ok_or_else(|| f.err(0, "no [Service] section"))?;
    generic(f, s, SERVICE)?;
    let inst = &m.install;
    let svc = &inst.service;
    let l = m.app.name.layout();
    let one = |key: &'static str| s.entries.iter().find(|e| e.key == key);

    // Identity.
    let want_type = match svc.kind {
        ServiceType::Notify => "notify",
        ServiceType::Exec => "exec",
    };
    match one("Type") {
        Some(e) if e.value == want_type => {}
        Some(e) => {
            return Err(f.err(
                e.line,
                format!("Type={}: the manifest declares {want_type}", e.value),
            ))
        }
        None => {
            return Err(f.err(
                s.line,
                format!("Type= is missing (the manifest declares {want_type})"),
            ))
        }
    }
    for (key, want) in [("User", inst.user.as_str()), ("Group", inst.group.as_str())] {
        match one(key) {
            Some(e) if e.value == want => {}
            Some(e) => {
                return Err(f.err(
                    e.line,
                    format!(
                        "{key}={}: the manifest's {} is {want}",
                        e.value,
                        key.to_lowercase()
                    ),
                ))
            }
            None => {
                return Err(f.err(
                    s.line,
                    format!("{key}= is missing: the service would run as root"),
                ))
            }
        }
    }
    check_word_set(
        f,
        s,
        "SupplementaryGroups",
        &set_of(inst.supplementary_groups.iter().map(ToString::to_string)),
        true,
        "the manifest's supplementary groups",
    )?;

    // Programs.
    let exec_start: Vec<&Entry> = s.all("ExecStart").collect();
    if exec_start.len() != 1 {
        return Err(f.err(s.line, "exactly one ExecStart= is required"));
    }
    for key in [
        "ExecStart",
        "ExecStartPre",
        "ExecStartPost",
        "ExecCondition",
        "ExecStop",
        "ExecStopPost",
    ] {
        for e in s.all(key) {
            check_exec(f, m, e)?;
        }
    }
    match (one("ExecReload"), svc.reload_signal) {
        (None, None) => {}
        (Some(e), Some(sig)) if e.value == reload_command(sig) => {}
        (Some(e), Some(_)) => check_exec(f, m, e)?,
        (Some(e), None) => {
            return Err(f.err(
                e.line,
                "ExecReload= is set but the manifest declares no reload signal",
            ))
        }
        (None, Some(sig)) => {
            return Err(f.err(
                s.line,
                format!("ExecReload= is missing: the manifest declares reload with SIG{sig}"),
            ))
        }
    }

    // Secrets: systemd reads these as root before the service starts.
    for e in s.all("EnvironmentFile") {
        let path = strip_dash(&e.value);
        let ok = inst
            .secrets
            .iter()
            .any(|sec| sec.kind == SecretKind::EnvironmentFile && sec.path.as_str() == path);
        if !ok {
            return Err(f.err(
                e.line,
                format!(
                    "EnvironmentFile={}: only the manifest's environment-file secrets may be read",
                    e.value
                ),
            ));
        }
    }
    for e in s.all("LoadCredential") {
        let ok = e.value.split_once(':').is_some_and(|(name, path)| {
            inst.secrets.iter().any(|sec| {
                sec.kind == SecretKind::Credential
                    && sec.name.as_str() == name
                    && sec.path.as_str() == path
            })
        });
        if !ok {
            return Err(f.err(e.line, format!("LoadCredential={}: only the manifest's credential secrets may be loaded (NAME:/etc/APP/NAME)", e.value)));
        }
    }

    // Where it may write.
    let writable: BTreeSet<&str> = svc.writable_paths.iter().map(HostPath::as_str).collect();
    let managed = [
        ("StateDirectory", "/var/lib"),
        ("LogsDirectory", "/var/log"),
        ("CacheDirectory", "/var/cache"),
        ("RuntimeDirectory", "/run"),
    ];
    for (key, base) in managed {
        for e in s.all(key) {
            for w in words(&e.value) {
                let path = format!("{base}/{w}");
                let own = w == m.app.name.as_str() || w.starts_with(&format!("{}/", m.app.name));
                if !own || plain_path(&path).is_none() || !writable.contains(path.as_str()) {
                    return Err(f.err(e.line, format!("{key}={w}: makes {path} writable, which is not one of the manifest's writable paths")));
                }
            }
        }
    }
    for e in s.all("ReadWritePaths") {
        for w in words(&e.value) {
            let p = strip_dash(w);
            if plain_path(p).is_none() || !writable.contains(p) {
                return Err(f.err(
                    e.line,
                    format!("ReadWritePaths={w}: not one of the manifest's writable paths"),
                ));
            }
        }
    }
    if let Some(e) = one("WorkingDirectory") {
        let p = strip_dash(&e.value);
        let ok = plain_path(p).is_some_and(|hp| l.owns(&hp));
        if !ok {
            return Err(f.err(
                e.line,
                format!(
                    "WorkingDirectory={}: must be under the app's own prefixes",
                    e.value
                ),
            ));
        }
    }

    // Capabilities: one line each, the exact set (an empty value is the empty set).
    let caps = set_of(svc.capabilities.iter().map(ToString::to_string));
    check_word_set(
        f,
        s,
        "CapabilityBoundingSet",
        &caps,
        false,
        "the manifest's capabilities",
    )?;
    check_word_set(
        f,
        s,
        "AmbientCapabilities",
        &caps,
        false,
        "the manifest's capabilities",
    )?;

    // Network.
    let private = match one("PrivateNetwork").map(|e| (e, e.value.as_str())) {
        None | Some((_, "no")) => false,
        Some((_, "yes")) => true,
        Some((e, v)) => {
            return Err(f.err(e.line, format!("PrivateNetwork={v}: expected yes or no")))
        }
    };
    if private != svc.private_network {
        let line = one("PrivateNetwork").map_or(s.line, |e| e.line);
        return Err(f.err(
            line,
            format!(
                "PrivateNetwork={}: the manifest declares {}",
                if private { "yes" } else { "no" },
                if svc.private_network { "yes" } else { "no" }
            ),
        ));
    }
    check_word_set(
        f,
        s,
        "RestrictAddressFamilies",
        &set_of(svc.address_families.iter().map(ToString::to_string)),
        false,
        "the manifest's address families",
    )?;
    let allow = set_of(svc.ip_address_allow.iter().map(ToString::to_string));
    check_word_set(
        f,
        s,
        "IPAddressAllow",
        &allow,
        true,
        "the manifest's allowed addresses",
    )?;
    match (one("IPAddressDeny"), allow.is_empty()) {
        (None, true) => {}
        (Some(e), false) if e.value == "any" => {}
        (Some(e), _) => {
            return Err(f.err(
                e.line,
                format!(
                    "IPAddressDeny={}: expected {}",
                    e.value,
                    if allow.is_empty() {
                        "no IPAddressDeny= (the manifest allows any address)"
                    } else {
                        "any"
                    }
                ),
            ))
        }
        (None, false) => {
            return Err(f.err(
                s.line,
                "IPAddressDeny=any is missing (the manifest restricts addresses)",
            ))
        }
    }

    // The floor, then the sandbox knobs.
    for (key, want) in FLOOR {
        match one(key) {
            Some(e) if e.value == *want => {}
            Some(e) => {
                return Err(f.err(
                    e.line,
                    format!(
                        "{key}={}: ferry requires {key}={want} in every unit",
                        e.value
                    ),
                ))
            }
            None => {
                return Err(f.err(
                    s.line,
                    format!("{key}={want} is missing: ferry requires it in every unit"),
                ))
            }
        }
    }
    for k in KNOBS {
        let want = env.sandbox.value(k);
        let got_entries: Vec<&Entry> = s.all(k.directive).collect();
        let got = if got_entries.is_empty() {
            k.unset.to_owned()
        } else {
            got_entries
                .iter()
                .map(|e| e.value.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        if got != want {
            let line = got_entries.first().map_or(s.line, |e| e.line);
            let got_shown = if got_entries.is_empty() {
                format!("absent (systemd's default {:?})", k.unset)
            } else {
                format!("{got:?}")
            };
            return Err(f.err(
                line,
                format!(
                "{}= is {got_shown} but the manifest's sandbox has {want:?} (service.sandbox.{})",
                k.directive, k.key
            ),
            ));
        }
    }
    Ok(())
}

pub(super) fn check_socket(m: &Manifest, f: &Findings, text: &str) -> Result<(), ConformError> {
    let u = unit_or_err(f, text)?;
    only_sections(f, &u, &["Unit", "Socket", "Install"])?;
    check_unit_section(f, m, &u, true)?;
    check_install_section(f, &u, "sockets.target")?;
    let s = u
        .section("Socket")
        .ok_or_else(|| f.err(0, "no [Socket] section"))?;
    generic(f, s, SOCKET)?;
    let want: Vec<&str> = m
        .install
        .service
        .listen
        .iter()
        .map(crate::footprint::ListenAddr::as_str)
        .collect();
    let got: Vec<&str> = s.all("ListenStream").map(|e| e.value.as_str()).collect();
    if got != want {
        let line = s.all("ListenStream").next().map_or(s.line, |e| e.line);
        return Err(f.err(
            line,
            format!(
                "ListenStream= says {} but the manifest declares {}",
                got.join(" "),
                want.join(" ")
            ),
        ));
    }
    Ok(())
}
