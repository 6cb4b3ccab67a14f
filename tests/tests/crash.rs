//! Crash consistency on a real systemd host: an install or upgrade killed with SIGKILL at
//! every step boundary leaves the host on the old release or the new one, and the next
//! `ferry-install` run undoes the interrupted attempt and then completes, ending with
//! exactly one release active and healthy.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{ferry, hello_dir, ok, shared, tempdir};
use ferry_tests::Host;

/// Every `FERRY_TEST_KILL_AT` step the installer knows (installer/src/steps.rs).
const STEPS: [&str; 9] = [
    "staged",
    "users",
    "directories",
    "placed",
    "switched",
    "configs",
    "units",
    "applied",
    "recorded",
];

/// Version 2.0.0 of the example (amd64), with a different default config.
fn v2() -> &'static PathBuf {
    static V2: OnceLock<PathBuf> = OnceLock::new();
    V2.get_or_init(|| {
        let work = tempdir().keep();
        let proj = work.join("hello");
        common::copy_tree(&hello_dir(), &proj);
        let toml = fs::read_to_string(proj.join("ferry.toml")).unwrap();
        let toml = toml
            .replace("version = \"1.0.0\"", "version = \"2.0.0\"")
            .replace(
                "greeting = \"Hello from ferry\"",
                "greeting = \"Hello from ferry 2\"",
            );
        fs::write(proj.join("ferry.toml"), toml).unwrap();
        let out = work.join("out");
        ok(ferry()
            .arg("build")
            .arg(&proj)
            .arg("--key")
            .arg(&shared().key)
            .arg("--out")
            .arg(&out)
            .args(["--target", "linux/amd64"]));
        out.join("hello-2.0.0-linux-amd64.tar.zst")
    })
}

fn installer() -> PathBuf {
    let p = ferry_tests::static_installer();
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-installer",
        p.display()
    );
    p
}

/// A fresh host with the installer, the key and both bundles copied in.
fn host() -> Host {
    let host = Host::boot().expect("booting the test host");
    host.copy_in(installer(), "/usr/local/bin/ferry-install")
        .unwrap();
    host.copy_in(&shared().pubkey, "/etc/ferry/keys/release.pub")
        .unwrap();
    let b1 = shared().bundle("amd64");
    for b in [&b1, v2()] {
        let name = b.file_name().unwrap().to_string_lossy().into_owned();
        host.copy_in(b, format!("/root/{name}")).unwrap();
        host.copy_in(
            ferry_format::verify::detached_path(b),
            format!("/root/{name}.minisig"),
        )
        .unwrap();
    }
    host
}

fn install(host: &Host, version: &str, kill_at: Option<&str>) -> std::process::Output {
    let mut argv = vec!["env".to_owned()];
    if let Some(step) = kill_at {
        argv.push(format!("FERRY_TEST_KILL_AT={step}"));
    }
    argv.extend([
        "/usr/local/bin/ferry-install".into(),
        "install".into(),
        format!("/root/hello-{version}-linux-amd64.tar.zst"),
    ]);
    host.exec(argv)
}

fn describe(out: &std::process::Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The release `current` points at, which must be complete.
fn current_release(host: &Host) -> Option<String> {
    let link = host.exec(["readlink", "/opt/hello/current"]);
    if !link.status.success() {
        return None;
    }
    let target = String::from_utf8_lossy(&link.stdout).trim().to_owned();
    let version = target
        .strip_prefix("releases/")
        .unwrap_or_else(|| panic!("current -> {target}"))
        .to_owned();
    host.ok(["test", "-x", &format!("/opt/hello/{target}/bin/hello")]);
    Some(version)
}

fn assert_healthy(host: &Host, version: &str) {
    assert!(
        host.is_active("hello.service"),
        "hello inactive:\n{}",
        host.journal("hello.service")
    );
    let body = host.sh_ok("curl -fsS --retry 5 --retry-connrefused http://127.0.0.1:8080/healthz");
    assert!(
        body.contains(&format!("\"version\":\"{version}\"")),
        "{body}"
    );
    assert_eq!(current_release(host).as_deref(), Some(version));
    let leftovers = host.sh_ok("ls -a /opt | grep ferry-staging || true; ls /var/lib/ferry/hello");
    assert!(
        !leftovers.contains("ferry-staging"),
        "staging left: {leftovers}"
    );
    assert!(!leftovers.contains("journal"), "journal left: {leftovers}");
    let status = host.ok(["/usr/local/bin/ferry-install", "--json", "status", "hello"]);
    assert!(
        status.contains(&format!("\"version\": \"{version}\"")),
        "{status}"
    );
}

fn killed_upgrade(step: &str) {
    let host = host();
    let out = install(&host, "1.0.0", None);
    assert!(out.status.success(), "{}", describe(&out));
    assert_healthy(&host, "1.0.0");

    let out = install(&host, "2.0.0", Some(step));
    assert_eq!(
        out.status.signal(),
        Some(9),
        "not killed at {step}: {}",
        describe(&out)
    );
    // Between the kill and the next run: on the old release or the new one, complete.
    let cur = current_release(&host).expect("current exists");
    assert!(cur == "1.0.0" || cur == "2.0.0", "current -> {cur}");

    // The next run undoes the interrupted attempt, then installs.
    let out = install(&host, "2.0.0", None);
    assert!(
        out.status.success(),
        "rerun after kill at {step}: {}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted install"),
        "{}",
        describe(&out)
    );
    assert_healthy(&host, "2.0.0");
    // The previous release is still there for rollback.
    host.ok(["test", "-x", "/opt/hello/releases/1.0.0/bin/hello"]);
}

fn killed_first_install(step: &str) {
    let host = host();
    let out = install(&host, "1.0.0", Some(step));
    assert_eq!(
        out.status.signal(),
        Some(9),
        "not killed at {step}: {}",
        describe(&out)
    );
    let out = install(&host, "1.0.0", None);
    assert!(
        out.status.success(),
        "rerun after kill at {step}: {}",
        describe(&out)
    );
    assert_healthy(&host, "1.0.0");
}

macro_rules! per_step {
    ($($name:ident => $step:literal),* $(,)?) => {
        mod upgrade_killed_at {
            $(#[test] fn $name() { super::killed_upgrade($step); })*
        }
        mod first_install_killed_at {
            $(#[test] fn $name() { super::killed_first_install($step); })*
        }
    };
}

per_step! {
    staged => "staged",
    users => "users",
    directories => "directories",
    placed => "placed",
    switched => "switched",
    configs => "configs",
    units => "units",
    applied => "applied",
    recorded => "recorded",
}

#[test]
fn every_step_is_covered() {
    let src = fs::read_to_string(common::workspace_root().join("installer/src/steps.rs")).unwrap();
    for s in STEPS {
        assert!(
            src.contains(&format!("=> \"{s}\"")),
            "step {s} not in steps.rs"
        );
    }
    let count = src.matches("Step::").count();
    assert!(
        count >= STEPS.len(),
        "steps.rs names more steps than this test covers"
    );
    let _ = Path::new("");
}

/// Disk full: with `/opt` on a small filesystem that an upgrade no longer fits on, the
/// upgrade fails before changing anything (exit 4, a message naming the free space) and
/// the old release keeps running.
#[test]
fn upgrade_onto_a_full_filesystem_is_refused_and_the_old_release_keeps_running() {
    let host = host();
    // A 64 MiB filesystem for /opt, mounted inside the host's mount namespace.
    host.ok([
        "mount",
        "-t",
        "tmpfs",
        "-o",
        "size=64m,mode=0755",
        "tmpfs",
        "/opt",
    ]);
    let out = install(&host, "1.0.0", None);
    assert!(out.status.success(), "{}", describe(&out));
    assert_healthy(&host, "1.0.0");
    // Leave ~16 MiB free: less than the 2.0.0 payload plus the installer's margin.
    host.sh_ok("avail=$(df --output=avail -k /opt | tail -1); dd if=/dev/zero of=/opt/filler bs=1k count=$((avail - 16384)) status=none");
    let before = host.sh_ok("find /etc /opt/hello /var/lib/ferry -printf '%p %m %s %T@\\n' | sort");
    let out = install(&host, "2.0.0", None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(1 | 4)),
        "expected exit 4 or 1: {}",
        describe(&out)
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{}", describe(&out));
    assert!(errors[0].contains("space"), "{}", describe(&out));
    let after = host.sh_ok("find /etc /opt/hello /var/lib/ferry -printf '%p %m %s %T@\\n' | sort");
    assert_eq!(before, after, "the refused upgrade changed the host");
    assert_healthy(&host, "1.0.0");
}
