//! `ferry try` on `examples/hello`, through the real binary: usage errors (exit 2) and
//! preconditions (exit 4) found before anything boots; `--prepare`, which runs
//! `scripts/mkhost`'s recipe compiled into ferry; the example as shipped, which ferry's
//! unit does not break (exit 0); and a build that crashes at start, which the installer's
//! health gate rolls back and `ferry try` lays out again, finding it just as broken without
//! its sandbox (exit 1: not a sandbox problem); the installer's refusals keeping their exit
//! codes (3, 4 with `--policy`); and a difference only ferry's floor makes
//! (`tests/fixtures/setgid-app`, which `RestrictSUIDSGID=yes` stops), left unexplained by any
//! knob (exit 5, no finding). The real services are `services.rs`'s.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use ferry_tests::{ferry_bin, static_installer, workspace_root};
use serde_json::Value;

const SDE: &str = "1700000000";

fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "{cmd:?} -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(out.status.success(), "{}", describe(cmd, &out));
    out
}

struct Bundles {
    dir: PathBuf,
    pubkey: PathBuf,
    amd64: PathBuf,
    arm64: PathBuf,
    crash: PathBuf,
    /// `tests/fixtures/setgid-app`: only the floor breaks it.
    floor: PathBuf,
    /// A key the bundles are not signed with.
    other_pubkey: PathBuf,
}

/// Copies `examples/hello`, lets `edit` change its ferry.toml and `edit_config` its config
/// template, builds it for `arches`.
fn build_hello(
    dir: &Path,
    name: &str,
    key: &Path,
    arches: &[&str],
    edit: &dyn Fn(String) -> String,
    edit_config: &dyn Fn(String) -> String,
) -> PathBuf {
    let src = dir.join(format!("src-{name}"));
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(workspace_root().join("examples/hello"))
            .arg(&src),
    );
    let toml = src.join("ferry.toml");
    fs::write(&toml, edit(fs::read_to_string(&toml).unwrap())).unwrap();
    let config = src.join("config/hello.toml.j2");
    fs::write(&config, edit_config(fs::read_to_string(&config).unwrap())).unwrap();
    let out = dir.join(format!("out-{name}"));
    let mut cmd = Command::new(ferry_bin());
    cmd.arg("build")
        .arg(&src)
        .arg("--key")
        .arg(key)
        .arg("--out")
        .arg(&out)
        .env("SOURCE_DATE_EPOCH", SDE)
        .env_remove("FERRY_PASSPHRASE");
    for a in arches {
        cmd.arg("--target").arg(format!("linux/{a}"));
    }
    run_ok(&mut cmd);
    out
}

fn bundles() -> &'static Bundles {
    static B: OnceLock<Bundles> = OnceLock::new();
    B.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run_ok(
            Command::new(cargo)
                .current_dir(workspace_root())
                .args(["build", "--quiet", "-p", "ferry"]),
        );
        let mut cmd = Command::new(workspace_root().join("scripts/build-installer"));
        let out = run(cmd.current_dir(workspace_root()));
        assert!(
            out.status.success()
                || (String::from_utf8_lossy(&out.stderr).contains("over the 2 MiB budget")
                    && static_installer().is_file()),
            "{}",
            describe(&cmd, &out)
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ferry-try-e2e");
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        let prefix = dir.join("release");
        run_ok(
            Command::new(ferry_bin())
                .arg("keygen")
                .arg("--out")
                .arg(&prefix)
                .arg("--unencrypted"),
        );
        let key = prefix.with_extension("key");
        let same = |t: String| t;
        let out1 = build_hello(&dir, "1.0.0", &key, &["amd64", "arm64"], &same, &same);
        // A service only the floor breaks (RestrictSUIDSGID=yes).
        let setgid_src = dir.join("src-setgid");
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(workspace_root().join("tests/fixtures/setgid-app"))
                .arg(&setgid_src),
        );
        let floor = dir.join("out-setgid");
        run_ok(
            Command::new(ferry_bin())
                .arg("build")
                .arg(&setgid_src)
                .arg("--key")
                .arg(&key)
                .arg("--out")
                .arg(&floor)
                .env("SOURCE_DATE_EPOCH", SDE)
                .env_remove("FERRY_PASSPHRASE"),
        );
        let other = dir.join("other");
        run_ok(
            Command::new(ferry_bin())
                .arg("keygen")
                .arg("--out")
                .arg(&other)
                .arg("--unencrypted"),
        );
        let crash = build_hello(
            &dir,
            "crash",
            &key,
            &["amd64"],
            &|t| {
                assert_eq!(t.matches("\n[build]\n").count(), 1);
                t.replacen(
                    "\n[build]\n",
                    "\n[build]\nldflags_x = { \"main.crashAtStart\" = \"1\" }\n",
                    1,
                )
            },
            &same,
        );
        Bundles {
            pubkey: prefix.with_extension("pub"),
            amd64: out1.join("hello-1.0.0-linux-amd64.tar.zst"),
            arm64: out1.join("hello-1.0.0-linux-arm64.tar.zst"),
            crash: crash.join("hello-1.0.0-linux-amd64.tar.zst"),
            floor: floor.join("setgid-app-0.1.0-linux-amd64.tar.zst"),
            other_pubkey: other.with_extension("pub"),
            dir,
        }
    })
}

fn ferry_try(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(ferry_bin());
    cmd.arg("try").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Arguments, environment, exit code, and what stderr must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str);

#[test]
fn usage_errors_and_preconditions_stop_before_anything_boots() {
    let b = bundles();
    let pubkey = s(&b.pubkey);
    let amd64 = s(&b.amd64);
    let cases: &[Case] = &[
        (&[], &[], 2, "BUNDLE"),
        (&[amd64], &[], 2, "needs --pubkey PUB"),
        (
            &[amd64, "--pubkey", pubkey, "--url", "https://127.0.0.1/"],
            &[],
            2,
            "--url: invalid",
        ),
        (
            &[amd64, "--pubkey", pubkey],
            &[("FERRY_HOST_CACHE", "/nonexistent/ferry-host")],
            4,
            "no throwaway host root at /nonexistent/ferry-host: run `ferry try --prepare`",
        ),
        (
            &[amd64, "--pubkey", pubkey],
            &[("PATH", "/nonexistent")],
            4,
            "ferry try needs systemd-nspawn",
        ),
        (
            &[s(&b.arm64), "--pubkey", pubkey],
            &[],
            4,
            "is built for linux/arm64",
        ),
        (
            &[
                amd64,
                "--pubkey",
                pubkey,
                "--installer",
                "/nonexistent/ferry-install",
            ],
            &[],
            4,
            "--installer /nonexistent/ferry-install: no such file",
        ),
    ];
    for (args, env, code, msg) in cases {
        let (got, stdout, stderr) = ferry_try(args, env);
        assert_eq!(got, *code, "ferry try {args:?}:\n{stdout}\n{stderr}");
        assert!(
            stderr.contains(msg),
            "ferry try {args:?}: {msg:?} not in:\n{stderr}"
        );
        assert!(
            !stderr.contains("booting"),
            "ferry try {args:?} booted a host:\n{stderr}"
        );
    }
    // --json: one document with the error.
    let (code, stdout, _) = ferry_try(
        &[amd64, "--pubkey", pubkey, "--json"],
        &[("FERRY_HOST_CACHE", "/nonexistent/ferry-host")],
    );
    assert_eq!(code, 4);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["command"], "try");
    assert_eq!(doc["error"]["exit_code"], 4);

    // --prepare alone checks (here: finds up to date) the host root and tries nothing.
    let (code, stdout, stderr) = ferry_try(&["--prepare", "--json"], &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        doc["result"]["prepared"],
        ferry_tests::host_cache_dir().display().to_string()
    );
    assert!(doc["result"].get("trial").is_none(), "{doc:#}");
    assert!(stderr.contains("mkhost: "), "{stderr}");

    // Not root: a private copy of ferry anyone may run, run as nobody.
    let bin = b.dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::set_permissions(&b.dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let ferry = bin.join("ferry");
    fs::copy(ferry_bin(), &ferry).unwrap();
    fs::set_permissions(&ferry, fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&ferry)
        .args([
            "try",
            "/nonexistent.tar.zst",
            "--pubkey",
            "/nonexistent.pub",
        ])
        .current_dir("/"));
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("ferry try needs root"));
}

#[test]
fn hello_passes_and_a_build_that_crashes_is_not_blamed_on_the_sandbox() {
    let b = bundles();
    let installer = static_installer();
    let common = [
        "--pubkey",
        s(&b.pubkey),
        "--installer",
        s(&installer),
        "--json",
    ];

    let t0 = Instant::now();
    let mut args = vec![s(&b.amd64), "--env", "dev"];
    args.extend(common);
    let (code, stdout, stderr) = ferry_try(&args, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let t = &doc["result"]["trial"];
    assert_eq!(t["install"]["healthy"], true, "{doc:#}");
    assert_eq!(t["differences"], Value::Array(Vec::new()), "{doc:#}");
    eprintln!(
        "try_cmd.rs: ferry try hello took {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // A project directory: built for this machine, signed with a throwaway key.
    let t0 = Instant::now();
    let project = b.dir.join("src-1.0.0");
    let (code, stdout, stderr) = ferry_try(
        &[s(&project), "--installer", s(&installer), "--json"],
        &[("SOURCE_DATE_EPOCH", SDE)],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let t = &doc["result"]["trial"];
    assert_eq!(t["app"], "hello", "{doc:#}");
    assert_eq!(t["install"]["healthy"], true, "{doc:#}");
    assert_eq!(t["differences"], Value::Array(Vec::new()), "{doc:#}");
    assert!(stderr.contains("with a throwaway key"), "{stderr}");
    let (code, _, stderr) = ferry_try(&[s(&project), "--pubkey", s(&b.pubkey)], &[]);
    assert_eq!(code, 2, "{stderr}");
    eprintln!(
        "try_cmd.rs: ferry try PROJECT (build included) took {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let t0 = Instant::now();
    let mut args = vec![s(&b.crash)];
    args.extend(common);
    let (code, stdout, stderr) = ferry_try(&args, &[]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let t = &doc["result"]["trial"];
    assert_eq!(t["install"]["exit_code"], 5, "{doc:#}");
    assert_eq!(t["install"]["healthy"], false, "{doc:#}");
    assert_eq!(t["sandboxed"]["active"], false, "{doc:#}");
    assert_eq!(t["unsandboxed"]["active"], false, "{doc:#}");
    assert_eq!(t["differences"], Value::Array(Vec::new()), "{doc:#}");
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "hello is unhealthy without its sandbox too, so the sandbox is not the cause"
        ),
        "{message}"
    );
    eprintln!(
        "try_cmd.rs: ferry try of the crashing build took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn refusals_in_the_throwaway_host_keep_the_installers_exit_code() {
    let b = bundles();
    let installer = static_installer();
    // Signed by a key the throwaway host does not trust: exit 3.
    let (code, stdout, stderr) = ferry_try(
        &[
            s(&b.amd64),
            "--pubkey",
            s(&b.other_pubkey),
            "--installer",
            s(&installer),
        ],
        &[],
    );
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("ferry-install refused the bundle in the throwaway host (exit 3)"),
        "{stderr}"
    );
    // --env reaches the installer: one the bundle lacks is refused (exit 4).
    let (code, stdout, stderr) = ferry_try(
        &[
            s(&b.amd64),
            "--pubkey",
            s(&b.pubkey),
            "--installer",
            s(&installer),
            "--env",
            "nosuch",
        ],
        &[],
    );
    assert_eq!(code, 4, "{stdout}\n{stderr}");
    assert!(stderr.contains("nosuch"), "{stderr}");
    // A host policy whose signer rules leave this key out: exit 4.
    let policy = b.dir.join("policy.toml");
    fs::write(
        &policy,
        "[[signer]]\nkey = \"0000000000000000\"\napps = [\"hello\"]\n",
    )
    .unwrap();
    let (code, stdout, stderr) = ferry_try(
        &[
            s(&b.amd64),
            "--pubkey",
            s(&b.pubkey),
            "--installer",
            s(&installer),
            "--policy",
            s(&policy),
        ],
        &[],
    );
    assert_eq!(code, 4, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("ferry-install refused the bundle in the throwaway host (exit 4)")
            && stderr.contains("policy"),
        "{stderr}"
    );
}

#[test]
fn a_difference_no_knob_removes_is_left_to_the_floor() {
    let b = bundles();
    let t0 = Instant::now();
    let (code, stdout, stderr) = ferry_try(
        &[
            s(&b.floor),
            "--pubkey",
            s(&b.pubkey),
            "--installer",
            s(&static_installer()),
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 5, "{stdout}\n{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let t = &doc["result"]["trial"];
    assert_eq!(t["install"]["healthy"], true, "{doc:#}");
    assert_eq!(t["findings"], Value::Array(Vec::new()), "{doc:#}");
    let unexplained: Vec<&str> = t["unexplained"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(
        unexplained.contains(
            &"http://127.0.0.1:8090/: 1 body line only here (setgid: chmod \
              /var/lib/setgid-app/shared: operation not permitted)"
        ),
        "{doc:#}"
    );
    assert_eq!(t["differences"], t["unexplained"], "{doc:#}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no knob explains it"),
        "{doc:#}"
    );
    eprintln!(
        "try_cmd.rs: ferry try with a floor difference took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
