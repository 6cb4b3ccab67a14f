//! The generated files of a bundle say no more than its manifest.
//!
//! A signature proves who made a bundle, not what it does. The unit, socket, sysusers,
//! tmpfiles and logrotate files are what systemd, systemd-sysusers, systemd-tmpfiles and
//! logrotate act on as root, so each is parsed here by a strict allow-list parser and held
//! against the manifest's install section (the declared footprint, [`crate::footprint`]):
//!
//! - unit: `User=`, `Group=`, `SupplementaryGroups=`, the capability sets, address
//!   families, network, writable paths and every sandbox directive match the manifest;
//!   `Exec*=` lines run programs under `/opt/APP/current/` only (or the documented reload
//!   command), never with the `+`, `!`, `!!` (or any other) prefix; no other sections, no
//!   `Alias=`/`Also=`, no unknown directives;
//! - socket: exactly the manifest's listen addresses;
//! - sysusers: only the service user, its group and its declared memberships;
//! - tmpfiles: only the manifest's directories, with their owners, modes and ACLs;
//! - logrotate: only `/var/log/APP/*.log`, as the service user, with the standard reopen
//!   script.
//!
//! `ferry build` and `ferry pack` run the same check before they sign, and every reader
//! (`ferry verify`, `ferry-install verify` and `install`) runs it before anything is
//! written, so a template override or a re-signed payload that says more is refused.

// The checkers share one vocabulary: `m` the manifest, `f` the findings of the file, `n`
// the line number, `s` a section, `e` an entry, `w` a line's words.
#![allow(clippy::many_single_char_names)]

mod logrotate;
mod sysusers;
mod tmpfiles;
mod unit;

use crate::entry_path::EntryPath;
use crate::manifest::Manifest;

pub use unit::{parse as parse_unit, reload_command, Entry, Section, UnitFile};

/// A generated file that says more than the manifest, or that the parser cannot read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{file}:{line}: {problem}")]
pub struct ConformError {
    pub file: EntryPath,
    /// 1-based; 0 when the problem is the whole file (a missing directive).
    pub line: usize,
    pub problem: String,
}

/// The generated files of one bundle, as bytes from the payload.
#[derive(Debug, Default, Clone)]
pub struct Generated<'a> {
    /// Each environment's unit, by environment name.
    pub units: Vec<(crate::install::Name, &'a [u8])>,
    pub socket: Option<&'a [u8]>,
    pub sysusers: Option<&'a [u8]>,
    pub tmpfiles: Option<&'a [u8]>,
    pub logrotate: Option<&'a [u8]>,
}

impl<'a> Generated<'a> {
    /// Files by payload path: what a verifying reader collected.
    pub fn from_members(m: &Manifest, members: &'a [(EntryPath, Vec<u8>)]) -> Self {
        let l = m.app.name.layout();
        let get = |p: EntryPath| {
            members
                .iter()
                .find(|(path, _)| *path == p)
                .map(|(_, d)| d.as_slice())
        };
        Self {
            units: m
                .install
                .environments
                .iter()
                .filter_map(|e| get(l.payload_unit(&e.name)).map(|d| (e.name.clone(), d)))
                .collect(),
            socket: get(l.payload_socket()),
            sysusers: get(l.payload_sysusers()),
            tmpfiles: get(l.payload_tmpfiles()),
            logrotate: get(l.payload_logrotate()),
        }
    }
}

/// Whether a payload path is one of the generated files this module checks.
pub fn is_generated(m: &Manifest, path: &EntryPath) -> bool {
    let l = m.app.name.layout();
    m.install
        .environments
        .iter()
        .any(|e| l.payload_unit(&e.name) == *path)
        || [
            l.payload_socket(),
            l.payload_sysusers(),
            l.payload_tmpfiles(),
            l.payload_logrotate(),
        ]
        .contains(path)
}

/// Problems found in one file, with the line each is on.
pub(crate) struct Findings {
    file: EntryPath,
}

impl Findings {
    pub(crate) fn err(&self, line: usize, problem: impl Into<String>) -> ConformError {
        ConformError {
            file: self.file.clone(),
            line,
            problem: problem.into(),
        }
    }
}

fn text<'a>(f: &Findings, data: &'a [u8]) -> Result<&'a str, ConformError> {
    let t = std::str::from_utf8(data).map_err(|_| f.err(0, "not UTF-8"))?;
    if let Some((i, _)) = t
        .lines()
        .enumerate()
        .find(|(_, l)| l.chars().any(|c| c.is_control() && c != '\t'))
    {
        return Err(f.err(i + 1, "control character in the line"));
    }
    Ok(t)
}

fn must(p: EntryPath, d: Option<&[u8]>) -> Result<&[u8], ConformError> {
    d.ok_or(ConformError {
        file: p,
        line: 0,
        problem: "missing from the payload".into(),
    })
}

/// Checks every generated file of `m` that is present; the manifest's own validation
/// (run before) guarantees the required ones are in the payload.
pub fn check(m: &Manifest, files: &Generated<'_>) -> Result<(), ConformError> {
    let l = m.app.name.layout();
    for env in &m.install.environments {
        let path = l.payload_unit(&env.name);
        let data = files
            .units
            .iter()
            .find(|(n, _)| *n == env.name)
            .map(|(_, d)| *d);
        let f = Findings { file: path.clone() };
        unit::check_service(m, env, &f, text(&f, must(path, data)?)?)?;
    }
    if m.install.service.socket_activated() {
        let f = Findings {
            file: l.payload_socket(),
        };
        unit::check_socket(m, &f, text(&f, must(l.payload_socket(), files.socket)?)?)?;
    }
    let f = Findings {
        file: l.payload_sysusers(),
    };
    sysusers::check(
        m,
        &f,
        text(&f, must(l.payload_sysusers(), files.sysusers)?)?,
    )?;
    if let Some(d) = files.tmpfiles {
        let f = Findings {
            file: l.payload_tmpfiles(),
        };
        tmpfiles::check(m, &f, text(&f, d)?)?;
    }
    if m.install.log_files.is_some() {
        let f = Findings {
            file: l.payload_logrotate(),
        };
        logrotate::check(
            m,
            &f,
            text(&f, must(l.payload_logrotate(), files.logrotate)?)?,
        )?;
    }
    Ok(())
}

/// Splits a line into words: whitespace separates, double quotes group (with `\"` and
/// `\\` escapes). Used by the sysusers and tmpfiles parsers, whose tools split alike.
pub(crate) fn words(line: &str) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut w = String::new();
        if c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quote"),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e @ ('"' | '\\')) => w.push(e),
                        _ => return Err("unsupported escape in quotes"),
                    },
                    Some(ch) => w.push(ch),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err("text right after a closing quote");
            }
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                if matches!(ch, '"' | '\'' | '\\') {
                    return Err("quote or backslash inside a word");
                }
                w.push(ch);
                chars.next();
            }
        }
        out.push(w);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests;
