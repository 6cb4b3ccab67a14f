//! The test host itself: boots, is air-gapped, runs systemd, keeps enabled services across a
//! reboot. Needs root; never skipped: if systemd-nspawn does not work here, this fails and says
//! why.

use ferry_tests::Host;

const UNIT: &str = "\
[Unit]
Description=ferry smoke test service

[Service]
Type=exec
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
";

fn trimmed(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn host_is_air_gapped_runs_systemd_and_survives_reboot() {
    let mut host = Host::boot().expect("booting the test host (needs root and systemd-nspawn)");

    // Only loopback, and nowhere to route to.
    let links = host.ok(["ip", "-o", "link"]);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(names, ["lo"], "interfaces inside the host:\n{links}");
    for family in ["-4", "-6"] {
        let default = host.ok(["ip", family, "route", "show", "default"]);
        assert!(
            default.trim().is_empty(),
            "default route {family}: {default}"
        );
    }
    let out = host.exec(["ip", "route", "get", "192.0.2.1"]);
    assert!(
        !out.status.success(),
        "a route out exists: {}",
        trimmed(&out)
    );

    let state = trimmed(&host.exec(["systemctl", "is-system-running"]));
    assert!(
        state == "running" || state == "degraded",
        "system state {state}; failed units:\n{}",
        host.failed_units()
    );
    assert_eq!(host.ok(["hostname"]).trim(), "ferry-host");

    // Files written from outside are visible inside at once, and the other way round.
    host.write_file("/root/from-outside", "outside\n").unwrap();
    assert_eq!(host.ok(["cat", "/root/from-outside"]), "outside\n");
    host.ok(["sh", "-c", "echo inside > /root/from-inside"]);
    assert_eq!(host.read_file("/root/from-inside").unwrap(), "inside\n");
    // Absolute symlinks resolve inside the root, never to the outer machine.
    let run = host.path("/var/run/ferry-probe").unwrap();
    assert!(run.starts_with(host.root_path()), "{}", run.display());

    // A unit written from outside, enabled and started inside.
    host.write_file("/etc/systemd/system/ferry-smoke.service", UNIT)
        .unwrap();
    host.ok(["systemctl", "daemon-reload"]);
    host.ok(["systemctl", "enable", "--now", "ferry-smoke.service"]);
    assert!(
        host.is_active("ferry-smoke.service"),
        "{}",
        host.journal("ferry-smoke.service")
    );
    let boot_before = host.ok(["cat", "/proc/sys/kernel/random/boot_id"]);
    let pid1_before = host.pid();

    host.reboot().expect("rebooting the test host");

    assert_ne!(
        host.pid(),
        pid1_before,
        "the container's PID 1 is a new process"
    );
    assert_ne!(
        host.ok(["cat", "/proc/sys/kernel/random/boot_id"]),
        boot_before,
        "a new boot"
    );
    assert!(
        host.is_active("ferry-smoke.service"),
        "enabled service is not active after reboot:\n{}",
        host.journal("ferry-smoke.service")
    );
    assert_eq!(host.ok(["cat", "/root/from-outside"]), "outside\n");
    let boots = host.ok(["journalctl", "--list-boots", "--no-pager", "-q"]);
    assert_eq!(
        boots.lines().count(),
        2,
        "persistent journal of two boots:\n{boots}"
    );
}
