//! Release source trees, end to end through the real `ferry` binary: `-X` values rendered
//! from `{{ version }}`, `{{ revision }}` and `{{ date }}` (the revision from
//! `--revision`, git or the Go module cache), `-X` variables the program lacks, and
//! `[build] before` steps that generate what the program embeds (only with
//! `--run-before`).
//!
//! Builds `bundler/tests/fixtures/webui` (no dependencies) or a copy of `examples/hello`
//! for linux/amd64 and runs the bundled binary. Needs `go`, `git`, `sh`, `systemd-analyze`
//! and `logrotate` on PATH.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use common::{assert_failed_and_out_untouched, error_text, need, text, Built, Project};
use object::Object as _;

/// The date `{{ date }}` renders for the tests' `SOURCE_DATE_EPOCH` (1700000000).
const DATE: &str = "2023-11-14T22:13:20Z";

/// Runs the bundle's binary (built for linux/amd64, like this machine) with `args`.
fn run_binary(b: &Built, name: &str, args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join(name);
    std::fs::write(&bin, &b.files[&format!("bin/{name}")]).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(&bin).args(args).output().unwrap();
    assert!(out.status.success(), "{name} {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Makes `dir` a git repository with one commit; returns its revision.
fn git_commit(dir: &Path) -> String {
    let git = |args: &[&str]| {
        let out = Command::new(need("git", "git"))
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "ferry tests")
            .env("GIT_AUTHOR_EMAIL", "tests@ferry.invalid")
            .env("GIT_COMMITTER_NAME", "ferry tests")
            .env("GIT_COMMITTER_EMAIL", "tests@ferry.invalid")
            .env("GIT_AUTHOR_DATE", "1600000000 +0000")
            .env("GIT_COMMITTER_DATE", "1600000000 +0000")
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "fixture"]);
    git(&["rev-parse", "HEAD"])
}

fn json_exit_code(o: &Output) -> i64 {
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a JSON document");
    doc["error"]["exit_code"].as_i64().expect("an exit code")
}

#[test]
fn revision_and_date_come_from_the_flag_and_git() {
    let p = Project::fixture("webui");
    // --revision: recorded in the manifest and rendered into the binary.
    let b = p.build_ok("flag", &["--run-before", "--revision", "v1.0.0-rc.1"]);
    assert_eq!(
        run_binary(&b, "webui", &["-version"]),
        format!("1.0.0 v1.0.0-rc.1 {DATE}\n")
    );
    assert_eq!(
        b.manifest.build.source_revision.as_deref(),
        Some("v1.0.0-rc.1")
    );
    assert_eq!(b.report["result"]["source_revision"], "v1.0.0-rc.1");

    // A revision that is not a hash or tag is a usage error, before any work.
    for bad in ["a b", "-x", "release/1", &"f".repeat(65)] {
        let o = p.build("bad", &["--run-before", "--revision", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", text(&o));
        assert!(!p.out("bad").exists());
    }

    // A git checkout: HEAD, unless --revision says otherwise.
    let head = git_commit(&p.dir());
    let b = p.build_ok("git", &["--run-before"]);
    assert_eq!(
        run_binary(&b, "webui", &["-version"]),
        format!("1.0.0 {head} {DATE}\n")
    );
    assert_eq!(b.manifest.build.source_revision.as_deref(), Some(&*head));
    assert!(!b.manifest.build.source_dirty);
    let b = p.build_ok("git-flag", &["--run-before", "--revision", "0123abc"]);
    assert_eq!(
        run_binary(&b, "webui", &["-version"]),
        format!("1.0.0 0123abc {DATE}\n")
    );
    // Without SOURCE_DATE_EPOCH the date is the commit's.
    let o = p
        .build_cmd("git-date", &["--run-before"])
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    let b = p.opened(&o);
    assert_eq!(b.manifest.build.source_date_epoch, 1_600_000_000);
    assert_eq!(
        run_binary(&b, "webui", &["-version"]),
        format!("1.0.0 {head} 2020-09-13T12:26:40Z\n")
    );
}

/// The project directory is a module in the module cache, as `go mod download -json
/// M@V` leaves it (`$GOMODCACHE/<escaped path>@<version>` and its `.info`): no git, no
/// flag, no `SOURCE_DATE_EPOCH`.
#[test]
fn revision_and_date_come_from_the_module_cache() {
    let mut p = Project::fixture("webui");
    p.write("go.mod", "module example.com/Org/webui\n\ngo 1.22\n");
    p.move_to("modcache/example.com/!org/webui@v1.2.3");
    let cache = p.tmp.path().join("modcache");
    let info_dir = cache.join("cache/download/example.com/!org/webui/@v");
    std::fs::create_dir_all(&info_dir).unwrap();
    let hash = "4a5b6c7d8e9f00112233445566778899aabbccdd";
    let info = format!(
        r#"{{"Version":"v1.2.3","Time":"2024-01-02T03:04:05Z","Origin":{{"VCS":"git","URL":"https://example.com/Org/webui","Hash":"{hash}","Ref":"refs/tags/v1.2.3"}}}}"#
    );
    std::fs::write(info_dir.join("v1.2.3.info"), info).unwrap();
    let build = |out: &str| {
        p.build_cmd(out, &["--run-before"])
            .env("GOMODCACHE", &cache)
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .unwrap()
    };
    let b = p.opened(&build("module"));
    assert_eq!(
        run_binary(&b, "webui", &["-version"]),
        format!("1.0.0 {hash} 2024-01-02T03:04:05Z\n")
    );
    assert_eq!(b.manifest.build.source_revision.as_deref(), Some(hash));
    assert_eq!(b.manifest.build.source_date_epoch, 1_704_164_645);
    // What the before step saw as SOURCE_DATE_EPOCH is the module's time too.
    assert_eq!(
        run_binary(&b, "webui", &["-index"]),
        "<h1>webui built at 1704164645</h1>\n"
    );

    // The proxy records no Origin for most tagged versions: then no revision is known.
    std::fs::write(
        info_dir.join("v1.2.3.info"),
        r#"{"Version":"v1.2.3","Time":"2024-01-02T03:04:05Z"}"#,
    )
    .unwrap();
    let o = build("no-origin");
    assert_failed_and_out_untouched(&o, &p.out("no-origin"));
    assert!(
        error_text(&o).contains("build.ldflags_x.\"main.revision\" uses {{ revision }}"),
        "{}",
        error_text(&o)
    );
}

#[test]
fn a_revision_nobody_supplied_fails_naming_the_key_and_the_three_ways() {
    let p = Project::fixture("webui");
    let o = p.build("out", &["--run-before"]);
    assert_failed_and_out_untouched(&o, &p.out("out"));
    let e = error_text(&o);
    for needle in [
        "build.ldflags_x.\"main.revision\" uses {{ revision }}, but no revision is known",
        "ferry build --revision REV",
        "git checkout",
        "go mod download -json MODULE@VERSION",
    ] {
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }
    // A name other than version, revision and date is refused where ferry.toml is read.
    p.edit(
        "\"main.revision\" = \"{{ revision }}\"",
        "\"main.revision\" = \"{{ commit }}\"",
    );
    let o = p.build("out", &["--run-before"]);
    assert_failed_and_out_untouched(&o, &p.out("out"));
    assert!(
        error_text(&o)
            .contains("build.ldflags_x.main.revision: \"{{ commit }}\": unknown name \"commit\""),
        "{}",
        error_text(&o)
    );
}

/// go's linker ignores `-X` for a variable the program does not have: the build must not.
/// The shipped binary keeps no symbol table; the check reads the linker's `-dumpdep` graph.
#[test]
fn x_variables_the_program_lacks_fail_the_build() {
    let p = Project::example();
    let b = p.build_ok("ok", &[]);
    let bin = &b.files["bin/hello"];
    let elf = object::File::parse(&bin[..]).unwrap();
    assert!(
        elf.symbol_table().is_none(),
        "the shipped binary must stay linked with -s"
    );

    p.edit(
        "version_variable = \"main.version\"",
        "version_variable = \"main.verison\"",
    );
    p.edit(
        "# ldflags_x = { \"main.crashAtStart\" = \"1\" }",
        "ldflags_x = { \"main.crashAtStart\" = \"\", \"main.nothere\" = \"{{ version }}\" }",
    );
    let o = p.build("out", &[]);
    assert_failed_and_out_untouched(&o, &p.out("out"));
    let e = error_text(&o);
    for needle in [
        "app.version_variable = \"main.verison\" is not in the built program: it does not exist, \
         is not a package-level string variable, or the program never reads it",
        "build.ldflags_x.\"main.nothere\" = \"main.nothere\" is not in the built program",
    ] {
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }
    assert!(!e.contains("main.crashAtStart\" ="), "{e}");
}

#[test]
fn before_steps_generate_what_the_program_embeds_only_with_run_before() {
    let p = Project::fixture("webui");
    let rev = ["--revision", "v1.0.0"];

    // Without --run-before: exit 4, one line naming the steps and the flag, nothing run.
    let mut cmd = p.build_cmd("refused", &rev);
    // The same command line without --json, for the human error line.
    let args: Vec<_> = cmd.get_args().skip(1).map(ToOwned::to_owned).collect();
    assert_eq!(cmd.get_args().next().unwrap(), "--json");
    let o = Command::new(cmd.get_program())
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error: ") && err.lines().count() == 1,
        "not one error line: {err:?}"
    );
    for needle in ["[build] before", "sh -c \"mkdir -p dist", "--run-before"] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert!(!p.out("refused").exists());
    assert!(!p.dir().join("dist").exists(), "a step ran in the project");
    let o = cmd.output().unwrap();
    assert_eq!(json_exit_code(&o), 4);

    // With it: the step runs in the build copy and the program embeds what it made.
    let b = p.build_ok("out", &["--run-before", rev[0], rev[1]]);
    assert_eq!(
        run_binary(&b, "webui", &["-index"]),
        "<h1>webui built at 1700000000</h1>\n"
    );
    assert!(
        !p.dir().join("dist").exists(),
        "the step ran in the project, not the build copy"
    );
    let steps: Vec<&[String]> = b
        .manifest
        .build
        .before
        .iter()
        .map(ferry_format::manifest::BeforeStep::argv)
        .collect();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0][..2], ["sh", "-c"]);
    assert!(steps[0][2].starts_with("mkdir -p dist && printf"));

    // Same inputs and SOURCE_DATE_EPOCH: the same bytes.
    let again = p.build_ok("again", &["--run-before", rev[0], rev[1]]);
    assert_eq!(
        b.report["result"]["bundles"][0]["sha256"],
        again.report["result"]["bundles"][0]["sha256"]
    );
    assert_eq!(
        std::fs::read(p.out("out").join("SHA256SUMS")).unwrap(),
        std::fs::read(p.out("again").join("SHA256SUMS")).unwrap()
    );

    // ferry inspect shows the steps.
    let bundle = p.out("out").join("webui-1.0.0-linux-amd64.tar.zst");
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("inspect")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("before:     sh -c \"mkdir -p dist")),
        "{shown}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["--json", "inspect"])
        .arg(&bundle)
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["result"]["manifest"]["build"]["before"][0][0], "sh");

    // A failing step fails the build, showing its output; OUT stays untouched.
    p.edit(
        "[\"sh\", \"-c\", \"mkdir",
        "[\"sh\", \"-c\", \"echo npm ERR! missing script: build >&2; exit 1\"],\n  [\"sh\", \"-c\", \"mkdir",
    );
    let o = p.build("failed", &["--run-before", rev[0], rev[1]]);
    assert_failed_and_out_untouched(&o, &p.out("failed"));
    let e = error_text(&o);
    assert!(
        e.contains("build.before[0]")
            && e.contains("exit status: 1")
            && e.contains("npm ERR! missing script: build"),
        "{e}"
    );

    // Without the step the program cannot be built at all: that is what steps are for.
    let toml = std::fs::read_to_string(p.dir().join("ferry.toml")).unwrap();
    let start = toml.find("before = [").unwrap();
    let end = start + toml[start..].find("\n]\n").unwrap() + 3;
    std::fs::write(
        p.dir().join("ferry.toml"),
        format!("{}{}", &toml[..start], &toml[end..]),
    )
    .unwrap();
    let o = p.build("no-step", rev.as_slice());
    assert_failed_and_out_untouched(&o, &p.out("no-step"));
    assert!(
        error_text(&o).contains("pattern dist/index.html: no matching files found"),
        "{}",
        error_text(&o)
    );
}
