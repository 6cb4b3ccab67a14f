//! The health gate after a start: the unit must be active with no new restarts for the
//! settle time, and the probe the manifest declares must pass, within the timeout.
//!
//! An exec probe never runs as root: it runs as a transient systemd unit with the
//! service's own user, groups and sandbox (every identity and sandbox directive of the
//! installed unit, passed to `systemd-run` as properties), so it can do no more than the
//! service itself.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::install::{Argv, HttpUrl, Name, Probe};
use ferry_format::manifest::Manifest;

use crate::host::Host;

/// Largest HTTP response read (headers and body): the probe reads the whole answer, so
/// the service never sees a connection dropped mid-response.
const MAX_RESPONSE: u64 = 1 << 20;

/// Directives of the installed unit that an exec probe runs under: who it is and its
/// sandbox. `RemoveIPC=` is left out on purpose: when the probe's unit stops it would
/// remove the running service's IPC objects, which share its user.
const PROBE_PROPERTIES: &[&str] = &[
    "User",
    "Group",
    "SupplementaryGroups",
    "Environment",
    "WorkingDirectory",
    "UMask",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "PrivateUsers",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "DevicePolicy",
    "PrivateMounts",
    "PrivateIPC",
    "PrivateNetwork",
    "ProtectHostname",
    "ProtectClock",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectProc",
    "ProcSubset",
    "RestrictAddressFamilies",
    "IPAddressAllow",
    "IPAddressDeny",
    "RestrictNamespaces",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "KeyringMode",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "SystemCallErrorNumber",
];

fn http_get(url: &HttpUrl, body_contains: Option<&str>, timeout: Duration) -> Result<()> {
    let (addr, host, path) = url
        .parts()
        .ok_or_else(|| anyhow!("health url {url} is malformed"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // One write: `write!` on a socket would send each piece as its own segment.
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ferry-install\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes())?;
    // Read the whole answer (bounded) so the server finishes its response normally.
    let mut resp = Vec::new();
    (&mut s).take(MAX_RESPONSE).read_to_end(&mut resp)?;
    let line = resp
        .split(|&b| b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_owned())
        .unwrap_or_default();
    let code = line.split_whitespace().nth(1).unwrap_or("");
    if !(line.starts_with("HTTP/1.") && code.starts_with('2') && code.len() == 3) {
        bail!(
            "GET {url} answered {:?}",
            line.chars().take(120).collect::<String>()
        )
    }
    let Some(want) = body_contains else {
        return Ok(());
    };
    let body = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&resp[..0], |i| &resp[i + 4..]);
    if body
        .windows(want.len().max(1))
        .any(|w| w == want.as_bytes())
    {
        Ok(())
    } else {
        bail!(
            "GET {url} answered {:?} without {want:?} in the body",
            line.chars().take(120).collect::<String>()
        )
    }
}

/// Runs `argv` as a transient unit under the installed unit's identity and sandbox.
fn exec_probe(host: &Host, m: &Manifest, argv: &Argv, timeout: Duration) -> Result<()> {
    static RUN: AtomicU32 = AtomicU32::new(0);
    let l = m.app.name.layout();
    let text = host
        .read_file(&l.unit_file(), 1 << 20)?
        .ok_or_else(|| anyhow!("{} is missing", l.unit_file()))?;
    let text = String::from_utf8(text).context("the installed unit is not UTF-8")?;
    let unit = ferry_format::conform::parse_unit(&text)
        .map_err(|(line, p)| anyhow!("{}:{line}: {p}", l.unit_file()))?;
    let service = unit
        .section("Service")
        .ok_or_else(|| anyhow!("{} has no [Service]", l.unit_file()))?;
    if !service
        .all("User")
        .any(|e| e.value == m.install.user.as_str())
    {
        bail!(
            "{} does not name the service user; not running the probe",
            l.unit_file()
        );
    }
    let mut cmd = Command::new("systemd-run");
    cmd.args(["--quiet", "--wait", "--collect", "--service-type=exec"])
        .arg(format!(
            "--unit=ferry-probe-{}-{}-{}",
            m.app.name,
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ))
        .arg(format!(
            "--property=RuntimeMaxSec={}",
            timeout.as_secs().max(1)
        ));
    for e in &service.entries {
        if PROBE_PROPERTIES.contains(&e.key.as_str()) {
            cmd.arg(format!("--property={}={}", e.key, e.value));
        }
    }
    cmd.arg("--").args(argv.words());
    let out = cmd
        .output()
        .context("running the exec probe with systemd-run")?;
    if out.status.success() {
        Ok(())
    } else {
        bail!(
            "{} exited with {} {}",
            argv.words()[0],
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    }
}

/// The health of environment `env`'s release (its probe).
fn health<'m>(m: &'m Manifest, env: &Name) -> Result<&'m ferry_format::install::Health> {
    m.install
        .env(env)
        .map(|e| &e.health)
        .ok_or_else(|| anyhow!("environment {env} is not in the manifest"))
}

pub fn probe_once(host: &Host, m: &Manifest, env: &Name) -> Result<()> {
    let t = Duration::from_secs(2);
    let health = health(m, env)?;
    match &health.probe {
        Probe::None => Ok(()),
        Probe::Http { url, body_contains } => http_get(
            url,
            body_contains
                .as_ref()
                .map(ferry_format::install::Text::as_str),
            t,
        ),
        Probe::Tcp { address } => {
            let a = address
                .socket_addr()
                .ok_or_else(|| anyhow!("probe address {address} is malformed"))?;
            TcpStream::connect_timeout(&a, t)?;
            Ok(())
        }
        Probe::Exec { argv } => exec_probe(
            host,
            m,
            argv,
            Duration::from_secs(u64::from(health.timeout_secs)),
        ),
    }
}

/// Why a service was judged unhealthy.
#[derive(Debug)]
pub struct Unhealthy(pub String);

/// Waits for the unit to be active and the probe to pass, then for `settle_secs` with no
/// restart. `restarts_before` is `NRestarts` right after the start command returned.
pub fn wait(host: &Host, m: &Manifest, env: &Name, restarts_before: u64) -> Result<(), Unhealthy> {
    let health = health(m, env).map_err(|e| Unhealthy(e.to_string()))?;
    let unit = m.app.name.layout().unit_name();
    let deadline = Instant::now() + Duration::from_secs(u64::from(health.timeout_secs));
    let mut last = String::from("not yet checked");
    let mut healthy_since: Option<Instant> = None;
    loop {
        let props = host
            .unit_properties(&unit, &["ActiveState", "SubState", "NRestarts", "Result"])
            .map_err(|e| Unhealthy(e.to_string()))?;
        let get = |k: &str| props.get(k).cloned().unwrap_or_default();
        let restarts: u64 = get("NRestarts").parse().unwrap_or(0);
        if restarts > restarts_before {
            return Err(Unhealthy(format!(
                "{unit} restarted {} time(s) during the health check (result {})",
                restarts - restarts_before,
                get("Result")
            )));
        }
        let active = get("ActiveState");
        if active == "failed" {
            return Err(Unhealthy(format!(
                "{unit} failed (result {})",
                get("Result")
            )));
        }
        if active == "active" {
            match probe_once(host, m, env) {
                Ok(()) => {
                    let since = *healthy_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= Duration::from_secs(u64::from(health.settle_secs)) {
                        return Ok(());
                    }
                }
                Err(e) => {
                    healthy_since = None;
                    last = format!("probe: {e}");
                }
            }
        } else {
            healthy_since = None;
            last = format!("{unit} is {active}/{}", get("SubState"));
        }
        if Instant::now() >= deadline {
            return Err(Unhealthy(format!(
                "not healthy within {}s ({last})",
                health.timeout_secs
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_probe_reads_the_whole_answer() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let mut results = Vec::new();
            for code in ["200 OK", "503 Service Unavailable", "200 OK"] {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).unwrap();
                let body = "x".repeat(100_000);
                // The server sees whether the client read everything: a client that closes
                // early makes this write fail (reset), as Go logs it.
                let r = write!(
                    s,
                    "HTTP/1.1 {code}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                results.push(r.is_ok());
            }
            results
        });
        let url = HttpUrl::new(&format!("http://127.0.0.1:{port}/healthz")).unwrap();
        assert!(http_get(&url, Some("xxx"), Duration::from_secs(2)).is_ok());
        assert!(http_get(&url, None, Duration::from_secs(2)).is_err(), "503");
        let e = http_get(&url, Some("ready"), Duration::from_secs(2)).unwrap_err();
        assert!(e.to_string().contains("without \"ready\""), "{e}");
        assert_eq!(t.join().unwrap(), [true, true, true]);
    }
}
