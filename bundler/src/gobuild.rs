//! The Go side of a build: vendor into a clean directory, cross-compile static binaries,
//! and read back what the binary says about how it was built.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::manifest::{Module, Target};
use serde::Deserialize;

use crate::project::types::{BuildTag, GoSymbol, LdflagsValue};
use crate::project::Loaded;

/// Runs a command, returning stdout; on failure the error names the command and carries
/// Go's own stderr, since that is what the user needs to fix their project.
pub fn run(cmd: &mut Command) -> Result<String> {
    let shown = show(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("running `{shown}` (is Go installed and on PATH?)"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("`{shown}` failed ({}):\n{}", out.status, stderr.trim_end());
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{shown}` printed non-UTF-8"))
}

fn show(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            let _ = write!(s, "{}={} ", k.to_string_lossy(), v.to_string_lossy());
        }
    }
    s.push_str(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(' ') {
            let _ = write!(s, " '{a}'");
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// A `go` command with the environment pinned: no toolchain switching, no workspace, no
/// inherited GOFLAGS, so the user's shell cannot change what ferry builds.
fn go(dir: &Path) -> Command {
    let mut c = Command::new("go");
    c.current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .env("GOFLAGS", "")
        .env("GO111MODULE", "on");
    c
}

/// Copies the project into `dest`, leaving out VCS data, any existing `vendor/` and
/// anything under `exclude` (the output directory), so vendoring starts clean.
pub fn copy_source(src: &Path, dest: &Path, exclude: &[PathBuf]) -> Result<()> {
    let walker = walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let rel = e.path().strip_prefix(src).unwrap_or(e.path());
            let first = rel
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned());
            !matches!(first.as_deref(), Some(".git" | "vendor" | ".ferry-build"))
                && !exclude.iter().any(|x| e.path().starts_with(x))
        });
    for entry in walker {
        let entry = entry.with_context(|| format!("walking {}", src.display()))?;
        let rel = entry.path().strip_prefix(src)?;
        let to = dest.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
        } else if ft.is_file() {
            std::fs::copy(entry.path(), &to).with_context(|| {
                format!("copying {} to {}", entry.path().display(), to.display())
            })?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            std::os::unix::fs::symlink(&target, &to)
                .with_context(|| format!("copying symlink {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// `go mod download`, `go mod verify`, `go mod vendor` in the clean build directory.
pub fn vendor(build_dir: &Path) -> Result<()> {
    run(go(build_dir)
        .args(["mod", "download", "-x"])
        .env("GOFLAGS", "-mod=mod"))
    .context("downloading Go modules")?;
    // Both only read the module cache: verify it while vendor copies from it. vendor/ is
    // used only once verify has passed.
    let mut verify = go(build_dir);
    verify.args(["mod", "verify"]);
    let (verified, vendored) = std::thread::scope(|s| {
        let verify = s.spawn(|| run(&mut verify));
        let vendored = run(go(build_dir).args(["mod", "vendor"]));
        (
            verify.join().expect("the go mod verify thread panicked"),
            vendored,
        )
    });
    verified.context("verifying Go modules against go.sum")?;
    vendored.context("vendoring Go modules")?;
    Ok(())
}

pub fn go_version() -> Result<String> {
    let v = run(Command::new("go")
        .args(["env", "GOVERSION"])
        .env("GOTOOLCHAIN", "local"))?;
    Ok(v.trim().to_owned())
}

/// One `-X` assignment and the `ferry.toml` key it comes from.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// `app.version_variable` or `build.ldflags_x."NAME"`, for messages.
    pub key: String,
    pub symbol: GoSymbol,
    /// Rendered and checked again.
    pub value: LdflagsValue,
    pub need: Need,
}

/// Whether a `-X` variable the program lacks fails the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Named in `ferry.toml`: a missing variable fails the build.
    Required,
    /// ferry's default (`main.version` with `app.version_variable` unset): stamped when
    /// the program has it, reported otherwise.
    IfPresent,
}

/// The `-ldflags` value: no symbol table, no DWARF, no build id, version stamped, and
/// `-dumpdep` (the linker's reachability graph on stderr, read by [`build`] to see that
/// every `-X` variable is in the program; it does not change the binary). `go build`
/// splits the value at white space; every assignment is one word
/// ([`crate::project::types::GoSymbol::assignment`]), so a value cannot add a linker flag
/// of its own.
pub fn ldflags(stamps: &[Stamp]) -> String {
    let mut s = "-s -w -buildid= -dumpdep".to_owned();
    for st in stamps {
        let _ = write!(s, " -X {}", st.symbol.assignment(st.value.as_str()));
    }
    s
}

/// Cross-compiles one target from the vendored tree, with the network shut
/// (`GOPROXY=off`): everything must already be in `vendor/`. Then checks that every `-X`
/// variable is one the linker kept: Go's linker silently ignores `-X` for a variable that
/// does not exist or that dead-code elimination dropped (the program never reads it), and
/// the bundle would ship without its version. (A variable that is not a string is already
/// a link error.) Returns the [`Need::IfPresent`] stamps the program does not have.
pub fn build(
    loaded: &Loaded,
    build_dir: &Path,
    target: Target,
    out: &Path,
    stamps: &[Stamp],
) -> Result<Vec<Stamp>> {
    let p = &loaded.project;
    let mut cmd = go(build_dir);
    cmd.env("CGO_ENABLED", "0")
        .env("GOOS", "linux")
        .env("GOARCH", target.arch.as_str())
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=vendor")
        .args(["build", "-mod=vendor", "-trimpath", "-buildvcs=false"]);
    if !p.build.tags.is_empty() {
        let tags: Vec<&str> = p.build.tags.iter().map(BuildTag::as_str).collect();
        cmd.arg(format!("-tags={}", tags.join(",")));
    }
    // Project values only ever form one `-name=value` word each, and `--` ends the flags
    // before the package: `GoPackage` cannot start with `-`, and this holds even if it
    // could. (`-o`'s value is ferry's own work path.)
    cmd.arg(format!("-ldflags={}", ldflags(stamps)))
        .arg("-o")
        .arg(out)
        .arg("--")
        .arg(p.app.package.as_str());
    let wanted: Vec<String> = stamps.iter().map(|s| s.symbol.link_name()).collect();
    match run_linking(&mut cmd, &wanted) {
        Ok(reached) => check_stamps(stamps, &reached),
        Err(e) => {
            let cgo = cgo_packages(build_dir, p.app.package.as_str());
            if cgo.is_empty() {
                Err(e.context(format!("building {} for {target}", p.app.package)))
            } else {
                Err(e.context(format!(
                    "{} needs cgo (import \"C\" in {}); ferry builds static binaries with \
                     CGO_ENABLED=0, so replace the cgo dependency with a pure-Go one or put \
                     its cgo code behind a build tag",
                    p.app.package,
                    cgo.join(", ")
                )))
            }
        }
    }
}

/// Runs `go build` with `-dumpdep`, streaming its stderr: returns which of `wanted` the
/// linker reached (a `caller -> callee` line names it), and on failure carries the other
/// lines (go's own errors), bounded.
fn run_linking(cmd: &mut Command, wanted: &[String]) -> Result<Vec<String>> {
    use std::io::BufRead as _;
    const MAX_SHOWN: usize = 64 << 10;
    let shown = show(cmd);
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running `{shown}` (is Go installed and on PATH?)"))?;
    let mut reached: Vec<String> = Vec::new();
    let mut other = String::new();
    let stderr = child.stderr.take().expect("piped");
    for line in std::io::BufReader::new(stderr).split(b'\n') {
        let line = line.context("reading go build's output")?;
        let line = String::from_utf8_lossy(&line);
        if let Some((from, to)) = line.split_once(" -> ") {
            for name in [from, to] {
                if wanted.iter().any(|w| w == name) && !reached.iter().any(|r| r == name) {
                    reached.push(name.to_owned());
                }
            }
        } else if other.len() < MAX_SHOWN {
            other.push_str(&line);
            other.push('\n');
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{shown}` failed ({status}):\n{}", other.trim_end());
    }
    Ok(reached)
}

/// Every required `-X` target must be a variable the linker reached; returns the optional
/// ones it did not reach.
pub fn check_stamps(stamps: &[Stamp], reached: &[String]) -> Result<Vec<Stamp>> {
    let (missing, absent): (Vec<&Stamp>, Vec<&Stamp>) = stamps
        .iter()
        .filter(|st| !reached.contains(&st.symbol.link_name()))
        .partition(|st| st.need == Need::Required);
    let missing: Vec<String> = missing
        .into_iter()
        .map(|st| {
            format!(
                "{} = {:?} is not in the built program: it does not exist, is not a \
                 package-level string variable, or the program never reads it",
                st.key,
                st.symbol.as_str()
            )
        })
        .collect();
    if missing.is_empty() {
        return Ok(absent.into_iter().cloned().collect());
    }
    bail!(
        "{}; go's linker ignores -X for such a variable, so the binary would ship without \
         the value: fix the name (IMPORTPATH.NAME, e.g. main.version) or read the variable",
        missing.join("; ")
    )
}

/// Packages in the build that contain cgo files, asked with cgo on so they are listed.
fn cgo_packages(build_dir: &Path, package: &str) -> Vec<String> {
    let out = run(go(build_dir)
        .env("CGO_ENABLED", "1")
        .env("GOFLAGS", "-mod=vendor")
        .args([
            "list",
            "-deps",
            "-f",
            "{{if .CgoFiles}}{{if not .Standard}}{{.ImportPath}}{{end}}{{end}}",
            "--",
            package,
        ]));
    out.map(|s| {
        s.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BuildInfoJson {
    go_version: String,
    path: String,
    #[serde(default)]
    deps: Vec<DepJson>,
    #[serde(default)]
    settings: Vec<SettingJson>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DepJson {
    path: String,
    version: String,
    sum: Option<String>,
    replace: Option<Box<DepJson>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SettingJson {
    key: String,
    value: String,
}

/// What the binary itself records about its build.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub go_version: String,
    pub module: String,
    pub modules: Vec<Module>,
    pub settings: Vec<(String, String)>,
}

/// Reads the binary's build info (`go version -m -json`). Vendored builds carry no module
/// hashes, so each module's `h1:` hash comes from go.sum, matched by path and version.
pub fn build_info(binary: &Path, go_sum: &Path) -> Result<BuildInfo> {
    let json = run(Command::new("go")
        .env("GOTOOLCHAIN", "local")
        .args(["version", "-m", "-json"])
        .arg(binary))?;
    let info: BuildInfoJson =
        serde_json::from_str(&json).context("parsing `go version -m -json`")?;
    let sums = read_go_sum(go_sum)?;
    let mut modules = Vec::new();
    for d in info.deps {
        let (path, version) = match &d.replace {
            Some(r) => (r.path.clone(), r.version.clone()),
            None => (d.path.clone(), d.version.clone()),
        };
        let sum = d
            .sum
            .clone()
            .or_else(|| sums.get(&(path.clone(), version.clone())).cloned());
        if sum.is_none() && !version.is_empty() {
            return Err(anyhow!(
                "module {path}@{version} is in the binary but has no hash in {}",
                go_sum.display()
            ));
        }
        modules.push(Module {
            path: d.path,
            version: d.version,
            sum,
        });
    }
    modules.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(BuildInfo {
        go_version: info.go_version,
        module: info.path,
        modules,
        settings: info
            .settings
            .into_iter()
            .map(|s| (s.key, s.value))
            .collect(),
    })
}

fn read_go_sum(path: &Path) -> Result<BTreeMap<(String, String), String>> {
    let mut map = BTreeMap::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(map),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if let (Some(p), Some(v), Some(h)) = (parts.next(), parts.next(), parts.next()) {
            if !v.ends_with("/go.mod") {
                map.insert((p.to_owned(), v.to_owned()), h.to_owned());
            }
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(symbol: &str, value: &str) -> Stamp {
        Stamp {
            key: format!("build.ldflags_x.{symbol:?}"),
            symbol: GoSymbol::new(symbol).unwrap(),
            value: LdflagsValue::new(value).unwrap(),
            need: Need::Required,
        }
    }

    /// A Go program with the kinds of variable `-X` meets, linked as ferry links it (the
    /// real linker's `-dumpdep`): which assignments took.
    #[test]
    fn every_x_variable_must_be_one_the_linker_kept() {
        let dir = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("go.mod", "module example.com/m\n\ngo 1.22\n");
        w(
            "ver.sion/v.go",
            "package version\n\nvar V = \"x\"\n\nvar Unset string\n",
        );
        w(
            "main.go",
            r#"package main

import (
	"os"

	version "example.com/m/ver.sion"
)

var version2 = "dev"
var unread = "never read"
const konst = "k"
var blank string

func main() { os.Stdout.WriteString(version.V + version.Unset + version2 + konst + blank) }
"#,
        );
        let stamps = [
            stamp("main.version2", "1.2.3"),
            stamp("example.com/m/ver.sion.V", "v"),
            stamp("example.com/m/ver.sion.Unset", "set"),
            stamp("main.blank", "b"),
            // Misspelt, never read (dead code), a constant: go's linker ignores each.
            stamp("main.verison", "1.2.3"),
            stamp("main.unread", "u"),
            stamp("main.konst", "c"),
        ];
        let mut cmd = go(dir.path());
        cmd.env("CGO_ENABLED", "0")
            .args(["build", "-trimpath", "-o", "prog"])
            .arg(format!("-ldflags={}", ldflags(&stamps)));
        let wanted: Vec<String> = stamps.iter().map(|s| s.symbol.link_name()).collect();
        let reached = run_linking(&mut cmd, &wanted).expect("go is required by this test");
        let out = std::process::Command::new(dir.path().join("prog"))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "vset1.2.3kb");
        for (i, st) in stamps.iter().enumerate() {
            let ok = check_stamps(std::slice::from_ref(st), &reached);
            if i < 4 {
                assert!(ok.unwrap().is_empty());
            } else {
                let e = ok.unwrap_err().to_string();
                assert!(
                    e.starts_with(&format!(
                        "build.ldflags_x.{:?} = {:?} is not in the built program",
                        st.symbol.as_str(),
                        st.symbol.as_str()
                    )) && !e.contains('\n'),
                    "{e}"
                );
            }
        }
        // ferry's own default, absent: not an error, handed back to be reported.
        let mut default = stamp("main.verison", "1.2.3");
        default.need = Need::IfPresent;
        let absent = check_stamps(&[stamps[0].clone(), default], &reached).unwrap();
        assert_eq!(
            absent.iter().map(|s| s.symbol.as_str()).collect::<Vec<_>>(),
            ["main.verison"]
        );
        // All at once: each missing one is named, in one line.
        let e = check_stamps(&stamps, &reached).unwrap_err().to_string();
        assert!(
            e.contains("\"main.verison\"")
                && e.contains("\"main.unread\"")
                && e.contains("\"main.konst\"")
                && !e.contains("\"main.version2\""),
            "{e}"
        );
        // A failing link carries go's own error, not the dependency lines.
        w(
            "main.go",
            "package main\n\nvar n int\n\nfunc main() { println(n) }\n",
        );
        let mut cmd = go(dir.path());
        cmd.env("CGO_ENABLED", "0")
            .args(["build", "-trimpath", "-o", "prog"])
            .arg(format!("-ldflags={}", ldflags(&[stamp("main.n", "3")])));
        let e = run_linking(&mut cmd, &[]).unwrap_err().to_string();
        assert!(
            e.contains("cannot set with -X: not a var of type string"),
            "{e}"
        );
        assert!(!e.contains(" -> "), "{e}");
    }

    #[test]
    fn go_sum_skips_go_mod_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("go.sum");
        std::fs::write(
            &p,
            "github.com/a/b v1.0.0 h1:AAA=\ngithub.com/a/b v1.0.0/go.mod h1:BBB=\n",
        )
        .unwrap();
        let m = read_go_sum(&p).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[&("github.com/a/b".into(), "v1.0.0".into())], "h1:AAA=");
    }
}
