//! Starting a release and judging it: which system files a release installs, and the
//! restart plus health gate.

use ferry_format::manifest::{Manifest, Role};

use crate::health::{self, Unhealthy};
use crate::host::Host;

/// `(payload path, host destination, role)` for the unit(s), logrotate rules and tmpfiles
/// snippet. Destinations derive from validated names only, never from payload paths.
pub fn system_files(m: &Manifest) -> Vec<(String, String, Role)> {
    let l = m.app.name.layout();
    let has = |p: &ferry_format::EntryPath| m.file(p.as_str()).is_some();
    l.system_files(
        m.install.service.socket_activated(),
        has(&l.payload_tmpfiles()),
        m.install.log_files.is_some(),
    )
    .into_iter()
    .map(|(src, dest)| {
        let role = m.file(src.as_str()).map_or(Role::Doc, |f| f.role);
        (src.to_string(), dest.to_string(), role)
    })
    .collect()
}

/// (Re)starts the service (the socket stays up, holding the port) and waits for health.
pub fn start_and_check(host: &Host, m: &Manifest) -> Result<(), Unhealthy> {
    let l = m.app.name.layout();
    let unit_name = l.unit_name();
    let unit = unit_name.as_str();
    crate::install::step(&format!(
        "restarting {unit} and waiting for it to be healthy"
    ));
    if m.install.service.socket_activated() {
        host.systemctl(&["start", &l.socket_name()])
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
