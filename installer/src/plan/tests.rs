//! The plan's checks against a temporary root, without root privileges.

use std::os::unix::fs::PermissionsExt as _;

use ferry_format::layout::AppName;

use super::*;
use crate::state::{AccountRecord, AppState, InstalledFile, Release};
use crate::testroot::TestRoot;

/// The example's manifest, as the format crate's tests build it.
fn manifest(edit: impl FnOnce(&mut serde_json::Value)) -> Manifest {
    let text = include_str!("../../../fuzz/seeds/manifest/hello.json");
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

fn release(files: &[&str]) -> Release {
    Release {
        version: "1.0.0".into(),
        env: "prod".into(),
        bundle_sha256: String::new(),
        manifest_sha256: String::new(),
        key_id: String::new(),
        installed_at: 0,
        files: files
            .iter()
            .map(|f| InstalledFile {
                path: (*f).into(),
                sha256: String::new(),
            })
            .collect(),
    }
}

#[test]
fn prefixes_and_system_files_must_be_recorded_as_the_apps() {
    let m = manifest(|_| {});
    let t = TestRoot::new();
    check_ownership(&t.host, &m, None).unwrap();
    for existing in [
        "etc/hello",
        "var/log/hello",
        "opt/hello",
        "etc/systemd/system/hello.service",
        "etc/sysusers.d/hello.conf",
    ] {
        let t = TestRoot::new();
        let p = t.path(existing);
        if existing.starts_with("etc/s") {
            std::fs::write(&p, b"x").unwrap();
        } else {
            std::fs::create_dir_all(&p).unwrap();
        }
        let e = check_ownership(&t.host, &m, None).unwrap_err();
        assert!(
            e.is::<Precondition>() && e.to_string().contains("is not recorded as hello's"),
            "{existing}: {e}"
        );
        // A record makes the prefixes the app's ...
        let app = AppName::new("hello").unwrap();
        let mut st = AppState::new(&app);
        st.current = Some(release(&[
            "/etc/systemd/system/hello.service",
            "/etc/sysusers.d/hello.conf",
        ]));
        check_ownership(&t.host, &m, Some(&st)).unwrap();
        // ... but a system file no release installed stays someone else's.
        st.current = Some(release(&[]));
        if existing.starts_with("etc/s") {
            let e = check_ownership(&t.host, &m, Some(&st)).unwrap_err();
            assert!(
                e.to_string()
                    .contains("no recorded release of hello installed it"),
                "{e}"
            );
        }
    }
}

#[test]
fn accounts_are_new_or_ferrys_for_this_app() {
    let t = TestRoot::new();
    let m = manifest(|_| {});
    let accounts = t.accounts(); // has a user and group named hello
    let empty = Registry::default();
    let e = check_accounts(&t.host, &m, &accounts, &empty, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("user hello already exists and ferry did not create it"),
        "{e}"
    );
    let rec = |app: &str, uid: u32| Registry {
        schema: 1,
        accounts: vec![AccountRecord {
            app: app.into(),
            user: "hello".into(),
            uid: Some(uid),
            group: "hello".into(),
            gid: Some(t.gid),
        }],
    };
    check_accounts(&t.host, &m, &accounts, &rec("hello", t.uid), None).unwrap();
    assert!(check_accounts(&t.host, &m, &accounts, &rec("other", t.uid), None).is_err());
    assert!(
        check_accounts(&t.host, &m, &accounts, &rec("hello", t.uid + 1), None).is_err(),
        "another account under the same name"
    );
    // An existing account must exist.
    let borrowed = manifest(|v| {
        v["install"]["account"] = serde_json::json!("existing");
        v["install"]["user"] = serde_json::json!("www-data");
    });
    let e = check_accounts(&t.host, &borrowed, &accounts, &empty, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("user www-data does not exist"), "{e}");
}

#[test]
fn ferrys_state_must_be_root_only() {
    let t = TestRoot::new();
    check_state_dir(&t.host).unwrap();
    std::fs::create_dir_all(t.path("var/lib/ferry/hello")).unwrap();
    for d in ["var/lib/ferry", "var/lib/ferry/hello"] {
        std::fs::set_permissions(t.path(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(t.path("var/lib/ferry/hello/journal"), b"").unwrap();
    std::fs::set_permissions(
        t.path("var/lib/ferry/hello/journal"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    check_state_dir(&t.host).unwrap();
    std::fs::set_permissions(
        t.path("var/lib/ferry/hello/journal"),
        std::fs::Permissions::from_mode(0o662),
    )
    .unwrap();
    let e = check_state_dir(&t.host).unwrap_err().to_string();
    assert!(e.contains("/var/lib/ferry/hello/journal is owned"), "{e}");
    std::fs::remove_file(t.path("var/lib/ferry/hello/journal")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", t.path("var/lib/ferry/hello/journal")).unwrap();
    let e = check_state_dir(&t.host).unwrap_err().to_string();
    assert!(e.contains("is a symlink"), "{e}");
    std::fs::remove_file(t.path("var/lib/ferry/hello/journal")).unwrap();
    std::fs::set_permissions(
        t.path("var/lib/ferry"),
        std::fs::Permissions::from_mode(0o775),
    )
    .unwrap();
    assert!(check_state_dir(&t.host)
        .unwrap_err()
        .to_string()
        .contains("/var/lib/ferry is owned"));
}
