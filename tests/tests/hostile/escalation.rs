//! The privilege-escalation corpus: bundles and hosts that would have let a signer, a
//! `ferry.toml` author or a service user take root on the host (issue 11), each refused
//! with its exit code, one error line naming the rule, and the fake root unchanged.
//!
//! Most cases are **validly signed by the trusted key**: the signature is fine, the content
//! is the attack. Payload edits update the manifest's digest and size before re-signing,
//! so what refuses them is the conformance check (exit 3) or the host's policy (exit 4),
//! never a digest mismatch. Host cases prepare the fake root first (a planted journal, a
//! weak trust store, an existing directory or account).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use ferry_format::minisign::{KeyId, SecretKey};
use ferry_format::trust::{revocation_statement, rotation_statement};
use ferry_format::Sha256;
use serde_json::{json, Value};

use super::corpus::{
    comment, compress, file_entry, manifest_bytes, no_tar_edit, sign_with, Base, Case,
};

/// A case whose payload member `path` is edited as text (manifest entry updated) and whose
/// manifest is edited by `manifest`, validly re-signed.
fn payload(
    name: &str,
    code: i32,
    message: &'static str,
    path: &'static str,
    edit: impl Fn(&str) -> String + Send + Sync + 'static,
    manifest: impl Fn(&mut Value) + Send + Sync + 'static,
) -> Case {
    Case::new(format!("escalate/{name}"), code, message, move |b| {
        let mut t = b.tar.clone();
        let old = String::from_utf8(t.member(path).data.clone()).expect("a text member");
        let new = edit(&old);
        assert_ne!(new, old, "{path}: the edit changed nothing");
        let mut v = b.manifest_json.clone();
        let e = file_entry(&mut v, path);
        e["size"] = json!(new.len());
        e["sha256"] = json!(Sha256::of(new.as_bytes()).to_string());
        manifest(&mut v);
        t.member(path).set_data(new.into_bytes());
        let m = manifest_bytes(&v);
        let sig = sign_with(&b.secret, &m, &comment(&m));
        t.members[0].set_data(m);
        t.members[1].set_data(sig);
        compress(&t.to_bytes())
    })
}

/// A line edit of the unit (`old` must be in it).
fn unit(name: &str, message: &'static str, old: &'static str, new: &'static str) -> Case {
    payload(
        name,
        3,
        message,
        "systemd/prod/hello.service",
        move |u| replace(u, old, new),
        |_| {},
    )
}

fn replace(text: &str, old: &str, new: &str) -> String {
    assert!(text.contains(old), "{old:?} is not in the generated file");
    text.replacen(old, new, 1)
}

/// A manifest-only edit, re-signed: for what the policy judges before any payload byte.
fn manifest(
    name: &str,
    code: i32,
    message: &'static str,
    edit: impl Fn(&mut Value) + Send + Sync + 'static,
) -> Case {
    Case::signed(format!("escalate/{name}"), code, message, edit, no_tar_edit)
}

/// Writes `text` to `rel` in the root (parents made 0755, the file `mode`).
pub fn put(root: &Path, rel: &str, text: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    for a in p.parent().unwrap().ancestors() {
        if a == root || !a.starts_with(root) {
            break;
        }
        fs::set_permissions(a, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// The release key as the host's only trusted key.
fn host_trusts_release_key(b: &Base, root: &Path) {
    put(
        root,
        "etc/ferry/keys/release.pub",
        &fs::read(&b.pubkey).unwrap(),
        0o644,
    );
}

fn policy(text: &'static str) -> impl Fn(&Base, &Path) + Send + Sync {
    move |_, root| put(root, "etc/ferry/policy.toml", text.as_bytes(), 0o644)
}

fn v2(v: &mut Value) {
    v["app"]["version"] = json!("2.0.0");
}

#[allow(clippy::too_many_lines)]
pub fn cases() -> Vec<Case> {
    let mut v = vec![
        // --- Names and paths: the app's prefixes must be its own.
        manifest("app-name-cron.d", 3, "app name \"cron.d\" is reserved", |v| v["app"]["name"] = json!("cron.d")),
        manifest("app-name-ferry", 3, "app name \"ferry\" is reserved", |v| v["app"]["name"] = json!("ferry")),
        manifest("app-name-systemd", 3, "app name \"systemd\" is reserved", |v| v["app"]["name"] = json!("systemd")),
        manifest("config-into-the-trust-store", 3, "config /etc/ferry/keys/backdoor.pub is not directly in /etc/hello", |v| {
            v["install"]["configs"][0]["dest"] = json!("/etc/ferry/keys/backdoor.pub");
        }),
        manifest("config-into-a-subdirectory", 3, "is not directly in /etc/hello", |v| {
            v["install"]["configs"][0]["dest"] = json!("/etc/hello/cron.d/job");
        }),
        manifest("directory-over-ferrys-state", 3, "directory /var/lib/ferry is outside the app's own prefixes", |v| {
            v["install"]["directories"][3]["path"] = json!("/var/lib/ferry");
        }),
        manifest("writable-path-outside", 3, "writable path /etc is outside", |v| {
            v["install"]["service"]["writable_paths"] = json!(["/etc"]);
        }),
        manifest("description-injects-a-directive", 3, "control character", |v| {
            v["app"]["description"] = json!("hello\nExecStartPre=+/bin/sh -c 'chmod 4755 /bin/sh'");
        }),
        manifest("acl-grant-to-root", 3, "names root, which needs no grant", |v| {
            v["install"]["directories"][4]["acl"] = json!(["user:root:rwx"]);
        }),
        manifest("listen-socket-outside-run", 3, "is not under /run/hello", |v| {
            v["install"]["service"]["listen"] = json!(["/etc/cron.d/hello.sock"]);
        }),
        // --- The unit says more than the manifest (re-signed): refused by conformance.
        unit("unit-user-root", "User=root: the manifest's user is hello", "User=hello", "User=root"),
        unit("unit-no-user", "User= is missing", "User=hello\n", ""),
        unit("unit-group-shadow", "Group=shadow", "Group=hello", "Group=shadow"),
        unit("unit-supplementary-groups", "SupplementaryGroups= says disk root shadow", "Group=hello", "Group=hello\nSupplementaryGroups=root shadow disk"),
        unit("unit-exec-start-pre-plus", "prefix is not allowed", "Type=notify", "Type=notify\nExecStartPre=+/bin/sh -c 'chmod 4755 /bin/sh'"),
        unit("unit-exec-start-bang-bang", "prefix is not allowed", "ExecStart=/opt/hello", "ExecStart=!!/opt/hello"),
        unit("unit-exec-start-post-shell", "only programs under /opt/hello/current/", "Type=notify", "Type=notify\nExecStartPost=/bin/sh -c 'id'"),
        unit("unit-exec-reload-other", "only programs under", "ExecReload=/bin/sh -c 'kill -s HUP \"$$MAINPID\"'", "ExecReload=/bin/sh -c 'cp /bin/sh /var/lib/hello/sh; chmod 4755 /var/lib/hello/sh'"),
        unit("unit-capabilities", "CapabilityBoundingSet= says CAP_SYS_ADMIN", "CapabilityBoundingSet=\n", "CapabilityBoundingSet=CAP_SYS_ADMIN\n"),
        unit("unit-ambient-capabilities", "AmbientCapabilities= says CAP_SETUID", "AmbientCapabilities=\n", "AmbientCapabilities=CAP_SETUID\n"),
        unit("unit-no-new-privileges-off", "ferry requires NoNewPrivileges=yes", "NoNewPrivileges=yes", "NoNewPrivileges=no"),
        unit("unit-protect-system-off", "ProtectSystem=no", "ProtectSystem=strict", "ProtectSystem=no"),
        // Installing prod does not make dev's unit someone else's problem: every unit is checked.
        payload("unit-of-another-environment", 3, "systemd/dev/hello.service:", "systemd/dev/hello.service", |u| replace(u, "ProtectSystem=strict", "ProtectSystem=no"), |_| {}),
        // An environment's relaxation is its own: prod's unit cannot borrow dev's.
        payload("unit-relaxes-what-only-another-environment-may", 3, "systemd/prod/hello.service:", "systemd/prod/hello.service", |u| replace(u, "ProcSubset=pid", "ProcSubset=all"), |v| {
            v["install"]["environments"][0]["sandbox"] = json!({"proc_subset": "all"});
        }),
        unit("unit-undeclared-relaxation", "service.sandbox.proc_subset", "ProcSubset=pid", "ProcSubset=all"),
        unit("unit-alias-over-ssh", "Alias= is not allowed in [Install]", "WantedBy=multi-user.target", "WantedBy=multi-user.target\nAlias=ssh.service"),
        unit("unit-also", "Also= is not allowed", "WantedBy=multi-user.target", "WantedBy=multi-user.target\nAlso=evil.service"),
        unit("unit-load-credential-shadow", "only the manifest's credential secrets", "LoadCredential=admin-token:/etc/hello/admin-token", "LoadCredential=admin-token:/etc/shadow"),
        unit("unit-environment-file-shadow", "only the manifest's environment-file secrets", "UMask=0027", "UMask=0027\nEnvironmentFile=/etc/shadow"),
        unit("unit-bind-paths", "BindPaths= is not allowed", "UMask=0027", "UMask=0027\nBindPaths=/etc/shadow:/var/lib/hello/shadow"),
        unit("unit-read-write-etc", "ReadWritePaths=/etc: not one of", "UMask=0027", "UMask=0027\nReadWritePaths=/etc"),
        unit("unit-pam", "PAMName= is not allowed", "UMask=0027", "UMask=0027\nPAMName=login"),
        unit("unit-on-failure", "OnFailure= is not allowed", "StartLimitBurst=5", "StartLimitBurst=5\nOnFailure=evil.service"),
        unit("unit-extra-section", "section [Path] is not allowed", "[Install]", "[Path]\nPathChanged=/etc/shadow\n\n[Install]"),
        unit("unit-oom-unkillable", "OOMScoreAdjust=-1000: value not accepted", "UMask=0027", "UMask=0027\nOOMScoreAdjust=-1000"),
        // --- sysusers, tmpfiles, logrotate: only the app's own.
        payload("sysusers-uid-0", 3, "no fixed uid", "sysusers/hello.conf", |s| replace(s, "u hello -:hello", "u hello 0:hello"), |_| {}),
        payload("sysusers-second-root", 3, "only the service user is accepted", "sysusers/hello.conf", |s| format!("{s}u toor 0 \"x\" /root /bin/bash\n"), |_| {}),
        payload("sysusers-member-of-shadow", 3, "group shadow is not one of the manifest's supplementary groups", "sysusers/hello.conf", |s| format!("{s}m hello shadow\n"), |_| {}),
        payload("tmpfiles-shadow-world-readable", 3, "/etc/shadow is not one of the manifest's directories", "tmpfiles/hello.conf", |s| format!("{s}z /etc/shadow 0644 root root -\n"), |_| {}),
        payload("tmpfiles-sudoers-dir", 3, "/etc/sudoers.d is not one of the manifest's directories", "tmpfiles/hello.conf", |s| format!("{s}d /etc/sudoers.d 0777 hello hello -\n"), |_| {}),
        payload("tmpfiles-symlink", 3, "line type \"L+\"", "tmpfiles/hello.conf", |s| replace(s, "d /etc/hello", "L+ /etc/hello"), |_| {}),
        payload("logrotate-postrotate-shadow", 3, "postrotate must be exactly", "logrotate/hello", |s| replace(s, "    endscript", "        chmod 0666 /etc/shadow\n    endscript"), |_| {}),
        payload("logrotate-rotates-shadow", 3, "only one block", "logrotate/hello", |s| replace(s, "/var/log/hello/*.log {", "/etc/shadow {"), |_| {}),
        payload("logrotate-olddir", 3, "no olddir", "logrotate/hello", |s| replace(s, "    missingok", "    olddir /etc\n    missingok"), |_| {}),
        payload("logrotate-as-root", 3, "logrotate must act as hello hello", "logrotate/hello", |s| replace(s, "su hello hello", "su root root"), |_| {}),
        // --- Within the files' rules but beyond the host's policy (exit 4): the footprint
        // is declared honestly, and the default policy refuses it.
        manifest("policy-supplementary-disk", 4, "supplementary group disk is privileged", |v| v["install"]["supplementary_groups"] = json!(["disk"])),
        manifest("policy-supplementary-sudo", 4, "supplementary group sudo is privileged", |v| v["install"]["supplementary_groups"] = json!(["sudo"])),
        manifest("policy-primary-group-shadow", 4, "primary group shadow is privileged", |v| v["install"]["group"] = json!("shadow")),
        manifest("policy-existing-account", 4, "runs as the existing account www-data", |v| {
            v["install"]["account"] = json!("existing");
            v["install"]["user"] = json!("www-data");
            v["install"]["group"] = json!("www-data");
        }),
        manifest("policy-cap-sys-admin", 4, "capability CAP_SYS_ADMIN is not allowed", |v| {
            v["install"]["service"]["capabilities"] = json!(["CAP_SYS_ADMIN"]);
            v["install"]["environments"][1]["sandbox"] = json!({"private_users": "no"});
        }),
        manifest("policy-cap-setuid", 4, "capability CAP_SETUID is not allowed", |v| {
            v["install"]["service"]["capabilities"] = json!(["CAP_SETUID"]);
            v["install"]["environments"][1]["sandbox"] = json!({"private_users": "no"});
        }),
        manifest("policy-cap-sys-module", 4, "capability CAP_SYS_MODULE is not allowed", |v| {
            v["install"]["service"]["capabilities"] = json!(["CAP_SYS_MODULE"]);
            v["install"]["environments"][1]["sandbox"] = json!({"private_users": "no"});
        }),
        manifest("policy-cap-dac-override", 4, "capability CAP_DAC_OVERRIDE is not allowed", |v| {
            v["install"]["service"]["capabilities"] = json!(["CAP_DAC_OVERRIDE"]);
            v["install"]["environments"][1]["sandbox"] = json!({"private_users": "no"});
        }),
        manifest("policy-packet-sockets", 4, "address family AF_PACKET is not allowed", |v| {
            v["install"]["service"]["address_families"] = json!(["AF_INET", "AF_INET6", "AF_UNIX", "AF_PACKET"]);
        }),
        manifest("policy-surface-relaxation", 4, "sandbox memory_deny_write_execute = no is not allowed", |v| {
            v["install"]["environments"][1]["sandbox"] = json!({"memory_deny_write_execute": "no"});
        }),
        manifest("policy-writable-acl-for-users", 4, "gives group:users write access", |v| {
            v["install"]["directories"][0]["acl"] = json!(["group:users:rwx"]);
        }),
        manifest("policy-directory-for-disk", 4, "gives privileged group disk access", |v| {
            v["install"]["directories"][0]["group"] = json!("disk");
        }),
        manifest("policy-exec-probe-forbidden", 4, "footprint.exec_probes", |v| {
            v["install"]["environments"][1]["health"]["probe"] = json!({"exec": {"argv": ["/opt/hello/current/bin/hello", "-version"]}});
        })
        .with_setup(policy("[footprint]\nexec_probes = false\n")),
        manifest("policy-network-none", 4, "only socket activation with PrivateNetwork= is allowed", |_| {})
            .with_setup(policy("[footprint]\nnetwork = \"none\"\n")),
        manifest("policy-signer-for-other-apps", 4, "may sign only billing-*", |_| {}).with_setup(|b, root| {
            let id = ferry_format::minisign::PublicKey::load(&b.pubkey).unwrap().key_id();
            let text = format!("[[signer]]\nkey = \"{id}\"\napps = [\"billing-*\"]\n");
            put(root, "etc/ferry/policy.toml", text.as_bytes(), 0o644);
        }),
        manifest("policy-signer-unlisted", 4, "may sign no app", |_| {})
            .with_setup(policy("[[signer]]\nkey = \"0101010101010101\"\napps = [\"*\"]\n")),
        manifest("policy-file-group-writable", 4, "the policy must be root's and not writable", |_| {}).with_setup(|_, root| {
            put(root, "etc/ferry/policy.toml", b"[footprint]\n", 0o664);
        }),
        manifest("policy-file-malformed", 4, "unknown key \"capabilites\"", |_| {})
            .with_setup(policy("[footprint]\ncapabilites = [\"CAP_SYS_ADMIN\"]\n")),
        // --- Upgrades that widen the footprint need consent.
        manifest("upgrade-adds-a-capability", 4, "the upgrade widens its footprint (capability CAP_NET_BIND_SERVICE", |v| {
            v2(v);
            v["install"]["service"]["capabilities"] = json!(["CAP_NET_BIND_SERVICE"]);
            v["install"]["environments"][1]["sandbox"] = json!({"private_users": "no"});
        })
        .after(|b| b.amd64.clone()),
        manifest("upgrade-adds-a-group", 4, "member of group ssl-cert", |v| {
            v2(v);
            v["install"]["supplementary_groups"] = json!(["ssl-cert"]);
        })
        .after(|b| b.amd64.clone()),
        manifest("upgrade-relaxes-the-sandbox", 4, "sandbox proc_subset = all", |v| {
            v2(v);
            v["install"]["environments"][1]["sandbox"] = json!({"proc_subset": "all"});
        })
        .after(|b| b.amd64.clone()),
        // --- The host: what exists and is not the app's, ferry's own state, the trust store.
        manifest("host-unrecorded-etc-dir", 4, "/etc/hello exists but is not recorded as hello's", |_| {})
            .with_setup(|_, root| fs::create_dir_all(root.join("etc/hello")).unwrap()),
        manifest("host-unrecorded-log-dir", 4, "/var/log/hello exists but is not recorded", |_| {})
            .with_setup(|_, root| fs::create_dir_all(root.join("var/log/hello")).unwrap()),
        manifest("host-unrecorded-unit", 4, "/etc/systemd/system/hello.service exists but is not recorded", |_| {})
            .with_setup(|_, root| put(root, "etc/systemd/system/hello.service", b"[Service]\nExecStart=/bin/true\n", 0o644)),
        manifest("host-existing-user", 4, "user hello already exists and ferry did not create it", |_| {}).with_setup(|_, root| {
            let p = root.join("etc/passwd");
            let mut s = fs::read_to_string(&p).unwrap();
            s.push_str("hello:x:1500:1500::/home/hello:/bin/bash\n");
            fs::write(&p, s).unwrap();
        }),
        manifest("host-existing-group", 4, "group hello already exists", |_| {}).with_setup(|_, root| {
            let p = root.join("etc/group");
            let mut s = fs::read_to_string(&p).unwrap();
            s.push_str("hello:x:1500:\n");
            fs::write(&p, s).unwrap();
        }),
        manifest("state-world-writable", 4, "/var/lib/ferry is owned by uid 0 with mode 0777", |_| {}).with_setup(|_, root| {
            fs::create_dir_all(root.join("var/lib/ferry")).unwrap();
            fs::set_permissions(root.join("var/lib/ferry"), fs::Permissions::from_mode(0o777)).unwrap();
        }),
        // A journal the service user could have planted: never replayed.
        manifest("state-planted-journal", 4, "journal is owned by uid 65534", |_| {}).with_setup(|_, root| {
            let j = "{\"app\":\"hello\",\"from_version\":\"0\",\"to_version\":\"1\",\"created_state_dirs\":[]}\n\
                     {\"replaced_file\":{\"path\":\"/etc/passwd\",\"backup\":\"1-x\",\"uid\":0,\"gid\":0,\"mode\":420}}\n";
            put(root, "var/lib/ferry/hello/journal", j.as_bytes(), 0o600);
            std::os::unix::fs::chown(root.join("var/lib/ferry/hello/journal"), Some(65534), Some(65534)).unwrap();
        }),
        manifest("state-symlinked", 4, "is a symlink", |_| {}).with_setup(|_, root| {
            fs::create_dir_all(root.join("var/lib/ferry")).unwrap();
            std::os::unix::fs::symlink("/etc", root.join("var/lib/ferry/hello")).unwrap();
        }),
        manifest("trust-store-world-writable", 4, "/etc/ferry/keys is owned by uid 0 with mode 0777", |_| {})
            .with_host_keys()
            .with_setup(|b, root| {
                host_trusts_release_key(b, root);
                fs::set_permissions(root.join("etc/ferry/keys"), fs::Permissions::from_mode(0o777)).unwrap();
            }),
        manifest("trust-store-key-owned-by-nobody", 4, "release.pub is owned by uid 65534", |_| {})
            .with_host_keys()
            .with_setup(|b, root| {
                host_trusts_release_key(b, root);
                std::os::unix::fs::chown(root.join("etc/ferry/keys/release.pub"), Some(65534), None).unwrap();
            }),
        manifest("trust-store-symlinked-key", 4, "is a symlink: the trust store holds files only", |_| {})
            .with_host_keys()
            .with_setup(|b, root| {
                host_trusts_release_key(b, root);
                std::os::unix::fs::symlink("/tmp/evil.pub", root.join("etc/ferry/keys/evil.pub")).unwrap();
            }),
        // A revocation signed by a key only an unverified rotation names (the stranger
        // rotates to itself and revokes the release key): no revocation at all.
        manifest("trust-revocation-by-a-stranger", 3, "revokes other keys than itself", |_| {})
            .with_host_keys()
            .with_setup(|b, root| {
                host_trusts_release_key(b, root);
                let stranger = SecretKey::from_seed(&[0x51; 32], KeyId([0x51; 8]));
                let stranger2 = SecretKey::from_seed(&[0x52; 32], KeyId([0x52; 8]));
                let rot = rotation_statement(&stranger, &stranger2.public_key(), 1).unwrap();
                let rev = revocation_statement(&stranger2, &[b.secret.key_id()], 2, "x").unwrap();
                put(root, "etc/ferry/keys/rotations/s.rotation", rot.as_bytes(), 0o644);
                put(root, "etc/ferry/keys/revocations/s.revocation", rev.as_bytes(), 0o644);
            }),
    ];
    // Refusal must not depend on anything but the rule: the plain bundle, under each
    // host setup above that refuses for the host's reasons, would install otherwise
    // (checked by `escalation_controls_install`).
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The controls: a well-formed host trust store and a policy that allows what a case
/// asks install fine, so the refusals above are the rules' doing.
pub fn controls() -> Vec<(&'static str, Case)> {
    vec![
        ("host trust store", manifest("control-host-keys", 0, "", |_| {}).with_host_keys().with_setup(host_trusts_release_key)),
        (
            "policy allows the capability",
            manifest("control-policy-allows", 0, "", |_| {})
                .with_setup(policy("[[app]]\nname = \"hel*\"\ncapabilities = [\"CAP_NET_BIND_SERVICE\", \"CAP_SYS_ADMIN\"]\n")),
        ),
    ]
}

/// A 2.0.0 that adds a supplementary group (ssl-cert): within the default policy for a
/// first install, a widening for an upgrade. Its unit and sysusers say so too.
pub fn widened_upgrade(b: &Base) -> Vec<u8> {
    let mut t = b.tar.clone();
    let mut v = b.manifest_json.clone();
    v2(&mut v);
    v["install"]["supplementary_groups"] = json!(["ssl-cert"]);
    for (path, edit) in [
        (
            "systemd/prod/hello.service",
            Box::new(|s: &str| {
                replace(
                    s,
                    "Group=hello\n",
                    "Group=hello\nSupplementaryGroups=ssl-cert\n",
                )
            }) as Box<dyn Fn(&str) -> String>,
        ),
        (
            "sysusers/hello.conf",
            Box::new(|s: &str| format!("{s}m hello ssl-cert\n")),
        ),
    ] {
        let new = edit(&String::from_utf8(t.member(path).data.clone()).unwrap());
        let e = file_entry(&mut v, path);
        e["size"] = json!(new.len());
        e["sha256"] = json!(Sha256::of(new.as_bytes()).to_string());
        t.member(path).set_data(new.into_bytes());
    }
    let m = manifest_bytes(&v);
    let sig = sign_with(&b.secret, &m, &comment(&m));
    t.members[0].set_data(m);
    t.members[1].set_data(sig);
    compress(&t.to_bytes())
}

// ---------------------------------------------------------------------------------------------
// Bundles for the live cases (`hostile.rs`, on a real systemd host).

/// The example, re-signed with `edit` applied to its manifest and `bin/hello` replaced by
/// `binary` when given.
pub fn live_bundle(b: &Base, edit: impl Fn(&mut Value), binary: Option<&str>) -> Vec<u8> {
    let mut t = b.tar.clone();
    let mut v = b.manifest_json.clone();
    edit(&mut v);
    if let Some(bin) = binary {
        let e = file_entry(&mut v, "bin/hello");
        e["size"] = json!(bin.len());
        e["sha256"] = json!(Sha256::of(bin.as_bytes()).to_string());
        t.member("bin/hello").set_data(bin.as_bytes().to_vec());
    }
    let m = manifest_bytes(&v);
    let sig = sign_with(&b.secret, &m, &comment(&m));
    t.members[0].set_data(m);
    t.members[1].set_data(sig);
    compress(&t.to_bytes())
}

/// Declares `/var/lib/hello/sub`, the service's own directory, in a manifest.
pub fn with_sub_directory(v: &mut Value) {
    v["install"]["directories"].as_array_mut().unwrap().push(
        json!({"path": "/var/lib/hello/sub", "owner": "hello", "group": "hello",
            "mode": "0750", "acl": [], "default_acl": [], "keep": "data"}),
    );
}

/// The service binary of the symlink-swap attack: between the upgrade changing its
/// directory's mode and the rollback restoring it, the service (as its own user) puts a
/// symlink to a root-owned binary in the directory's place, then fails.
pub const SWAPPING_SERVICE: &str = "#!/bin/sh\n\
    mv /var/lib/hello/sub /var/lib/hello/sub.moved && ln -s /usr/bin/id /var/lib/hello/sub\n\
    exit 1\n";

/// An exec probe as a manifest edit.
pub fn exec_probe(script: &'static str) -> impl Fn(&mut Value) {
    move |v| {
        v["install"]["environments"][1]["health"]["probe"] =
            json!({"exec": {"argv": ["/bin/sh", "-c", script]}});
    }
}

pub fn version(v: &mut Value, version: &str) {
    v["app"]["version"] = json!(version);
}
