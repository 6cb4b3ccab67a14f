//! Hostile bundles: every case of the generated corpus (`hostile/corpus.rs`) must make
//! `ferry-install` exit with its code, print one clear `error:` line naming the problem,
//! and leave the host exactly as it was (paths, types, modes, owners, xattrs, contents).
//!
//! The corpus runs against an offline root (`--root`, a copy of a minimal fake root per
//! case: milliseconds each); a few cases run again on a real systemd host (`ferry_tests::Host`)
//! with the static installer. The limit flags are checked both ways: each limit refuses the
//! valid bundle one unit below what it needs and lets it through at exactly that, and
//! raising a limit lets a bundle over the default through.
//!
//! `FERRY_HOSTILE_ONLY=TEXT` runs only the corpus cases whose name contains TEXT; run with
//! `--nocapture` to see every case's exit code and error line.

#[path = "hostile/corpus.rs"]
mod corpus;
#[path = "hostile/escalation.rs"]
mod escalation;
#[path = "hostile/snapshot.rs"]
mod snapshot;

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use corpus::{base, cases, write_case, Base, Case};
use snapshot::Snapshot;

// ---------------------------------------------------------------------------------------------
// The fake root and the installer runs.

/// A minimal root that passes the offline preflight and lets the real bundle install:
/// accounts (root, and adm for the log directory's ACL), systemd's unit directory, /opt,
/// /var/lib and /var/log. A few extra paths (an xattr, a symlink, odd modes) give the
/// snapshot something to notice.
fn template_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = base().dir.join("template-root");
        for d in [
            "etc/systemd/system",
            "opt",
            "var/lib",
            "var/log",
            "usr/local/bin",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n",
        )
        .unwrap();
        // Privileged and ordinary groups a stock Debian host has, for the escalation cases.
        fs::write(
            root.join("etc/group"),
            "root:x:0:\nadm:x:4:\ndisk:x:6:\nsudo:x:27:\nwww-data:x:33:\nshadow:x:42:\nusers:x:100:\nssl-cert:x:109:\n",
        )
        .unwrap();
        fs::write(root.join("etc/hostname"), "ferry-fake-root\n").unwrap();
        std::os::unix::fs::symlink("/usr/share/zoneinfo/UTC", root.join("etc/localtime")).unwrap();
        xattr::set(root.join("etc/hostname"), "user.ferry-test", b"marker")
            .expect("setting a user xattr (does the filesystem support them?)");
        fs::write(root.join("usr/local/bin/tool"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(
            root.join("usr/local/bin/tool"),
            fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        fs::set_permissions(root.join("opt"), fs::Permissions::from_mode(0o755)).unwrap();
        root
    })
}

/// A private copy of the fake root (`cp -a`: modes, owners and xattrs kept).
fn fresh_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let out = Command::new("cp")
        .arg("-a")
        .arg(template_root())
        .arg(&root)
        .output()
        .expect("running cp");
    assert!(
        out.status.success(),
        "cp -a: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    root
}

fn installer(memory_limit: Option<u64>) -> Command {
    let bin = ferry_tests::ferry_install_bin();
    let mut cmd = if let Some(bytes) = memory_limit {
        let mut c = Command::new("prlimit");
        c.arg(format!("--as={bytes}")).arg("--").arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.env("LC_ALL", "C").stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "{cmd:?}\n  -> {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn install_cmd(bundle: &Path, root: &Path, pubkey: &Path, memory_limit: Option<u64>) -> Command {
    let mut cmd = installer(memory_limit);
    cmd.arg("install")
        .arg(bundle)
        .arg("--pubkey")
        .arg(pubkey)
        .arg("--root")
        .arg(root);
    cmd
}

/// `install` trusting only the root's own `/etc/ferry/keys`.
fn install_with_host_keys(bundle: &Path, root: &Path) -> Command {
    let mut cmd = installer(None);
    cmd.arg("install")
        .arg(bundle)
        .arg("--keyring")
        .arg("/etc/ferry/keys")
        .arg("--root")
        .arg(root);
    cmd
}

/// Checks the exit code and the error report: exactly one `error:` line, containing one of
/// the `|`-separated alternatives of `message`, at most a few `caused by:` lines, progress
/// lines otherwise, and no control characters (a hostile name must not reach a terminal
/// raw). Returns a description of what is wrong, if anything.
fn check_refusal(code: i32, message: &str, out: &Output) -> Option<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut problems = Vec::new();
    if out.status.code() != Some(code) {
        problems.push(format!("exit {:?}, expected {code}", out.status.code()));
    }
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    let causes = stderr
        .lines()
        .filter(|l| l.starts_with("caused by: "))
        .count();
    let other: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            !l.starts_with("error: ")
                && !l.starts_with("caused by: ")
                && !l.starts_with("ferry-install: ")
        })
        .collect();
    match errors.as_slice() {
        [line] => {
            if !message.split('|').any(|m| line.contains(m)) {
                problems.push(format!("the error line does not name {message:?}"));
            }
            if line.len() > 600 {
                problems.push(format!("the error line is {} bytes long", line.len()));
            }
        }
        _ => problems.push(format!("{} error: lines, expected 1", errors.len())),
    }
    if causes > 3 {
        problems.push(format!("{causes} caused by: lines"));
    }
    if !other.is_empty() {
        problems.push(format!("unexpected stderr lines {other:?}"));
    }
    if stderr.chars().any(|c| c.is_control() && c != '\n') {
        problems.push("control characters on stderr".into());
    }
    if !out.stdout.is_empty() {
        problems.push("output on stdout".into());
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

// ---------------------------------------------------------------------------------------------
// One case.

struct Outcome {
    name: String,
    code: i32,
    millis: u128,
    make_millis: u128,
    failure: Option<String>,
    error_line: String,
}

fn run_case(base: &Base, case: &Case, work: &Path) -> Outcome {
    let started = Instant::now();
    let dir = work.join(case.name.replace('/', "--"));
    fs::create_dir_all(&dir).unwrap();
    let root = fresh_root(&dir);
    let mut failure = Vec::new();
    if let Some(setup) = &case.setup {
        setup(base, &root);
    }
    if let Some(first) = &case.first {
        let file = dir.join("first.tar.zst");
        fs::write(&file, first(base)).unwrap();
        let mut cmd = install_cmd(&file, &root, &base.pubkey, None);
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "{}: installing the first release: {}",
            case.name,
            describe(&cmd, &out)
        );
    }
    let made = Instant::now();
    let bundle = write_case(base, case, &dir);
    let make_millis = made.elapsed().as_millis();
    let before = Snapshot::take(&root);
    let mut cmd = if case.host_keys {
        install_with_host_keys(&bundle, &root)
    } else {
        install_cmd(&bundle, &root, &base.pubkey, case.memory_limit)
    };
    cmd.args(&case.args);
    let out = run(&mut cmd);
    let error_line = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.starts_with("error: "))
        .map_or("", |l| {
            l.split_once(".tar.zst: ").map_or(l, |(_, rest)| rest)
        })
        .to_owned();
    if let Some(p) = check_refusal(case.code, case.message, &out) {
        failure.push(format!("install: {p}\n{}", describe(&cmd, &out)));
    }
    let d = before.diff(&Snapshot::take(&root), 10);
    if !d.is_empty() {
        failure.push(format!("install changed the root:\n  {}", d.join("\n  ")));
    }
    if case.is_verification() && !case.host_keys {
        let mut cmd = installer(case.memory_limit);
        cmd.arg("verify")
            .arg(&bundle)
            .arg("--pubkey")
            .arg(&base.pubkey);
        let out = run(&mut cmd);
        if let Some(p) = check_refusal(3, case.message, &out) {
            failure.push(format!("verify: {p}\n{}", describe(&cmd, &out)));
        }
    }
    let _ = fs::remove_dir_all(&dir);
    Outcome {
        name: case.name.clone(),
        code: case.code,
        millis: started.elapsed().as_millis(),
        make_millis,
        failure: (!failure.is_empty()).then(|| failure.join("\n")),
        error_line,
    }
}

fn work_dir(name: &str) -> PathBuf {
    let d = base().dir.join(name);
    if d.exists() {
        fs::remove_dir_all(&d).unwrap();
    }
    fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// The control: the unmodified bundle installs into the fake root (so every refusal below
/// is the bundle's doing, not a broken root), and `verify` accepts it.
#[test]
fn the_valid_bundle_installs_into_the_fake_root() {
    let base = base();
    let dir = work_dir("control");
    let root = fresh_root(&dir);
    let bundle = dir.join("hello-1.0.0-linux-amd64.tar.zst");
    fs::write(&bundle, &base.amd64).unwrap();
    let mut cmd = install_cmd(&bundle, &root, &base.pubkey, Some(256 << 20));
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    assert!(root.join("opt/hello/releases/1.0.0/bin/hello").is_file());
    assert_eq!(
        fs::read_link(root.join("opt/hello/current")).unwrap(),
        Path::new("releases/1.0.0")
    );
    let mut cmd = installer(None);
    cmd.arg("verify")
        .arg(&bundle)
        .arg("--pubkey")
        .arg(&base.pubkey);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    // The newer release of the downgrade case is valid too.
    let root2 = dir.join("root2");
    fs::rename(&root, &root2).unwrap();
    let v2 = dir.join("hello-2.0.0-linux-amd64.tar.zst");
    fs::write(&v2, corpus::version_2(base)).unwrap();
    let root = fresh_root(&dir);
    let mut cmd = install_cmd(&v2, &root, &base.pubkey, None);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    let _ = fs::remove_dir_all(&dir);
}

/// A child process killed when the test ends, however it ends.
struct Holder(std::process::Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One changing run per root: while another process holds the root's lock, `install`,
/// `rollback` and `uninstall` exit 4 at once with one error line and change nothing; once
/// it is gone (even killed) the same install goes through.
#[test]
fn a_second_run_on_a_locked_root_is_refused_and_changes_nothing() {
    let base = base();
    let dir = work_dir("locked");
    let root = fresh_root(&dir);
    let bundle = dir.join("hello-1.0.0-linux-amd64.tar.zst");
    fs::write(&bundle, &base.amd64).unwrap();
    // util-linux flock(1) on the directory: the same lock ferry-install takes.
    let holder = Holder(
        // --no-fork: flock(1) becomes `sleep`, so killing it releases the lock.
        Command::new("flock")
            .args(["--exclusive", "--no-fork"])
            .arg(&root)
            .args(["sleep", "600"])
            .spawn()
            .expect("flock(1) from util-linux"),
    );
    let started = Instant::now();
    while Command::new("flock")
        .args(["--exclusive", "--nonblock"])
        .arg(&root)
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(
            started.elapsed().as_secs() < 30,
            "flock(1) never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let before = Snapshot::take(&root);
    let mut refused = vec![install_cmd(&bundle, &root, &base.pubkey, None)];
    for args in [
        &["rollback", "hello"][..],
        &["uninstall", "hello", "--purge"],
    ] {
        let mut cmd = installer(None);
        cmd.args(args).arg("--root").arg(&root);
        refused.push(cmd);
    }
    for cmd in &mut refused {
        let out = run(cmd);
        if let Some(problem) = check_refusal(4, "another ferry-install is changing", &out) {
            panic!("{problem}\n{}", describe(cmd, &out));
        }
    }
    before.assert_unchanged(&Snapshot::take(&root), "runs refused by the lock");
    drop(holder);
    let mut cmd = install_cmd(&bundle, &root, &base.pubkey, None);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    assert!(root.join("opt/hello/releases/1.0.0/bin/hello").is_file());
    let _ = fs::remove_dir_all(&dir);
}

/// Runs `cases` in parallel workers and checks each: exit code, one error line, nothing
/// changed. `min` is the corpus size README claims.
fn run_corpus(label: &str, cases: &[Case], min: usize) {
    let base = base();
    let work = work_dir(label);
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    let only = std::env::var("FERRY_HOSTILE_ONLY").ok();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                if only.as_deref().is_some_and(|o| !case.name.contains(o)) {
                    continue;
                }
                let outcome = run_case(base, case, &work);
                results.lock().unwrap().push(outcome);
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.name.cmp(&b.name));
    let mut report = String::new();
    let mut failures = Vec::new();
    for r in &results {
        let _ = writeln!(
            report,
            "{:<8} exit {} {:>6} ms (made in {:>5} ms)  {:<52} {}",
            if r.failure.is_some() { "FAIL" } else { "ok" },
            r.code,
            r.millis,
            r.make_millis,
            r.name,
            r.error_line.chars().take(160).collect::<String>()
        );
        if let Some(f) = &r.failure {
            failures.push(format!("=== {} ===\n{f}", r.name));
        }
    }
    eprintln!("{report}");
    // Every case ran (a filter must match at least one), and the corpus is as large as the
    // README says.
    match only.as_deref() {
        None => {
            assert_eq!(results.len(), cases.len(), "cases that did not run");
            assert!(cases.len() >= min, "only {} {label} cases", cases.len());
        }
        Some(o) => assert!(
            !results.is_empty() || !cases.iter().any(|c| c.name.contains(o)),
            "FERRY_HOSTILE_ONLY={o} matches no case"
        ),
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
    let _ = fs::remove_dir_all(&work);
}

/// Every corpus case, in parallel workers: exit code, one error line, nothing changed.
#[test]
fn every_hostile_bundle_is_refused_and_changes_nothing() {
    run_corpus("corpus", &cases(), 172);
}

/// Every privilege-escalation case (issue 11), mostly validly signed by the trusted key:
/// exit code, one error line naming the rule, nothing changed.
#[test]
fn every_escalation_is_refused_and_changes_nothing() {
    run_corpus("escalation", &escalation::cases(), 76);
}

/// The controls of the escalation corpus: the same bundle under a sound host trust store,
/// and a capability the host's policy allows, installs; so the refusals are the rules'.
#[test]
fn escalation_controls_install() {
    let base = base();
    for (what, case) in escalation::controls() {
        let dir = work_dir(&format!("control-{}", case.name.replace('/', "-")));
        let root = fresh_root(&dir);
        if let Some(setup) = &case.setup {
            setup(base, &root);
        }
        let bundle = write_case(base, &case, &dir);
        let mut cmd = if case.host_keys {
            install_with_host_keys(&bundle, &root)
        } else {
            install_cmd(&bundle, &root, &base.pubkey, None)
        };
        let out = run(&mut cmd);
        assert!(out.status.success(), "{what}: {}", describe(&cmd, &out));
        let _ = fs::remove_dir_all(&dir);
    }
    // An upgrade that widens the footprint installs with the operator's consent.
    let dir = work_dir("control-escalation-consent");
    let root = fresh_root(&dir);
    let first = dir.join("first.tar.zst");
    fs::write(&first, &base.amd64).unwrap();
    let out = run(&mut install_cmd(&first, &root, &base.pubkey, None));
    assert!(out.status.success());
    let widened = escalation::widened_upgrade(base);
    let file = dir.join("hello-2.0.0-linux-amd64.tar.zst");
    fs::write(&file, widened).unwrap();
    let mut dry = install_cmd(&file, &root, &base.pubkey, None);
    dry.args(["--dry-run", "--json"]);
    let out = run(&mut dry);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&dry, &out));
    let mut cmd = install_cmd(&file, &root, &base.pubkey, None);
    cmd.args(["--allow-escalation", "--json"]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let added = &doc["result"]["plan"]["footprint_changes"]["added"];
    assert!(
        added.as_array().is_some_and(|a| a
            .iter()
            .any(|i| i["kind"] == "supplementary_group" && i["group"] == "ssl-cert")),
        "the report names what the upgrade added: {doc}"
    );
    let _ = fs::remove_dir_all(&dir);
}

/// Each limit flag, one unit below what the valid bundle needs, refuses it naming the flag;
/// at exactly what it needs, lets it through.
#[test]
fn each_limit_flag_refuses_just_below_and_passes_at_the_limit() {
    let base = base();
    let dir = work_dir("limits");
    let bundle = dir.join("hello-1.0.0-linux-amd64.tar.zst");
    fs::write(&bundle, &base.amd64).unwrap();
    let manifest: serde_json::Value = base.manifest_json.clone();
    let files = manifest["files"].as_array().unwrap();
    let sizes: Vec<u64> = files.iter().map(|f| f["size"].as_u64().unwrap()).collect();
    let longest_path = files
        .iter()
        .map(|f| f["path"].as_str().unwrap().len())
        .max()
        .unwrap();
    let table: [(&str, u64, &str); 6] = [
        (
            "--max-manifest-bytes",
            base.manifest.len() as u64,
            "manifest size",
        ),
        (
            "--max-signature-bytes",
            base.tar.members[1].data.len() as u64,
            "signature size",
        ),
        ("--max-files", files.len() as u64, "file count"),
        (
            "--max-file-bytes",
            *sizes.iter().max().unwrap(),
            "file size",
        ),
        ("--max-total-bytes", sizes.iter().sum(), "total size"),
        ("--max-path-bytes", longest_path as u64, "path length"),
    ];
    for (flag, needed, what) in table {
        let mut cmd = installer(None);
        cmd.arg("verify")
            .arg(&bundle)
            .arg("--pubkey")
            .arg(&base.pubkey)
            .arg(flag)
            .arg(needed.to_string());
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "{flag} {needed} must pass: {}",
            describe(&cmd, &out)
        );

        let root = fresh_root(&dir);
        let before = Snapshot::take(&root);
        let mut cmd = install_cmd(&bundle, &root, &base.pubkey, None);
        cmd.arg(flag).arg((needed - 1).to_string());
        let out = run(&mut cmd);
        let expected = format!(
            "{what} {needed} exceeds the limit of {} (raise it with {flag})",
            needed - 1
        );
        if let Some(p) = check_refusal(3, &expected, &out) {
            panic!("{flag} {}: {p}\n{}", needed - 1, describe(&cmd, &out));
        }
        before.assert_unchanged(&Snapshot::take(&root), flag);
        fs::remove_dir_all(&root).unwrap();
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Bundles over a default limit install once the limit is raised with its flag.
#[test]
fn raising_a_limit_with_its_flag_lets_the_bundle_through() {
    let base = base();
    let dir = work_dir("raise");
    let cases: [(&str, Vec<u8>, &str, &str); 2] = [
        (
            "big-manifest",
            corpus::padded_manifest_bundle(base, (1 << 20) + 1),
            "--max-manifest-bytes",
            "manifest size 1048577 exceeds the limit of 1048576 (raise it with --max-manifest-bytes)",
        ),
        (
            "compressible",
            corpus::compressible_bundle(base, 64 << 20),
            "--max-ratio",
            "decompression ratio",
        ),
    ];
    for (name, data, flag, message) in cases {
        let bundle = dir.join(format!("{name}.tar.zst"));
        fs::write(&bundle, data).unwrap();
        let root = fresh_root(&dir);
        let before = Snapshot::take(&root);
        let mut cmd = install_cmd(&bundle, &root, &base.pubkey, None);
        let out = run(&mut cmd);
        if let Some(p) = check_refusal(3, message, &out) {
            panic!("{name} with default limits: {p}\n{}", describe(&cmd, &out));
        }
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(flag),
            "the error names {flag}"
        );
        before.assert_unchanged(&Snapshot::take(&root), name);

        let raised = if flag == "--max-ratio" {
            "1000000"
        } else {
            "2097152"
        };
        let mut cmd = install_cmd(&bundle, &root, &base.pubkey, None);
        cmd.arg(flag).arg(raised);
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "{name} with {flag} {raised}: {}",
            describe(&cmd, &out)
        );
        assert!(root.join("opt/hello/releases/1.0.0/bin/hello").is_file());
        fs::remove_dir_all(&root).unwrap();
    }
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// On a real systemd host.

/// Builds the static installer with `scripts/build-installer` (once per process). Like
/// `install.rs`, a binary refused only for its size budget is still used.
fn static_installer() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = ferry_tests::workspace_root().join("scripts/build-installer");
        let mut cmd = Command::new(&script);
        cmd.current_dir(ferry_tests::workspace_root())
            .stdin(Stdio::null());
        let out = run(&mut cmd);
        let bin = ferry_tests::static_installer();
        assert!(
            out.status.success()
                || (String::from_utf8_lossy(&out.stderr).contains("over the 2 MiB budget")
                    && bin.is_file()),
            "building the static installer: {}",
            describe(&cmd, &out)
        );
        bin
    })
}

/// What a running Debian host keeps changing by itself under the snapshotted trees.
fn volatile(p: &Path) -> bool {
    let s = p.to_string_lossy();
    s.starts_with("var/lib/systemd")
        || s.starts_with("var/lib/dbus")
        || s.starts_with("var/lib/private")
        || s == "etc/machine-id"
        || s.starts_with("etc/.")
}

const HOST_TREES: [&str; 3] = ["/opt", "/etc", "/var/lib"];

#[test]
fn hostile_bundles_are_refused_on_a_real_host() {
    let base = base();
    let installer = static_installer();
    let host =
        ferry_tests::Host::boot().expect("booting the test host (needs root and systemd-nspawn)");
    host.copy_in(installer, "/root/ferry/ferry-install")
        .unwrap();
    host.copy_in(&base.pubkey, "/root/ferry/release.pub")
        .unwrap();
    let dir = work_dir("real-host");
    let install = |bundle: &str| {
        host.exec([
            "/root/ferry/ferry-install",
            "install",
            bundle,
            "--pubkey",
            "/root/ferry/release.pub",
        ])
    };
    for name in [
        "key/untrusted-key",
        "flip/payload-binary",
        "path/tar-dotdot",
        "path/signed-dotdot",
        "type/symlink-out-of-release",
        "precondition/downgrade",
    ] {
        let case = corpus::by_name(name);
        if let Some(first) = &case.first {
            let file = dir.join("first.tar.zst");
            fs::write(&file, first(base)).unwrap();
            host.copy_in(&file, "/root/ferry/first.tar.zst").unwrap();
            let out = install("/root/ferry/first.tar.zst");
            assert!(
                out.status.success(),
                "{name}: installing the newer release first: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                host.is_active("hello.service"),
                "{}",
                host.journal("hello.service")
            );
        }
        let file = write_case(base, &case, &dir);
        let inside = format!(
            "/root/ferry/{}",
            file.file_name().unwrap().to_string_lossy()
        );
        host.copy_in(&file, &inside).unwrap();
        let before = Snapshot::take_all(host.root_path(), &HOST_TREES).without(volatile);
        let out = install(&inside);
        if let Some(p) = check_refusal(case.code, case.message, &out) {
            panic!(
                "{name} on the real host: {p}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let after = Snapshot::take_all(host.root_path(), &HOST_TREES).without(volatile);
        before.assert_unchanged(&after, name);
        if case.first.is_some() {
            assert!(
                host.is_active("hello.service"),
                "{name}: the installed release keeps running"
            );
        }
        eprintln!(
            "real host: {name}: exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .find(|l| l.starts_with("error:"))
                .unwrap_or("")
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Copies `bundle` into the host and installs it there (with `extra` arguments); the
/// output.
fn install_live(
    host: &ferry_tests::Host,
    dir: &Path,
    name: &str,
    bundle: &[u8],
    extra: &[&str],
) -> Output {
    let file = dir.join(name);
    fs::write(&file, bundle).unwrap();
    let inside = format!("/root/ferry/{name}");
    host.copy_in(&file, &inside).unwrap();
    let mut argv = vec![
        "/root/ferry/ferry-install",
        "install",
        &inside,
        "--pubkey",
        "/root/ferry/release.pub",
    ];
    argv.extend_from_slice(extra);
    host.exec(argv)
}

fn live_host(base: &Base) -> ferry_tests::Host {
    let host =
        ferry_tests::Host::boot().expect("booting the test host (needs root and systemd-nspawn)");
    host.copy_in(static_installer(), "/root/ferry/ferry-install")
        .unwrap();
    host.copy_in(&base.pubkey, "/root/ferry/release.pub")
        .unwrap();
    host
}

/// Issue 11: an exec probe never runs as root. It runs as the service user under the
/// unit's sandbox: a probe that passes only as `hello` and only where `/etc` and ferry's
/// state are read-only installs; a probe that passes only as root makes the release
/// unhealthy (exit 5, rolled back).
#[test]
fn exec_probes_run_as_the_service_user_in_its_sandbox() {
    let base = base();
    let host = live_host(base);
    let dir = work_dir("live-probe");
    let as_hello = escalation::live_bundle(
        base,
        escalation::exec_probe(
            "test \"$(id -un)\" = hello && ! touch /etc/ferry-probe-was-here 2>/dev/null \
             && ! touch /var/lib/ferry/ferry-probe-was-here 2>/dev/null",
        ),
        None,
    );
    let out = install_live(&host, &dir, "probe-as-hello.tar.zst", &as_hello, &[]);
    assert!(
        out.status.success(),
        "the probe that needs the service user failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        host.journal("hello.service")
    );
    assert!(!host.path("/etc/ferry-probe-was-here").unwrap().exists());
    let as_root = escalation::live_bundle(
        base,
        |v| {
            escalation::exec_probe("test \"$(id -u)\" = 0")(v);
            escalation::version(v, "2.0.0");
        },
        None,
    );
    // Another probe is a change of footprint the operator consents to.
    let out = install_live(
        &host,
        &dir,
        "probe-as-root.tar.zst",
        &as_root,
        &["--allow-escalation"],
    );
    assert_eq!(
        out.status.code(),
        Some(5),
        "a probe that passes only as root passed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(host.is_active("hello.service"), "1.0.0 runs again");
    let _ = fs::remove_dir_all(&dir);
}

/// Issue 11: the service user swaps a directory it owns for a symlink to a root-owned
/// binary between an upgrade's change of the directory's mode and the rollback's undo.
/// The undo must not follow it (it used to chmod through it: a setuid root binary).
#[test]
fn undo_never_follows_a_symlink_the_service_swapped_in() {
    let base = base();
    let host = live_host(base);
    let dir = work_dir("live-swap");
    let first = escalation::live_bundle(base, escalation::with_sub_directory, None);
    let out = install_live(&host, &dir, "with-sub.tar.zst", &first, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id_mode = || host.sh_ok("stat -c %a /usr/bin/id").trim().to_owned();
    assert_eq!(id_mode(), "755");
    // What the service user may do to its own directory: make it setuid (a directory
    // ignores the bit; a chmod through a symlink would copy it onto the target).
    host.sh_ok("setpriv --reuid=hello --regid=hello --clear-groups chmod 4750 /var/lib/hello/sub");
    let evil = escalation::live_bundle(
        base,
        |v| {
            escalation::with_sub_directory(v);
            escalation::version(v, "2.0.0");
        },
        Some(escalation::SWAPPING_SERVICE),
    );
    let out = install_live(&host, &dir, "swapping.tar.zst", &evil, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        host.sh_ok("test -L /var/lib/hello/sub && echo link")
            .contains("link"),
        "the service did not swap the directory; the test proves nothing:\n{stderr}\n{}",
        host.journal("hello.service")
    );
    assert_eq!(
        id_mode(),
        "755",
        "the undo changed /usr/bin/id through the symlink"
    );
    assert!(
        stderr.contains("/var/lib/hello/sub is no longer a directory"),
        "the undo does not say what it left alone:\n{stderr}"
    );
    assert!(host.is_active("hello.service"), "1.0.0 runs again");
    let _ = fs::remove_dir_all(&dir);
}

/// Issue 11: `ferry-install` opens no network socket but `AF_UNIX` and netlink (systemd,
/// the journal, sysusers) and the health probe's loopback connection, proven with a
/// syscall trace of the installer and every program it runs.
#[test]
fn the_installer_opens_no_socket_but_local_ones() {
    let base = base();
    let host = live_host(base);
    let dir = work_dir("live-strace");
    fs::write(dir.join("hello.tar.zst"), &base.amd64).unwrap();
    host.copy_in(dir.join("hello.tar.zst"), "/root/ferry/hello.tar.zst")
        .unwrap();
    let trace = dir.join("trace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-s", "128", "-e", "trace=socket,connect", "-o"])
        .arg(&trace)
        .args([
            "nsenter",
            "-t",
            &host.pid().to_string(),
            "-a",
            "--",
            "env",
            "-i",
        ])
        .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .args([
            "/root/ferry/ferry-install",
            "install",
            "/root/ferry/hello.tar.zst",
            "--pubkey",
            "/root/ferry/release.pub",
        ]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", describe(&cmd, &out));
    let text = fs::read_to_string(&trace).unwrap();
    let mut inet = 0;
    let mut loopback_connects = 0;
    for line in text.lines() {
        let call = line.split_once(' ').map_or(line, |(_, c)| c.trim_start());
        if let Some(args) = call.strip_prefix("socket(") {
            let family = args.split(',').next().unwrap_or("");
            assert!(
                matches!(family, "AF_UNIX" | "AF_NETLINK" | "AF_INET" | "AF_INET6"),
                "a socket of family {family}: {line}"
            );
            if family.starts_with("AF_INET") {
                inet += 1;
            }
        } else if call.starts_with("connect(") && call.contains("sa_family=AF_INET") {
            assert!(
                call.contains("inet_addr(\"127.0.0.1\")") || call.contains("\"::1\""),
                "a connection beyond loopback: {line}"
            );
            loopback_connects += 1;
        }
    }
    assert!(
        inet > 0 && loopback_connects > 0,
        "the trace shows no probe connection, so it proves nothing:\n{text}"
    );
    assert!(host.is_active("hello.service"));
    let _ = fs::remove_dir_all(&dir);
}
