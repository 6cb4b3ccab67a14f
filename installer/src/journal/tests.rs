//! The journal against a temporary root, without root privileges.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use super::*;
use crate::testroot::TestRoot;

fn app() -> AppName {
    AppName::new("hello").unwrap()
}

fn hp(s: &str) -> HostPath {
    HostPath::new(s).unwrap()
}

#[test]
fn files_written_and_replaced_are_restored_by_undo() {
    let t = TestRoot::new();
    std::fs::create_dir_all(t.path("etc/hello")).unwrap();
    std::fs::write(t.path("etc/hello/old.toml"), b"old").unwrap();
    std::fs::set_permissions(
        t.path("etc/hello/old.toml"),
        std::fs::Permissions::from_mode(0o604),
    )
    .unwrap();
    let mut j = Journal::begin(&t.host, &app(), None, "1.0.0").unwrap();
    assert!(j
        .put_file(&hp("/etc/hello/old.toml"), b"new", t.uid, t.gid, 0o640)
        .unwrap());
    assert!(
        !j.put_file(&hp("/etc/hello/old.toml"), b"new", t.uid, t.gid, 0o640)
            .unwrap(),
        "unchanged"
    );
    assert!(j
        .put_file(&hp("/etc/hello/created"), b"c", t.uid, t.gid, 0o600)
        .unwrap());
    assert!(j
        .create_if_absent(&hp("/etc/hello/secret"), t.uid, t.gid, 0o600)
        .unwrap());
    assert!(!j
        .create_if_absent(&hp("/etc/hello/secret"), t.uid, t.gid, 0o600)
        .unwrap());
    assert_eq!(std::fs::read(t.path("etc/hello/old.toml")).unwrap(), b"new");
    j.undo(&mut |n| panic!("{n}")).unwrap();
    assert_eq!(std::fs::read(t.path("etc/hello/old.toml")).unwrap(), b"old");
    let m = std::fs::metadata(t.path("etc/hello/old.toml")).unwrap();
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o604,
        "the old mode is back"
    );
    assert!(!t.path("etc/hello/created").exists());
    assert!(!t.path("etc/hello/secret").exists());
    assert!(
        !t.path("var/lib/ferry").exists(),
        "a first transaction leaves no state directory"
    );
}

#[test]
fn a_killed_run_is_undone_by_the_next() {
    let t = TestRoot::new();
    std::fs::create_dir_all(t.path("opt/hello/releases/1")).unwrap();
    std::os::unix::fs::symlink("releases/1", t.path("opt/hello/current")).unwrap();
    {
        let mut j = Journal::begin(&t.host, &app(), Some("1"), "2").unwrap();
        j.switch_symlink(&hp("/opt/hello/current"), "releases/2")
            .unwrap();
        j.ensure_dir(&hp("/etc/hello"), 0o755).unwrap();
        // Dropped without commit or undo: what a power cut leaves.
    }
    assert_eq!(
        std::fs::read_link(t.path("opt/hello/current"))
            .unwrap()
            .to_str(),
        Some("releases/2")
    );
    let j = Journal::pending(&t.host, &app())
        .unwrap()
        .expect("a pending transaction");
    assert_eq!(j.header.from_version.as_deref(), Some("1"));
    assert_eq!(j.actions.len(), 2);
    j.undo(&mut |n| panic!("{n}")).unwrap();
    assert_eq!(
        std::fs::read_link(t.path("opt/hello/current"))
            .unwrap()
            .to_str(),
        Some("releases/1")
    );
    assert!(!t.path("etc/hello").exists());
    assert!(Journal::pending(&t.host, &app()).unwrap().is_none());
}

/// The attack of issue 11: the service user owns a directory whose metadata an upgrade
/// changes; before the undo it swaps the directory for a symlink to a root-owned binary.
/// The undo must not chmod (setuid!) through the link.
#[test]
fn undo_never_follows_a_symlink_swapped_in() {
    let t = TestRoot::new();
    std::fs::create_dir_all(t.path("var/lib/hello/sub")).unwrap();
    std::fs::write(t.path("usr-bin-victim"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        t.path("usr-bin-victim"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut j = Journal::begin(&t.host, &app(), Some("1"), "2").unwrap();
    j.record(Action::DirMeta {
        path: hp("/var/lib/hello/sub"),
        uid: t.uid,
        gid: t.gid,
        mode: 0o4755,
        access: None,
        default: None,
    })
    .unwrap();
    std::fs::set_permissions(
        t.path("var/lib/hello/sub"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    // The swap.
    std::fs::rename(t.path("var/lib/hello/sub"), t.path("var/lib/hello/sub.old")).unwrap();
    std::os::unix::fs::symlink(t.path("usr-bin-victim"), t.path("var/lib/hello/sub")).unwrap();
    let mut notes = Vec::new();
    j.undo(&mut |n| notes.push(n)).unwrap();
    let victim = std::fs::metadata(t.path("usr-bin-victim")).unwrap();
    assert_eq!(
        victim.permissions().mode() & 0o7777,
        0o755,
        "the target was not touched"
    );
    assert!(std::fs::symlink_metadata(t.path("var/lib/hello/sub"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].contains("no longer a directory"), "{notes:?}");
    // Same for a created file replaced by a link to a victim: the link goes, not the victim.
    let mut j = Journal::begin(&t.host, &app(), Some("1"), "2").unwrap();
    j.put_file(&hp("/var/lib/hello/f"), b"x", t.uid, t.gid, 0o600)
        .unwrap();
    std::fs::remove_file(t.path("var/lib/hello/f")).unwrap();
    std::os::unix::fs::symlink(t.path("usr-bin-victim"), t.path("var/lib/hello/f")).unwrap();
    j.undo(&mut |_| {}).unwrap();
    assert!(t.path("usr-bin-victim").exists());
    assert!(std::fs::symlink_metadata(t.path("var/lib/hello/f")).is_err());
}

#[test]
fn appending_does_not_rewrite_and_a_torn_line_is_dropped() {
    let t = TestRoot::new();
    let mut j = Journal::begin(&t.host, &app(), None, "1").unwrap();
    let actions: Vec<Action> = (0..3000)
        .map(|i| Action::CreatedDir {
            path: hp(&format!("/var/lib/hello/d{i}")),
        })
        .collect();
    j.record_all(actions).unwrap();
    j.record(Action::CreatedFile { path: hp("/etc/x") })
        .unwrap();
    let path = t.path("var/lib/ferry/hello/journal");
    let data = std::fs::read(&path).unwrap();
    assert_eq!(data.split(|&b| b == b'\n').count() - 1, 3002);
    let (h, a) = parse(&data).unwrap();
    assert_eq!((h.to_version.as_str(), a.len()), ("1", 3001));
    // A crash in the middle of the last append.
    let mut torn = data.clone();
    torn.extend_from_slice(b"{\"created_file\":{\"pa");
    assert_eq!(parse(&torn).unwrap().1.len(), 3001);
    // A complete line that is not an action is corruption, not a tear.
    let mut bad = data;
    bad.extend_from_slice(b"{\"nonsense\":1}\n");
    assert!(parse(&bad).is_err());
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
}
