//! End-to-end tests of `ferry-install` on a real host: the static installer and bundles built
//! by `ferry build` from `examples/hello` are copied into a booted, network-less Debian host
//! (systemd as PID 1, see `ferry_tests::Host`) and everything is checked from inside with
//! stock tools (`stat`, `getfacl`, `logrotate`, `systemd-analyze`, `curl`, `getent`).
//!
//! Every test boots its own clean host and stops it when it ends. The installer always runs
//! with `--json`; its document is parsed and checked. A failed check prints the recent
//! installer runs (command, exit code, stdout, stderr) and the service's journal.
//!
//! Bundles are built once per test process: `examples/hello` 1.0.0 (amd64 and arm64), 2.0.0
//! (another default greeting, so its default config differs), 3.0.0 (its binary exits 1 at
//! start: `main.crashAtStart`), and 1.0.0 signed by a key the host does not trust.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ferry_tests::{ferry_bin, static_installer, workspace_root, Host};
use serde_json::Value;

/// `SOURCE_DATE_EPOCH` of every build.
const SDE: &str = "1700000000";
/// Where the installer, bundles and key go inside the host.
const DIR: &str = "/root/ferry";
const INSTALLER: &str = "/root/ferry/ferry-install";
const PUBKEY: &str = "/root/ferry/release.pub";
const HEALTHZ: &str = "http://127.0.0.1:8080/healthz";
const GREETING_2: &str = "Hello from ferry 2.0.0";
const OPERATOR_GREETING: &str = "Edited by the operator";
/// What a host looks like to "nothing changed" checks after a refused install.
const HOST_WIDE: &[&str] = &[
    "/etc",
    "/opt",
    "/usr/local",
    "/var/lib/ferry",
    "/var/lib/hello",
    "/var/log/hello",
];
/// What an installed hello consists of.
const APP_PATHS: &[&str] = &[
    "/etc/hello",
    "/opt/hello",
    "/etc/systemd/system/hello.service",
    "/etc/systemd/system/multi-user.target.wants/hello.service",
    "/etc/logrotate.d/hello",
    "/etc/tmpfiles.d/hello.conf",
    "/etc/sysusers.d/hello.conf",
    "/etc/passwd",
    "/etc/group",
    "/var/lib/ferry/hello",
    "/var/lib/hello",
];

// ---------------------------------------------------------------------------------------------
// Bundles, built once per test process.

struct Bundles {
    /// The trusted public key (outside path).
    pubkey: PathBuf,
    /// Bundle files by the name they get inside the host (`hello-1.0.0-linux-amd64.tar.zst`
    /// and so on; the untrusted one is `rogue-hello-1.0.0-linux-amd64.tar.zst`), each with
    /// its `.minisig`.
    files: Vec<(String, PathBuf)>,
}

fn bundle(version: &str, arch: &str) -> String {
    format!("{DIR}/hello-{version}-linux-{arch}.tar.zst")
}

fn amd64(version: &str) -> String {
    bundle(version, "amd64")
}

const ROGUE: &str = "/root/ferry/rogue-hello-1.0.0-linux-amd64.tar.zst";

fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "{cmd:?} -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{}", describe(cmd, &out));
    out
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Builds `ferry` (debug) and the static installer with `scripts/build-installer`, so no test
/// ever runs a stale binary. The size budget is a test of its own
/// ([`static_installer_is_small_static_and_runs_on_a_bare_host`]): when the script refuses
/// the binary only for its size, the other tests still run it.
fn build_binaries() {
    run_ok(cargo().args(["build", "--quiet", "-p", "ferry"]));
    let script = workspace_root().join("scripts/build-installer");
    let mut cmd = Command::new(&script);
    let out = cmd
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        assert!(
            stderr.contains("over the 2 MiB budget") && static_installer().is_file(),
            "building the static installer failed: {}",
            describe(&cmd, &out)
        );
        eprintln!("install.rs: {}", stderr.trim());
    }
    assert!(
        static_installer().is_file(),
        "{} missing",
        static_installer().display()
    );
}

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let prefix = dir.join(name);
    run_ok(
        Command::new(ferry_bin())
            .arg("keygen")
            .arg("--out")
            .arg(&prefix)
            .arg("--unencrypted"),
    );
    prefix
}

/// Copies `examples/hello` to `dir/src-NAME`, lets `edit` change its ferry.toml and builds it
/// into `dir/out-NAME`.
fn build_project(
    dir: &Path,
    name: &str,
    key: &Path,
    arches: &[&str],
    edit: impl Fn(String) -> String,
) -> PathBuf {
    let src = dir.join(format!("src-{name}"));
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(workspace_root().join("examples/hello"))
            .arg(&src),
    );
    let toml = src.join("ferry.toml");
    let text = fs::read_to_string(&toml).unwrap();
    fs::write(&toml, edit(text)).unwrap();
    let out = dir.join(format!("out-{name}"));
    let mut cmd = Command::new(ferry_bin());
    cmd.arg("build")
        .arg(&src)
        .arg("--key")
        .arg(key.with_extension("key"))
        .arg("--out")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", SDE)
        .env_remove("FERRY_PASSPHRASE");
    for arch in arches {
        cmd.arg("--target").arg(format!("linux/{arch}"));
    }
    run_ok(&mut cmd);
    out
}

/// Replaces exactly one occurrence of `from`, so a changed example fails loudly here.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "examples/hello/ferry.toml should contain {from:?} exactly once:\n{text}"
    );
    text.replacen(from, to, 1)
}

fn bundles() -> &'static Bundles {
    static BUNDLES: OnceLock<Bundles> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        let t0 = Instant::now();
        build_binaries();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ferry-install-e2e");
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        let key = keygen(&dir, "release");
        let rogue = keygen(&dir, "rogue");

        let v2 = |t: String| {
            let t = replace_once(&t, "version = \"1.0.0\"", "version = \"2.0.0\"");
            replace_once(
                &t,
                "greeting = \"Hello from ferry\"",
                &format!("greeting = \"{GREETING_2}\""),
            )
        };
        let v3 = |t: String| {
            let t = replace_once(&t, "version = \"1.0.0\"", "version = \"3.0.0\"");
            replace_once(
                &t,
                "\n[build]\n",
                "\n[build]\nldflags_x = { \"main.crashAtStart\" = \"1\" }\n",
            )
        };
        let (out1, out2, out3, out_rogue) = std::thread::scope(|s| {
            let b1 = s.spawn(|| build_project(&dir, "1.0.0", &key, &["amd64", "arm64"], |t| t));
            let b2 = s.spawn(|| build_project(&dir, "2.0.0", &key, &["amd64"], v2));
            let b3 = s.spawn(|| build_project(&dir, "3.0.0", &key, &["amd64"], v3));
            let br = s.spawn(|| build_project(&dir, "rogue", &rogue, &["amd64"], |t| t));
            (
                b1.join().unwrap(),
                b2.join().unwrap(),
                b3.join().unwrap(),
                br.join().unwrap(),
            )
        });

        let mut files = Vec::new();
        let mut add = |inside: &str, outside: PathBuf| {
            for ext in ["", ".minisig"] {
                let from = PathBuf::from(format!("{}{ext}", outside.display()));
                assert!(
                    from.is_file(),
                    "ferry build did not write {}",
                    from.display()
                );
                let name = Path::new(inside).file_name().unwrap().to_string_lossy();
                files.push((format!("{name}{ext}"), from));
            }
        };
        add(
            &amd64("1.0.0"),
            out1.join("hello-1.0.0-linux-amd64.tar.zst"),
        );
        add(
            &bundle("1.0.0", "arm64"),
            out1.join("hello-1.0.0-linux-arm64.tar.zst"),
        );
        add(
            &amd64("2.0.0"),
            out2.join("hello-2.0.0-linux-amd64.tar.zst"),
        );
        add(
            &amd64("3.0.0"),
            out3.join("hello-3.0.0-linux-amd64.tar.zst"),
        );
        add(ROGUE, out_rogue.join("hello-1.0.0-linux-amd64.tar.zst"));
        eprintln!(
            "install.rs: binaries and bundles ready after {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        Bundles {
            pubkey: key.with_extension("pub"),
            files,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// One test's host, with a transcript of installer runs for failure messages.

/// One run of the installer inside the host.
struct Run {
    argv: String,
    code: Option<i32>,
    json: Value,
}

impl Run {
    fn result(&self) -> &Value {
        &self.json["result"]
    }

    fn error_message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or_default()
    }
}

struct Case {
    host: Host,
    transcript: RefCell<Vec<String>>,
    started: Instant,
}

impl Drop for Case {
    fn drop(&mut self) {
        eprintln!(
            "install.rs: case on {} took {:.1} s",
            self.host.name(),
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// `ensure!(case, condition, "format", args...)`: on failure, panics with the message, the
/// recent installer runs and the service's journal.
macro_rules! ensure {
    ($case:expr, $cond:expr, $($msg:tt)+) => {
        let holds: bool = $cond;
        if !holds {
            $case.fail(&format!($($msg)+));
        }
    };
}

macro_rules! ensure_eq {
    ($case:expr, $left:expr, $right:expr, $($msg:tt)+) => {
        match (&$left, &$right) {
            (left, right) => {
                if left != right {
                    $case.fail(&format!(
                        "{}\n  left: {left:?}\n right: {right:?}",
                        format!($($msg)+)
                    ));
                }
            }
        }
    };
}

impl Case {
    /// Boots a clean host and copies in the static installer, the bundles and the trusted key.
    fn new() -> Self {
        let bundles = bundles();
        let started = Instant::now();
        let host = Host::boot().expect("booting the test host (needs root and systemd-nspawn)");
        host.copy_in(static_installer(), INSTALLER).unwrap();
        host.copy_in(&bundles.pubkey, PUBKEY).unwrap();
        for (name, from) in &bundles.files {
            host.copy_in(from, format!("{DIR}/{name}")).unwrap();
        }
        Self {
            host,
            transcript: RefCell::new(Vec::new()),
            started,
        }
    }

    /// What a failure message carries besides its own text.
    fn diag(&self) -> String {
        let mut s = String::from("\n===== recent ferry-install runs =====\n");
        let transcript = self.transcript.borrow();
        for t in &transcript[transcript.len().saturating_sub(3)..] {
            s.push_str(t);
            s.push('\n');
        }
        for (title, script) in [
            (
                "systemctl status hello",
                "systemctl status --no-pager -n 0 hello 2>&1",
            ),
            (
                "journalctl -u hello -n 50",
                "journalctl --no-pager -u hello -n 50 2>&1",
            ),
        ] {
            let out = self
                .host
                .try_exec_with(["/bin/sh", "-c", script], None, Duration::from_secs(20))
                .map_or_else(
                    |e| format!("({e:#})"),
                    |o| String::from_utf8_lossy(&o.stdout).into_owned(),
                );
            let _ = write!(s, "===== {title} =====\n{}\n", out.trim_end());
        }
        s
    }

    #[track_caller]
    fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n{}", self.diag());
    }

    /// `ferry-install ARGS --json` inside; the JSON document is parsed and checked against
    /// the exit code.
    fn installer(&self, words: &[&str]) -> Run {
        let mut argv = vec![INSTALLER];
        argv.extend_from_slice(words);
        argv.push("--json");
        let t0 = Instant::now();
        let out = self
            .host
            .try_exec_with(&argv, None, Duration::from_secs(180))
            .unwrap_or_else(|e| self.fail(&format!("running {argv:?}: {e:#}")));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code();
        self.transcript.borrow_mut().push(format!(
            "$ {} -> exit {code:?} after {:.1} s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            argv.join(" "),
            t0.elapsed().as_secs_f64(),
            stdout.trim_end(),
            stderr.trim_end()
        ));
        let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            self.fail(&format!(
                "`{}` printed no JSON document: {e}",
                argv.join(" ")
            ))
        });
        ensure_eq!(self, json["tool"], "ferry-install", "JSON tool");
        ensure_eq!(
            self,
            json["ok"].as_bool(),
            Some(code == Some(0)),
            "JSON ok vs exit code {code:?}"
        );
        if code != Some(0) {
            ensure_eq!(
                self,
                json["error"]["exit_code"].as_i64(),
                code.map(i64::from),
                "JSON error.exit_code"
            );
        }
        Run {
            argv: argv.join(" "),
            code,
            json,
        }
    }

    /// The installer must exit with `code`.
    #[track_caller]
    fn installer_exits(&self, code: i32, args: &[&str]) -> Run {
        let run = self.installer(args);
        ensure_eq!(self, run.code, Some(code), "exit code of `{}`", run.argv);
        run
    }

    /// `install BUNDLE --pubkey release.pub EXTRA...`, which must exit 0.
    #[track_caller]
    fn install(&self, bundle: &str, extra: &[&str]) -> Run {
        let mut args = vec!["install", bundle, "--pubkey", PUBKEY];
        args.extend_from_slice(extra);
        self.installer_exits(0, &args)
    }

    /// `/bin/sh -c SCRIPT` inside, which must exit 0; its stdout.
    #[track_caller]
    fn sh(&self, script: &str) -> String {
        self.host
            .try_ok(["/bin/sh", "-c", script])
            .unwrap_or_else(|e| self.fail(&format!("{e:#}")))
    }

    /// `/bin/sh -c SCRIPT` inside: whether it exited 0, and stdout + stderr.
    fn sh_status(&self, script: &str) -> (bool, String) {
        let out = self.host.exec(["/bin/sh", "-c", script]);
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn exists(&self, path: &str) -> bool {
        self.sh_status(&format!("test -e '{path}' || test -L '{path}'"))
            .0
    }

    /// `/healthz` from inside, parsed.
    #[track_caller]
    fn healthz(&self) -> Value {
        let body = self.sh(&format!("curl -fsS --max-time 5 {HEALTHZ}"));
        serde_json::from_str(&body)
            .unwrap_or_else(|e| self.fail(&format!("/healthz answered {body:?}: {e}")))
    }

    /// `GET /` from inside: the configured greeting.
    #[track_caller]
    fn greeting(&self) -> String {
        self.sh("curl -fsS --max-time 5 http://127.0.0.1:8080/")
            .trim()
            .to_owned()
    }

    #[track_caller]
    fn assert_serving(&self, version: &str) {
        ensure!(
            self,
            self.host.is_active("hello.service"),
            "hello.service is not active"
        );
        let h = self.healthz();
        ensure_eq!(self, h["status"], "ok", "/healthz status");
        ensure_eq!(self, h["version"], version, "/healthz version");
    }

    /// `systemctl show hello.service -p P1,P2...` as a map.
    fn props(&self, names: &[&str]) -> BTreeMap<String, String> {
        self.sh(&format!(
            "systemctl show hello.service -p {}",
            names.join(",")
        ))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Waits until `ready` holds, polling; fails after `timeout` naming `what`.
    #[track_caller]
    fn wait_for(&self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready() {
            if Instant::now() > deadline {
                self.fail(&format!("timed out after {timeout:?} waiting for {what}"));
            }
            sleep(Duration::from_millis(200));
        }
    }

    /// `stat -c '%U:%G %a'`.
    fn owner_mode(&self, path: &str) -> String {
        self.sh(&format!("stat -c '%U:%G %a' '{path}'"))
            .trim()
            .to_owned()
    }

    fn readlink(&self, path: &str) -> String {
        self.sh(&format!("readlink '{path}'")).trim().to_owned()
    }

    /// Everything about `paths` that an install could change, one sorted line each: type,
    /// owner, mode, size, inode, mtime, ctime, link target, content hash, extended ACLs.
    /// Absent paths are listed as absent.
    fn snapshot(&self, paths: &[&str]) -> BTreeSet<String> {
        const SCRIPT: &str = r#"for p in "$@"; do
  if [ -e "$p" ] || [ -L "$p" ]; then
    find "$p" -xdev -printf 'meta %p %y %U:%G %m %s %i %T@ %C@ %l\n'
    find "$p" -xdev -type f -exec sha256sum {} +
    getfacl -R -P -p -s "$p" 2>/dev/null | sed 's/^/acl /'
  else
    echo "absent $p"
  fi
done"#;
        let mut argv = vec!["/bin/sh", "-c", SCRIPT, "snapshot"];
        argv.extend_from_slice(paths);
        let out = self
            .host
            .try_ok(&argv)
            .unwrap_or_else(|e| self.fail(&format!("{e:#}")));
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[track_caller]
    fn assert_unchanged(&self, before: &BTreeSet<String>, after: &BTreeSet<String>, what: &str) {
        if before != after {
            let mut d = String::new();
            for l in before.difference(after) {
                let _ = writeln!(d, "- {l}");
            }
            for l in after.difference(before) {
                let _ = writeln!(d, "+ {l}");
            }
            self.fail(&format!("{what} changed the host:\n{d}"));
        }
    }

    /// No trace of an install: no release, staging directory, user, unit or record.
    #[track_caller]
    fn assert_not_installed(&self) {
        let opt = self.sh("ls -A /opt");
        ensure!(
            self,
            !opt.lines()
                .any(|l| l == "hello" || l.starts_with(".ferry-staging")),
            "/opt holds {opt:?}"
        );
        ensure!(
            self,
            !self.sh_status("getent passwd hello").0,
            "user hello exists"
        );
        for p in [
            "/etc/systemd/system/hello.service",
            "/var/lib/ferry/hello",
            "/etc/hello",
        ] {
            ensure!(self, !self.exists(p), "{p} exists");
        }
    }

    /// `ferry-install status hello`: the version, active and healthy.
    #[track_caller]
    fn assert_status(&self, version: &str) {
        let run = self.installer_exits(0, &["status", "hello"]);
        let s = run.result();
        ensure_eq!(self, s["version"], version, "status version");
        ensure_eq!(self, s["active_state"], "active", "status active_state");
        ensure_eq!(self, s["healthy"], true, "status healthy");
    }
}

// ---------------------------------------------------------------------------------------------
// The cases.

#[test]
fn fresh_install_is_active_healthy_hardened_and_idempotent() {
    let case = Case::new();
    let run = case.install(&amd64("1.0.0"), &[]);
    let r = run.result();
    ensure_eq!(case, r["changed"], true, "first install: changed");
    ensure_eq!(case, r["version"], "1.0.0", "installed version");
    ensure_eq!(case, r["previous_version"], Value::Null, "previous version");
    ensure_eq!(case, r["started"], true, "started");
    ensure_eq!(
        case,
        case.sh("systemctl is-active hello").trim(),
        "active",
        "is-active"
    );
    ensure_eq!(
        case,
        case.sh("systemctl is-enabled hello").trim(),
        "enabled",
        "is-enabled"
    );
    case.assert_serving("1.0.0");
    ensure_eq!(case, case.greeting(), "Hello from ferry", "GET /");
    check_account(&case);
    check_layout(&case);
    check_logrotate(&case);
    check_unit_exposure(&case);
    case.assert_status("1.0.0");

    // The same bundle again: nothing to do, nothing touched, the service not restarted.
    let service = ["MainPID", "InvocationID", "NRestarts", "ActiveState"];
    let props = case.props(&service);
    let before = case.snapshot(APP_PATHS);
    let again = case.install(&amd64("1.0.0"), &[]);
    ensure_eq!(
        case,
        again.result()["changed"],
        false,
        "second install: changed"
    );
    let dry = case.install(&amd64("1.0.0"), &["--dry-run"]);
    ensure_eq!(
        case,
        dry.result()["changed"],
        false,
        "dry run of the installed bundle: would change"
    );
    let after = case.snapshot(APP_PATHS);
    case.assert_unchanged(&before, &after, "installing the same bundle again");
    ensure_eq!(
        case,
        case.props(&service),
        props,
        "the service after a second install"
    );
    case.assert_serving("1.0.0");
}

fn check_account(case: &Case) {
    let passwd = case.sh("getent passwd hello");
    let fields: Vec<&str> = passwd.trim().split(':').collect();
    ensure_eq!(case, fields.len(), 7, "getent passwd hello: {passwd:?}");
    ensure_eq!(case, fields[5], "/var/lib/hello", "home of hello");
    ensure_eq!(case, fields[6], "/usr/sbin/nologin", "shell of hello");
    let uid: u32 = fields[2].parse().unwrap();
    ensure!(
        case,
        uid > 0 && uid < 1000,
        "hello is not a system user: uid {uid}"
    );
    ensure!(
        case,
        case.sh_status("getent group hello").0,
        "no group hello"
    );
}

fn check_layout(case: &Case) {
    for (path, want) in [
        ("/opt/hello", "root:root 755"),
        ("/opt/hello/releases", "root:root 755"),
        ("/opt/hello/releases/1.0.0", "root:root 755"),
        ("/opt/hello/releases/1.0.0/bin/hello", "root:root 755"),
        ("/etc/hello", "root:hello 750"),
        ("/etc/hello/hello.toml", "root:hello 640"),
        ("/etc/hello/admin-token", "root:root 600"),
        ("/var/lib/hello", "hello:hello 750"),
        ("/var/log/hello", "hello:hello 750"),
        ("/etc/systemd/system/hello.service", "root:root 644"),
        ("/etc/logrotate.d/hello", "root:root 644"),
    ] {
        ensure_eq!(
            case,
            case.owner_mode(path),
            want,
            "owner and mode of {path}"
        );
    }
    ensure_eq!(
        case,
        case.sh("stat -c %s /etc/hello/admin-token").trim(),
        "0",
        "admin-token size"
    );
    ensure_eq!(
        case,
        case.readlink("/opt/hello/current"),
        "releases/1.0.0",
        "current"
    );
    ensure_eq!(
        case,
        case.sh("cat /etc/hello/hello.toml"),
        case.sh("cat /opt/hello/releases/1.0.0/config/prod/hello.toml"),
        "installed config vs the bundle's prod config"
    );

    // The ACL as getfacl (libacl, an independent reader) sees it, access and default.
    let acl = case.sh("getfacl -p /var/log/hello");
    for entry in [
        "group:adm:r-x",
        "default:group:adm:r--",
        "user::rwx",
        "other::---",
    ] {
        ensure!(
            case,
            acl.lines().any(|l| l.trim() == entry),
            "getfacl /var/log/hello lacks {entry}:\n{acl}"
        );
    }
    // The service's own log file inherited the default entry.
    let log_acl = case.sh("getfacl -p /var/log/hello/hello.log");
    ensure!(
        case,
        log_acl.lines().any(|l| l.trim() == "group:adm:r--"),
        "the service's log file did not inherit group:adm:r--:\n{log_acl}"
    );
    ensure!(
        case,
        case.sh("getfacl -p -s /etc/hello /var/lib/hello /opt/hello")
            .trim()
            .is_empty(),
        "unexpected ACLs on /etc/hello, /var/lib/hello or /opt/hello"
    );
}

fn check_logrotate(case: &Case) {
    let (ok, out) = case.sh_status("logrotate -d -s /dev/null /etc/logrotate.d/hello");
    ensure!(
        case,
        ok,
        "logrotate -d rejects /etc/logrotate.d/hello:\n{out}"
    );
    ensure!(
        case,
        !out.lines().any(|l| l.starts_with("error")),
        "logrotate -d reports errors:\n{out}"
    );
    ensure!(
        case,
        out.contains("considering log /var/log/hello/hello.log"),
        "logrotate -d did not consider the service's log:\n{out}"
    );
}

/// Parses "Overall exposure level for hello.service: 1.1 OK :-)".
fn exposure(output: &str) -> Option<f64> {
    let line = output
        .lines()
        .find(|l| l.contains("Overall exposure level for"))?;
    line.rsplit_once(": ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn check_unit_exposure(case: &Case) {
    // systemd 252 inside supports --offline: the installed file is scored as it is on disk.
    let offline =
        case.sh("systemd-analyze security --offline=true /etc/systemd/system/hello.service 2>&1");
    let score = exposure(&offline)
        .unwrap_or_else(|| case.fail(&format!("no exposure level in:\n{offline}")));
    ensure!(
        case,
        score <= 1.5,
        "hello.service scores {score} > 1.5 offline:\n{offline}"
    );
    // And the live unit, as systemd loaded it.
    let live = case.sh("systemd-analyze security hello.service 2>&1");
    let score =
        exposure(&live).unwrap_or_else(|| case.fail(&format!("no exposure level in:\n{live}")));
    ensure!(
        case,
        score <= 1.5,
        "the live hello.service scores {score} > 1.5:\n{live}"
    );
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let case = Case::new();
    let before = case.snapshot(HOST_WIDE);
    let run = case.install(&amd64("1.0.0"), &["--dry-run"]);
    let r = run.result();
    ensure_eq!(case, r["dry_run"], true, "dry_run");
    let created = r["configs"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["path"] == "/etc/hello/hello.toml" && c["action"] == "created")
    });
    ensure!(
        case,
        created,
        "the dry run does not say it would create /etc/hello/hello.toml: {r:#}"
    );
    // For a dry run, `changed` says whether a real run would change the host.
    ensure_eq!(case, r["changed"], true, "changed (would change)");
    ensure_eq!(case, r["started"], false, "started");
    let plan = &r["plan"];
    ensure_eq!(case, plan["user"], "hello", "plan user");
    ensure_eq!(case, plan["group"], "hello", "plan group");
    ensure_eq!(
        case,
        plan["release_dir"],
        "/opt/hello/releases/1.0.0",
        "plan release_dir"
    );
    let dirs = plan["directories"].as_array().cloned().unwrap_or_default();
    let log = dirs.iter().find(|d| d["path"] == "/var/log/hello");
    ensure!(
        case,
        log.is_some(),
        "no /var/log/hello in the plan: {plan:#}"
    );
    let log = log.unwrap();
    ensure_eq!(
        case,
        (&log["owner"], &log["group"], &log["mode"]),
        (
            &Value::from("hello"),
            &Value::from("hello"),
            &Value::from("0750")
        ),
        "planned /var/log/hello"
    );
    ensure_eq!(
        case,
        log["acl"],
        serde_json::json!(["group:adm:r-x"]),
        "planned ACL"
    );
    ensure_eq!(
        case,
        log["default_acl"],
        serde_json::json!(["group:adm:r--"]),
        "planned default ACL"
    );
    for d in ["/etc/hello", "/opt/hello", "/var/lib/hello"] {
        ensure!(
            case,
            dirs.iter().any(|x| x["path"] == d),
            "no {d} in the plan: {plan:#}"
        );
    }
    let files = plan["files"].as_array().cloned().unwrap_or_default();
    for f in [
        "/etc/hello/hello.toml",
        "/etc/systemd/system/hello.service",
        "/etc/logrotate.d/hello",
    ] {
        ensure!(
            case,
            files.iter().any(|x| x["dest"] == f),
            "no {f} in the plan: {plan:#}"
        );
    }
    ensure!(
        case,
        plan["secrets"]
            .as_array()
            .is_some_and(|s| s.contains(&Value::from("/etc/hello/admin-token"))),
        "no admin-token in the plan: {plan:#}"
    );
    ensure!(
        case,
        plan["units"].as_array().is_some_and(|u| !u.is_empty()),
        "no units in the plan"
    );

    let after = case.snapshot(HOST_WIDE);
    case.assert_unchanged(&before, &after, "--dry-run");
    case.assert_not_installed();
    let (found, out) = case.sh_status("systemctl cat hello.service");
    ensure!(
        case,
        !found,
        "systemd knows hello.service after a dry run:\n{out}"
    );
}

#[test]
fn systemd_restarts_the_killed_service() {
    let case = Case::new();
    case.install(&amd64("1.0.0"), &[]);
    let before = case.props(&["MainPID", "NRestarts"]);
    let restarts: u32 = before["NRestarts"].parse().unwrap();
    case.sh("systemctl kill --signal=SIGKILL hello.service");
    case.wait_for(
        "systemd to restart hello.service",
        Duration::from_secs(30),
        || {
            let p = case.props(&["NRestarts", "ActiveState", "MainPID"]);
            p["NRestarts"].parse::<u32>().unwrap_or(0) > restarts
                && p["ActiveState"] == "active"
                && p["MainPID"] != "0"
                && p["MainPID"] != before["MainPID"]
        },
    );
    case.wait_for("/healthz to answer again", Duration::from_secs(15), || {
        case.sh_status(&format!("curl -fsS --max-time 2 {HEALTHZ}"))
            .0
    });
    case.assert_serving("1.0.0");
    let journal = case.sh("journalctl --no-pager -u hello.service");
    ensure!(
        case,
        journal.contains("status=9/KILL") || journal.contains("signal=KILL"),
        "the journal does not show the kill"
    );
    let run = case.installer_exits(0, &["status", "hello"]);
    let s = run.result();
    ensure_eq!(case, s["healthy"], true, "status healthy after the restart");
    ensure!(
        case,
        s["n_restarts"]
            .as_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n > restarts),
        "status n_restarts: {s:#}"
    );
}

#[test]
fn service_comes_back_after_a_reboot() {
    let mut case = Case::new();
    case.install(&amd64("1.0.0"), &[]);
    let boot_id = case.sh("cat /proc/sys/kernel/random/boot_id");
    case.host.reboot().expect("rebooting the host");
    ensure!(
        case,
        case.sh("cat /proc/sys/kernel/random/boot_id") != boot_id,
        "the boot id did not change"
    );
    // multi-user.target wants the unit: systemd started it while booting.
    case.wait_for(
        "hello.service to be active after the reboot",
        Duration::from_secs(30),
        || case.host.is_active("hello.service"),
    );
    case.wait_for("/healthz after the reboot", Duration::from_secs(15), || {
        case.sh_status(&format!("curl -fsS --max-time 2 {HEALTHZ}"))
            .0
    });
    case.assert_serving("1.0.0");
    ensure_eq!(
        case,
        case.props(&["NRestarts"])["NRestarts"],
        "0",
        "restarts after the reboot"
    );
    let acl = case.sh("getfacl -p /var/log/hello");
    ensure!(
        case,
        acl.contains("group:adm:r-x"),
        "ACL lost over the reboot:\n{acl}"
    );
    case.assert_status("1.0.0");
}

#[test]
fn upgrade_keeps_edited_config_and_a_crashing_release_is_rolled_back() {
    let case = Case::new();
    case.install(&amd64("1.0.0"), &[]);
    case.sh(&format!(
        "sed -i 's/^greeting = .*/greeting = \"{OPERATOR_GREETING}\"/' /etc/hello/hello.toml"
    ));
    let edited = case.sh("cat /etc/hello/hello.toml");
    ensure!(
        case,
        edited.contains(OPERATOR_GREETING),
        "the edit did not land:\n{edited}"
    );

    // The dry run of the upgrade predicts the config report of the real one.
    let dry = case.install(&amd64("2.0.0"), &["--dry-run"]);
    let predicted = dry.result()["configs"].clone();

    let run = case.install(&amd64("2.0.0"), &[]);
    let r = run.result();
    ensure_eq!(case, r["changed"], true, "upgrade: changed");
    ensure_eq!(
        case,
        &predicted,
        &r["configs"],
        "the configs the dry run predicted vs the upgrade's"
    );
    ensure_eq!(
        case,
        r["previous_version"],
        "1.0.0",
        "upgrade: previous_version"
    );
    let configs = r["configs"].as_array().cloned().unwrap_or_default();
    let conf = configs
        .iter()
        .find(|c| c["path"] == "/etc/hello/hello.toml");
    ensure!(
        case,
        conf.is_some(),
        "no /etc/hello/hello.toml in configs: {r:#}"
    );
    let conf = conf.unwrap();
    ensure_eq!(case, conf["action"], "kept", "config action");
    ensure_eq!(
        case,
        conf["new_default"],
        "/etc/hello/hello.toml.new",
        "config new_default"
    );
    let diff = conf["diff"].as_str().unwrap_or_default();
    ensure!(
        case,
        diff.lines()
            .any(|l| l.starts_with('-') && l.contains(OPERATOR_GREETING))
            && diff
                .lines()
                .any(|l| l.starts_with('+') && l.contains(GREETING_2)),
        "the reported diff does not show the greetings:\n{diff}"
    );
    // A real unified diff: patch(1) turns the kept file into the new default with it.
    ensure_eq!(
        case,
        patched(&edited, diff),
        case.sh("cat /etc/hello/hello.toml.new"),
        "the kept config patched with the reported diff"
    );
    ensure_eq!(
        case,
        case.sh("cat /etc/hello/hello.toml"),
        edited,
        "the edited config after the upgrade"
    );
    ensure_eq!(
        case,
        case.sh("cat /etc/hello/hello.toml.new"),
        case.sh("cat /opt/hello/releases/2.0.0/config/prod/hello.toml"),
        "hello.toml.new vs 2.0.0's default"
    );
    ensure_eq!(
        case,
        case.owner_mode("/etc/hello/hello.toml"),
        "root:hello 640",
        "kept config"
    );
    ensure_eq!(
        case,
        case.owner_mode("/etc/hello/hello.toml.new"),
        "root:hello 640",
        "new default"
    );
    ensure_eq!(
        case,
        case.readlink("/opt/hello/current"),
        "releases/2.0.0",
        "current"
    );
    case.assert_serving("2.0.0");
    ensure_eq!(
        case,
        case.greeting(),
        OPERATOR_GREETING,
        "GET / after the upgrade serves the operator's greeting"
    );
    case.assert_status("2.0.0");
    // Installed again, with the operator's config and the .new beside it: nothing to do.
    let before = case.snapshot(APP_PATHS);
    let again = case.install(&amd64("2.0.0"), &[]);
    ensure_eq!(
        case,
        again.result()["changed"],
        false,
        "2.0.0 again: changed"
    );
    case.assert_unchanged(&before, &case.snapshot(APP_PATHS), "installing 2.0.0 again");

    crashing_release_is_rolled_back(&case);

    // Rolling back to 1.0.0 keeps the operator's config too.
    let run = case.installer_exits(0, &["rollback", "hello"]);
    ensure_eq!(case, run.result()["to_version"], "1.0.0", "rollback to");
    ensure_eq!(
        case,
        run.result()["restored_configs"],
        serde_json::json!([]),
        "rollback restored_configs with an edited config"
    );
    case.assert_serving("1.0.0");
    ensure_eq!(
        case,
        case.greeting(),
        OPERATOR_GREETING,
        "GET / after rolling back with an edited config"
    );
}

fn crashing_release_is_rolled_back(case: &Case) {
    let unit_before = case.sh("cat /etc/systemd/system/hello.service");
    let run = case.installer_exits(5, &["install", &amd64("3.0.0"), "--pubkey", PUBKEY]);
    let msg = run.error_message();
    ensure!(
        case,
        msg.contains("3.0.0"),
        "the error does not name 3.0.0: {msg}"
    );
    ensure!(
        case,
        msg.contains("crashAtStart"),
        "the error does not carry the service's journal lines: {msg}"
    );
    ensure_eq!(
        case,
        case.readlink("/opt/hello/current"),
        "releases/2.0.0",
        "current after rollback"
    );
    case.assert_serving("2.0.0");
    ensure!(
        case,
        !case.exists("/opt/hello/releases/3.0.0"),
        "releases/3.0.0 was left behind"
    );
    let opt = case.sh("ls -A /opt /opt/hello/releases");
    ensure!(
        case,
        !opt.contains(".ferry-staging") && !opt.contains("3.0.0"),
        "leftovers: {opt}"
    );
    ensure!(
        case,
        !case.exists("/var/lib/ferry/hello/journal"),
        "the undo journal was left behind"
    );
    ensure_eq!(
        case,
        case.sh("cat /etc/systemd/system/hello.service"),
        unit_before,
        "the unit after the rollback"
    );
    ensure!(
        case,
        case.sh("cat /etc/hello/hello.toml")
            .contains(OPERATOR_GREETING),
        "the operator's config was lost"
    );
    case.assert_status("2.0.0");
    // Still serving a while later: no restart loop left behind by the failed release.
    let props = case.props(&["MainPID", "NRestarts"]);
    sleep(Duration::from_secs(3));
    ensure_eq!(
        case,
        case.props(&["MainPID", "NRestarts"]),
        props,
        "the service 3 s after the rollback"
    );
    case.assert_serving("2.0.0");
}

#[test]
fn rollback_then_uninstall_keeps_data() {
    let case = Case::new();
    case.install(&amd64("1.0.0"), &[]);
    // Nobody edited the config: the upgrade brings 2.0.0's default with it.
    let run = case.install(&amd64("2.0.0"), &[]);
    let configs = run.result()["configs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        case,
        configs
            .iter()
            .any(|c| c["path"] == "/etc/hello/hello.toml" && c["action"] == "replaced"),
        "the unedited config was not replaced: {configs:#?}"
    );
    ensure_eq!(
        case,
        case.sh("cat /etc/hello/hello.toml"),
        case.sh("cat /opt/hello/releases/2.0.0/config/prod/hello.toml"),
        "the unedited config after the upgrade"
    );
    ensure!(
        case,
        !case.exists("/etc/hello/hello.toml.new"),
        "hello.toml.new without an edit"
    );
    case.assert_serving("2.0.0");
    ensure_eq!(
        case,
        case.greeting(),
        GREETING_2,
        "GET / after an upgrade without edits"
    );

    let run = case.installer_exits(0, &["rollback", "hello"]);
    let r = run.result();
    ensure_eq!(case, r["from_version"], "2.0.0", "rollback from");
    ensure_eq!(case, r["to_version"], "1.0.0", "rollback to");
    ensure_eq!(
        case,
        case.readlink("/opt/hello/current"),
        "releases/1.0.0",
        "current"
    );
    case.assert_serving("1.0.0");
    // The config was 2.0.0's untouched default: 1.0.0's default comes back with 1.0.0.
    ensure_eq!(
        case,
        r["restored_configs"],
        serde_json::json!(["/etc/hello/hello.toml"]),
        "rollback restored_configs"
    );
    ensure_eq!(
        case,
        case.greeting(),
        "Hello from ferry",
        "GET / after the rollback"
    );
    ensure_eq!(
        case,
        case.owner_mode("/etc/hello/hello.toml"),
        "root:hello 640",
        "restored config"
    );
    ensure_eq!(
        case,
        case.sh("cat /etc/systemd/system/hello.service"),
        case.sh("cat /opt/hello/releases/1.0.0/systemd/prod/hello.service"),
        "the unit after the rollback"
    );
    case.assert_status("1.0.0");

    let run = case.installer_exits(0, &["uninstall", "hello"]);
    let kept: Vec<&str> = run.result()["kept"]
        .as_array()
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for p in ["/etc/hello", "/var/lib/hello", "/var/log/hello"] {
        ensure!(
            case,
            kept.contains(&p),
            "uninstall does not report {p} as kept: {kept:?}"
        );
        ensure!(
            case,
            case.exists(p),
            "{p} is gone after uninstall without --purge"
        );
    }
    ensure!(
        case,
        case.exists("/etc/hello/hello.toml"),
        "the config is gone"
    );
    ensure!(
        case,
        case.exists("/var/log/hello/hello.log"),
        "the log is gone"
    );
    assert_uninstalled(&case);
    // The record stays, naming what was kept, so the kept directories remain provably
    // hello's: a later install may use them, and --purge can still remove them.
    let record: Value = serde_json::from_str(&case.sh("cat /var/lib/ferry/hello/state.json"))
        .unwrap_or(Value::Null);
    ensure!(
        case,
        record["current"].is_null() && record["kept"].as_array().is_some_and(|k| k.len() == 3),
        "the record after a plain uninstall: {record}"
    );
    let run = case.installer_exits(0, &["uninstall", "hello", "--purge"]);
    let removed: Vec<&str> = run.result()["removed"]
        .as_array()
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for p in [
        "/etc/hello",
        "/var/lib/hello",
        "/var/log/hello",
        "/var/lib/ferry/hello",
    ] {
        ensure!(
            case,
            removed.contains(&p),
            "--purge after uninstall does not report {p}: {removed:?}"
        );
        ensure!(
            case,
            !case.exists(p),
            "{p} survived uninstall --purge after uninstall"
        );
    }
    case.installer_exits(4, &["uninstall", "hello", "--purge"]);
}

#[track_caller]
fn assert_uninstalled(case: &Case) {
    for p in [
        "/opt/hello",
        "/etc/systemd/system/hello.service",
        "/etc/systemd/system/multi-user.target.wants/hello.service",
        "/etc/logrotate.d/hello",
        "/etc/sysusers.d/hello.conf",
        "/var/lib/ferry/hello/manifests",
    ] {
        ensure!(case, !case.exists(p), "{p} is still there after uninstall");
    }
    ensure!(
        case,
        !case.host.is_active("hello.service"),
        "hello.service still runs"
    );
    ensure_eq!(
        case,
        case.props(&["LoadState"])["LoadState"],
        "not-found",
        "systemd still knows hello.service"
    );
    let (answered, _) = case.sh_status(&format!("curl -fsS --max-time 2 {HEALTHZ}"));
    ensure!(case, !answered, "something still answers on :8080");
    let procs = case.sh("for p in /proc/[0-9]*; do stat -c %U \"$p\"; done 2>/dev/null | sort -u");
    ensure!(
        case,
        !procs.lines().any(|u| u == "hello"),
        "processes of user hello remain"
    );
    case.installer_exits(4, &["status", "hello"]);
}

#[test]
fn uninstall_purge_removes_config_data_and_logs() {
    let case = Case::new();
    case.install(&amd64("1.0.0"), &[]);
    case.assert_serving("1.0.0");
    case.installer_exits(0, &["uninstall", "hello", "--purge"]);
    assert_uninstalled(&case);
    for p in [
        "/etc/hello",
        "/var/lib/hello",
        "/var/log/hello",
        "/var/lib/ferry/hello",
    ] {
        ensure!(case, !case.exists(p), "{p} survived uninstall --purge");
    }
    // The account stays (as with distribution packages), and so does ferry's record that
    // it made it, so a later install may use it again.
    ensure!(
        case,
        case.sh("cat /var/lib/ferry/accounts.json")
            .contains("\"user\": \"hello\""),
        "the account registry lost hello"
    );
    case.install(&amd64("1.0.0"), &[]);
    case.assert_serving("1.0.0");
}

#[test]
fn refused_installs_change_nothing() {
    let case = Case::new();
    let fresh = case.snapshot(HOST_WIDE);

    // Wrong architecture: exit 4, one line naming both.
    let run = case.installer_exits(
        4,
        &["install", &bundle("1.0.0", "arm64"), "--pubkey", PUBKEY],
    );
    let msg = run.error_message();
    ensure!(
        case,
        !msg.trim().contains('\n'),
        "not a one-line message: {msg:?}"
    );
    ensure!(
        case,
        msg.contains("arm64") && msg.contains("amd64"),
        "message: {msg}"
    );
    // An environment the bundle does not have: exit 4.
    case.installer_exits(
        4,
        &[
            "install",
            &amd64("1.0.0"),
            "--pubkey",
            PUBKEY,
            "--env",
            "nosuch",
        ],
    );
    case.assert_unchanged(
        &fresh,
        &case.snapshot(HOST_WIDE),
        "refused installs (exit 4)",
    );

    // Signed by a key this host does not trust: exit 3, given with --pubkey ...
    let run = case.installer_exits(3, &["install", ROGUE, "--pubkey", PUBKEY]);
    ensure!(case, !run.error_message().is_empty(), "no error message");
    case.assert_unchanged(&fresh, &case.snapshot(HOST_WIDE), "an untrusted bundle");
    case.assert_not_installed();
    // ... or from the keyring directory.
    case.sh(&format!(
        "mkdir -p /etc/ferry/keys && cp {PUBKEY} /etc/ferry/keys/release.pub"
    ));
    let with_keyring = case.snapshot(HOST_WIDE);
    case.installer_exits(3, &["install", ROGUE]);
    case.assert_unchanged(
        &with_keyring,
        &case.snapshot(HOST_WIDE),
        "an untrusted bundle (keyring)",
    );
    case.assert_not_installed();

    // The keyring's key installs 2.0.0; 1.0.0 then is a downgrade: exit 4, nothing touched.
    case.installer_exits(0, &["install", &amd64("2.0.0")]);
    case.assert_serving("2.0.0");
    let service = ["MainPID", "InvocationID", "NRestarts"];
    let (props, installed) = (case.props(&service), case.snapshot(APP_PATHS));
    let run = case.installer_exits(4, &["install", &amd64("1.0.0"), "--pubkey", PUBKEY]);
    ensure!(
        case,
        run.error_message().contains("downgrade"),
        "message: {}",
        run.error_message()
    );
    case.assert_unchanged(&installed, &case.snapshot(APP_PATHS), "a refused downgrade");
    ensure_eq!(
        case,
        case.props(&service),
        props,
        "the service after a refused downgrade"
    );
    case.assert_serving("2.0.0");
    // Allowed explicitly, it happens.
    case.install(&amd64("1.0.0"), &["--allow-downgrade"]);
    case.assert_serving("1.0.0");
}

#[test]
fn crashing_first_install_leaves_no_service_behind() {
    let case = Case::new();
    let run = case.installer_exits(5, &["install", &amd64("3.0.0"), "--pubkey", PUBKEY]);
    ensure!(
        case,
        run.error_message().contains("crashAtStart"),
        "message: {}",
        run.error_message()
    );
    for p in [
        "/opt/hello/current",
        "/opt/hello/releases/3.0.0",
        "/etc/systemd/system/hello.service",
        "/etc/systemd/system/multi-user.target.wants/hello.service",
        "/var/lib/ferry/hello/state.json",
        "/var/lib/ferry/hello/journal",
        "/var/lib/ferry/hello",
        "/opt/hello",
    ] {
        ensure!(
            case,
            !case.exists(p),
            "{p} is left after a failed first install"
        );
    }
    ensure!(
        case,
        !case.host.is_active("hello.service"),
        "hello.service is active"
    );
    case.installer_exits(4, &["status", "hello"]);
    // The account stays, and ferry's record that it made it (the only thing left in
    // /var/lib/ferry), so the next install may use it.
    ensure_eq!(
        case,
        case.sh("ls -A /var/lib/ferry").trim(),
        "accounts.json",
        "what a failed first install leaves in /var/lib/ferry"
    );
    // A good release installs cleanly afterwards.
    case.install(&amd64("1.0.0"), &[]);
    case.assert_serving("1.0.0");
}

/// `scripts/build-installer` is reproducible: the same sources in another directory, built
/// into another target directory, give the same bytes (paths are remapped, no build id).
#[test]
fn static_installer_build_is_reproducible() {
    bundles();
    let root = workspace_root();
    let tmp = tempfile::Builder::new()
        .prefix("repro-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let src = tmp.path().join("elsewhere");
    // The working tree's files (tracked, and new ones not ignored), as they are now.
    let files = run_ok(Command::new("git").current_dir(&root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]));
    for rel in files.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).unwrap());
        let from = root.join(rel);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        fs::create_dir_all(src.join(rel).parent().unwrap()).unwrap();
        fs::copy(&from, src.join(rel)).unwrap();
    }
    let epoch = run_ok(
        Command::new("git")
            .current_dir(&root)
            .args(["log", "-1", "--format=%ct"]),
    );
    let target = tmp.path().join("target");
    let out = run_ok(
        Command::new(src.join("scripts/build-installer"))
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", &target)
            .env(
                "SOURCE_DATE_EPOCH",
                String::from_utf8_lossy(&epoch.stdout).trim(),
            )
            .stdin(Stdio::null()),
    );
    let rebuilt = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        rebuilt.starts_with(&target),
        "built {} outside {}",
        rebuilt.display(),
        target.display()
    );
    let (a, b) = (
        fs::read(static_installer()).unwrap(),
        fs::read(&rebuilt).unwrap(),
    );
    assert!(
        a == b,
        "{} ({} bytes) and {} ({} bytes) differ",
        static_installer().display(),
        a.len(),
        rebuilt.display(),
        b.len()
    );
}

#[test]
fn static_installer_is_small_static_and_runs_on_a_bare_host() {
    bundles();
    let bin = static_installer();
    let out = run_ok(Command::new("file").arg("-b").arg(&bin));
    let file = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        file.contains("statically linked"),
        "file(1) does not call {bin:?} statically linked: {file}"
    );
    assert!(file.contains("x86-64"), "file(1) says: {file}");
    let out = run_ok(Command::new("readelf").arg("-lW").arg(&bin));
    let headers = String::from_utf8_lossy(&out.stdout);
    assert!(
        !headers.contains("INTERP"),
        "{bin:?} has a program interpreter:\n{headers}"
    );
    let out = run_ok(Command::new("readelf").arg("-dW").arg(&bin));
    let dynamic = String::from_utf8_lossy(&out.stdout);
    assert!(
        !dynamic.contains("(NEEDED)"),
        "{bin:?} needs shared libraries:\n{dynamic}"
    );
    let size = fs::metadata(&bin).unwrap().len();
    assert!(
        size <= 2 * 1024 * 1024,
        "{bin:?} is {size} bytes, over 2 MiB (2097152)"
    );

    let case = Case::new();
    // The host has no toolchain and no library added for us.
    let (found, out) =
        case.sh_status("command -v go || command -v rustc || command -v cargo || command -v gcc");
    ensure!(case, !found, "the test host has a toolchain: {out}");
    ensure!(
        case,
        !case.exists("/usr/local/go"),
        "the test host has /usr/local/go"
    );
    let ldd = case.sh_status(&format!("ldd {INSTALLER} 2>&1")).1;
    ensure!(
        case,
        ldd.contains("statically linked") || ldd.contains("not a dynamic executable"),
        "ldd inside: {ldd}"
    );
    let version = case.sh(&format!("{INSTALLER} --version"));
    ensure!(
        case,
        version.starts_with("ferry-install "),
        "--version: {version}"
    );
    let run = case.installer_exits(0, &["verify", &amd64("1.0.0"), "--pubkey", PUBKEY]);
    ensure_eq!(case, run.json["command"], "verify", "verify command");
    let run = case.installer_exits(0, &["list"]);
    ensure_eq!(
        case,
        run.result(),
        &serde_json::json!([]),
        "list on a fresh host"
    );
}

/// `old` with a unified diff applied by patch(1), the independent judge of the format.
fn patched(old: &str, diff: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    fs::write(&file, old).unwrap();
    let mut child = Command::new("patch")
        .args(["--quiet", "--force"])
        .arg(&file)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("patch(1)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), diff.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "patch refused:\n{diff}");
    fs::read_to_string(&file).unwrap()
}
