//! A valid manifest and conforming generated files for app `hello`, shared by the unit
//! tests of the reader, the manifest checks and the conformance checks. The files are
//! what `templates/` render for the example's footprint, trimmed of comments.

use serde_json::{json, Value};

use crate::digest::Sha256;

pub const UNIT: &str = "\
[Unit]
Description=hello
After=network.target
StartLimitIntervalSec=60
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
ExecStart=/opt/hello/current/bin/hello -config /etc/hello/hello.toml
ExecReload=/bin/sh -c 'kill -s HUP \"$$MAINPID\"'
User=hello
Group=hello
Environment=\"GOMAXPROCS=2\"
LoadCredential=token:/etc/hello/token
Restart=on-failure
RestartSec=2s
RestartPreventExitStatus=78
TimeoutStartSec=30
TimeoutStopSec=20
LimitNOFILE=65536
UMask=0027
StateDirectory=hello
StateDirectoryMode=0750
LogsDirectory=hello
LogsDirectoryMode=0750
WorkingDirectory=/var/lib/hello
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
PrivateUsers=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
PrivateMounts=yes
PrivateIPC=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources @keyring @setuid
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
";

pub const SYSUSERS: &str = "\
# hello
g hello -
u hello -:hello \"hello service\" /var/lib/hello /usr/sbin/nologin
";

pub const TMPFILES: &str = "\
d /etc/hello 0750 root hello -
d /opt/hello 0755 root root -
d /opt/hello/releases 0755 root root -
d /var/lib/hello 0750 hello hello -
d /var/log/hello 0750 hello hello -
a+ /var/log/hello - - - - group:adm:r-x,default:group:adm:r--
";

pub const LOGROTATE: &str = "\
/var/log/hello/*.log {
    su hello hello
    daily
    maxsize 100M
    rotate 14
    missingok
    notifempty
    compress
    delaycompress
    dateext
    dateformat -%Y%m%d-%s
    create 0640 hello hello
    sharedscripts
    postrotate
        if /bin/systemctl --quiet is-active hello.service; then /bin/systemctl kill --kill-whom=main --signal=HUP hello.service; fi
    endscript
}
";

/// `(path, mode, role, data)` of a small valid payload, sorted by path.
pub fn payload() -> Vec<(&'static str, u32, &'static str, Vec<u8>)> {
    vec![
        ("bin/hello", 0o755, "binary", b"\x7fELF binary".to_vec()),
        (
            "config/prod/hello.toml",
            0o640,
            "config",
            b"listen = \"127.0.0.1:8080\"\n".to_vec(),
        ),
        ("logrotate/hello", 0o644, "logrotate", LOGROTATE.into()),
        ("systemd/prod/hello.service", 0o644, "unit", UNIT.into()),
        ("sysusers/hello.conf", 0o644, "sysusers", SYSUSERS.into()),
        ("tmpfiles/hello.conf", 0o644, "tmpfiles", TMPFILES.into()),
    ]
}

pub fn install_json() -> Value {
    let dir = |path: &str, owner: &str, group: &str, mode: &str, keep: &str| {
        json!({"path": path, "owner": owner, "group": group, "mode": mode, "acl": [],
            "default_acl": [], "keep": keep})
    };
    let mut log = dir("/var/log/hello", "hello", "hello", "0750", "data");
    log["acl"] = json!(["group:adm:r-x"]);
    log["default_acl"] = json!(["group:adm:r--"]);
    json!({
        "account": "new",
        "user": "hello", "group": "hello", "supplementary_groups": [],
        "service": {
            "type": "notify",
            "capabilities": [],
            "address_families": ["AF_INET", "AF_INET6", "AF_UNIX"],
            "private_network": false,
            "ip_address_allow": [],
            "listen": [],
            "writable_paths": ["/var/lib/hello", "/var/log/hello"],
            "reload_signal": "HUP"
        },
        "default_env": "prod",
        "environments": [{"name": "prod", "sandbox": {},
            "health": {"probe": "none", "timeout_secs": 30, "settle_secs": 2}}],
        "directories": [
            dir("/etc/hello", "root", "hello", "0750", "config"),
            dir("/opt/hello", "root", "root", "0755", "release"),
            dir("/opt/hello/releases", "root", "root", "0755", "release"),
            dir("/var/lib/hello", "hello", "hello", "0750", "data"),
            log,
        ],
        "configs": [{"env": "prod", "source": "config/prod/hello.toml", "dest": "/etc/hello/hello.toml",
            "owner": "root", "group": "hello", "mode": "0640", "on_upgrade": "preserve"}],
        "secrets": [{"name": "token", "path": "/etc/hello/token", "kind": "credential",
            "owner": "root", "group": "root", "mode": "0600"}],
        "log_files": {"reopen_signal": "HUP"}
    })
}

pub fn manifest_json(files: &[(&str, u32, &str, Vec<u8>)], sde: u64) -> Value {
    let files: Vec<_> = files
        .iter()
        .map(|(path, mode, role, data)| {
            json!({"path": path, "size": data.len(), "mode": format!("{mode:04o}"),
                "role": role, "sha256": Sha256::of(data).to_string()})
        })
        .collect();
    json!({
        "format_version": crate::manifest::FORMAT_VERSION,
        "app": {"name": "hello", "version": "1.0.0", "description": ""},
        "target": {"os": "linux", "arch": "amd64"},
        "build": {"go_version": "go1.26.8", "ferry_version": "0.1.0", "module": "example.com/hello",
            "package": ".", "source_revision": null, "source_dirty": false,
            "source_date_epoch": sde, "settings": []},
        "modules": [],
        "files": files,
        "install": install_json()
    })
}
