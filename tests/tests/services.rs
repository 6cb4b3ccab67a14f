//! Real published services, end to end: `github.com/prometheus/node_exporter@v1.9.1` and
//! `github.com/caddyserver/caddy/v2@v2.11.9` (`./cmd/caddy`), fetched from the Go module
//! proxy (`go mod download -json`), copied out of the read-only module cache into a project
//! directory with the `ferry.toml` (and templates) of `tests/fixtures/node_exporter` or
//! `tests/fixtures/caddy`, built by `ferry build` (amd64 only, to save time), installed by the
//! static installer on the nspawn host (`ferry_tests::Host`), and checked for silent breakage
//! with `ferry try`.
//!
//! - `node_exporter` under its unit (profile `host-metrics`, `AF_NETLINK`) is healthy and has
//!   no more failing collectors, and no fewer metric names, than the same binary run
//!   unsandboxed (a transient unit with only `User=`) on the same host; its unit offers no
//!   reload (no `service.reload_signal`), and `systemctl reload` leaves it running.
//! - caddy serves its file, hides its Caddyfile, and reloads an edited Caddyfile on
//!   `systemctl reload` without a restart.
//! - `ferry try` finds no difference for either, names `ProcSubset=pid` with the setting that
//!   relaxes it when the fixture sets that knob back to ferry's value, and names every
//!   directive that breaks `node_exporter` under ferry's default unit.
//! - `ferry build` points to `ferry try` for an app that OUT has no bundle of yet, and only
//!   then.
//! - Staging and prod from one `ferry.toml` (`[environments.NAME.service]` and
//!   `[environments.NAME.health]` with `{{ port }}`) serve on their own ports, and
//!   `ferry try --env staging` probes staging's.
//!
//! Measured figures are printed (`--nocapture` shows them).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ferry_tests::trial::parse_metrics;
use ferry_tests::{ferry_bin, static_installer, workspace_root, Host};
use serde_json::Value;

const NODE_EXPORTER: &str = "github.com/prometheus/node_exporter@v1.9.1";
const CADDY: &str = "github.com/caddyserver/caddy/v2@v2.11.9";
const SDE: &str = "1700000000";
const DIR: &str = "/root/ferry";
const INSTALLER: &str = "/root/ferry/ferry-install";
const PUBKEY: &str = "/root/ferry/release.pub";
const METRICS: &str = "http://127.0.0.1:9100/metrics";
const SITE: &str = "http://127.0.0.1:8080";

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

/// `ferry` (debug) and the static installer, built once per process, as install.rs does.
fn build_binaries() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_ok(
        Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "ferry"]),
    );
    let mut cmd = Command::new(workspace_root().join("scripts/build-installer"));
    let out = run(cmd.current_dir(workspace_root()));
    if !out.status.success() {
        // The size budget is install.rs's test; an installer over it still runs.
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("over the 2 MiB budget")
                && static_installer().is_file(),
            "building the static installer failed: {}",
            describe(&cmd, &out)
        );
    }
}

/// The module's source directory in the module cache (read-only), fetched from the proxy.
fn module_source(module: &str) -> PathBuf {
    let out = run_ok(
        Command::new("go")
            .args(["mod", "download", "-json", module])
            .env("GOFLAGS", "")
            .env("GOTOOLCHAIN", "local"),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("go mod download -json");
    PathBuf::from(doc["Dir"].as_str().expect("Dir"))
}

/// A project directory: a writable copy of the module's source plus the fixture's files, its
/// `ferry.toml` changed by `edit`.
fn project(
    dir: &Path,
    name: &str,
    module: &str,
    fixture: &str,
    edit: &dyn Fn(String) -> String,
) -> PathBuf {
    let src = module_source(module);
    let dest = dir.join(format!("src-{name}"));
    run_ok(Command::new("cp").arg("-r").arg(&src).arg(&dest));
    run_ok(Command::new("chmod").args(["-R", "u+w"]).arg(&dest));
    let fixture = workspace_root().join("tests/fixtures").join(fixture);
    for entry in fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), dest.join(entry.file_name())).unwrap();
    }
    let toml = dest.join("ferry.toml");
    let text = fs::read_to_string(&toml).unwrap();
    fs::write(&toml, edit(text)).unwrap();
    dest
}

/// Replaces exactly one occurrence, so a changed fixture fails loudly here.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "fixture should contain {from:?} once:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// `ferry build PROJECT --target linux/amd64 --out OUT`: the bundle and ferry's stderr.
fn build(project: &Path, key: &Path, out: &Path) -> (PathBuf, String) {
    let t0 = Instant::now();
    let o = run_ok(
        Command::new(ferry_bin())
            .arg("build")
            .arg(project)
            .arg("--key")
            .arg(key)
            .arg("--out")
            .arg(out)
            .args(["--target", "linux/amd64", "--json"])
            .env("SOURCE_DATE_EPOCH", SDE)
            .env_remove("FERRY_PASSPHRASE"),
    );
    let doc: Value = serde_json::from_slice(&o.stdout).expect("ferry build --json");
    let bundle = PathBuf::from(doc["result"]["bundles"][0]["path"].as_str().expect("path"));
    eprintln!(
        "services.rs: ferry build {} took {:.1} s",
        project.display(),
        t0.elapsed().as_secs_f64()
    );
    (bundle, String::from_utf8_lossy(&o.stderr).into_owned())
}

struct Built {
    dir: PathBuf,
    key: PathBuf,
    pubkey: PathBuf,
    /// The fixture as it is: profile `host-metrics`, `AF_NETLINK`.
    node_exporter: PathBuf,
    node_exporter_project: PathBuf,
    node_exporter_out: PathBuf,
    /// `ferry build`'s stderr for it (first bundle of the app in its OUT).
    node_exporter_stderr: String,
    /// The fixture with `proc_subset = "pid"`: the profile's relaxation undone.
    wrong: PathBuf,
    /// ferry's default unit: no profile, no `AF_NETLINK`.
    default_unit: PathBuf,
    caddy: PathBuf,
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let t0 = Instant::now();
        build_binaries();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ferry-services-e2e");
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
        let ne = project(
            &dir,
            "node_exporter",
            NODE_EXPORTER,
            "node_exporter",
            &|t| t,
        );
        let ne_out = dir.join("out-node_exporter");
        // First alone: the variants then find its packages in Go's build cache.
        let (node_exporter, node_exporter_stderr) = build(&ne, &key, &ne_out);
        let wrong = project(&dir, "wrong", NODE_EXPORTER, "node_exporter", &|t| {
            replace_once(
                &t,
                "profile = \"host-metrics\"\n",
                "profile = \"host-metrics\"\nproc_subset = \"pid\"\n",
            )
        });
        let default_unit = project(&dir, "default", NODE_EXPORTER, "node_exporter", &|t| {
            let t = replace_once(&t, "profile = \"host-metrics\"\n", "");
            replace_once(&t, "extra_address_families = [\"AF_NETLINK\"]\n", "")
        });
        let caddy = project(&dir, "caddy", CADDY, "caddy", &|t| t);
        let (wrong, default_unit, caddy) = std::thread::scope(|s| {
            let w = s.spawn(|| build(&wrong, &key, &dir.join("out-wrong")).0);
            let d = s.spawn(|| build(&default_unit, &key, &dir.join("out-default")).0);
            let c = s.spawn(|| build(&caddy, &key, &dir.join("out-caddy")));
            (w.join().unwrap(), d.join().unwrap(), c.join().unwrap())
        });
        // Caddy has no main.version and its ferry.toml names no version variable: the
        // build goes on and says so; node_exporter's named variable is stamped silently.
        let (caddy, caddy_stderr) = caddy;
        assert!(
            caddy_stderr.contains("version-stamp") && caddy_stderr.contains("main.version"),
            "{caddy_stderr}"
        );
        assert!(
            !node_exporter_stderr.contains("version-stamp"),
            "{node_exporter_stderr}"
        );
        eprintln!(
            "services.rs: binaries and bundles ready after {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        Built {
            pubkey: prefix.with_extension("pub"),
            key,
            dir,
            node_exporter,
            node_exporter_project: ne,
            node_exporter_out: ne_out,
            node_exporter_stderr,
            wrong,
            default_unit,
            caddy,
        }
    })
}

/// A booted host with the installer, the key and one bundle copied in.
fn host_with(bundle: &Path) -> (Host, String) {
    let b = built();
    let host = Host::boot().expect("booting the test host (needs root and systemd-nspawn)");
    host.copy_in(static_installer(), INSTALLER).unwrap();
    host.copy_in(&b.pubkey, PUBKEY).unwrap();
    let name = bundle.file_name().unwrap().to_string_lossy().into_owned();
    let inside = format!("{DIR}/{name}");
    host.copy_in(bundle, &inside).unwrap();
    let sig = PathBuf::from(format!("{}.minisig", bundle.display()));
    host.copy_in(&sig, format!("{inside}.minisig")).unwrap();
    (host, inside)
}

/// `ferry-install install BUNDLE --json [extra]` inside; panics unless it exits 0.
fn install(host: &Host, bundle: &str, extra: &[&str]) -> Value {
    let mut argv = vec![INSTALLER, "install", bundle, "--pubkey", PUBKEY, "--json"];
    argv.extend_from_slice(extra);
    let t0 = Instant::now();
    let out = host
        .try_exec_with(&argv, None, Duration::from_secs(180))
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ferry-install printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success() && doc["ok"] == true,
        "install {bundle} failed: {doc:#}\n{}",
        String::from_utf8_lossy(&host.sh("journalctl --no-pager -n 80").stdout)
    );
    eprintln!(
        "services.rs: install {bundle} took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    doc
}

/// `curl` inside: `(status, body)`; status 0 when nothing answered.
fn get(host: &Host, url: &str) -> (u16, String) {
    let out = host
        .try_exec_with(
            ["curl", "-s", "-m", "20", "-w", "\n%{http_code}", "--", url],
            None,
            Duration::from_secs(30),
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

fn wait_for(host: &Host, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(host, url).0 == 0 {
        assert!(Instant::now() < deadline, "{url} never answered");
        sleep(Duration::from_millis(200));
    }
}

fn main_pid(host: &Host, unit: &str) -> String {
    host.ok(["systemctl", "show", "--value", "-p", "MainPID", unit])
        .trim()
        .to_owned()
}

/// "Reload works or is not offered": a unit without `ExecReload=` must refuse `systemctl
/// reload` and keep running; one with it must reload and leave the same process running.
/// Returns whether the unit offers a reload.
fn reload_works_or_is_not_offered(host: &Host, unit: &str) -> bool {
    let before = main_pid(host, unit);
    assert_ne!(before, "0", "{unit} has no main process");
    let offered = host
        .ok(["systemctl", "show", "--value", "-p", "CanReload", unit])
        .trim()
        == "yes";
    let out = host.exec(["systemctl", "reload", unit]);
    assert_eq!(
        out.status.success(),
        offered,
        "systemctl reload {unit} (reload offered: {offered}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sleep(Duration::from_secs(2));
    assert!(
        host.is_active(unit),
        "{unit} is not active after reload:\n{}",
        host.journal(unit)
    );
    assert_eq!(main_pid(host, unit), before, "{unit} restarted on reload");
    assert_eq!(
        host.ok(["systemctl", "show", "--value", "-p", "NRestarts", unit])
            .trim(),
        "0",
        "{unit} restarted"
    );
    offered
}

#[test]
fn node_exporter_under_its_unit_fails_no_collector_more_than_unsandboxed() {
    let b = built();
    let t0 = Instant::now();
    let (host, bundle) = host_with(&b.node_exporter);
    let doc = install(&host, &bundle, &[]);
    assert_eq!(doc["result"]["changed"], true, "{doc:#}");
    assert!(host.is_active("node_exporter.service"));

    let (status, body) = get(&host, METRICS);
    assert_eq!(status, 200, "{body}");
    let sandboxed = parse_metrics(&body).expect("Prometheus text");
    // The version ferry stamped (app.version_variable).
    assert!(
        body.lines()
            .any(|l| l.starts_with("node_exporter_build_info{") && l.contains("version=\"1.9.1\"")),
        "no node_exporter_build_info with version 1.9.1"
    );

    // The same binary on the same host, without the unit: a transient unit with the
    // service's user only.
    host.ok([
        "systemd-run",
        "--unit=node-exporter-bare",
        "--uid=node_exporter",
        "--gid=node_exporter",
        "--",
        "/opt/node_exporter/current/bin/node_exporter",
        "--web.listen-address=127.0.0.1:9101",
    ]);
    wait_for(&host, "http://127.0.0.1:9101/metrics");
    let (status, body) = get(&host, "http://127.0.0.1:9101/metrics");
    assert_eq!(status, 200, "{body}");
    let bare = parse_metrics(&body).expect("Prometheus text");

    let collectors = sandboxed
        .series
        .iter()
        .filter(|s| s.starts_with("node_scrape_collector_success{"))
        .count();
    eprintln!(
        "services.rs: node_exporter under its unit: {} of {collectors} collectors failing {:?}, \
         {} metric names, {} series; unsandboxed: {} failing {:?}, {} metric names, {} series",
        sandboxed.failing.len(),
        sandboxed.failing,
        sandboxed.names.len(),
        sandboxed.series.len(),
        bare.failing.len(),
        bare.failing,
        bare.names.len(),
        bare.series.len()
    );
    let extra: BTreeSet<&String> = sandboxed.failing.difference(&bare.failing).collect();
    assert!(
        extra.is_empty() && sandboxed.failing.len() <= bare.failing.len(),
        "collectors failing only under the unit: {extra:?}\n{}",
        host.journal("node_exporter.service")
    );
    let lost: BTreeSet<&String> = bare.names.difference(&sandboxed.names).collect();
    assert!(lost.is_empty(), "metrics missing under the unit: {lost:?}");
    assert!(collectors >= 30, "only {collectors} collectors reported");

    // The fixture declares no service.reload_signal: the unit has no ExecReload=, so
    // `systemctl reload` is refused and the exporter keeps serving.
    assert!(
        !reload_works_or_is_not_offered(&host, "node_exporter.service"),
        "node_exporter's unit offers a reload"
    );
    assert_eq!(get(&host, METRICS).0, 200);
    // Why no reload signal: SIGHUP (the usual one) ends it, and systemd counts that as a
    // clean exit, so Restart=on-failure brings nothing back.
    host.ok([
        "systemctl",
        "kill",
        "--kill-whom=main",
        "--signal=HUP",
        "node_exporter.service",
    ]);
    sleep(Duration::from_secs(4));
    assert!(
        !host.is_active("node_exporter.service"),
        "SIGHUP did not end node_exporter"
    );
    assert_eq!(
        get(&host, METRICS).0,
        0,
        "something still serves after SIGHUP"
    );
    eprintln!(
        "services.rs: node_exporter case took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn caddy_serves_its_file_and_reloads_an_edited_caddyfile() {
    let b = built();
    let t0 = Instant::now();
    let (host, bundle) = host_with(&b.caddy);
    install(&host, &bundle, &[]);
    assert_eq!(
        host.ok([
            "systemctl",
            "show",
            "--value",
            "-p",
            "Type",
            "caddy.service"
        ])
        .trim(),
        "notify"
    );
    let (status, page) = get(&host, &format!("{SITE}/index.html"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<p>Carried by ferry (default)</p>"), "{page}");
    assert!(page.contains("<title>caddy 2.11.9</title>"), "{page}");
    assert_eq!(
        get(&host, &format!("{SITE}/")).1,
        page,
        "/ serves index.html"
    );
    assert_eq!(
        get(&host, &format!("{SITE}/Caddyfile")).0,
        404,
        "the Caddyfile is hidden"
    );

    // An operator's edit, applied by `systemctl reload` (SIGUSR1) without a restart.
    let caddyfile = host.read_file("/etc/caddy/Caddyfile").unwrap();
    let edited = replace_once(
        &caddyfile,
        "\tbind 127.0.0.1\n",
        "\tbind 127.0.0.1\n\theader X-Ferry-Reloaded yes\n",
    );
    host.write_file("/etc/caddy/Caddyfile", edited).unwrap();
    let header = || {
        host.ok([
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-D",
            "-",
            &format!("{SITE}/index.html"),
        ])
        .to_ascii_lowercase()
        .contains("x-ferry-reloaded: yes")
    };
    assert!(!header(), "the edit took effect before the reload");
    assert!(
        reload_works_or_is_not_offered(&host, "caddy.service"),
        "caddy's unit offers no reload (service.reload_signal = \"USR1\")"
    );
    assert!(
        header(),
        "the reload did not apply the edited Caddyfile:\n{}",
        host.journal("caddy.service")
    );
    eprintln!(
        "services.rs: caddy case took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// `ferry try BUNDLE --pubkey PUB --installer STATIC [extra]`: exit code, stdout, stderr.
fn ferry_try(bundle: &Path, extra: &[&str]) -> (i32, String, String) {
    let b = built();
    let t0 = Instant::now();
    let out = run(Command::new(ferry_bin())
        .arg("try")
        .arg(bundle)
        .arg("--pubkey")
        .arg(&b.pubkey)
        .arg("--installer")
        .arg(static_installer())
        .args(extra));
    eprintln!(
        "services.rs: ferry try {} {extra:?} took {:.1} s",
        bundle.display(),
        t0.elapsed().as_secs_f64()
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn try_json(bundle: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = ferry_try(bundle, &args);
    let doc: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("ferry try --json printed no document ({e}):\n{stdout}\n{stderr}")
    });
    assert_eq!(doc["tool"], "ferry");
    assert_eq!(doc["command"], "try");
    (code, doc)
}

#[test]
fn ferry_try_finds_no_difference_for_either_service() {
    let b = built();
    for (bundle, extra) in [
        (&b.node_exporter, &[][..]),
        (&b.caddy, &["--url", "http://127.0.0.1:8080/index.html"][..]),
    ] {
        let (code, doc) = try_json(bundle, extra);
        let t = &doc["result"]["trial"];
        eprintln!(
            "services.rs: ferry try {}: {} runs, {:.1} s, under its unit {}, unsandboxed {}",
            t["app"],
            t["runs"].as_array().map_or(0, Vec::len),
            t["seconds"].as_f64().unwrap_or(0.0),
            t["sandboxed"]["probes"],
            t["unsandboxed"]["probes"]
        );
        assert_eq!(code, 0, "{doc:#}");
        assert_eq!(doc["ok"], true);
        assert_eq!(t["install"]["healthy"], true, "{doc:#}");
        assert_eq!(t["differences"], Value::Array(Vec::new()), "{doc:#}");
        assert_eq!(t["sandboxed"]["active"], true);
        assert!(
            t["sandboxed"]["probes"][0]["status"] == "HTTP 200",
            "{doc:#}"
        );
    }
}

#[test]
fn ferry_try_names_a_knob_set_back_to_ferrys_value() {
    let b = built();
    let (code, stdout, stderr) = ferry_try(&b.wrong, &[]);
    assert_eq!(code, 5, "{stdout}\n{stderr}");
    let findings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(": set service."))
        .collect();
    assert_eq!(findings.len(), 1, "one finding expected:\n{stdout}");
    let f = findings[0].trim();
    assert!(
        f.starts_with("ProcSubset=pid hides system-wide /proc files"),
        "{f}"
    );
    assert!(
        f.ends_with(": set service.sandbox.proc_subset = \"all\""),
        "{f}"
    );
    assert!(f.contains("collectors "), "{f}");
    assert!(
        stderr.contains("error: the sandbox changes what node_exporter does"),
        "{stderr}"
    );
}

#[test]
fn ferry_try_names_what_the_default_unit_breaks_in_node_exporter() {
    let b = built();
    let (code, doc) = try_json(&b.default_unit, &[]);
    assert_eq!(code, 5, "{doc:#}");
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["error"]["exit_code"], 5);
    let t = &doc["result"]["trial"];
    // The installer's gate passes: the breakage is silent.
    assert_eq!(t["install"]["healthy"], true, "{doc:#}");
    let sandboxed = &t["sandboxed"]["probes"][0];
    let bare = &t["unsandboxed"]["probes"][0];
    eprintln!(
        "services.rs: default unit: {} failing collectors, {} metric names; unsandboxed {} \
         failing, {} metric names; {} runs, {:.1} s",
        sandboxed["failing_collectors"]
            .as_array()
            .map_or(0, Vec::len),
        sandboxed["metric_names"],
        bare["failing_collectors"].as_array().map_or(0, Vec::len),
        bare["metric_names"],
        t["runs"].as_array().map_or(0, Vec::len),
        t["seconds"].as_f64().unwrap_or(0.0)
    );
    let failing = |p: &Value| -> BTreeSet<String> {
        p["failing_collectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    };
    let only_sandboxed: BTreeSet<String> = failing(sandboxed)
        .difference(&failing(bare))
        .cloned()
        .collect();
    assert_eq!(
        only_sandboxed,
        [
            "arp",
            "conntrack",
            "cpu",
            "diskstats",
            "entropy",
            "filefd",
            "loadavg",
            "meminfo",
            "netdev",
            "netstat",
            "pressure",
            "softnet",
            "stat",
            "udp_queues",
            "vmstat",
        ]
        .iter()
        .map(|c| (*c).to_owned())
        .collect::<BTreeSet<String>>(),
        "{doc:#}"
    );
    assert!(
        sandboxed["metric_names"].as_u64() < bare["metric_names"].as_u64(),
        "{doc:#}"
    );
    // ProtectProc=invisible: node_exporter falls back to its own mount table.
    let protect_proc = t["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["directive"] == "ProtectProc")
        .expect("a ProtectProc finding");
    assert!(
        protect_proc["message"]
            .as_str()
            .unwrap()
            .contains("only here (node_filesystem_"),
        "{protect_proc:#}"
    );
    let settings: BTreeSet<&str> = t["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["setting"].as_str().unwrap())
        .collect();
    assert_eq!(
        settings,
        BTreeSet::from([
            "service.sandbox.proc_subset = \"all\"",
            "service.sandbox.protect_proc = \"default\"",
            "service.extra_address_families = [\"AF_NETLINK\"]",
        ]),
        "{doc:#}"
    );
    assert_eq!(t["unexplained"], Value::Array(Vec::new()), "{doc:#}");
    // Every one of them is within the host-metrics profile (with AF_NETLINK).
    let profile = profile_settings();
    for s in &settings {
        if let Some(rest) = s.strip_prefix("service.sandbox.") {
            let (key, value) = rest.split_once(" = ").unwrap();
            assert!(
                profile.contains(&(key.to_owned(), value.trim_matches('"').to_owned())),
                "{s} is not in the host-metrics profile"
            );
        }
    }
}

/// The host-metrics profile's settings, as `ferry inspect` shows them for the fixture's
/// bundle (the footprint's sandbox relaxations).
fn profile_settings() -> BTreeSet<(String, String)> {
    let b = built();
    let out = run_ok(
        Command::new(ferry_bin())
            .arg("inspect")
            .arg(&b.node_exporter)
            .arg("--json"),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let install = &doc["result"]["manifest"]["install"];
    let env = install["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == install["default_env"])
        .expect("the default environment");
    env["sandbox"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn ferry_build_points_to_ferry_try_for_a_new_app_only() {
    let b = built();
    assert!(
        b.node_exporter_stderr
            .contains("hint: node_exporter is new here")
            && b.node_exporter_stderr.contains("ferry try "),
        "{}",
        b.node_exporter_stderr
    );
    // The same app again into the same OUT: no hint.
    let (_, stderr) = build(&b.node_exporter_project, &b.key, &b.node_exporter_out);
    assert!(!stderr.contains("hint:"), "{stderr}");
    // Another app's bundle in OUT does not count.
    let out = b.dir.join("out-mixed");
    fs::create_dir_all(&out).unwrap();
    fs::copy(&b.caddy, out.join(b.caddy.file_name().unwrap())).unwrap();
    let (_, stderr) = build(&b.node_exporter_project, &b.key, &out);
    assert!(
        stderr.contains("hint: node_exporter is new here"),
        "{stderr}"
    );
}

/// Staging and prod from one `ferry.toml`, on different ports: `[environments.NAME.service]`
/// and `[environments.NAME.health]` override the top-level ones with `{{ port }}` rendered
/// from that environment's values, and the installer installs the chosen `--env`'s unit.
/// `ferry try --env staging` tries staging's unit with staging's probe.
#[test]
fn staging_and_prod_run_on_different_ports_from_one_ferry_toml() {
    let b = built();
    let t0 = Instant::now();
    let project = project(&b.dir, "envs", NODE_EXPORTER, "node_exporter", &|t| {
        format!(
            "{t}\n[environments]\ndefault = \"prod\"\n\n\
             [environments.staging]\nport = 9102\n\
             [environments.staging.service]\nargs = [\"--web.listen-address=127.0.0.1:{{{{ port }}}}\"]\n\
             [environments.staging.health]\nprobe = \"http\"\nurl = \"http://127.0.0.1:{{{{ port }}}}/metrics\"\n\n\
             [environments.prod]\nport = 9100\n\
             [environments.prod.service]\nargs = [\"--web.listen-address=127.0.0.1:{{{{ port }}}}\"]\n\
             [environments.prod.health]\nprobe = \"http\"\nurl = \"http://127.0.0.1:{{{{ port }}}}/metrics\"\n"
        )
    });
    let (bundle, _) = build(&project, &b.key, &b.dir.join("out-envs"));
    for (env, port) in [("staging", 9102), ("prod", 9100)] {
        let (host, inside) = host_with(&bundle);
        install(&host, &inside, &["--env", env]);
        let exec_start = host.ok([
            "systemctl",
            "show",
            "--value",
            "-p",
            "ExecStart",
            "node_exporter.service",
        ]);
        assert!(
            exec_start.contains(&format!("--web.listen-address=127.0.0.1:{port}")),
            "{env}'s unit: {exec_start}"
        );
        let (status, _) = get(&host, &format!("http://127.0.0.1:{port}/metrics"));
        assert_eq!(status, 200, "{env} does not serve on {port}");
        let other = if port == 9100 { 9102 } else { 9100 };
        assert_eq!(
            get(&host, &format!("http://127.0.0.1:{other}/metrics")).0,
            0,
            "{env} also serves on {other}"
        );
    }
    // The trial installs staging and waits for, and compares, staging's probe.
    let (code, doc) = try_json(&bundle, &["--env", "staging"]);
    let t = &doc["result"]["trial"];
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(t["env"], "staging", "{doc:#}");
    assert_eq!(t["install"]["healthy"], true, "{doc:#}");
    assert_eq!(
        t["sandboxed"]["probes"][0]["target"], "http://127.0.0.1:9102/metrics",
        "{doc:#}"
    );
    assert_eq!(t["sandboxed"]["probes"][0]["status"], "HTTP 200", "{doc:#}");
    assert_eq!(t["differences"], Value::Array(Vec::new()), "{doc:#}");
    eprintln!(
        "services.rs: staging and prod case took {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
