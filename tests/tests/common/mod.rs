//! Shared helpers for the end-to-end bundle tests: the built binaries, stock tools, commands
//! with captured output, and one signed build of `examples/hello` that most tests read.
//!
//! Every command runs with stdin closed (nothing may prompt), `LC_ALL=C` and `TZ=UTC`, and
//! every ferry command with `SOURCE_DATE_EPOCH` set and `FERRY_PASSPHRASE` removed unless a
//! test sets it.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The `SOURCE_DATE_EPOCH` every build uses unless a test says otherwise.
pub const SDE: u64 = 1_700_000_000;
/// [`SDE`] as GNU tar prints it with `--full-time` and `TZ=UTC`.
pub const SDE_TAR: &str = "2023-11-14 22:13:20";
/// The example project's bundles, per architecture.
pub const ARCHES: [&str; 2] = ["amd64", "arm64"];
/// What to install when a stock tool is missing.
pub const INSTALL_HINT: &str = "install minisign signify-openbsd file binutils zstd";

/// Stock tools the tests use as independent judges (or to drive builds).
const TOOLS: [&str; 11] = [
    "minisign",
    "signify-openbsd",
    "file",
    "readelf",
    "zstd",
    "tar",
    "sha256sum",
    "base64",
    "go",
    "git",
    "unshare",
];

pub use ferry_tests::{target_dir, workspace_root};

/// The example project every test builds.
pub fn hello_dir() -> PathBuf {
    workspace_root().join("examples/hello")
}

/// This test process's scratch root, `CARGO_TARGET_TMPDIR/ferry-bundle-<pid>`: shared builds,
/// extracted bundles and private copies of the binaries live here, so concurrent test runs in
/// one target directory never see each other's files. Roots of processes that are gone are
/// removed when the next run starts.
pub fn run_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(base).unwrap();
        for entry in fs::read_dir(base).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("ferry-bundle-") {
                let alive = pid
                    .parse::<u32>()
                    .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
                if !alive {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let root = base.join(format!("ferry-bundle-{}", std::process::id()));
        if root.exists() {
            fs::remove_dir_all(&root).unwrap();
        }
        fs::create_dir_all(&root).unwrap();
        root
    })
}

/// The built `ferry` and `ferry-install` (debug profile).
pub struct Bins {
    pub ferry: PathBuf,
    pub ferry_install: PathBuf,
}

/// Builds `ferry` and `ferry-install` once per test process (`cargo build -p ferry -p
/// ferry-install`), so the tests never run stale binaries, and copies them into
/// [`run_root`] so a rebuild by someone else mid-run cannot swap them underneath the tests.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--manifest-path")
            .arg(workspace_root().join("Cargo.toml"))
            .args(["-p", "ferry", "-p", "ferry-install"]);
        ok(&mut cmd);
        let built = target_dir().join("debug");
        let private = run_root().join("bin");
        fs::create_dir_all(&private).unwrap();
        let bins = Bins {
            ferry: private.join("ferry"),
            ferry_install: private.join("ferry-install"),
        };
        for bin in [&bins.ferry, &bins.ferry_install] {
            let src = built.join(bin.file_name().unwrap());
            assert!(src.is_file(), "{} was not built", src.display());
            fs::copy(&src, bin).unwrap();
        }
        bins
    })
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(name)).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

/// Fails (never skips) when a stock tool is missing.
pub fn require_tools() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let missing: Vec<&str> = TOOLS.into_iter().filter(|t| !on_path(t)).collect();
        assert!(
            missing.is_empty(),
            "missing stock tools {missing:?}: {INSTALL_HINT} (and go, git, util-linux, tar, coreutils)"
        );
    });
}

/// A stock tool, with the environment every test command gets.
pub fn tool(name: &str) -> Command {
    require_tools();
    let mut cmd = Command::new(name);
    cmd.env("LC_ALL", "C").env("TZ", "UTC").stdin(Stdio::null());
    cmd
}

/// `ferry` with `SOURCE_DATE_EPOCH` = [`SDE`] and no `FERRY_PASSPHRASE`.
pub fn ferry() -> Command {
    let mut cmd = tool(bins().ferry.to_str().expect("UTF-8 path"));
    cmd.env("SOURCE_DATE_EPOCH", SDE.to_string())
        .env_remove("FERRY_PASSPHRASE");
    cmd
}

/// `ferry-install`.
pub fn ferry_install() -> Command {
    tool(bins().ferry_install.to_str().expect("UTF-8 path"))
}

/// Runs a command to completion, capturing stdout and stderr.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} ({INSTALL_HINT}?)"))
}

/// Runs a command with `input` on its stdin.
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .expect("writing stdin");
    child.wait_with_output().expect("waiting for the command")
}

/// A command and its result, for assertion messages.
pub fn describe(cmd: &Command, out: &Output) -> String {
    let mut s = format!("{cmd:?}\n  -> {}", out.status);
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if !bytes.is_empty() {
            let _ = write!(s, "\n--- {name} ---\n{}", String::from_utf8_lossy(bytes));
        }
    }
    s
}

/// Asserts that an already-run command succeeded.
pub fn assert_success(cmd: &Command, out: &Output) {
    assert!(
        out.status.success(),
        "command failed: {}",
        describe(cmd, out)
    );
}

/// Runs a command and asserts that it succeeded.
pub fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert_success(cmd, &out);
    out
}

/// Runs a command with `input` on stdin and asserts that it succeeded.
pub fn ok_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let out = run_with_stdin(cmd, input);
    assert_success(cmd, &out);
    out
}

/// Runs a command and asserts that it exited with `code`.
pub fn exits(cmd: &mut Command, code: i32) -> Output {
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}: {}",
        describe(cmd, &out)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `first | second`; asserts that `first` succeeded and returns `second`'s output.
pub fn pipe(first: &mut Command, second: &mut Command) -> Output {
    let mut a = first
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {first:?}: {e}"));
    let a_stdout = a.stdout.take().expect("piped stdout");
    let out = run(second.stdin(a_stdout));
    let a_out = a.wait_with_output().expect("waiting for the command");
    assert_success(first, &a_out);
    out
}

/// `zstd -dc BUNDLE | tar -x -C DEST`.
pub fn extract(bundle: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    let mut untar = tool("tar");
    untar.arg("-x").arg("-C").arg(dest);
    let out = pipe(tool("zstd").arg("-dc").arg(bundle), &mut untar);
    assert_success(&untar, &out);
}

/// `zstd -dc BUNDLE | tar -tv --full-time`, one line per entry.
pub fn tar_listing(bundle: &Path) -> Vec<String> {
    let mut list = tool("tar");
    list.args(["-tv", "--full-time"]);
    let out = pipe(tool("zstd").arg("-dc").arg(bundle), &mut list);
    assert_success(&list, &out);
    stdout(&out).lines().map(str::to_owned).collect()
}

/// `sha256sum FILE`, lowercase hex.
pub fn sha256(file: &Path) -> String {
    let out = ok(tool("sha256sum").arg("--").arg(file));
    stdout(&out)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_owned()
}

/// The base64 payload (second line) of a minisign key file, decoded with coreutils `base64`.
pub fn key_payload(key_file: &Path) -> Vec<u8> {
    let text = fs::read_to_string(key_file).unwrap();
    let line = text.lines().nth(1).expect("a key file has two lines");
    ok_with_stdin(tool("base64").arg("-d"), line.as_bytes()).stdout
}

/// The key id as minisign displays it: hex of the little-endian u64 keynum (bytes reversed).
pub fn key_id(pub_file: &Path) -> String {
    let payload = key_payload(pub_file);
    assert_eq!(
        payload.len(),
        42,
        "public key payload of {}",
        pub_file.display()
    );
    assert_eq!(&payload[..2], b"Ed");
    payload[2..10].iter().rev().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}

/// `OUT/<app>-<version>-linux-<arch>.tar.zst` of the example.
pub fn bundle_name(arch: &str) -> String {
    format!("hello-1.0.0-linux-{arch}.tar.zst")
}

/// Copies a directory tree (files, directories, symlinks; permissions kept).
pub fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&from, &to);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from).unwrap(), &to).unwrap();
        } else {
            fs::copy(&from, &to).unwrap();
        }
    }
}

/// Regular files under `dir`, as sorted paths relative to it.
pub fn tree_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, acc: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, acc);
            } else {
                acc.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut acc = Vec::new();
    walk(dir, dir, &mut acc);
    acc.sort();
    acc
}

/// Asserts two directories hold the same files with the same bytes.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (fa, fb) = (tree_files(a), tree_files(b));
    assert_eq!(
        fa,
        fb,
        "{} and {} hold different files",
        a.display(),
        b.display()
    );
    for rel in &fa {
        let (x, y) = (
            fs::read(a.join(rel)).unwrap(),
            fs::read(b.join(rel)).unwrap(),
        );
        if x != y {
            let at = x
                .iter()
                .zip(&y)
                .position(|(p, q)| p != q)
                .unwrap_or(x.len().min(y.len()));
            panic!(
                "{} differs between {} and {}: sizes {} and {}, first difference at byte {at}",
                rel.display(),
                a.display(),
                b.display(),
                x.len(),
                y.len()
            );
        }
    }
}

/// A key pair from `ferry keygen --unencrypted` and a build of `examples/hello` for its
/// default targets, made once per test process under [`run_root`]. Tests only read
/// it; anything they change, they change in a copy.
pub struct Shared {
    pub key: PathBuf,
    pub pubkey: PathBuf,
    pub out: PathBuf,
}

impl Shared {
    pub fn bundle(&self, arch: &str) -> PathBuf {
        self.out.join(bundle_name(arch))
    }
}

pub fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = run_root().join("shared");
        fs::create_dir_all(&dir).unwrap();
        let prefix = dir.join("release");
        ok(ferry()
            .arg("keygen")
            .arg("--out")
            .arg(&prefix)
            .arg("--unencrypted"));
        let out = dir.join("out");
        ok(ferry()
            .arg("build")
            .arg(hello_dir())
            .arg("--key")
            .arg(prefix.with_extension("key"))
            .arg("--out")
            .arg(&out));
        Shared {
            key: prefix.with_extension("key"),
            pubkey: prefix.with_extension("pub"),
            out,
        }
    })
}

/// A fresh temporary directory (removed when dropped).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ferry-e2e-")
        .tempdir()
        .expect("creating a temporary directory")
}

/// A minisign key pair from `minisign -G -W` (unencrypted): `(secret, public)`.
pub fn minisign_keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (sk, pk) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    );
    ok(tool("minisign")
        .args(["-G", "-W", "-f", "-p"])
        .arg(&pk)
        .arg("-s")
        .arg(&sk));
    (sk, pk)
}

/// The key id minisign wrote into a public key's untrusted comment.
///
/// minisign 0.11 prints the id without leading zeros (one key in sixteen starts with a 0);
/// newer versions and ferry pad it to 16 digits, so it is returned padded.
pub fn minisign_displayed_id(pub_file: &Path) -> String {
    let text = fs::read_to_string(pub_file).unwrap();
    let shown = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("untrusted comment: minisign public key "))
        .unwrap_or_else(|| panic!("{} has no minisign comment: {text}", pub_file.display()))
        .trim();
    let n = u64::from_str_radix(shown, 16)
        .unwrap_or_else(|e| panic!("{}: key id {shown:?}: {e}", pub_file.display()));
    format!("{n:016X}")
}
