//! The health gate after a start: the unit must be active with no new restarts for the
//! settle time, and the probe the manifest declares must pass, within the timeout.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use ferry_format::install::{Health, Probe};

use crate::host::Host;

/// Resolves `host:port` without DNS: IP literals and `localhost` only, since a static
/// binary must not use NSS and an air-gapped host has no resolver worth trusting.
pub fn socket_addr(hostport: &str) -> Result<SocketAddr> {
    let fixed = hostport
        .strip_prefix("localhost:")
        .map_or_else(|| hostport.to_owned(), |port| format!("127.0.0.1:{port}"));
    if let Ok(a) = fixed.parse::<SocketAddr>() {
        return Ok(a);
    }
    bail!("health address {hostport:?} must be an IP literal or localhost with a port")
}

fn http_get(url: &str, timeout: Duration) -> Result<()> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("health url {url:?} must start with http://"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = socket_addr(hostport)?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nUser-Agent: ferry-install\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let k = s.read(&mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let line = String::from_utf8_lossy(&head[..n]);
    let code = line.split_whitespace().nth(1).unwrap_or("");
    if line.starts_with("HTTP/1.") && code.starts_with('2') && code.len() == 3 {
        Ok(())
    } else {
        bail!("GET {url} answered {:?}", line.lines().next().unwrap_or(""))
    }
}

pub fn probe_once(probe: &Probe) -> Result<()> {
    let t = Duration::from_secs(2);
    match probe {
        Probe::None => Ok(()),
        Probe::Http { url } => http_get(url.as_str(), t),
        Probe::Tcp { address } => {
            TcpStream::connect_timeout(&socket_addr(address.as_str())?, t)?;
            Ok(())
        }
        Probe::Exec { argv } => {
            let (prog, args) = argv
                .words()
                .split_first()
                .ok_or_else(|| anyhow!("empty exec probe"))?;
            let st = Command::new(prog).args(args).status()?;
            if st.success() {
                Ok(())
            } else {
                bail!("{prog} exited with {st}")
            }
        }
    }
}

/// Why a service was judged unhealthy.
#[derive(Debug)]
pub struct Unhealthy(pub String);

/// Waits for the unit to be active and the probe to pass, then for `settle_secs` with no
/// restart. `restarts_before` is `NRestarts` right after the start command returned.
pub fn wait(
    host: &Host,
    unit: &str,
    health: &Health,
    restarts_before: u64,
) -> Result<(), Unhealthy> {
    let deadline = Instant::now() + Duration::from_secs(u64::from(health.timeout_secs));
    let mut last = String::from("not yet checked");
    let mut healthy_since: Option<Instant> = None;
    loop {
        let props = host
            .unit_properties(unit, &["ActiveState", "SubState", "NRestarts", "Result"])
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
            match probe_once(&health.probe) {
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
    fn addresses_without_dns() {
        assert_eq!(socket_addr("127.0.0.1:80").unwrap().port(), 80);
        assert_eq!(
            socket_addr("localhost:8080").unwrap().to_string(),
            "127.0.0.1:8080"
        );
        assert!(socket_addr("[::1]:9").is_ok());
        assert!(socket_addr("example.com:80").is_err());
        assert!(socket_addr("127.0.0.1").is_err());
    }

    #[test]
    fn http_probe_against_a_local_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            for code in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).unwrap();
                write!(s, "HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").unwrap();
            }
        });
        let url = format!("http://127.0.0.1:{port}/healthz");
        assert!(http_get(&url, Duration::from_secs(2)).is_ok());
        assert!(http_get(&url, Duration::from_secs(2)).is_err());
        t.join().unwrap();
    }
}
