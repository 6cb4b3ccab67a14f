//! Policy parsing and judgement, table-driven.

use serde_json::{json, Value};

use super::*;
use crate::install::Install;

fn install(edit: impl FnOnce(&mut Value)) -> Install {
    let mut v = crate::testdata::install_json();
    edit(&mut v);
    serde_json::from_value(v).expect("a valid install section")
}

/// `p.check` in the install's only environment.
#[allow(clippy::trivially_copy_pass_by_ref)] // the call sites read like `Policy::check`
fn check(p: &Policy, key: &KeyId, app: &AppName, inst: &Install) -> Result<Footprint, Violation> {
    p.check(key, app, inst, &inst.environments[0])
}

fn app(name: &str) -> AppName {
    AppName::new(name).unwrap()
}

fn key(n: u8) -> KeyId {
    KeyId([n; 8])
}

#[test]
fn the_default_policy_refuses_escalations_and_accepts_the_example() {
    let p = Policy::default();
    check(&p, &key(1), &app("hello"), &install(|_| {})).unwrap();
    let cases: &[(&str, Value, &str)] = &[
        (
            "/service/capabilities",
            json!(["CAP_SYS_ADMIN"]),
            "capability CAP_SYS_ADMIN is not allowed",
        ),
        (
            "/service/capabilities",
            json!(["CAP_SETUID"]),
            "footprint.capabilities",
        ),
        (
            "/service/capabilities",
            json!(["CAP_SYS_MODULE"]),
            "default policy",
        ),
        (
            "/supplementary_groups",
            json!(["disk"]),
            "supplementary group disk is privileged",
        ),
        ("/supplementary_groups", json!(["sudo"]), "footprint.groups"),
        (
            "/group",
            json!("shadow"),
            "primary group shadow is privileged",
        ),
        ("/account", json!("existing"), "existing account hello"),
        (
            "/service/address_families",
            json!(["AF_UNIX", "AF_PACKET"]),
            "address family AF_PACKET",
        ),
        (
            "/environments/0/sandbox",
            json!({"memory_deny_write_execute": "no"}),
            "sandbox memory_deny_write_execute = no is not allowed",
        ),
        (
            "/directories/4/acl",
            json!(["group:users:rwx"]),
            "gives group:users write access",
        ),
        (
            "/directories/0/group",
            json!("disk"),
            "privileged group disk",
        ),
    ];
    for (pointer, value, want) in cases {
        let inst = install(|v| {
            *v.pointer_mut(pointer)
                .unwrap_or_else(|| panic!("{pointer}")) = value.clone();
        });
        let e = check(&p, &key(1), &app("hello"), &inst)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{pointer} = {value}: {e}");
        assert!(e.starts_with("policy refuses hello: "), "{e}");
    }
    // Visibility relaxations and CAP_NET_BIND_SERVICE are within the default.
    check(
        &p,
        &key(1),
        &app("hello"),
        &install(|v| {
            v["environments"][0]["sandbox"] =
                json!({"proc_subset": "all", "private_users": "no", "protect_proc": "default"});
            v["service"]["capabilities"] = json!(["CAP_NET_BIND_SERVICE"]);
        }),
    )
    .unwrap(); // private_users = no comes with the capability
    check(
        &p,
        &key(1),
        &app("hello"),
        &install(|v| {
            v["environments"][0]["sandbox"] = json!({"private_users": "no"});
        }),
    )
    .unwrap_err(); // on its own, a surface relaxation
    check(
        &p,
        &key(1),
        &app("hello"),
        &install(|v| {
            v["environments"][0]["sandbox"] =
                json!({"proc_subset": "all", "protect_proc": "default"});
        }),
    )
    .unwrap();
}

const FILE: &str = r#"
# Who may sign what.
[[signer]]
key = "0101010101010101"
apps = ["hello", "billing-*"]

[[signer]]
key = "0202020202020202"
apps = ["node-exporter"]

[footprint]
capabilities = []
groups = ["ssl-cert"]
exec_probes = false
network = "restricted"
sandbox = "none"

[[app]]
name = "node-*"
sandbox = ["proc_subset", "protect_proc"]
network = "any"
capabilities = ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"]
upgrades_may_widen = true
"#;

#[test]
fn a_policy_file_scopes_signers_and_limits() {
    let p = Policy::parse(FILE, "/etc/ferry/policy.toml").unwrap();
    let restricted = |v: &mut Value| {
        v["service"]["ip_address_allow"] = json!(["10.0.0.0/8"]);
    };
    check(&p, &key(1), &app("hello"), &install(restricted)).unwrap();
    check(&p, &key(1), &app("billing-api"), &install(restricted)).unwrap();
    let e = check(&p, &key(2), &app("hello"), &install(restricted))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("key 0202020202020202 may sign only node-exporter") && e.contains("[[signer]]"),
        "{e}"
    );
    let e = check(&p, &key(3), &app("hello"), &install(restricted))
        .unwrap_err()
        .to_string();
    assert!(e.contains("may sign no app"), "{e}");
    let e = check(&p, &key(1), &app("hello"), &install(|_| {}))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("may reach any address")
            && e.contains("footprint.network")
            && e.contains("/etc/ferry/policy.toml"),
        "{e}"
    );
    let e = check(
        &p,
        &key(1),
        &app("hello"),
        &install(|v| {
            restricted(v);
            v["environments"][0]["health"]["probe"] =
                json!({"exec": {"argv": ["/opt/hello/current/bin/hello", "-check"]}});
        }),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("footprint.exec_probes"), "{e}");
    // The [[app]] rule for node-* widens network and sandbox for that app only.
    let metrics = install(|v| {
        v["environments"][0]["sandbox"] = json!({"proc_subset": "all"});
    });
    check(&p, &key(2), &app("node-exporter"), &metrics).unwrap();
    let e = check(
        &p,
        &key(1),
        &app("hello"),
        &install(|v| {
            restricted(v);
            v["environments"][0]["sandbox"] = json!({"proc_subset": "all"});
        }),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("sandbox proc_subset = all is not allowed"),
        "{e}"
    );
    let (lim, origin) = p.limits_for("node-exporter");
    assert!(
        lim.upgrades_may_widen && origin.contains("[[app]] node-*"),
        "{origin}"
    );
    assert!(!p.limits_for("hello").0.upgrades_may_widen);
    assert_eq!(
        p.limits_for("hello").0.groups,
        Groups::Only(vec!["ssl-cert".into()])
    );
}

#[test]
fn upgrades_that_widen_need_consent() {
    let p = Policy::default();
    let a = app("hello");
    let of = |i: &Install| Footprint::of(&a, i, &i.environments[0]);
    let old = of(&install(|_| {}));
    let new = of(&install(|v| {
        v["service"]["capabilities"] = json!(["CAP_NET_BIND_SERVICE"]);
        v["environments"][0]["sandbox"] = json!({"private_users": "no"});
    }));
    let diff = old.diff(&new);
    assert!(diff.widens());
    assert!(diff
        .added
        .iter()
        .any(|i| matches!(i, Item::Capability { .. })));
    let e = p.check_upgrade(&a, &diff, false).unwrap_err().to_string();
    assert!(
        e.contains("widens its footprint")
            && e.contains("capability CAP_NET_BIND_SERVICE")
            && e.contains("--allow-escalation"),
        "{e}"
    );
    p.check_upgrade(&a, &diff, true).unwrap();
    // Narrowing is always fine.
    let back = new.diff(&old);
    assert!(!back.widens() && !back.removed.is_empty());
    p.check_upgrade(&a, &back, false).unwrap();
    // Restricting the network then lifting the restriction widens.
    let limited = of(&install(|v| {
        v["service"]["ip_address_allow"] = json!(["localhost"]);
    }));
    assert!(limited.diff(&old).added.contains(&Item::AnyAddress));
}

#[test]
fn malformed_policies_name_their_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("capabilities = []", 1, "unknown top-level key"),
        (
            "[footprint]\ncapabilities = [\"CAP_GOD\"]",
            2,
            "unknown capability",
        ),
        ("[footprint]\nnetwork = \"some\"", 2, "expected \"none\""),
        (
            "[footprint]\nsandbox = [\"no_new_privileges\"]",
            2,
            "unknown sandbox setting",
        ),
        (
            "[footprint]\ncolour = \"blue\"",
            2,
            "unknown key \"colour\"",
        ),
        ("[[signer]]\nkey = \"zz\"\napps = []", 2, "not a key id"),
        ("[[signer]]\napps = [\"x\"]", 1, "needs key and apps"),
        ("[[app]]\nname = \"Bad Name\"", 2, "app pattern"),
        ("[[app]]\ncapabilities = []", 1, "needs name"),
        ("[footprints]", 1, "unknown table"),
        (
            "[footprint]\nacl_write = [\"everyone\"]",
            2,
            "user:NAME or group:NAME",
        ),
        ("[footprint]\nexec_probes = \"yes\"", 2, "true or false"),
        ("[footprint]\ncapabilities = { a = 1 }", 2, "inline tables"),
    ];
    for (text, line, want) in cases {
        let e = Policy::parse(text, "policy.toml").unwrap_err();
        assert_eq!(e.line, *line, "{text}: {e}");
        assert!(e.to_string().contains(want), "{text}: {e}");
        assert!(e.to_string().starts_with("policy.toml:"), "{e}");
    }
}

#[test]
fn patterns() {
    let p = |s| Pattern::new(s).unwrap();
    assert!(p("hello").matches("hello") && !p("hello").matches("hello2"));
    assert!(p("node-*").matches("node-exporter") && p("node-*").matches("node-"));
    assert!(!p("node-*").matches("xnode-a"));
    assert!(p("a?c").matches("abc") && !p("a?c").matches("ac"));
    assert!(p("*").matches("anything"));
    assert!(Pattern::new("A").is_none() && Pattern::new("a/b").is_none());
}
