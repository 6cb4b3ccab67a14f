//! The trust store's strict modes, against a temporary root.

use std::os::unix::fs::PermissionsExt as _;

use ferry_format::minisign::SecretKey;

use super::*;
use crate::testroot::TestRoot;

fn args() -> KeyArgs {
    KeyArgs {
        pubkeys: Vec::new(),
        keyring: PathBuf::from("/etc/ferry/keys"),
        rotations: Vec::new(),
        revocations: Vec::new(),
    }
}

fn with_key(t: &TestRoot) -> SecretKey {
    let sk = SecretKey::from_seed(&[7; 32], KeyId([7; 8]));
    std::fs::create_dir_all(t.path("etc/ferry/keys/rotations")).unwrap();
    std::fs::write(
        t.path("etc/ferry/keys/release.pub"),
        sk.public_key().to_file_string(),
    )
    .unwrap();
    for p in ["etc/ferry", "etc/ferry/keys", "etc/ferry/keys/rotations"] {
        std::fs::set_permissions(t.path(p), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        t.path("etc/ferry/keys/release.pub"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    sk
}

fn load_err(t: &TestRoot) -> String {
    let e = load(&args(), &t.host, &mut |_| {}).unwrap_err();
    assert!(e.is::<Precondition>(), "{e:#}");
    e.to_string()
}

#[test]
fn a_strict_trust_store_loads() {
    let t = TestRoot::new();
    let sk = with_key(&t);
    let ring = load(&args(), &t.host, &mut |_| {}).unwrap();
    assert!(ring.get(&sk.key_id()).is_some());
}

#[test]
fn writable_or_linked_trust_stores_are_refused_naming_the_path() {
    let cases: &[(&str, &str, u32)] = &[
        ("etc/ferry/keys", "/etc/ferry/keys is owned", 0o777),
        ("etc/ferry/keys", "/etc/ferry/keys is owned", 0o775),
        ("etc/ferry/keys/release.pub", "release.pub is owned", 0o666),
        ("etc/ferry/keys/rotations", "rotations is owned", 0o757),
        ("etc/ferry", "/etc/ferry is owned", 0o777),
    ];
    for (path, want, mode) in cases {
        let t = TestRoot::new();
        with_key(&t);
        std::fs::set_permissions(t.path(path), std::fs::Permissions::from_mode(*mode)).unwrap();
        let e = load_err(&t);
        assert!(e.contains(want), "{path} {mode:o}: {e}");
    }
    let t = TestRoot::new();
    with_key(&t);
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("evil.pub"), "x").unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path().join("evil.pub"),
        t.path("etc/ferry/keys/evil.pub"),
    )
    .unwrap();
    assert!(load_err(&t).contains("is a symlink"));
    let t = TestRoot::new();
    with_key(&t);
    std::fs::remove_dir_all(t.path("etc/ferry/keys")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), t.path("etc/ferry/keys")).unwrap();
    let e = load(&args(), &t.host, &mut |_| {}).unwrap_err();
    assert!(format!("{e:#}").contains("symlink"), "{e:#}");
}

#[test]
fn a_secret_key_given_as_a_public_key_gets_a_hint() {
    let t = TestRoot::new();
    with_key(&t);
    let f = t.path("release.key");
    std::fs::write(
        &f,
        "untrusted comment: minisign encrypted secret key\nRWRTY0Iy\n",
    )
    .unwrap();
    let mut a = args();
    a.pubkeys = vec![f];
    let e = load(&a, &t.host, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("this is a secret key"), "{e}");
}

/// `--pubkey` replaces the host's keys for one run, but a revocation the host's own key
/// signed still holds (and the host's key still verifies nothing).
#[test]
fn the_hosts_revocations_hold_under_pubkey() {
    use ferry_format::trust::revocation_statement;
    let t = TestRoot::new();
    let host = with_key(&t);
    let given = SecretKey::from_seed(&[8; 32], KeyId([8; 8]));
    let leaked = SecretKey::from_seed(&[9; 32], KeyId([9; 8]));
    std::fs::create_dir_all(t.path("etc/ferry/keys/revocations")).unwrap();
    std::fs::set_permissions(
        t.path("etc/ferry/keys/revocations"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let rev = t.path("etc/ferry/keys/revocations/leaked.revocation");
    std::fs::write(
        &rev,
        revocation_statement(&host, &[leaked.key_id()], 1, "leaked").unwrap(),
    )
    .unwrap();
    std::fs::set_permissions(&rev, std::fs::Permissions::from_mode(0o644)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut a = args();
    for (name, k) in [("given.pub", &given), ("leaked.pub", &leaked)] {
        let p = dir.path().join(name);
        std::fs::write(&p, k.public_key().to_file_string()).unwrap();
        a.pubkeys.push(p);
    }
    let ring = load(&a, &t.host, &mut |_| {}).unwrap();
    assert!(ring.get(&given.key_id()).is_some());
    assert!(ring.get(&leaked.key_id()).is_none(), "the host revoked it");
    assert!(
        ring.get(&host.key_id()).is_none(),
        "--pubkey replaces the host's keys"
    );
}
