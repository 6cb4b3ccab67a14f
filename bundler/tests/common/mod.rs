//! What the CLI tests share: a copied project with its own key, built through the real
//! `ferry` binary, and the verified bundle it makes.

// Each test file uses a different part of this.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry_format::archive::read_bundle;
use ferry_format::keyring::Keyring;
use ferry_format::{Limits, Manifest};
use tempfile::TempDir;

pub const SOURCE_DATE_EPOCH: &str = "1700000000";
pub const BUNDLE: &str = "hello-1.0.0-linux-amd64.tar.zst";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// A tool the test cannot do without.
pub fn need(tool: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{tool} is required by this test: install the {package} package (CI does)")
        })
}

pub fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A copy of examples/hello (or a fixture) and a fresh unencrypted signing key, in a
/// temporary directory.
pub struct Project {
    pub tmp: TempDir,
    dir: PathBuf,
}

impl Project {
    pub fn example() -> Self {
        Self::copy_of(&workspace().join("examples/hello"))
    }

    /// A copy of `bundler/tests/fixtures/NAME`.
    pub fn fixture(name: &str) -> Self {
        Self::copy_of(&workspace().join("bundler/tests/fixtures").join(name))
    }

    fn copy_of(from: &Path) -> Self {
        need("go", "golang");
        let tmp = tempfile::Builder::new()
            .prefix("ferry-templates-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("p");
        copy_dir(from, &dir);
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["keygen", "--unencrypted", "--out"])
            .arg(tmp.path().join("k"))
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {}", text(&out));
        Self { tmp, dir }
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Moves the project to REL under the temporary directory.
    pub fn move_to(&mut self, rel: &str) {
        let to = self.tmp.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(&self.dir, &to).unwrap();
        self.dir = to;
    }

    pub fn out(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn pubkey(&self) -> PathBuf {
        self.tmp.path().join("k.pub")
    }

    /// Replaces `from` (which must occur) in ferry.toml.
    pub fn edit(&self, from: &str, to: &str) {
        let path = self.dir().join("ferry.toml");
        let t = std::fs::read_to_string(&path).unwrap();
        assert!(t.contains(from), "ferry.toml has no {from:?}");
        std::fs::write(&path, t.replacen(from, to, 1)).unwrap();
    }

    pub fn append(&self, extra: &str) {
        let path = self.dir().join("ferry.toml");
        let t = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{t}\n{extra}\n")).unwrap();
    }

    pub fn write(&self, rel: &str, content: &str) {
        let path = self.dir().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// `ferry --json build` into OUT (a name under the temporary directory).
    /// `ferry --json build` into OUT, not yet run.
    pub fn build_cmd(&self, out: &str, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
        cmd.args(["--json", "build"])
            .arg(self.dir())
            .arg("--key")
            .arg(self.tmp.path().join("k.key"))
            .arg("--out")
            .arg(self.out(out))
            .args(["--target", "linux/amd64"])
            .args(extra)
            .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH);
        cmd
    }

    /// `ferry --json build` into OUT (a name under the temporary directory).
    pub fn build_with(
        &self,
        out: &str,
        extra: &[&str],
        path_env: Option<&std::ffi::OsStr>,
    ) -> Output {
        let mut cmd = self.build_cmd(out, extra);
        if let Some(p) = path_env {
            cmd.env("PATH", p);
        }
        cmd.output().unwrap()
    }

    pub fn build(&self, out: &str, extra: &[&str]) -> Output {
        self.build_with(out, extra, None)
    }

    /// Builds, expecting success; returns the JSON report, the manifest and the payload.
    pub fn build_ok(&self, out: &str, extra: &[&str]) -> Built {
        let o = self.build(out, extra);
        self.opened(&o)
    }

    /// The bundle a successful build made (the first, with one target).
    pub fn opened(&self, o: &Output) -> Built {
        assert!(o.status.success(), "build failed: {}", text(o));
        let report: serde_json::Value =
            serde_json::from_slice(&o.stdout).expect("one JSON document on stdout");
        let bundle = report["result"]["bundles"][0]["path"]
            .as_str()
            .expect("a bundle in the report");
        Built::open(o, Path::new(bundle), &self.pubkey())
    }
}

pub struct Built {
    pub report: serde_json::Value,
    pub stderr: String,
    pub manifest: Manifest,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Built {
    /// Verifies the bundle with the project's public key and keeps every payload file.
    pub fn open(out: &Output, bundle: &Path, pubkey: &Path) -> Self {
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
        let keyring = Keyring::load(&[pubkey]).unwrap();
        let mut files = BTreeMap::new();
        let verified = read_bundle(
            std::fs::File::open(bundle).unwrap(),
            &keyring,
            &Limits::default(),
            &mut |entry, r| {
                let mut data = Vec::new();
                r.read_to_end(&mut data)?;
                files.insert(entry.path.to_string(), data);
                Ok(())
            },
        )
        .expect("the bundle verifies");
        Self {
            report,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            manifest: verified.manifest,
            files,
        }
    }

    pub fn file(&self, path: &str) -> String {
        String::from_utf8(
            self.files
                .get(path)
                .unwrap_or_else(|| panic!("no {path} in the bundle"))
                .clone(),
        )
        .unwrap()
    }

    pub fn check(&self, name: &str) -> &serde_json::Value {
        self.report["result"]["checks"]
            .as_array()
            .expect("checks in the report")
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {}", self.report))
    }
}

pub fn assert_failed_and_out_untouched(o: &Output, out: &Path) {
    assert!(!o.status.success(), "the build should fail: {}", text(o));
    assert!(!out.exists(), "a failed build wrote to {}", out.display());
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a JSON error document");
    assert_eq!(doc["ok"], false);
}

/// The whole error (message and causes) of a failed `--json` build.
pub fn error_text(o: &Output) -> String {
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut t = doc["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for c in doc["error"]["causes"].as_array().into_iter().flatten() {
        t.push('\n');
        t.push_str(c.as_str().unwrap_or_default());
    }
    t
}
