//! Build-time checks of the rendered files, so the isolated host never receives a unit
//! that would not load, logrotate rules it would ignore, or a config that would not parse.
//!
//! | check | tool | on failure |
//! |---|---|---|
//! | `config-syntax` | built in (TOML, JSON, YAML; rendering already refuses a bad one) | always fails the build |
//! | `systemd-analyze-verify` | `systemd-analyze verify` | fails the build; a directive the build machine's systemd does not know is a warning |
//! | `systemd-analyze-security` | `systemd-analyze security --offline=true` | above `service.security_threshold`: warning, failure with `--strict` |
//! | `systemd-sysusers` | `systemd-sysusers --dry-run` on an empty root | fails the build |
//! | `logrotate` | `logrotate -d -f -s /dev/null` | fails the build |
//! | `logrotate-policy` | built in | copytruncate, no `su`, no `create`, no reopen: warning, failure with `--strict` |
//!
//! A tool that is not on `PATH` gives a `skipped` result and a warning on stderr; it never
//! fails the build, not even with `--strict` (which turns warnings into failures).
//!
//! How each tool is made to judge the real file:
//! - `verify` insists that every `Exec*=` binary exists and that every unit the unit names
//!   can be loaded. It runs with `--root` on a temporary root holding a copy of the build
//!   machine's vendor unit directories, the rendered units in `etc/systemd/system`, and an
//!   executable stub at each `Exec*=` path (whether `/bin/sh` exists on the target cannot be
//!   known here; the bundle's own binary lands at that path on install).
//!   `--recursive-errors=no` keeps the build machine's own units out of the verdict.
//! - `security --offline=true` scores the unit file alone; the binary need not exist.
//! - `logrotate` refuses (and only says `error: Ignoring ...`, exit status 0) a rules file
//!   that is group/other-writable or owned by someone else, resolves `su`/`create` owners
//!   when it reads the file, and with `missingok` passes silently when the directory does
//!   not exist. So the rules are copied (0644, owned by the builder) with every log path
//!   moved under a temporary root whose directories exist with the manifest's modes and
//!   hold a non-empty sample log, and with the `su`/`create` owners replaced by the
//!   builder's numeric uid/gid; the check passes only if logrotate handled at least one
//!   log set and printed no `error:` line.

use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use ferry_format::manifest::Role;
use serde::Serialize;

use crate::progress::Progress;
use crate::project::Loaded;
use crate::render::{Rendered, RenderedFile};
use ferry_format::footprint::ServiceType;
use ferry_format::layout::UNIT_DIR;

/// What a failed or above-threshold check does to the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Warn on stderr, build anyway.
    Warn,
    /// Fail the build (`--strict`).
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub check: String,
    /// `passed`, `warning`, `failed` or `skipped`.
    pub status: String,
    pub detail: String,
    /// The payload member checked, when the check is about one file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `systemd-analyze security` only: the unit's exposure (0.0 best, 10.0 worst).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure: Option<f64>,
    /// `systemd-analyze security` only: `service.security_threshold`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Passed,
    Warning,
    Failed,
    Skipped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Warning => "warning",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

fn result(
    check: &str,
    status: Status,
    file: Option<&RenderedFile>,
    detail: impl Into<String>,
) -> CheckResult {
    CheckResult {
        check: check.to_owned(),
        status: status.as_str().to_owned(),
        detail: detail.into(),
        file: file.map(|f| f.path.to_string()),
        exposure: None,
        threshold: None,
    }
}

/// ferry's default version variable, absent from the program: the build goes on (the
/// program may take its version from Go's build info) and says so.
fn unstamped_result(st: &crate::gobuild::Stamp) -> CheckResult {
    result(
        "version-stamp",
        Status::Warning,
        None,
        format!(
            "app.version_variable is not set and the program has no {} that it reads: the \
             binary carries no version from ferry; set app.version_variable = \
             \"IMPORTPATH.NAME\" to stamp one",
            st.symbol.as_str()
        ),
    )
}

/// An executable named `name` on `PATH`.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn skipped_tool(check: &str, tool: &str, package: &str) -> CheckResult {
    result(
        check,
        Status::Skipped,
        None,
        format!("{tool} is not installed on this build machine (Debian/Ubuntu package {package}): not checked"),
    )
}

/// Runs a tool with stable, uncoloured, unpaged output; returns (success, stdout+stderr).
fn run_tool(cmd: &mut Command) -> Result<(bool, String)> {
    let out = cmd
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "cat")
        .env("LC_ALL", "C")
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), text))
}

fn systemd_version(tool: &Path) -> String {
    run_tool(Command::new(tool).arg("--version"))
        .ok()
        .and_then(|(_, t)| {
            t.lines()
                .next()
                .map(|l| l.split(" (").next().unwrap_or(l).trim().to_owned())
        })
        .unwrap_or_else(|| "systemd".to_owned())
}

pub fn run(
    loaded: &Loaded,
    rendered: &Rendered,
    strictness: Strictness,
    progress: &Progress,
) -> Result<Vec<CheckResult>> {
    progress.step("checking the rendered files");
    let mut results = config_syntax(rendered);
    if let Some(tool) = find_tool("systemd-analyze") {
        let version = systemd_version(&tool);
        results.extend(verify(&tool, &version, rendered)?);
        for unit in rendered.files.iter().filter(|f| is_service(f)) {
            results.push(security(
                &tool,
                &version,
                unit,
                loaded.project.service.security_threshold.get(),
            )?);
        }
    } else {
        results.push(skipped_tool(
            "systemd-analyze-verify",
            "systemd-analyze",
            "systemd",
        ));
        results.push(skipped_tool(
            "systemd-analyze-security",
            "systemd-analyze",
            "systemd",
        ));
    }
    for snippet in rendered.files.iter().filter(|f| f.role == Role::Sysusers) {
        results.push(match find_tool("systemd-sysusers") {
            Some(tool) => sysusers(&tool, snippet)?,
            None => skipped_tool("systemd-sysusers", "systemd-sysusers", "systemd"),
        });
    }
    for rules in rendered.files.iter().filter(|f| f.role == Role::Logrotate) {
        results.push(logrotate_policy(loaded, rules));
        results.push(match find_tool("logrotate") {
            Some(tool) => logrotate(&tool, rendered, rules)?,
            None => skipped_tool("logrotate", "logrotate", "logrotate"),
        });
    }
    finish(results, strictness, progress)
}

/// Prints warnings and skips, then fails the build on failures (and, when strict, on
/// warnings, which are then reported as failed).
fn finish(
    mut results: Vec<CheckResult>,
    strictness: Strictness,
    progress: &Progress,
) -> Result<Vec<CheckResult>> {
    if strictness == Strictness::Fail {
        for r in &mut results {
            if r.status == Status::Warning.as_str() {
                Status::Failed.as_str().clone_into(&mut r.status);
                r.detail.push_str(" (an error with --strict)");
            }
        }
    }
    let label = |r: &CheckResult| match &r.file {
        Some(f) => format!("{} ({f})", r.check),
        None => r.check.clone(),
    };
    for r in &results {
        if r.status == Status::Warning.as_str() {
            progress.warn(&format!("check {}: {}", label(r), r.detail));
        } else if r.status == Status::Skipped.as_str() && r.check != "config-syntax" {
            progress.warn(&format!("check {} skipped: {}", label(r), r.detail));
        }
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.status == Status::Failed.as_str())
        .map(|r| format!("  {}: {}", label(r), r.detail))
        .collect();
    if !failed.is_empty() {
        bail!(
            "build-time checks failed, nothing was written:\n{}",
            failed.join("\n")
        );
    }
    Ok(results)
}

fn is_service(f: &RenderedFile) -> bool {
    f.role == Role::Unit && f.path.as_str().ends_with(".service")
}

fn file_name(f: &RenderedFile) -> &str {
    f.path
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or(f.path.as_str())
}

/// Rendered configs in a format ferry can parse must parse: a config that does not is
/// refused here, not by the service on the host.
fn config_syntax(rendered: &Rendered) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for f in rendered.files.iter().filter(|f| f.role == Role::Config) {
        let text = String::from_utf8_lossy(&f.data);
        let ext = f.path.as_str().rsplit_once('.').map_or("", |(_, e)| e);
        let (status, detail) = match ext {
            "toml" => match text.parse::<toml::Table>() {
                Ok(_) => (Status::Passed, "valid TOML".to_owned()),
                Err(e) => (
                    Status::Failed,
                    format!("not valid TOML: {}", e.to_string().trim()),
                ),
            },
            "json" => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(_) => (Status::Passed, "valid JSON".to_owned()),
                Err(e) => (Status::Failed, format!("not valid JSON: {e}")),
            },
            "yaml" | "yml" => match yaml_rust2::YamlLoader::load_from_str(&text) {
                Ok(_) => (Status::Passed, "valid YAML".to_owned()),
                Err(e) => (Status::Failed, format!("not valid YAML: {e}")),
            },
            _ => (Status::Skipped, format!("no syntax check for .{ext} files")),
        };
        out.push(result("config-syntax", status, Some(f), detail));
    }
    out
}

/// Mirrors a directory tree for reading: files and symlinks hard-linked where the
/// filesystem allows (no new inodes: the system's unit directory has hundreds of
/// entries, and this runs on every build), else copied, symlinks kept as symlinks.
/// Nothing in the mirror is ever written to.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_tree(&from, &to)?;
        } else if (ty.is_symlink() || ty.is_file()) && std::fs::hard_link(&from, &to).is_ok() {
            // linkat(2) without AT_SYMLINK_FOLLOW links a symlink itself.
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ty.is_file() {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// The program of every command in a unit's `Exec*=` lines.
fn exec_programs(unit: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in unit.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !key.trim().starts_with("Exec") {
            continue;
        }
        let mut next_is_program = true;
        for word in value.split_whitespace() {
            if word == ";" {
                next_is_program = true;
            } else if next_is_program {
                let program = word.trim_start_matches(['@', '-', ':', '+', '!']);
                if !program.is_empty() && !out.iter().any(|p| p == program) {
                    out.push(program.to_owned());
                }
                next_is_program = false;
            }
        }
    }
    out
}

/// A line of `systemd-analyze verify` output that is about one of our units.
fn about_our_units(line: &str, names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| line.starts_with(&format!("{n}:")) || line.contains(&format!("{UNIT_DIR}/{n}:")))
}

/// Lines that mean "this systemd does not know that directive": the build machine's
/// systemd may be older than the target's.
fn is_version_skew(line: &str) -> bool {
    line.contains("Unknown key")
        || line.contains("Unknown section")
        || line.contains("Unknown lvalue")
}

/// One `systemd-analyze verify` per environment: each has its own `APP.service`, checked
/// beside the units every environment shares (the socket).
fn verify(tool: &Path, version: &str, rendered: &Rendered) -> Result<Vec<CheckResult>> {
    let shared: Vec<&RenderedFile> = rendered
        .files
        .iter()
        .filter(|f| f.role == Role::Unit && !is_service(f))
        .collect();
    let tmp = tempfile::Builder::new().prefix("ferry-verify-").tempdir()?;
    let root = tmp.path();
    let mut copied: Vec<PathBuf> = Vec::new();
    for dir in ["usr/lib/systemd/system", "lib/systemd/system"] {
        let src = Path::new("/").join(dir);
        let Ok(real) = src.canonicalize() else {
            continue;
        };
        if !copied.contains(&real) {
            copy_tree(&real, &root.join(dir))?;
            copied.push(real);
        }
    }
    if copied.is_empty() {
        return Ok(vec![result(
            "systemd-analyze-verify",
            Status::Skipped,
            None,
            "this build machine has systemd-analyze but no /usr/lib/systemd/system to resolve the units' dependencies against: not checked",
        )]);
    }
    rendered
        .files
        .iter()
        .filter(|f| is_service(f))
        .map(|service| {
            let mut units = vec![service];
            units.extend(shared.iter().copied());
            verify_units(tool, version, root, &units, service)
        })
        .collect()
}

/// Verifies `units` (installed under `root`, replacing the previous environment's);
/// the result is filed under the environment's service unit.
fn verify_units(
    tool: &Path,
    version: &str,
    root: &Path,
    units: &[&RenderedFile],
    service: &RenderedFile,
) -> Result<CheckResult> {
    let names: Vec<&str> = units.iter().map(|u| file_name(u)).collect();
    let etc = root.join(UNIT_DIR.trim_start_matches('/'));
    std::fs::create_dir_all(&etc)?;
    let mut paths = Vec::new();
    for u in units {
        let p = etc.join(file_name(u));
        std::fs::write(&p, &u.data)?;
        paths.push(p);
        for program in exec_programs(&String::from_utf8_lossy(&u.data)) {
            let rel = if program.starts_with('/') {
                program.trim_start_matches('/').to_owned()
            } else {
                format!("usr/bin/{program}")
            };
            let stub = root.join(rel);
            std::fs::create_dir_all(stub.parent().expect("has a parent"))?;
            std::fs::write(&stub, "#!/bin/sh\nexit 0\n")?;
            std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    let (ok, text) = run_tool(
        Command::new(tool)
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .args(["--man=no", "--generators=no", "--recursive-errors=no"])
            .args(&paths),
    )?;
    let text = text.replace(&root.display().to_string(), "");
    if text.contains("unrecognized option") {
        return Ok(result(
            "systemd-analyze-verify",
            Status::Skipped,
            Some(service),
            format!("{version}'s systemd-analyze verify is too old for --root/--recursive-errors (needs 250+)"),
        ));
    }
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| about_our_units(l, &names))
        .collect();
    let hard: Vec<&str> = ours
        .iter()
        .copied()
        .filter(|l| !is_version_skew(l))
        .collect();
    let soft: Vec<&str> = ours
        .iter()
        .copied()
        .filter(|l| is_version_skew(l))
        .collect();
    let units_list = names.join(", ");
    Ok(if !ok || !hard.is_empty() {
        let detail = if hard.is_empty() {
            text.trim().to_owned()
        } else {
            hard.join("; ")
        };
        result(
            "systemd-analyze-verify",
            Status::Failed,
            Some(service),
            format!("{version}: {detail}"),
        )
    } else if !soft.is_empty() {
        result(
            "systemd-analyze-verify",
            Status::Warning,
            Some(service),
            format!(
                "{version} ignores directives of {units_list} (older than the target's systemd?): {}",
                soft.join("; ")
            ),
        )
    } else {
        result(
            "systemd-analyze-verify",
            Status::Passed,
            Some(service),
            format!("{version}: {units_list} verify cleanly"),
        )
    })
}

/// The number in `→ Overall exposure level for hello.service: 1.1 OK 🙂`.
pub fn parse_exposure(text: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.split_once("Overall exposure level for"))
        .and_then(|(_, rest)| rest.rsplit_once(": ").or_else(|| rest.split_once(':')))
        .and_then(|(_, v)| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The directives of a `systemd-analyze security` table that cost exposure: rows whose
/// last column is a number (the marker in front is `✗`, or `-` in the C locale).
fn unset_directives(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.contains("Overall exposure level"))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let cost = words.last()?.parse::<f64>().ok()?;
            (words.len() >= 3 && cost > 0.0).then(|| words[1])
        })
        .collect()
}

fn security(
    tool: &Path,
    version: &str,
    unit: &RenderedFile,
    threshold: f64,
) -> Result<CheckResult> {
    let tmp = tempfile::Builder::new()
        .prefix("ferry-security-")
        .tempdir()?;
    let path = tmp.path().join(file_name(unit));
    std::fs::write(&path, &unit.data)?;
    // systemd's threshold is in tenths and fails strictly above it.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let tenths = (threshold * 10.0).round() as u32;
    let (_, text) = run_tool(
        Command::new(tool)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--threshold={tenths}"))
            .arg(&path),
    )?;
    if text.contains("unrecognized option") {
        return Ok(result(
            "systemd-analyze-security",
            Status::Skipped,
            Some(unit),
            format!("{version}'s systemd-analyze has no security --offline (needs 250+)"),
        ));
    }
    let Some(exposure) = parse_exposure(&text) else {
        return Ok(result(
            "systemd-analyze-security",
            Status::Failed,
            Some(unit),
            format!("{version} could not score the unit: {}", text.trim()),
        ));
    };
    let above = exposure > threshold + 1e-9;
    let mut r = result(
        "systemd-analyze-security",
        if above {
            Status::Warning
        } else {
            Status::Passed
        },
        Some(unit),
        if above {
            let worst = unset_directives(&text);
            format!(
                "{version}: exposure {exposure:.1} is above service.security_threshold {threshold:.1} (costing exposure: {})",
                worst.join(" ")
            )
        } else {
            format!("{version}: exposure {exposure:.1} (threshold {threshold:.1})")
        },
    );
    r.exposure = Some(exposure);
    r.threshold = Some(threshold);
    Ok(r)
}

/// `systemd-sysusers --dry-run` on an empty root: parses the snippet, creates nothing.
fn sysusers(tool: &Path, snippet: &RenderedFile) -> Result<CheckResult> {
    let tmp = tempfile::Builder::new()
        .prefix("ferry-sysusers-")
        .tempdir()?;
    std::fs::create_dir(tmp.path().join("etc"))?;
    let path = tmp.path().join(file_name(snippet));
    std::fs::write(&path, &snippet.data)?;
    let (ok, text) = run_tool(
        Command::new(tool)
            .arg(format!("--root={}", tmp.path().display()))
            .arg("--dry-run")
            .arg(&path),
    )?;
    let text = text.replace(&tmp.path().display().to_string(), "");
    Ok(if ok {
        result(
            "systemd-sysusers",
            Status::Passed,
            Some(snippet),
            "systemd-sysusers --dry-run accepts the snippet",
        )
    } else {
        result(
            "systemd-sysusers",
            Status::Failed,
            Some(snippet),
            format!("systemd-sysusers refuses the snippet: {}", text.trim()),
        )
    })
}

/// Directives that make a rules file unsafe or lossy, whatever logrotate thinks of it.
fn logrotate_policy(loaded: &Loaded, rules: &RenderedFile) -> CheckResult {
    let text = String::from_utf8_lossy(&rules.data);
    let directives: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    let has = |d: &str| {
        directives
            .iter()
            .any(|l| l.split_whitespace().next() == Some(d))
    };
    let mut findings = Vec::new();
    if has("copytruncate") {
        findings.push("copytruncate loses the lines written between the copy and the truncation: use create plus a reopen signal");
    }
    if !has("su") && loaded.project.user().as_str() != "root" {
        findings.push("no su: the log directory belongs to the service user, so rotating as root invites symlink attacks and logrotate refuses group-writable directories");
    }
    if !has("create") && !has("copytruncate") {
        findings.push(
            "no create: after a rename the service writes to the rotated file until it reopens",
        );
    }
    if !has("copytruncate") && !has("postrotate") {
        findings.push("no postrotate script: nothing tells the service to reopen its log file, so it keeps writing to the rotated one");
    }
    if findings.is_empty() {
        result(
            "logrotate-policy",
            Status::Passed,
            Some(rules),
            "su, create and a reopen signal, no copytruncate",
        )
    } else {
        result(
            "logrotate-policy",
            Status::Warning,
            Some(rules),
            findings.join("; "),
        )
    }
}

/// Whether a logrotate config line opens a script, which is copied as is.
fn opens_script(first: &str) -> bool {
    matches!(
        first,
        "postrotate" | "prerotate" | "firstaction" | "lastaction" | "preremove"
    )
}

/// The rules with absolute log paths moved under `root`, and `su`/`create`/`createolddir`
/// owners replaced by `uid`/`gid`; plus the log patterns, for the sample files.
fn map_rules(text: &str, root: &Path, uid: u32, gid: u32) -> (String, Vec<String>) {
    let root = root.display().to_string();
    let mut out = String::new();
    let mut patterns = Vec::new();
    let mut in_script = false;
    let mut depth = 0usize;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let first = words.first().copied().unwrap_or("");
        if in_script {
            in_script = first != "endscript";
            let _ = writeln!(out, "{line}");
            continue;
        }
        let mapped = match first {
            _ if opens_script(first) => {
                in_script = true;
                line.to_owned()
            }
            "su" => format!("    su {uid} {gid}"),
            "create" | "createolddir" if words.len() == 4 => {
                format!("    {first} {} {uid} {gid}", words[1])
            }
            "olddir" if words.get(1).is_some_and(|p| p.starts_with('/')) => {
                format!("    olddir {root}{}", words[1])
            }
            _ if depth == 0 => words
                .iter()
                .map(|w| {
                    let bare = w.trim_matches('"');
                    if bare.starts_with('/') {
                        patterns.push(bare.to_owned());
                        format!("\"{root}{bare}\"")
                    } else {
                        (*w).to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => line.to_owned(),
        };
        depth += line.matches('{').count();
        depth = depth.saturating_sub(line.matches('}').count());
        let _ = writeln!(out, "{mapped}");
    }
    (out, patterns)
}

fn logrotate(tool: &Path, rendered: &Rendered, rules: &RenderedFile) -> Result<CheckResult> {
    let tmp = tempfile::Builder::new()
        .prefix("ferry-logrotate-")
        .tempdir()?;
    let root = tmp.path().join("root");
    std::fs::create_dir(&root)?;
    let probe = tmp.path().join("owner");
    std::fs::write(&probe, b"")?;
    let meta = std::fs::metadata(&probe)?;
    let (text, patterns) = map_rules(
        &String::from_utf8_lossy(&rules.data),
        &root,
        meta.uid(),
        meta.gid(),
    );
    for pattern in &patterns {
        let Some((dir, name)) = pattern.rsplit_once('/') else {
            continue;
        };
        if dir.contains(['*', '?', '[', '{']) {
            continue;
        }
        let local = root.join(dir.trim_start_matches('/'));
        std::fs::create_dir_all(&local)?;
        let mode = rendered
            .install
            .directories
            .iter()
            .find(|d| d.path.as_str() == dir)
            .map_or(0o755, |d| d.mode.bits());
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(mode))?;
        if !name.contains(['[', '{']) {
            let sample = name.replace('*', "ferry-check").replace('?', "x");
            std::fs::write(local.join(sample), b"ferry build-time logrotate check\n")?;
        }
    }
    let rules_path = tmp.path().join("rules");
    std::fs::write(&rules_path, text)?;
    std::fs::set_permissions(&rules_path, std::fs::Permissions::from_mode(0o644))?;
    let (ok, out) = run_tool(
        Command::new(tool)
            .args(["-d", "-f", "-s", "/dev/null"])
            .arg(&rules_path),
    )?;
    let out = out
        .replace(&root.display().to_string(), "")
        .replace(&rules_path.display().to_string(), "RULES");
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error:")).collect();
    let handled = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("Handling ")
                .and_then(|r| r.split_whitespace().next())
        })
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    Ok(if ok && errors.is_empty() && handled > 0 {
        result(
            "logrotate",
            Status::Passed,
            Some(rules),
            format!("logrotate -d accepts the rules ({handled} log set(s), paths under a temporary root)"),
        )
    } else {
        let why = if errors.is_empty() {
            "logrotate handled no log set".to_owned()
        } else {
            errors.join("; ")
        };
        result(
            "logrotate",
            Status::Failed,
            Some(rules),
            format!("logrotate -d refuses the rules: {why}"),
        )
    })
}

/// Checks a built binary against the unit ferry rendered for it: a `Type=notify` unit
/// whose program never reads `NOTIFY_SOCKET` times out at every start, and a
/// socket-activated program that never reads `LISTEN_FDS` binds the port systemd already
/// holds. Call once per built binary (the strings are the same for every target).
pub fn binary(
    loaded: &Loaded,
    bin: &Path,
    unstamped: &[crate::gobuild::Stamp],
    strictness: Strictness,
    progress: &Progress,
) -> Result<Vec<CheckResult>> {
    let data = std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
    let has = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    let p = &loaded.project;
    let mut results = Vec::new();
    let notify = has(b"NOTIFY_SOCKET");
    results.push(match (p.service.kind, notify) {
        (ServiceType::Notify, false) => result(
            "service-type",
            Status::Failed,
            None,
            "service.type = \"notify\" but the binary never reads NOTIFY_SOCKET: systemd would wait for READY=1 until TimeoutStartSec and fail the start; set type = \"exec\" or send READY=1 (github.com/coreos/go-systemd/v22/daemon)",
        ),
        (ServiceType::Exec, true) => result(
            "service-type",
            Status::Warning,
            None,
            "the binary reads NOTIFY_SOCKET: service.type = \"notify\" would make systemd wait until it is ready",
        ),
        _ => result("service-type", Status::Passed, None, "the unit's Type= matches the binary"),
    });
    if p.socket_activated() {
        results.push(if has(b"LISTEN_FDS") {
            result("socket-activation", Status::Passed, None, "the binary reads LISTEN_FDS")
        } else {
            result(
                "socket-activation",
                Status::Failed,
                None,
                "service.listen_stream is set but the binary never reads LISTEN_FDS: it would try to bind the port systemd already holds (github.com/coreos/go-systemd/v22/activation)",
            )
        });
    }
    results.extend(unstamped.iter().map(unstamped_result));
    finish(results, strictness, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(extra: &str) -> Loaded {
        let project =
            crate::project::parse(&format!("[app]\nname = \"a\"\nversion = \"1\"\n{extra}"))
                .unwrap();
        Loaded {
            dir: PathBuf::from("."),
            root: PathBuf::from("."),
            project,
            targets: Vec::new(),
        }
    }

    fn binary_statuses(extra: &str, contents: &[u8]) -> Result<Vec<(String, String)>> {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("a");
        std::fs::write(&bin, contents).unwrap();
        let r = binary(
            &loaded(extra),
            &bin,
            &[],
            Strictness::Warn,
            &Progress::new(false),
        )?;
        Ok(r.into_iter().map(|c| (c.check, c.status)).collect())
    }

    #[test]
    fn binary_must_match_the_unit_type_and_socket_activation() {
        let both = b"\x7fELF ... NOTIFY_SOCKET ... LISTEN_FDS ...";
        let pair = |c: &str, s: &str| (c.to_owned(), s.to_owned());
        assert_eq!(
            binary_statuses("", both).unwrap(),
            [pair("service-type", "passed")]
        );
        let e = binary_statuses("", b"\x7fELF plain").unwrap_err();
        assert!(
            format!("{e:#}").contains("never reads NOTIFY_SOCKET"),
            "{e:#}"
        );
        assert_eq!(
            binary_statuses("[service]\ntype = \"exec\"\n", both).unwrap(),
            [pair("service-type", "warning")]
        );
        let socket = "[service]\nlisten_stream = [\"8080\"]\n";
        assert_eq!(
            binary_statuses(socket, both).unwrap(),
            [
                pair("service-type", "passed"),
                pair("socket-activation", "passed")
            ]
        );
        let e = binary_statuses(socket, b"NOTIFY_SOCKET only").unwrap_err();
        assert!(format!("{e:#}").contains("never reads LISTEN_FDS"), "{e:#}");
    }

    #[test]
    fn exposure_line_is_parsed() {
        let text = "  NAME  DESCRIPTION  EXPOSURE\n✗ PrivateNetwork= ...  0.5\n\n→ Overall exposure level for hello.service: 1.1 OK 🙂\n";
        assert_eq!(parse_exposure(text), Some(1.1));
        assert_eq!(
            parse_exposure("→ Overall exposure level for a.service: 9.6 UNSAFE 😨"),
            Some(9.6)
        );
        assert_eq!(parse_exposure("Unit a.service not found."), None);
    }

    #[test]
    fn unset_directives_in_either_locale() {
        let utf8 = "  NAME  DESCRIPTION  EXPOSURE\n✓ NoNewPrivileges=  Service processes cannot acquire new privileges\n✗ PrivateNetwork=  Service has access to the host's network  0.5\n✗ UMask=  Files created by service are group-readable by default  0.1\n\n→ Overall exposure level for hello.service: 1.1 OK 🙂\n";
        assert_eq!(unset_directives(utf8), ["PrivateNetwork=", "UMask="]);
        let c = "+ NoNewPrivileges=  Service processes cannot acquire new privileges\n- PrivateNetwork=  Service has access to the host's network  0.5\n-> Overall exposure level for hello.service: 1.1 OK :-)\n";
        assert_eq!(unset_directives(c), ["PrivateNetwork="]);
        assert_eq!(parse_exposure(c), Some(1.1));
    }

    #[test]
    fn exec_programs_strip_prefixes_and_split_commands() {
        let unit = "[Service]\nExecStart=/opt/a/current/bin/a -config /etc/a/a.toml\nExecReload=/bin/sh -c 'kill -s HUP \"$$MAINPID\"'\nExecStartPre=-+/usr/bin/true ; /usr/bin/false x\n";
        assert_eq!(
            exec_programs(unit),
            [
                "/opt/a/current/bin/a",
                "/bin/sh",
                "/usr/bin/true",
                "/usr/bin/false"
            ]
        );
    }

    #[test]
    fn verify_lines_are_attributed_and_classified() {
        let names = ["hello.service"];
        let ours = "/etc/systemd/system/hello.service:27: Unknown key 'FooBar' in section [Service], ignoring.";
        assert!(about_our_units(ours, &names) && is_version_skew(ours));
        let bad = "hello.service: Command /opt/hello/current/bin/hello is not executable: No such file or directory";
        assert!(about_our_units(bad, &names) && !is_version_skew(bad));
        let parse = "/etc/systemd/system/hello.service:28: Failed to parse protect system value, ignoring: bogus";
        assert!(about_our_units(parse, &names) && !is_version_skew(parse));
        assert!(!about_our_units(
            "/usr/lib/systemd/system/foo.service:3: Unknown key",
            &names
        ));
        assert!(!about_our_units(
            "/etc/systemd/system/hello.service.d/x.conf: y",
            &names
        ));
    }

    #[test]
    fn logrotate_rules_are_mapped_under_the_root() {
        let rules = "# c\n/var/log/a/*.log \"/var/log/a/x.log\" {\n    su a a\n    create 0640 a a\n    olddir /var/log/a/old\n    postrotate\n        su nobody\n        /bin/kill -HUP 1\n    endscript\n}\n";
        let (mapped, patterns) = map_rules(rules, Path::new("/tmp/r"), 1000, 1001);
        assert_eq!(patterns, ["/var/log/a/*.log", "/var/log/a/x.log"]);
        assert!(
            mapped.contains("\"/tmp/r/var/log/a/*.log\" \"/tmp/r/var/log/a/x.log\" {"),
            "{mapped}"
        );
        assert!(mapped.contains("    su 1000 1001\n"), "{mapped}");
        assert!(mapped.contains("    create 0640 1000 1001\n"), "{mapped}");
        assert!(
            mapped.contains("    olddir /tmp/r/var/log/a/old\n"),
            "{mapped}"
        );
        // Scripts are left alone.
        assert!(mapped.contains("        su nobody\n"), "{mapped}");
    }
}
