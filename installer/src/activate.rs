//! Starting a release and judging it: which system files a release installs, and the
//! restart plus health gate.

use ferry_format::manifest::{Manifest, Role};

use crate::health::{self, Unhealthy};
use crate::host::Host;

/// `(payload path, host destination, role)` for the unit(s), logrotate rules and tmpfiles
/// snippet. Destinations derive from validated names only, never from payload paths.
pub fn system_files(m: &Manifest) -> Vec<(String, String, Role)> {
    let app = &m.app.name;
    let inst = &m.install;
    let mut v = vec![(
        format!("systemd/{}", inst.unit),
        format!("/etc/systemd/system/{}", inst.unit),
        Role::Unit,
    )];
    if let Some(s) = &inst.socket_unit {
        v.push((
            format!("systemd/{s}"),
            format!("/etc/systemd/system/{s}"),
            Role::Unit,
        ));
    }
    for (role, src, dest) in [
        (
            Role::Logrotate,
            format!("logrotate/{app}"),
            format!("/etc/logrotate.d/{app}"),
        ),
        (
            Role::Tmpfiles,
            format!("tmpfiles/{app}.conf"),
            format!("/etc/tmpfiles.d/{app}.conf"),
        ),
    ] {
        if m.files
            .iter()
            .any(|f| f.role == role && f.path.as_str() == src)
        {
            v.push((src, dest, role));
        }
    }
    v
}

/// (Re)starts the service (the socket stays up, holding the port) and waits for health.
pub fn start_and_check(host: &Host, m: &Manifest) -> Result<(), Unhealthy> {
    let unit = m.install.unit.as_str();
    crate::install::step(&format!(
        "restarting {unit} and waiting for it to be healthy"
    ));
    if let Some(s) = &m.install.socket_unit {
        host.systemctl(&["start", s.as_str()])
            .map_err(|e| Unhealthy(format!("{e:#}")))?;
    }
    let _ = host.systemctl(&["reset-failed", unit]);
    let (ok, out) = host
        .systemctl_status(&["restart", unit])
        .map_err(|e| Unhealthy(format!("{e:#}")))?;
    if !ok {
        return Err(Unhealthy(format!("systemctl restart {unit} failed: {out}")));
    }
    let restarts: u64 = host
        .unit_properties(unit, &["NRestarts"])
        .ok()
        .and_then(|p| p.get("NRestarts").and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    health::wait(host, unit, &m.install.health, restarts)
}
