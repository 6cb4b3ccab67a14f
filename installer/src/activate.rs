//! Starting a release and judging it: which system files a release installs, and the
//! restart plus health gate.

use ferry_format::install::{HostPath, Name};
use ferry_format::manifest::Manifest;
use ferry_format::EntryPath;

use crate::health::{self, Unhealthy};
use crate::host::Host;
use crate::steps::step;

/// `(payload member, host destination)` of the unit(s), logrotate rules and tmpfiles
/// snippet of environment `env`. Destinations derive from the app's name
/// ([`ferry_format::layout`]), never from payload paths.
pub fn system_files(m: &Manifest, env: &Name) -> Vec<(EntryPath, HostPath)> {
    let l = m.app.name.layout();
    l.system_files(
        env,
        m.install.service.socket_activated(),
        m.file(l.payload_tmpfiles().as_str()).is_some(),
        m.install.log_files.is_some(),
    )
}

/// (Re)starts the service (the socket stays up, holding the port) and waits for it to be
/// healthy as environment `env` judges it.
pub fn start_and_check(host: &Host, m: &Manifest, env: &Name) -> Result<(), Unhealthy> {
    let l = m.app.name.layout();
    let unit = l.unit_name();
    step(&format!(
        "restarting {unit} and waiting for it to be healthy"
    ));
    if m.install.service.socket_activated() {
        host.systemctl(&["start", &l.socket_name()])
            .map_err(|e| Unhealthy(format!("{e:#}")))?;
    }
    let _ = host.systemctl(&["reset-failed", &unit]);
    let (ok, out) = host
        .systemctl_status(&["restart", &unit])
        .map_err(|e| Unhealthy(format!("{e:#}")))?;
    if !ok {
        return Err(Unhealthy(format!("systemctl restart {unit} failed: {out}")));
    }
    let restarts: u64 = host
        .unit_properties(&unit, &["NRestarts"])
        .ok()
        .and_then(|p| p.get("NRestarts").and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    health::wait(host, m, env, restarts)
}
