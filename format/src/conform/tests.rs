//! Table tests of the conformance checks: the shared fixture's files pass, and each way a
//! file can say more than the manifest is refused, naming the rule and the line.

use serde_json::{json, Value};

use super::*;
use crate::testdata::{self, LOGROTATE, SYSUSERS, TMPFILES, UNIT};

fn manifest(edit: impl FnOnce(&mut Value)) -> Manifest {
    let mut files = testdata::payload();
    let mut v = testdata::manifest_json(&files, 0);
    edit(&mut v);
    if v["install"]["service"]["listen"]
        .as_array()
        .is_some_and(|l| !l.is_empty())
    {
        files.push(("systemd/hello.socket", 0o644, "unit", SOCKET.into()));
        files.sort_by(|a, b| a.0.cmp(b.0));
        let install = v["install"].clone();
        v = testdata::manifest_json(&files, 0);
        v["install"] = install;
    }
    let m: Manifest = serde_json::from_value(v).expect("the schema accepts the edit");
    m.validate(&crate::Limits::default())
        .expect("the edited manifest is valid");
    m
}

const SOCKET: &str = "[Unit]\nDescription=hello (listening sockets)\n\n[Socket]\nListenStream=127.0.0.1:8080\nNoDelay=yes\n\n[Install]\nWantedBy=sockets.target\n";

#[derive(Clone, Copy)]
enum File {
    Unit,
    Socket,
    Sysusers,
    Tmpfiles,
    Logrotate,
}

fn files_with(file: File, text: &str) -> [String; 5] {
    let mut f = [
        UNIT.to_owned(),
        SOCKET.to_owned(),
        SYSUSERS.to_owned(),
        TMPFILES.to_owned(),
        LOGROTATE.to_owned(),
    ];
    f[file as usize] = text.to_owned();
    f
}

fn run(m: &Manifest, f: &[String; 5]) -> Result<(), ConformError> {
    check(
        m,
        &Generated {
            units: vec![(crate::install::Name::new("prod").unwrap(), f[0].as_bytes())],
            socket: Some(f[1].as_bytes()),
            sysusers: Some(f[2].as_bytes()),
            tmpfiles: Some(f[3].as_bytes()),
            logrotate: Some(f[4].as_bytes()),
        },
    )
}

fn base(file: File) -> &'static str {
    match file {
        File::Unit => UNIT,
        File::Socket => SOCKET,
        File::Sysusers => SYSUSERS,
        File::Tmpfiles => TMPFILES,
        File::Logrotate => LOGROTATE,
    }
}

/// `old` replaced by `new` in the fixture file (the text must be there).
fn edited(file: File, old: &str, new: &str) -> String {
    let b = base(file);
    assert!(b.contains(old), "{old:?} is not in the fixture");
    b.replacen(old, new, 1)
}

#[test]
fn the_fixture_conforms() {
    run(&manifest(|_| {}), &files_with(File::Unit, UNIT)).unwrap();
}

/// Each attack as a template override or a re-signed payload would make it, refused
/// with the words its error must contain.
#[test]
fn files_that_say_more_are_refused() {
    let cases: &[(File, &str, &str, &str)] = &[
        // The unit: identity.
        (
            File::Unit,
            "User=hello",
            "User=root",
            "User=root: the manifest's user is hello",
        ),
        (File::Unit, "User=hello\n", "", "User= is missing"),
        (File::Unit, "Group=hello", "Group=shadow", "Group=shadow"),
        (
            File::Unit,
            "Group=hello",
            "Group=hello\nSupplementaryGroups=disk sudo",
            "SupplementaryGroups= says disk sudo",
        ),
        (
            File::Unit,
            "Group=hello",
            "Group=hello\nDynamicUser=yes",
            "DynamicUser= is not allowed",
        ),
        // The unit: what runs.
        (
            File::Unit,
            "ExecStart=/opt/hello/current/bin/hello",
            "ExecStart=+/opt/hello/current/bin/hello",
            "prefix is not allowed",
        ),
        (
            File::Unit,
            "ExecStart=/opt/hello/current/bin/hello",
            "ExecStart=!!/opt/hello/current/bin/hello",
            "prefix is not allowed",
        ),
        (
            File::Unit,
            "Type=notify",
            "Type=notify\nExecStartPre=+/bin/sh -c 'id'",
            "prefix is not allowed",
        ),
        (
            File::Unit,
            "Type=notify",
            "Type=notify\nExecStartPre=/bin/sh -c 'id'",
            "only programs under /opt/hello/current/",
        ),
        (
            File::Unit,
            "Type=notify",
            "Type=notify\nExecStopPost=/opt/hello/current/../../../usr/bin/x",
            "only programs under",
        ),
        (
            File::Unit,
            "Type=notify",
            "Type=notify\nExecStart=/opt/hello/current/bin/hello",
            "ExecStart= appears twice",
        ),
        (
            File::Unit,
            "ExecReload=/bin/sh -c 'kill -s HUP \"$$MAINPID\"'",
            "ExecReload=/bin/sh -c 'cp /bin/sh /tmp; chmod 4755 /tmp/sh'",
            "only programs under",
        ),
        (
            File::Unit,
            "Type=notify",
            "Type=exec",
            "Type=exec: the manifest declares notify",
        ),
        // The unit: sandbox and floor.
        (
            File::Unit,
            "NoNewPrivileges=yes\n",
            "",
            "NoNewPrivileges=yes is missing",
        ),
        (
            File::Unit,
            "NoNewPrivileges=yes",
            "NoNewPrivileges=no",
            "ferry requires NoNewPrivileges=yes",
        ),
        (
            File::Unit,
            "ProtectSystem=strict",
            "ProtectSystem=full",
            "ProtectSystem=full",
        ),
        (File::Unit, "ProcSubset=pid\n", "", "ProcSubset= is absent"),
        (
            File::Unit,
            "ProtectProc=invisible",
            "ProtectProc=default",
            "service.sandbox.protect_proc",
        ),
        (
            File::Unit,
            "SystemCallFilter=~@privileged @resources @keyring @setuid\n",
            "",
            "service.sandbox.system_call_filter",
        ),
        (
            File::Unit,
            "CapabilityBoundingSet=",
            "CapabilityBoundingSet=CAP_SYS_ADMIN",
            "CapabilityBoundingSet= says CAP_SYS_ADMIN",
        ),
        (
            File::Unit,
            "AmbientCapabilities=\n",
            "",
            "AmbientCapabilities= is missing",
        ),
        (
            File::Unit,
            "CapabilityBoundingSet=",
            "CapabilityBoundingSet=~CAP_SYS_ADMIN",
            "deny lists (~)",
        ),
        (
            File::Unit,
            "CapabilityBoundingSet=\n",
            "CapabilityBoundingSet=\nCapabilityBoundingSet=CAP_SETUID\n",
            "appears twice",
        ),
        (
            File::Unit,
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_PACKET",
            "RestrictAddressFamilies= says",
        ),
        (
            File::Unit,
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n",
            "",
            "RestrictAddressFamilies= is missing",
        ),
        (
            File::Unit,
            "ProtectHostname=yes",
            "ProtectHostname=yes\nPrivateNetwork=yes",
            "PrivateNetwork=yes: the manifest declares no",
        ),
        (
            File::Unit,
            "ProtectHostname=yes",
            "ProtectHostname=yes\nIPAddressDeny=any",
            "IPAddressDeny=any",
        ),
        // The unit: files root reads for it, paths it may write.
        (
            File::Unit,
            "LoadCredential=token:/etc/hello/token",
            "LoadCredential=token:/etc/shadow",
            "only the manifest's credential secrets",
        ),
        (
            File::Unit,
            "UMask=0027",
            "UMask=0027\nEnvironmentFile=/etc/shadow",
            "only the manifest's environment-file secrets",
        ),
        (
            File::Unit,
            "UMask=0027",
            "UMask=0027\nReadWritePaths=/etc",
            "ReadWritePaths=/etc: not one of",
        ),
        (
            File::Unit,
            "StateDirectory=hello",
            "StateDirectory=hello ../../etc",
            "StateDirectory=../../etc",
        ),
        (
            File::Unit,
            "StateDirectory=hello",
            "StateDirectory=other",
            "StateDirectory=other",
        ),
        (
            File::Unit,
            "WorkingDirectory=/var/lib/hello",
            "WorkingDirectory=/root",
            "must be under the app's own prefixes",
        ),
        (
            File::Unit,
            "UMask=0027",
            "UMask=0027\nBindPaths=/etc/shadow:/var/lib/hello/shadow",
            "BindPaths= is not allowed",
        ),
        (
            File::Unit,
            "UMask=0027",
            "UMask=0027\nOOMScoreAdjust=-1000",
            "OOMScoreAdjust=-1000: value not accepted",
        ),
        (
            File::Unit,
            "UMask=0027",
            "UMask=0027\nPAMName=login",
            "PAMName= is not allowed",
        ),
        // The unit: structure.
        (
            File::Unit,
            "[Install]\nWantedBy=multi-user.target",
            "[Install]\nWantedBy=multi-user.target\nAlias=ssh.service",
            "Alias= is not allowed in [Install]",
        ),
        (
            File::Unit,
            "[Install]\nWantedBy=multi-user.target",
            "[Install]\nAlso=evil.service",
            "Also= is not allowed",
        ),
        (
            File::Unit,
            "WantedBy=multi-user.target",
            "WantedBy=rescue.target",
            "only multi-user.target",
        ),
        (
            File::Unit,
            "[Install]",
            "[Path]\nPathChanged=/etc/shadow\n[Install]",
            "section [Path] is not allowed",
        ),
        (
            File::Unit,
            "After=network.target",
            "After=network.target\nOnFailure=evil.service",
            "OnFailure= is not allowed",
        ),
        (
            File::Unit,
            "After=network.target",
            "After=network.target\nWants=evil.service",
            "may pull in only",
        ),
        (
            File::Unit,
            "Description=hello",
            "Description=hello \\",
            "line continuations",
        ),
        (
            File::Unit,
            "[Unit]\n",
            "Foo=bar\n[Unit]\n",
            "directive before the first section",
        ),
        (
            File::Unit,
            "[Install]",
            "[Service]\n[Install]",
            "appears twice",
        ),
        (
            File::Unit,
            "Description=hello",
            "Description=a\u{1b}[2J",
            "control character",
        ),
        // The socket.
        (
            File::Socket,
            "ListenStream=127.0.0.1:8080",
            "ListenStream=0.0.0.0:22",
            "ListenStream= says 0.0.0.0:22",
        ),
        (
            File::Socket,
            "NoDelay=yes",
            "NoDelay=yes\nSymlinks=/etc/cron.d/x",
            "Symlinks= is not allowed",
        ),
        (
            File::Socket,
            "NoDelay=yes",
            "NoDelay=yes\nExecStartPre=/bin/sh",
            "ExecStartPre= is not allowed in [Socket]",
        ),
        (
            File::Socket,
            "NoDelay=yes",
            "NoDelay=yes\nService=ssh.service",
            "Service= is not allowed",
        ),
        // sysusers.
        (File::Sysusers, "g hello -", "g hello 0", "no fixed gid"),
        (File::Sysusers, "-:hello", "0:hello", "no fixed uid"),
        (
            File::Sysusers,
            "/usr/sbin/nologin",
            "/bin/bash",
            "no login shell",
        ),
        (
            File::Sysusers,
            "g hello -\n",
            "g hello -\nu root2 0 \"x\" /root /bin/sh\n",
            "only the service user",
        ),
        (
            File::Sysusers,
            "g hello -\n",
            "g hello -\nm hello shadow\n",
            "group shadow is not one of the manifest's supplementary groups",
        ),
        (
            File::Sysusers,
            "g hello -\n",
            "g hello -\nm www-data hello\n",
            "only memberships of hello",
        ),
        (
            File::Sysusers,
            "g hello -\n",
            "g hello -\nr - 0-100\n",
            "line type \"r\"",
        ),
        (
            File::Sysusers,
            "g hello -\n",
            "",
            "must create user hello and group hello",
        ),
        // tmpfiles.
        (
            File::Tmpfiles,
            "d /etc/hello 0750 root hello -",
            "z /etc/shadow 0644 root root -",
            "/etc/shadow is not one of the manifest's directories",
        ),
        (
            File::Tmpfiles,
            "d /etc/hello 0750 root hello -",
            "d /etc/hello 0777 hello hello -",
            "expected \"d /etc/hello 0750 root hello -\"",
        ),
        (
            File::Tmpfiles,
            "d /etc/hello 0750 root hello -",
            "L /etc/hello - - - - /etc",
            "line type \"L\"",
        ),
        (
            File::Tmpfiles,
            "d /etc/hello 0750 root hello -",
            "d /etc/hello 0750 root hello 1d",
            "expected",
        ),
        (
            File::Tmpfiles,
            "group:adm:r-x,",
            "group:adm:rwx,",
            "the manifest's ACL of /var/log/hello",
        ),
        (
            File::Tmpfiles,
            "group:adm:r-x,",
            "user:root:rwx,group:adm:r-x,",
            "the manifest's ACL",
        ),
        (
            File::Tmpfiles,
            "d /etc/hello 0750 root hello -\n",
            "d /etc/hello 0750 root hello -\nd /etc/hello 0750 root hello -\n",
            "a second d line",
        ),
        // logrotate.
        (
            File::Logrotate,
            "/var/log/hello/*.log {",
            "/etc/shadow {",
            "only one block",
        ),
        (
            File::Logrotate,
            "su hello hello",
            "su root root",
            "must act as hello hello",
        ),
        (
            File::Logrotate,
            "    su hello hello\n",
            "",
            "\"su hello hello\" is missing",
        ),
        (
            File::Logrotate,
            "daily",
            "daily\n    olddir /etc",
            "no olddir",
        ),
        (
            File::Logrotate,
            "daily",
            "daily\n    compresscmd /bin/sh",
            "not accepted",
        ),
        (
            File::Logrotate,
            "daily",
            "daily\n    prerotate\n        chmod 666 /etc/shadow\n    endscript",
            "not accepted",
        ),
        (
            File::Logrotate,
            "--signal=HUP hello.service; fi",
            "--signal=HUP hello.service; fi\n        chmod 666 /etc/shadow",
            "postrotate must be exactly",
        ),
        (
            File::Logrotate,
            "create 0640 hello hello",
            "create 0666 hello hello",
            "not world-writable",
        ),
        (
            File::Logrotate,
            "}\n",
            "}\n/etc/*.conf {\n}\n",
            "nothing may follow",
        ),
        (
            File::Logrotate,
            "daily",
            "daily\n    include /etc/evil",
            "not accepted",
        ),
    ];
    let plain = manifest(|_| {});
    let socket = manifest(|v| {
        v["install"]["service"]["listen"] = json!(["127.0.0.1:8080"]);
    });
    for (file, old, new, want) in cases {
        let m = if matches!(file, File::Socket) {
            &socket
        } else {
            &plain
        };
        let text = edited(*file, old, new);
        let e = match run(m, &files_with(*file, &text)) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("accepted: {old:?} -> {new:?}"),
        };
        assert!(e.contains(want), "{old:?} -> {new:?}: {e}");
        assert!(!e.contains('\n'), "one line: {e:?}");
    }
}

/// What the manifest declares, the files may say: relaxations, capabilities, groups,
/// sockets, IP allowances; and a relaxation the manifest does not declare is refused.
#[test]
fn declared_footprints_are_accepted_and_only_them() {
    let relaxed = manifest(|v| {
        v["install"]["environments"][0]["sandbox"] =
            json!({"proc_subset": "all", "protect_proc": "default"});
    });
    let unit = UNIT
        .replace("ProcSubset=pid\n", "")
        .replace("ProtectProc=invisible", "ProtectProc=default");
    run(&relaxed, &files_with(File::Unit, &unit)).unwrap();
    run(&relaxed, &files_with(File::Unit, UNIT)).unwrap_err();

    let caps = manifest(|v| {
        v["install"]["service"]["capabilities"] = json!(["CAP_NET_BIND_SERVICE"]);
        v["install"]["environments"][0]["sandbox"] = json!({"private_users": "no"});
        v["install"]["supplementary_groups"] = json!(["ssl-cert"]);
        v["install"]["service"]["ip_address_allow"] = json!(["localhost", "10.0.0.0/8"]);
    });
    let unit = UNIT
        .replace("CapabilityBoundingSet=", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE")
        .replace("AmbientCapabilities=", "AmbientCapabilities=CAP_NET_BIND_SERVICE")
        .replace("PrivateUsers=yes\n", "PrivateUsers=no\n")
        .replace("Group=hello\n", "Group=hello\nSupplementaryGroups=ssl-cert\n")
        .replace("LockPersonality=yes", "LockPersonality=yes\nIPAddressDeny=any\nIPAddressAllow=localhost\nIPAddressAllow=10.0.0.0/8");
    let sysusers = format!("{SYSUSERS}m hello ssl-cert\n");
    let mut f = files_with(File::Unit, &unit);
    f[File::Sysusers as usize] = sysusers;
    run(&caps, &f).unwrap();

    let socket = manifest(|v| {
        v["install"]["service"]["listen"] = json!(["127.0.0.1:8080"]);
    });
    let unit = UNIT.replace(
        "After=network.target",
        "After=network.target\nRequires=hello.socket\nAfter=hello.socket",
    );
    run(&socket, &files_with(File::Unit, &unit)).unwrap();

    let no_reload = manifest(|v| {
        v["install"]["service"]["reload_signal"] = json!(null);
    });
    let e = run(&no_reload, &files_with(File::Unit, UNIT)).unwrap_err();
    assert!(e.to_string().contains("no reload signal"), "{e}");
}

#[test]
fn an_existing_account_creates_nothing() {
    let m = manifest(|v| {
        v["install"]["account"] = json!("existing");
        v["install"]["user"] = json!("www-data");
        v["install"]["group"] = json!("www-data");
    });
    let unit = UNIT
        .replace("User=hello", "User=www-data")
        .replace("Group=hello", "Group=www-data");
    let logrotate = LOGROTATE.replace("hello hello", "www-data www-data");
    let mut f = files_with(File::Unit, &unit);
    f[File::Logrotate as usize] = logrotate;
    f[File::Sysusers as usize] = "# nothing to create\n".into();
    run(&m, &f).unwrap();
    f[File::Sysusers as usize] = "u www-data - \"x\" /var/lib/hello /usr/sbin/nologin\n".into();
    let e = run(&m, &f).unwrap_err();
    assert!(e.to_string().contains("nothing may be created"), "{e}");
}

#[test]
fn words_split_like_the_tools() {
    assert_eq!(
        words("u hello -:hello \"hello \\\"x\\\" service\" /var/lib/hello").unwrap(),
        [
            "u",
            "hello",
            "-:hello",
            "hello \"x\" service",
            "/var/lib/hello"
        ]
    );
    for bad in ["a \"b", "a b\"c\"", "a 'b'", "\"x\"y"] {
        assert!(words(bad).is_err(), "{bad}");
    }
}
