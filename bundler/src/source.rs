//! Where a build's source revision and date come from.
//!
//! - The revision: `ferry build --revision REV`, else `git rev-parse HEAD` of the project
//!   directory, else Go module info when the project directory is a module in the module
//!   cache (`go mod download -json M@V` extracts it to `$GOMODCACHE/<escaped path>@<v>`,
//!   and `$GOMODCACHE/cache/download/<escaped path>/@v/<v>.info` records `Origin.Hash`,
//!   or a pseudo-version names the commit).
//! - The date (`SOURCE_DATE_EPOCH`): the environment variable, else the time of the last
//!   git commit, else the module info's `Time`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use crate::project::types::Revision;

/// What git says about the project directory.
#[derive(Debug, Default)]
pub struct Git {
    pub revision: Option<String>,
    pub commit_time: Option<u64>,
    pub dirty: bool,
}

/// The commit, its time and whether the project directory has uncommitted changes; all
/// empty outside a repository (or in one without a commit).
pub fn git(dir: &Path) -> Git {
    let run = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(rev) = run(&["rev-parse", "HEAD"]) else {
        return Git::default();
    };
    Git {
        commit_time: run(&["log", "-1", "--format=%ct"]).and_then(|t| t.parse().ok()),
        dirty: run(&["status", "--porcelain", "--", "."]).is_some_and(|s| !s.is_empty()),
        revision: Some(rev),
    }
}

/// A module in the Go module cache, as its `.info` file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The module path (unescaped): `github.com/prometheus/node_exporter`.
    pub path: String,
    pub version: String,
    /// The `.info` file read.
    pub info: PathBuf,
    /// `Time`, as a Unix time.
    pub time: Option<u64>,
    /// `Origin.Hash`, else the commit a pseudo-version names.
    pub revision: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InfoJson {
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    origin: Option<OriginJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OriginJson {
    #[serde(default)]
    hash: Option<String>,
}

/// `go env GOMODCACHE` (which honours the `GOMODCACHE` variable), if go answers.
fn gomodcache() -> Option<PathBuf> {
    let out = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .env("GOTOOLCHAIN", "local")
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let s = String::from_utf8(out.stdout).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| PathBuf::from(s))
}

/// The module info of `dir` when it lies in the module cache.
pub fn module_info(dir: &Path) -> Option<ModuleInfo> {
    module_info_in(&gomodcache()?, dir)
}

/// The module info of `dir` when it lies in the module cache at `cache`: the first path
/// component under `cache` holding `@` ends the module path (`github.com/!burnt!sushi/
/// toml@v1.6.0`); `cache/` itself is the download cache, not a module. A missing or
/// unreadable `.info` gives a module without time or revision.
pub fn module_info_in(cache: &Path, dir: &Path) -> Option<ModuleInfo> {
    let cache = cache.canonicalize().ok()?;
    let dir = dir.canonicalize().ok()?;
    let rel = dir.strip_prefix(&cache).ok()?;
    let parts: Vec<&str> = rel
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect::<Option<_>>()?;
    let at = parts.iter().position(|c| c.contains('@'))?;
    if parts.first() == Some(&"cache") {
        return None;
    }
    let (last, version) = parts[at].split_once('@')?;
    let mut escaped: Vec<&str> = parts[..at].to_vec();
    escaped.push(last);
    let escaped = escaped.join("/");
    let info = cache
        .join("cache/download")
        .join(&escaped)
        .join("@v")
        .join(format!("{version}.info"));
    let json: Option<InfoJson> = std::fs::read(&info)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let version = unescape(version)?;
    let (time, hash) = match json {
        Some(j) => (
            j.time.as_deref().and_then(parse_rfc3339),
            j.origin.and_then(|o| o.hash),
        ),
        None => (None, None),
    };
    let revision = hash
        .or_else(|| pseudo_version_commit(&version).map(str::to_owned))
        .filter(|r| Revision::new(r).is_ok());
    Some(ModuleInfo {
        path: unescape(&escaped)?,
        version,
        info,
        time,
        revision,
    })
}

/// The module cache's case encoding undone: `!b` is `B`.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut bang = false;
    for c in s.chars() {
        if bang {
            if !c.is_ascii_lowercase() {
                return None;
            }
            out.push(c.to_ascii_uppercase());
            bang = false;
        } else if c == '!' {
            bang = true;
        } else {
            out.push(c);
        }
    }
    (!bang).then_some(out)
}

/// The 12-digit commit prefix a pseudo-version ends with
/// (`v0.0.0-20240603130017-1754b780536b`, `v1.2.4-0.20191109021931-daa7c04131f5`).
fn pseudo_version_commit(version: &str) -> Option<&str> {
    let v = version.strip_suffix("+incompatible").unwrap_or(version);
    let (rest, commit) = v.rsplit_once('-')?;
    let stamp = rest.get(rest.len().checked_sub(15)?..)?;
    let (sep, digits) = stamp.split_at(1);
    let ok = commit.len() == 12
        && commit
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && matches!(sep, "-" | ".")
        && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(commit)
}

/// Where the revision came from, in order of precedence.
pub fn revision(
    flag: Option<&Revision>,
    git: &Git,
    module: Option<&ModuleInfo>,
) -> Option<Revision> {
    flag.cloned()
        .or_else(|| git.revision.as_deref().and_then(|r| Revision::new(r).ok()))
        .or_else(|| {
            module
                .and_then(|m| m.revision.as_deref())
                .and_then(|r| Revision::new(r).ok())
        })
}

/// `SOURCE_DATE_EPOCH` (`env`), else the last commit's time, else the module's `Time`.
pub fn source_date_epoch(
    env: Option<&str>,
    dir: &Path,
    git: &Git,
    module: Option<&ModuleInfo>,
) -> Result<u64> {
    if let Some(v) = env {
        return v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a Unix time"));
    }
    if let Some(t) = git.commit_time.or_else(|| module.and_then(|m| m.time)) {
        return Ok(t);
    }
    match module {
        Some(m) => bail!(
            "SOURCE_DATE_EPOCH is not set, {} is not in a git repository with a commit, and \
             module {}@{} has no Time in {}: set SOURCE_DATE_EPOCH so the bundle's timestamps \
             are reproducible",
            dir.display(),
            m.path,
            m.version,
            m.info.display()
        ),
        None => bail!(
            "SOURCE_DATE_EPOCH is not set and {} is neither in a git repository with a commit \
             nor a module in the Go module cache: set SOURCE_DATE_EPOCH so the bundle's \
             timestamps are reproducible",
            dir.display()
        ),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).expect("1..=31");
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("1..=12");
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A Unix time as UTC RFC 3339, `2023-11-14T22:13:20Z`; `None` past year 9999.
pub fn rfc3339(epoch: u64) -> Option<String> {
    let secs = i64::try_from(epoch).ok()?;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    (y <= 9999).then(|| {
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    })
}

/// An RFC 3339 time (as Go writes `time.Time`: `2025-04-01T15:14:14Z`, with optional
/// fraction and offset) as a Unix time, rounded down; `None` if malformed or before 1970.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let digits = text.get(r)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    if civil_from_days(days) != (i64::from(year), month, day) {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let hours = i64::from(rest[1..3].parse::<u8>().ok()?);
            let minutes = i64::from(rest[4..6].parse::<u8>().ok()?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let east = hours * 3600 + minutes * 60;
            if *sign == b'+' {
                east
            } else {
                -east
            }
        }
        _ => return None,
    };
    let local =
        days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second.min(59));
    u64::try_from(local - offset).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_as_rfc3339() {
        let cases: &[(u64, &str)] = &[
            (0, "1970-01-01T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (1_743_520_454, "2025-04-01T15:14:14Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ];
        for (epoch, text) in cases {
            assert_eq!(rfc3339(*epoch).as_deref(), Some(*text), "{epoch}");
            assert_eq!(parse_rfc3339(text), Some(*epoch), "{text}");
        }
        assert_eq!(rfc3339(253_402_300_800), None);
    }

    #[test]
    fn go_times_parse_and_nonsense_does_not() {
        let cases: &[(&str, Option<u64>)] = &[
            ("2025-04-01T15:14:14Z", Some(1_743_520_454)),
            ("2025-04-01T15:14:14.999999999Z", Some(1_743_520_454)),
            ("2025-04-01T17:14:14+02:00", Some(1_743_520_454)),
            ("2025-04-01T10:14:14-05:00", Some(1_743_520_454)),
            ("2025-04-01t15:14:14z", Some(1_743_520_454)),
            ("1969-12-31T23:59:59Z", None),
            ("2025-02-29T00:00:00Z", None),
            ("2025-13-01T00:00:00Z", None),
            ("2025-04-01 15:14:14Z", None),
            ("2025-04-01T15:14:14", None),
            ("2025-04-01T15:14:14.Z", None),
            ("2025-04-01T15:14:14+0200", None),
            ("2025-04-01T15:14:14Zjunk", None),
            ("+025-04-01T15:14:14Z", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339(text), *want, "{text:?}");
        }
    }

    #[test]
    fn pseudo_versions_name_their_commit() {
        let cases: &[(&str, Option<&str>)] = &[
            ("v0.0.0-20240603130017-1754b780536b", Some("1754b780536b")),
            (
                "v0.15.2-0.20240603130017-1754b780536b",
                Some("1754b780536b"),
            ),
            (
                "v1.2.3-pre.0.20191109021931-daa7c04131f5",
                Some("daa7c04131f5"),
            ),
            (
                "v2.0.0-20191109021931-daa7c04131f5+incompatible",
                Some("daa7c04131f5"),
            ),
            ("v1.9.1", None),
            ("v1.0.0-rc1", None),
            ("v1.0.0-20191109021931-DAA7C04131F5", None),
            ("v1.0.0-2019110902193-daa7c04131f5", None),
        ];
        for (v, want) in cases {
            assert_eq!(pseudo_version_commit(v), *want, "{v}");
        }
    }

    /// A module cache laid out as `go mod download` leaves it.
    fn cache_with(info: Option<&str>) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let module = tmp.path().join("github.com/!burnt!sushi/toml@v1.6.0");
        std::fs::create_dir_all(module.join("cmd/x")).unwrap();
        let dl = tmp
            .path()
            .join("cache/download/github.com/!burnt!sushi/toml/@v");
        std::fs::create_dir_all(&dl).unwrap();
        if let Some(info) = info {
            std::fs::write(dl.join("v1.6.0.info"), info).unwrap();
        }
        (tmp, module)
    }

    #[test]
    fn module_info_comes_from_the_module_cache() {
        let full = r#"{"Version":"v1.6.0","Time":"2025-04-01T15:14:14Z","Origin":{"VCS":"git","URL":"https://github.com/BurntSushi/toml","Hash":"0123456789abcdef0123456789abcdef01234567"}}"#;
        let cases: &[(Option<&str>, Option<u64>, Option<&str>)] = &[
            (
                Some(full),
                Some(1_743_520_454),
                Some("0123456789abcdef0123456789abcdef01234567"),
            ),
            (
                Some(r#"{"Version":"v1.6.0","Time":"2025-04-01T15:14:14Z"}"#),
                Some(1_743_520_454),
                None,
            ),
            (
                Some(r#"{"Version":"v1.6.0","Origin":{"Hash":"not a revision!"}}"#),
                None,
                None,
            ),
            (Some("not json"), None, None),
            (None, None, None),
        ];
        for (info, time, revision) in cases {
            let (tmp, module) = cache_with(*info);
            for dir in [module.clone(), module.join("cmd/x")] {
                let m = module_info_in(tmp.path(), &dir).expect("in the cache");
                assert_eq!(m.path, "github.com/BurntSushi/toml");
                assert_eq!(m.version, "v1.6.0");
                assert_eq!(
                    (m.time, m.revision.as_deref()),
                    (*time, *revision),
                    "{info:?}"
                );
            }
            assert_eq!(module_info_in(tmp.path(), tmp.path()), None);
            assert_eq!(
                module_info_in(tmp.path(), &tmp.path().join("cache/download")),
                None
            );
        }
        let elsewhere = tempfile::tempdir().unwrap();
        let (tmp, _) = cache_with(Some(full));
        assert_eq!(module_info_in(tmp.path(), elsewhere.path()), None);
    }

    #[test]
    fn revision_and_date_precedence() {
        let flag = Revision::new("v1.2.3").unwrap();
        let git = Git {
            revision: Some("a".repeat(40)),
            commit_time: Some(100),
            dirty: false,
        };
        let module = ModuleInfo {
            path: "example.com/m".into(),
            version: "v1.0.0".into(),
            info: PathBuf::from("/x.info"),
            time: Some(200),
            revision: Some("b".repeat(40)),
        };
        let none = Git::default();
        let rev = |f, g, m| revision(f, g, m).map(|r| r.to_string());
        assert_eq!(rev(Some(&flag), &git, Some(&module)).unwrap(), "v1.2.3");
        assert_eq!(rev(None, &git, Some(&module)).unwrap(), "a".repeat(40));
        assert_eq!(rev(None, &none, Some(&module)).unwrap(), "b".repeat(40));
        assert_eq!(rev(None, &none, None), None);

        let dir = Path::new("/p");
        let sde = |env, g, m| source_date_epoch(env, dir, g, m);
        assert_eq!(sde(Some("7"), &git, Some(&module)).unwrap(), 7);
        assert_eq!(sde(None, &git, Some(&module)).unwrap(), 100);
        assert_eq!(sde(None, &none, Some(&module)).unwrap(), 200);
        assert!(sde(Some("x"), &git, None).is_err());
        let e = sde(None, &none, None).unwrap_err().to_string();
        assert!(e.contains("set SOURCE_DATE_EPOCH"), "{e}");
        let timeless = ModuleInfo {
            time: None,
            ..module.clone()
        };
        let e = sde(None, &none, Some(&timeless)).unwrap_err().to_string();
        assert!(
            e.contains("example.com/m@v1.0.0 has no Time in /x.info"),
            "{e}"
        );
    }
}
