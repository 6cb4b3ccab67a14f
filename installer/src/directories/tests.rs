//! Directories against a temporary root, without root privileges.

use std::os::unix::fs::PermissionsExt as _;

use ferry_format::install::{AclEntry, Keep, Name};
use ferry_format::layout::AppName;
use ferry_format::mode::Mode;

use super::*;
use crate::testroot::TestRoot;

fn dir(path: &str, mode: &str) -> Directory {
    Directory {
        path: HostPath::new(path).unwrap(),
        owner: Name::new("hello").unwrap(),
        group: Name::new("hello").unwrap(),
        mode: Mode::parse(mode).unwrap(),
        acl: Vec::new(),
        default_acl: Vec::new(),
        keep: Keep::Data,
    }
}

#[test]
fn created_fixed_and_left_alone() {
    let t = TestRoot::new();
    let app = AppName::new("hello").unwrap();
    let mut dirs = vec![
        dir("/var/lib/hello", "0750"),
        dir("/var/lib/hello/a/b", "0700"),
        dir("/var/lib/hello/a", "0755"),
    ];
    dirs[1].acl = vec![AclEntry::new("group:hello:r-x").unwrap()];
    let mut j = Journal::begin(&t.host, &app, None, "1").unwrap();
    assert_eq!(apply(&t.host, &dirs, &t.accounts(), &mut j).unwrap(), 3);
    for (p, mode) in [("var/lib/hello", 0o750), ("var/lib/hello/a", 0o755)] {
        let m = std::fs::metadata(t.path(p)).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, mode, "{p}");
    }
    assert!(t
        .host
        .open_dir(&HostPath::new("/var/lib/hello/a/b").unwrap())
        .unwrap()
        .unwrap()
        .xattr(acl::ACCESS)
        .unwrap()
        .is_some());
    assert_eq!(
        apply(&t.host, &dirs, &t.accounts(), &mut j).unwrap(),
        0,
        "already right"
    );
    std::fs::set_permissions(
        t.path("var/lib/hello"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    assert_eq!(
        apply(&t.host, &dirs, &t.accounts(), &mut j).unwrap(),
        1,
        "fixed"
    );
    j.undo(&mut |n| panic!("{n}")).unwrap();
    assert!(
        !t.path("var/lib/hello").exists(),
        "undo removes what it created"
    );
}

#[test]
fn a_symlink_in_place_of_a_directory_is_refused_not_followed() {
    let t = TestRoot::new();
    let app = AppName::new("hello").unwrap();
    std::fs::create_dir_all(t.path("var/lib/hello")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), t.path("var/lib/hello/data")).unwrap();
    let dirs = vec![
        dir("/var/lib/hello", "0750"),
        dir("/var/lib/hello/data", "0700"),
        dir("/var/lib/hello/data/x", "0700"),
    ];
    let mut j = Journal::begin(&t.host, &app, None, "1").unwrap();
    let e = apply(&t.host, &dirs, &t.accounts(), &mut j).unwrap_err();
    assert!(format!("{e:#}").contains("not a directory"), "{e:#}");
    assert!(
        !outside.path().join("x").exists(),
        "nothing was created through the link"
    );
    j.undo(&mut |_| {}).unwrap();
}

/// Issue 11: 3,000 directories took 27 s (a journal rewrite and fsync per action). They
/// are now journaled in one batch; scripts/bench times it.
#[test]
fn thousands_of_directories_are_one_journal_batch() {
    let t = TestRoot::new();
    let app = AppName::new("hello").unwrap();
    let mut dirs = vec![dir("/var/lib/hello", "0750")];
    dirs.extend((0..3000).map(|i| dir(&format!("/var/lib/hello/d{i:04}"), "0750")));
    let mut j = Journal::begin(&t.host, &app, None, "1").unwrap();
    assert_eq!(apply(&t.host, &dirs, &t.accounts(), &mut j).unwrap(), 3001);
    let journal = std::fs::read(t.path("var/lib/ferry/hello/journal")).unwrap();
    assert_eq!(journal.split(|&b| b == b'\n').count() - 1, 3002);
}
