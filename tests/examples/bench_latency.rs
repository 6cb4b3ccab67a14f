//! Install latency on the network-less systemd host, for `scripts/bench`: from the start of
//! `ferry-install install` to healthy, minus the time the service itself takes to send
//! READY=1 (systemd's "Starting" to "Started" in the unit's journal).
//!
//! An example, not a test: it measures and prints, it asserts no timing. Run it as
//! `scripts/bench` does:
//!
//! ```sh
//! FERRY_BENCH_BUNDLE=out/hello-1.0.0-linux-amd64.tar.zst FERRY_BENCH_PUBKEY=release.pub \
//!   cargo run -p ferry-tests --example bench_latency
//! ```
//!
//! Knobs: `FERRY_BENCH_BUNDLE` (required; its `.minisig` must be beside it),
//! `FERRY_BENCH_PUBKEY` (required), `FERRY_BENCH_INSTALLER` (default: the static installer),
//! `FERRY_BENCH_RUNS` (default 5). Each run installs on the same host and then uninstalls
//! with `--purge`. One line `FERRY-BENCH {json}` on stdout carries every run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_tests::{static_installer, Host};
use serde_json::{json, Value};

const DIR: &str = "/root/ferry-bench";

/// systemd's catalog ids for "Starting UNIT..." and "Started UNIT."
const UNIT_STARTING: &str = "7d4958e842da4a758f6c1cdc7b36dcc5";
const UNIT_STARTED: &str = "39f53479d3a045ac8e11786248231fbf";

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(
        std::env::var_os(name)
            .unwrap_or_else(|| panic!("{name} is not set (see tests/examples/bench_latency.rs)")),
    )
}

/// The monotonic times (µs) of the unit's last "Starting" and the "Started" after it.
fn ready_span(host: &Host, unit: &str) -> Option<(u64, u64)> {
    let out = host.ok(["journalctl", "--no-pager", "-o", "json", "-u", unit]);
    let mut starting = None;
    let mut span = None;
    for line in out.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let id = v["MESSAGE_ID"].as_str().unwrap_or("");
        let t: Option<u64> = v["__MONOTONIC_TIMESTAMP"]
            .as_str()
            .and_then(|s| s.parse().ok());
        match (id, t) {
            (UNIT_STARTING, Some(t)) => {
                starting = Some(t);
                span = None;
            }
            (UNIT_STARTED, Some(t)) => span = starting.map(|s| (s, t)),
            _ => {}
        }
    }
    span
}

fn millis(d: u64) -> f64 {
    // Microseconds to milliseconds, for the report.
    #[allow(clippy::cast_precision_loss)]
    let ms = d as f64 / 1000.0;
    ms
}

fn main() {
    let bundle = env_path("FERRY_BENCH_BUNDLE");
    let pubkey = env_path("FERRY_BENCH_PUBKEY");
    let installer =
        std::env::var_os("FERRY_BENCH_INSTALLER").map_or_else(static_installer, PathBuf::from);
    let runs: usize = std::env::var("FERRY_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let name = bundle
        .file_name()
        .expect("bundle file name")
        .to_string_lossy()
        .into_owned();
    let app = name
        .split('-')
        .next()
        .expect("APP-VERSION-linux-ARCH.tar.zst")
        .to_owned();
    let unit = format!("{app}.service");

    let boot = Instant::now();
    let host = Host::boot().expect("booting the test host");
    let boot = boot.elapsed();
    host.copy_in(&installer, format!("{DIR}/ferry-install"))
        .unwrap();
    host.copy_in(&bundle, format!("{DIR}/{name}")).unwrap();
    host.copy_in(
        format!("{}.minisig", bundle.display()),
        format!("{DIR}/{name}.minisig"),
    )
    .unwrap();
    host.copy_in(&pubkey, format!("{DIR}/release.pub")).unwrap();

    // Timed inside the host, so entering its namespaces is not counted.
    let script = format!(
        "s=$(date +%s%N); {DIR}/ferry-install install {DIR}/{name} --pubkey {DIR}/release.pub --json >{DIR}/out.json 2>{DIR}/err.txt; \
         rc=$?; e=$(date +%s%N); echo \"$s $e $rc\""
    );
    let mut results = Vec::new();
    for run in 0..runs {
        let line = host.sh_ok(&script);
        let parts: Vec<u64> = line
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        let [start, end, rc] = parts[..] else {
            panic!("unexpected timing line {line:?}")
        };
        assert_eq!(
            rc,
            0,
            "install failed: {}\n{}",
            host.read_file(format!("{DIR}/err.txt")).unwrap_or_default(),
            host.journal(&unit)
        );
        // journald may write the "Started" line a moment after systemctl returned.
        let deadline = Instant::now() + Duration::from_secs(5);
        let (starting, started) = loop {
            if let Some(span) = ready_span(&host, &unit) {
                break span;
            }
            assert!(
                Instant::now() < deadline,
                "no Starting/Started pair for {unit}:\n{}",
                host.journal(&unit)
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let total_us = (end - start) / 1000;
        let ready_us = started.saturating_sub(starting);
        let overhead_us = total_us.saturating_sub(ready_us);
        eprintln!(
            "run {run}: install to healthy {:.0} ms, service to READY {:.0} ms, ferry-install {:.0} ms",
            millis(total_us),
            millis(ready_us),
            millis(overhead_us)
        );
        results.push(json!({"total_ms": millis(total_us), "ready_ms": millis(ready_us), "overhead_ms": millis(overhead_us)}));
        host.ok([
            format!("{DIR}/ferry-install"),
            "uninstall".into(),
            app.clone(),
            "--purge".into(),
        ]);
    }
    println!(
        "FERRY-BENCH {}",
        json!({"bundle": name, "boot_ms": boot.as_secs_f64() * 1000.0, "runs": results})
    );
}
