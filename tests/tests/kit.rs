//! End-to-end tests of field kits: `ferry kit` (one directory, or volumes split at a small
//! `--volume-size`) and `ferry-install verify --kit` / `install` from a kit's parts.
//!
//! Stock tools are the judges of what travels on the media (`sha256sum -c`,
//! `signify-openbsd -C`, `signify-openbsd -V -e`, `minisign -V`, `cat`); installs go into
//! offline roots (`--root`) copied from the cached Debian host root
//! (`ferry_tests::host_cache`, built by `scripts/mkhost`), or run from a read-only bind
//! mount of the kit. Needs root (mounts, chown in the offline root).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::{
    bundle_name, copy_tree, describe, exits, extract, ferry, ferry_install, ok, run, run_root,
    sha256, shared, stderr, stdout, tempdir, tool, workspace_root,
};
use ferry_format::kit::{Index, Kind, INDEX_NAME, README_NAME};
use ferry_format::minisign::PublicKey;
use serde_json::Value;

/// The volume size the split kit is cut at: the example's bundles (about 2.5 MB each) and
/// the static installer (about 2 MB) each take several volumes.
const VOLUME_SIZE: &str = "1M";
const VOLUME_BYTES: u64 = 1 << 20;
const AMD64_BUNDLE: &str = "hello-1.0.0-linux-amd64.tar.zst";

// ---------------------------------------------------------------------------------------------
// Fixtures, made once per test process.

/// The static installer from `scripts/build-installer`, copied into the run root so a rebuild
/// mid-run cannot swap it. Its size budget is tested elsewhere (install.rs): a build refused
/// only for its size is still used here.
fn static_installer() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = workspace_root().join("scripts/build-installer");
        let mut cmd = Command::new(&script);
        cmd.current_dir(workspace_root()).stdin(Stdio::null());
        let out = run(&mut cmd);
        let built = ferry_tests::static_installer();
        if !out.status.success() {
            assert!(
                stderr(&out).contains("over the 2 MiB budget") && built.is_file(),
                "building the static installer failed: {}",
                describe(&cmd, &out)
            );
        }
        let private = run_root().join("kit-installer/ferry-install");
        fs::create_dir_all(private.parent().unwrap()).unwrap();
        fs::copy(&built, &private).unwrap();
        private
    })
}

/// A static aarch64 ELF standing in for an arm64 installer (none can be cross-built here):
/// the example's own arm64 binary, taken from its bundle. `ferry kit` reads the architecture
/// from the ELF header and checks that the binary is static; nothing runs it.
fn arm64_stand_in() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = run_root().join("kit-arm64");
        extract(&shared().bundle("arm64"), &dir);
        dir.join("bin/hello")
    })
}

/// `ferry kit OUT <both bundles> --key --pubkey --installer ... [--volume-size SIZE]`.
fn make_kit(out: &Path, volume_size: Option<&str>, arm64: bool) -> Output {
    let s = shared();
    let mut cmd = ferry();
    cmd.arg("--json")
        .arg("kit")
        .arg(out)
        .arg(s.bundle("amd64"))
        .arg(s.bundle("arm64"))
        .arg("--key")
        .arg(&s.key)
        .arg("--pubkey")
        .arg(&s.pubkey)
        .arg("--installer")
        .arg(static_installer());
    if arm64 {
        cmd.arg("--installer").arg(arm64_stand_in());
    }
    if let Some(v) = volume_size {
        cmd.args(["--volume-size", v]);
    }
    ok(&mut cmd)
}

/// The kit as one directory, with an `x86_64` installer and an arm64 stand-in.
fn flat_kit() -> &'static Path {
    static KIT: OnceLock<PathBuf> = OnceLock::new();
    KIT.get_or_init(|| {
        let out = run_root().join("kit-flat");
        make_kit(&out, None, true);
        out
    })
}

/// The kit split into volumes of [`VOLUME_SIZE`].
fn split_kit() -> &'static Path {
    static KIT: OnceLock<PathBuf> = OnceLock::new();
    KIT.get_or_init(|| {
        let out = run_root().join("kit-split");
        make_kit(&out, Some(VOLUME_SIZE), false);
        out
    })
}

/// The signed index of a kit volume (or flat kit), checked with the release key.
fn index(dir: &Path) -> Index {
    let text = fs::read(dir.join(INDEX_NAME)).unwrap();
    let key = PublicKey::load(&shared().pubkey).unwrap();
    let message = ferry_format::signify::verify_embedded(&key, &text).unwrap();
    Index::parse(std::str::from_utf8(message).unwrap()).unwrap()
}

/// `VOL-NNN/NAME` of each part of `file` in the split kit, in order.
fn part_labels(kit: &Path, file: &str) -> Vec<String> {
    index(&kit.join("VOL-001"))
        .file(file)
        .unwrap_or_else(|| panic!("{file} is not in the kit"))
        .parts
        .iter()
        .map(|p| format!("{}/{}", p.volume, p.name))
        .collect()
}

/// Every part label of the split kit.
fn all_part_labels(kit: &Path) -> Vec<String> {
    index(&kit.join("VOL-001"))
        .files
        .iter()
        .flat_map(|f| f.parts.iter().map(|p| format!("{}/{}", p.volume, p.name)))
        .collect()
}

fn volumes(kit: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(kit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// A writable copy of the cached host root, for `--root` installs.
struct Root {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn fresh_root() -> Root {
    let cache = ferry_tests::host_cache().expect("the cached host root (scripts/mkhost)");
    let dir = tempdir();
    let path = dir.path().join("root");
    ok(tool("cp").arg("-a").arg(&cache).arg(&path));
    Root { _dir: dir, path }
}

/// Every entry below `dir` with its type, mode, owner, size, times and (for files and links)
/// content: what "nothing changed" compares.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, acc: &mut BTreeMap<PathBuf, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(fs::DirEntry::file_name);
        for e in entries {
            let path = e.path();
            let m = fs::symlink_metadata(&path).unwrap();
            let content = if m.file_type().is_symlink() {
                fs::read_link(&path).unwrap().display().to_string()
            } else if m.is_file() {
                format!("{}:{}", m.mtime(), m.mtime_nsec())
            } else {
                String::new()
            };
            acc.insert(
                path.strip_prefix(root).unwrap().to_path_buf(),
                format!(
                    "{:o} {}:{} {} ctime {}.{} {content}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.size(),
                    m.ctime(),
                    m.ctime_nsec()
                ),
            );
            if m.is_dir() {
                walk(root, &path, acc);
            }
        }
    }
    let mut acc = BTreeMap::new();
    let m = fs::symlink_metadata(dir).unwrap();
    acc.insert(
        PathBuf::new(),
        format!("{:o} mtime {}.{}", m.mode(), m.mtime(), m.mtime_nsec()),
    );
    walk(dir, dir, &mut acc);
    acc
}

fn assert_unchanged(
    before: &BTreeMap<PathBuf, String>,
    after: &BTreeMap<PathBuf, String>,
    what: &str,
) {
    let changed: Vec<String> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, _)| format!("changed or removed: {}", k.display()))
        .chain(
            after
                .keys()
                .filter(|k| !before.contains_key(*k))
                .map(|k| format!("added: {}", k.display())),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "{what} changed:\n{}",
        changed.join("\n")
    );
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", stdout(out)))
}

/// `ferry-install install TARGET --root ROOT --pubkey PUB --tmpdir TMP --json`.
fn install(target: &Path, root: &Path, pubkey: &Path, tmp: &Path) -> Command {
    let mut cmd = ferry_install();
    cmd.arg("--json")
        .arg("install")
        .arg(target)
        .arg("--root")
        .arg(root)
        .arg("--pubkey")
        .arg(pubkey)
        .arg("--tmpdir")
        .arg(tmp);
    cmd
}

fn verify_kit(dir: &Path, pubkey: &Path) -> Command {
    let mut cmd = ferry_install();
    cmd.arg("verify")
        .arg("--kit")
        .arg(dir)
        .arg("--pubkey")
        .arg(pubkey);
    cmd
}

/// Checks an offline root holds the example's release exactly as the bundle has it.
fn assert_installed(root: &Path) {
    let link = fs::read_link(root.join("opt/hello/current")).unwrap();
    assert_eq!(link, Path::new("releases/1.0.0"));
    let want = run_root().join("kit-amd64-extracted");
    if !want.exists() {
        extract(&shared().bundle("amd64"), &want);
    }
    assert_eq!(
        sha256(&root.join("opt/hello/releases/1.0.0/bin/hello")),
        sha256(&want.join("bin/hello"))
    );
    assert!(root.join("etc/systemd/system/hello.service").is_file());
    let state: Value =
        serde_json::from_slice(&fs::read(root.join("var/lib/ferry/hello/state.json")).unwrap())
            .unwrap();
    assert_eq!(
        state["current"]["bundle_sha256"],
        sha256(&shared().bundle("amd64"))
    );
}

/// Regular files below `dir` (symlinks not followed) whose size is `size`: a reassembled
/// copy of a bundle would be one.
fn files_of_size(dir: &Path, size: u64) -> Vec<PathBuf> {
    snapshot(dir)
        .into_keys()
        .filter(|p| fs::symlink_metadata(dir.join(p)).is_ok_and(|m| m.is_file() && m.len() == size))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A kit that is one directory.

#[test]
fn flat_kit_holds_everything_and_passes_stock_tools() {
    let kit = flat_kit();
    let s = shared();
    let mut names: Vec<String> = fs::read_dir(kit)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "READ-ME-FIRST.txt",
            "SHA256SUMS",
            "SHA256SUMS.sig",
            "ferry-install-aarch64",
            "ferry-install-x86_64",
            "hello-1.0.0-linux-amd64.tar.zst",
            "hello-1.0.0-linux-amd64.tar.zst.minisig",
            "hello-1.0.0-linux-arm64.tar.zst",
            "hello-1.0.0-linux-arm64.tar.zst.minisig",
            "kit.index",
            "release.pub",
        ]
    );
    // The stock tools, exactly as the read-me says, in the kit directory.
    let readme = fs::read_to_string(kit.join(README_NAME)).unwrap();
    for line in [
        "signify-openbsd -C -p release.pub -x SHA256SUMS.sig",
        "sha256sum -c SHA256SUMS",
        "/var/tmp/ferry-install verify --kit . --pubkey release.pub",
        "/var/tmp/ferry-install install hello-1.0.0-linux-amd64.tar.zst --pubkey release.pub",
    ] {
        assert!(
            readme.contains(line),
            "READ-ME-FIRST.txt lacks {line:?}:\n{readme}"
        );
    }
    assert!(readme.contains(&common::key_id(&s.pubkey)), "{readme}");
    let out = ok(tool("signify-openbsd")
        .args(["-C", "-p", "release.pub", "-x", "SHA256SUMS.sig"])
        .current_dir(kit));
    // Every file but the two lists is covered.
    let listed = stdout(&out).lines().filter(|l| l.ends_with(": OK")).count();
    assert_eq!(listed, names.len() - 2, "{}", stdout(&out));
    ok(tool("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(kit));
    // The index is an embedded signify signature; bundles verify with minisign.
    let msg = tempdir();
    ok(tool("signify-openbsd")
        .args(["-V", "-e", "-p", "release.pub", "-x", "kit.index", "-m"])
        .arg(msg.path().join("index"))
        .current_dir(kit));
    for arch in ["amd64", "arm64"] {
        ok(tool("minisign")
            .args(["-V", "-p", "release.pub", "-m"])
            .arg(bundle_name(arch))
            .current_dir(kit));
        assert_eq!(
            sha256(&kit.join(bundle_name(arch))),
            sha256(&s.bundle(arch))
        );
    }
    // The installer is the static one, runnable; the arm64 one is named for its machine.
    assert_eq!(
        sha256(&kit.join("ferry-install-x86_64")),
        sha256(static_installer())
    );
    assert_eq!(
        fs::metadata(kit.join("ferry-install-x86_64"))
            .unwrap()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        sha256(&kit.join("ferry-install-aarch64")),
        sha256(arm64_stand_in())
    );
    let idx = index(kit);
    assert_eq!(idx.volumes, 0);
    assert!(
        matches!(&idx.file("ferry-install-aarch64").unwrap().kind, Kind::Installer { arch } if arch == "aarch64")
    );

    // ferry-install checks the whole kit and prints a table.
    let out = ok(&mut verify_kit(kit, &kit.join("release.pub")));
    let text = stdout(&out);
    for want in [
        "ferry-install-x86_64",
        "ferry-install-x86_64: ok: every part matches the signed index",
        "hello-1.0.0-linux-amd64.tar.zst: ok: hello 1.0.0 for linux/amd64",
        "hello-1.0.0-linux-arm64.tar.zst: ok: hello 1.0.0 for linux/arm64",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    let out = ok(verify_kit(kit, &kit.join("release.pub")).arg("--json"));
    let doc = json(&out);
    assert_eq!(doc["ok"], true);
    let rows = doc["result"]["parts"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["status"] == "ok"), "{doc:#}");
    assert_eq!(
        doc["result"]["files"].as_array().unwrap().len(),
        4,
        "{doc:#}"
    );

    // The same inputs give the same kit, byte for byte.
    let again = tempdir();
    make_kit(&again.path().join("kit"), None, true);
    common::assert_same_tree(kit, &again.path().join("kit"));
}

#[test]
fn kit_refuses_what_it_cannot_carry() {
    let s = shared();
    let dir = tempdir();
    // Not an empty directory.
    let busy = dir.path().join("busy");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("old"), "x").unwrap();
    let kit = |out: &Path| {
        let mut cmd = ferry();
        cmd.arg("kit")
            .arg(out)
            .arg(s.bundle("amd64"))
            .arg("--key")
            .arg(&s.key)
            .arg("--pubkey")
            .arg(&s.pubkey)
            .arg("--installer")
            .arg(static_installer());
        cmd
    };
    let out = exits(&mut kit(&busy), 1);
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    // A bad volume size is a usage error; one too small for the per-volume files fails.
    exits(
        kit(&dir.path().join("a")).args(["--volume-size", "10MB"]),
        2,
    );
    let out = exits(kit(&dir.path().join("b")).args(["--volume-size", "8K"]), 1);
    assert!(stderr(&out).contains("too small"), "{}", stderr(&out));
    // A bundle that does not verify with the key is refused (exit 3), as is a dynamic installer.
    let (_, other_pub) = common::minisign_keypair(dir.path(), "other");
    let mut wrong = ferry();
    wrong
        .arg("kit")
        .arg(dir.path().join("c"))
        .arg(s.bundle("amd64"))
        .arg("--key")
        .arg(&s.key)
        .arg("--pubkey")
        .arg(&other_pub)
        .arg("--installer")
        .arg(static_installer());
    exits(&mut wrong, 3);
    let out = exits(
        kit(&dir.path().join("d")).arg("--installer").arg("/bin/ls"),
        1,
    );
    assert!(
        stderr(&out).contains("dynamically linked"),
        "{}",
        stderr(&out)
    );
    for name in ["a", "b", "c", "d"] {
        assert!(!dir.path().join(name).exists(), "{name} was written");
    }
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        3,
        "temporary files left behind"
    );
}

// ---------------------------------------------------------------------------------------------
// A kit split into volumes.

#[test]
fn split_kit_checks_per_volume_with_stock_tools_and_installs_from_parts() {
    let kit = split_kit();
    let s = shared();
    let vols = volumes(kit);
    assert!(vols.len() >= 6, "{vols:?}");
    let idx = index(&kit.join("VOL-001"));
    assert_eq!(idx.volumes as usize, vols.len());
    for (n, v) in vols.iter().enumerate() {
        assert_eq!(v.file_name().unwrap(), format!("VOL-{:03}", n + 1).as_str());
        // Every volume fits its size and carries the read-me, key, index and checksums.
        let used: u64 = common::tree_files(v)
            .iter()
            .map(|f| fs::metadata(v.join(f)).unwrap().len())
            .sum();
        assert!(used <= VOLUME_BYTES, "{} holds {used} bytes", v.display());
        for f in [
            README_NAME,
            "release.pub",
            INDEX_NAME,
            "SHA256SUMS",
            "SHA256SUMS.sig",
        ] {
            assert!(v.join(f).is_file(), "{} lacks {f}", v.display());
        }
        assert_eq!(
            fs::read(v.join(INDEX_NAME)).unwrap(),
            fs::read(kit.join("VOL-001").join(INDEX_NAME)).unwrap()
        );
        // Each volume checks on its own with the stock tools.
        ok(tool("signify-openbsd")
            .args(["-C", "-p", "release.pub", "-x", "SHA256SUMS.sig"])
            .current_dir(v));
        ok(tool("sha256sum")
            .args(["-c", "--strict", "SHA256SUMS"])
            .current_dir(v));
    }
    // And so does the whole kit, from the directory holding the volumes.
    ok(tool("signify-openbsd")
        .args(["-C", "-p", "VOL-001/release.pub", "-x", "SHA256SUMS.sig"])
        .current_dir(kit));
    ok(tool("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(kit));

    // The parts are the bundle cut in order: cat joins them back (the index says how).
    let labels = part_labels(kit, AMD64_BUNDLE);
    assert!(labels.len() >= 3, "{labels:?}");
    assert!(labels[0].ends_with(".part001"), "{labels:?}");
    let joined = tempdir();
    let out = ok(tool("cat").args(&labels).current_dir(kit));
    fs::write(joined.path().join("b"), &out.stdout).unwrap();
    assert_eq!(sha256(&joined.path().join("b")), sha256(&s.bundle("amd64")));
    assert_eq!(
        idx.file(AMD64_BUNDLE).unwrap().sha256.to_string(),
        sha256(&s.bundle("amd64"))
    );
    // The installer, joined as the read-me says, is the static installer.
    let readme = fs::read_to_string(kit.join("VOL-001").join(README_NAME)).unwrap();
    let inst = part_labels(kit, "ferry-install-x86_64");
    assert!(inst.len() > 1, "{inst:?}");
    let cat_line = format!("cat {} > /var/tmp/ferry-install", inst.join(" "));
    assert!(
        readme.contains(&cat_line),
        "{cat_line:?} missing:\n{readme}"
    );
    let out = ok(tool("cat").args(&inst).current_dir(kit));
    fs::write(joined.path().join("i"), &out.stdout).unwrap();
    assert_eq!(sha256(&joined.path().join("i")), sha256(static_installer()));
    let install_line = format!(
        "/var/tmp/ferry-install install {} --pubkey VOL-001/release.pub",
        labels[0]
    );
    assert!(
        readme.contains(&install_line),
        "{install_line:?} missing:\n{readme}"
    );

    // ferry-install: the whole kit, and every volume on its own.
    let pubkey = kit.join("VOL-001/release.pub");
    let out = ok(&mut verify_kit(kit, &pubkey));
    assert!(
        stdout(&out).contains("hello-1.0.0-linux-amd64.tar.zst: ok: hello 1.0.0 for linux/amd64"),
        "{}",
        stdout(&out)
    );
    for v in &vols {
        let out = ok(verify_kit(v, &pubkey).arg("--json"));
        let doc = json(&out);
        let name = v.file_name().unwrap().to_str().unwrap();
        assert_eq!(doc["result"]["checked"], name);
        let rows = doc["result"]["parts"].as_array().unwrap();
        assert!(
            rows.iter().all(
                |r| r["part"].as_str().unwrap().starts_with(&format!("{name}/"))
                    && r["status"] == "ok"
            ),
            "{doc:#}"
        );
    }

    // Install from the first part into an offline root; scratch goes to an empty --tmpdir.
    let root = fresh_root();
    let tmp = tempdir();
    let first = kit.join(&labels[0]);
    let out = ok(&mut install(&first, &root.path, &pubkey, tmp.path()));
    let doc = json(&out);
    assert_eq!(doc["result"]["changed"], true, "{doc:#}");
    assert_eq!(doc["result"]["bundle_sha256"], sha256(&s.bundle("amd64")));
    assert_installed(&root.path);
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "--tmpdir was left with files"
    );
    // No reassembled copy of the bundle anywhere in the root.
    let size = fs::metadata(s.bundle("amd64")).unwrap().len();
    assert_eq!(files_of_size(&root.path, size), Vec::<PathBuf>::new());
    // The kit's index (or the kit directory) picks the bundle for this host's architecture:
    // the same bundle, already installed.
    for target in [kit.join("VOL-001").join(INDEX_NAME), kit.to_path_buf()] {
        let out = ok(&mut install(&target, &root.path, &pubkey, tmp.path()));
        assert_eq!(json(&out)["result"]["changed"], false, "{}", stdout(&out));
    }
    // A later part is not a starting point (usage, exit 2).
    let out = exits(
        &mut install(&kit.join(&labels[1]), &root.path, &pubkey, tmp.path()),
        2,
    );
    assert!(
        stdout(&out).contains("not the first part"),
        "{}",
        stdout(&out)
    );
}

/// Copies the split kit and flips one byte in the middle of `label`.
fn corrupted_copy(label: &str) -> tempfile::TempDir {
    let dir = tempdir();
    copy_tree(split_kit(), dir.path());
    let path = dir.path().join(label);
    let mut data = fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    fs::write(&path, data).unwrap();
    dir
}

/// Asserts `text` names `bad` and no other part of the kit.
fn names_only(text: &str, bad: &str, kit: &Path) {
    assert!(text.contains(bad), "{bad} is not named:\n{text}");
    for other in all_part_labels(kit).iter().filter(|l| *l != bad) {
        assert!(
            !text.contains(other.as_str()),
            "{other} is named too:\n{text}"
        );
    }
}

#[test]
fn corrupt_part_is_named_alone_and_nothing_is_installed() {
    let labels = part_labels(split_kit(), AMD64_BUNDLE);
    let bad = labels[1].clone();
    let copy = corrupted_copy(&bad);
    let kit = copy.path();
    let pubkey = kit.join("VOL-001/release.pub");

    // The whole kit: exit 3, the error names that part and no other; the table marks it.
    let out = exits(&mut verify_kit(kit, &pubkey), 3);
    let err = stderr(&out);
    names_only(&err, &bad, kit);
    assert!(err.contains("CORRUPT"), "{err}");
    let table = stdout(&out);
    let corrupt_rows: Vec<&str> = table
        .lines()
        .filter(|l| l.contains("CORRUPT"))
        .map(str::trim)
        .collect::<Vec<_>>();
    assert_eq!(corrupt_rows.len(), 1, "{}", stdout(&out));
    assert!(
        corrupt_rows[0].contains(bad.split('/').nth(1).unwrap()),
        "{corrupt_rows:?}"
    );
    assert!(
        table.contains("hello-1.0.0-linux-arm64.tar.zst: ok:")
            && table.contains("hello-1.0.0-linux-amd64.tar.zst: NOT VERIFIED"),
        "{table}"
    );
    let out = exits(verify_kit(kit, &pubkey).arg("--json"), 3);
    let doc = json(&out);
    assert_eq!(doc["error"]["exit_code"], 3);
    names_only(doc["error"]["message"].as_str().unwrap(), &bad, kit);

    // Its volume on its own names it; another volume is fine.
    let bad_vol = kit.join(bad.split('/').next().unwrap());
    let out = exits(&mut verify_kit(&bad_vol, &pubkey), 3);
    names_only(&stderr(&out), &bad, kit);
    ok(&mut verify_kit(&kit.join("VOL-001"), &pubkey));

    // Install: refused before any install step, the root untouched.
    let root = fresh_root();
    let tmp = tempdir();
    let before = snapshot(&root.path);
    let out = exits(
        &mut install(&kit.join(&labels[0]), &root.path, &pubkey, tmp.path()),
        3,
    );
    names_only(&stdout(&out), &bad, kit);
    assert!(
        !stderr(&out).contains("reading and verifying the manifest"),
        "{}",
        stderr(&out)
    );
    assert_unchanged(&before, &snapshot(&root.path), "the root");
}

#[test]
fn missing_part_is_named() {
    let dir = tempdir();
    copy_tree(split_kit(), dir.path());
    let kit = dir.path();
    let pubkey = kit.join("VOL-001/release.pub");
    let labels = part_labels(kit, AMD64_BUNDLE);
    let gone = labels.last().unwrap().clone();
    fs::remove_file(kit.join(&gone)).unwrap();

    let out = exits(&mut verify_kit(kit, &pubkey), 3);
    names_only(&stderr(&out), &gone, kit);
    assert!(stderr(&out).contains("MISSING"), "{}", stderr(&out));
    let out = exits(
        &mut verify_kit(&kit.join(gone.split('/').next().unwrap()), &pubkey),
        3,
    );
    names_only(&stderr(&out), &gone, kit);

    let root = fresh_root();
    let tmp = tempdir();
    let before = snapshot(&root.path);
    let out = exits(
        &mut install(&kit.join(&labels[0]), &root.path, &pubkey, tmp.path()),
        3,
    );
    names_only(&stdout(&out), &gone, kit);
    assert_unchanged(&before, &snapshot(&root.path), "the root");

    // A volume from another kit (a different index) is caught too.
    let other = tempdir();
    make_kit(&other.path().join("k"), Some("2M"), false);
    fs::copy(
        other.path().join("k/VOL-001").join(INDEX_NAME),
        kit.join("VOL-002").join(INDEX_NAME),
    )
    .unwrap();
    let out = exits(&mut verify_kit(kit, &pubkey), 3);
    assert!(
        stderr(&out).contains("VOL-002/kit.index: CORRUPT"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// Read-only media.

/// A read-only bind mount of a directory, unmounted when dropped.
struct ReadOnlyMount {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ReadOnlyMount {
    fn new(src: &Path) -> Self {
        let dir = tempdir();
        let path = dir.path().join("media");
        fs::create_dir(&path).unwrap();
        ok(tool("mount").arg("--bind").arg(src).arg(&path));
        let m = Self { _dir: dir, path };
        ok(tool("mount").args(["-o", "remount,ro,bind"]).arg(&m.path));
        m
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let out = Command::new("umount").arg(&self.path).output();
        if !out.is_ok_and(|o| o.status.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

#[test]
fn installs_from_read_only_media_and_writes_nothing_there() {
    let split = ReadOnlyMount::new(split_kit());
    let flat = ReadOnlyMount::new(flat_kit());
    let media = [&split.path, &flat.path];
    let before: Vec<_> = media.iter().map(|m| snapshot(m)).collect();
    let probe = split.path.join("probe");
    assert!(
        fs::write(&probe, "x").is_err(),
        "the bind mount is writable"
    );

    let pubkey = split.path.join("VOL-001/release.pub");
    ok(&mut verify_kit(&split.path, &pubkey));
    ok(&mut verify_kit(&flat.path, &pubkey));

    // From the parts of the split kit, run from inside the media (its cwd).
    let labels = part_labels(&split.path, AMD64_BUNDLE);
    let root = fresh_root();
    let tmp = tempdir();
    let mut cmd = install(Path::new(&labels[0]), &root.path, &pubkey, tmp.path());
    cmd.current_dir(&split.path);
    let out = ok(&mut cmd);
    assert_eq!(json(&out)["result"]["changed"], true);
    assert_installed(&root.path);

    // A whole bundle on read-only media: nothing beside it either.
    let root2 = fresh_root();
    let out = ok(&mut install(
        &flat.path.join(AMD64_BUNDLE),
        &root2.path,
        &flat.path.join("release.pub"),
        tmp.path(),
    ));
    assert_eq!(json(&out)["result"]["changed"], true);
    assert_installed(&root2.path);

    for (m, b) in media.iter().zip(&before) {
        assert_unchanged(b, &snapshot(m), &m.display().to_string());
    }
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);

    // A --tmpdir that is not there stops the install before anything changes (exit 4).
    let root3 = fresh_root();
    let before = snapshot(&root3.path);
    let out = exits(
        &mut install(
            &split.path.join(&labels[0]),
            &root3.path,
            &pubkey,
            Path::new("/nonexistent/tmp"),
        ),
        4,
    );
    assert!(stdout(&out).contains("--tmpdir"), "{}", stdout(&out));
    assert_unchanged(&before, &snapshot(&root3.path), "the root");
}
