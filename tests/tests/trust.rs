//! Keys over time, through the real binaries: a rotated key's bundle is accepted only after
//! the rotation statement signed by the old key; a revoked key's bundle is refused even
//! with a valid signature. signify checks the statements independently.

mod common;

use std::path::{Path, PathBuf};

use common::{exits, ferry, ferry_install, hello_dir, ok, stderr, tempdir, tool};

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new(names: &[&str]) -> Self {
        let k = Self { dir: tempdir() };
        for n in names {
            ok(ferry()
                .arg("keygen")
                .arg("--out")
                .arg(k.prefix(n))
                .arg("--unencrypted"));
        }
        k
    }
    fn prefix(&self, n: &str) -> PathBuf {
        self.dir.path().join(n)
    }
    fn key(&self, n: &str) -> PathBuf {
        self.prefix(n).with_extension("key")
    }
    fn public(&self, n: &str) -> PathBuf {
        self.prefix(n).with_extension("pub")
    }
    fn id(&self, n: &str) -> String {
        common::key_id(&self.public(n))
    }
}

/// `examples/hello` for amd64 signed with `key`, in its own output directory.
fn bundle(key: &Path, out: &Path) -> PathBuf {
    ok(ferry()
        .arg("build")
        .arg(hello_dir())
        .arg("--key")
        .arg(key)
        .arg("--out")
        .arg(out)
        .args(["--target", "linux/amd64"]));
    out.join(common::bundle_name("amd64"))
}

fn verify(bundle: &Path, args: &[&std::ffi::OsStr]) -> std::process::Command {
    let mut c = ferry_install();
    c.arg("verify").arg(bundle).args(args);
    c
}

#[test]
fn rotation_then_revocation() {
    let keys = Keys::new(&["a", "b", "evil"]);
    let work = tempdir();
    let signed_by_b = bundle(&keys.key("b"), &work.path().join("b"));
    let signed_by_a = bundle(&keys.key("a"), &work.path().join("a"));
    let pub_a = keys.public("a");

    // Before any statement, only A is trusted: B's bundle is refused, naming B's key.
    let out = exits(
        &mut verify(&signed_by_b, &["--pubkey".as_ref(), pub_a.as_os_str()]),
        3,
    );
    assert!(stderr(&out).contains(&keys.id("b")), "{}", stderr(&out));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));

    // A rotation signed by an untrusted key proves nothing.
    let forged = work.path().join("forged.rotation");
    ok(ferry()
        .arg("rotate-key")
        .arg("--old")
        .arg(keys.key("evil"))
        .arg("--new")
        .arg(keys.public("b"))
        .arg("--out")
        .arg(&forged));
    exits(
        &mut verify(
            &signed_by_b,
            &[
                "--pubkey".as_ref(),
                pub_a.as_os_str(),
                "--rotation".as_ref(),
                forged.as_os_str(),
            ],
        ),
        3,
    );

    // A signs "B replaces A": now B's bundle is accepted.
    let rotation = work.path().join("b.rotation");
    ok(ferry()
        .arg("rotate-key")
        .arg("--old")
        .arg(keys.key("a"))
        .arg("--new")
        .arg(keys.public("b"))
        .arg("--out")
        .arg(&rotation));
    ok(&mut verify(
        &signed_by_b,
        &[
            "--pubkey".as_ref(),
            pub_a.as_os_str(),
            "--rotation".as_ref(),
            rotation.as_os_str(),
        ],
    ));
    // signify, as an independent judge, accepts the statement under A's key.
    let msg = work.path().join("rotation.txt");
    ok(tool("signify-openbsd")
        .args(["-V", "-e", "-p"])
        .arg(&pub_a)
        .arg("-x")
        .arg(&rotation)
        .arg("-m")
        .arg(&msg));
    let text = std::fs::read_to_string(&msg).unwrap();
    assert!(text.starts_with("ferry key rotation v1\n"), "{text}");

    // The same, from a keyring directory as installed on a host.
    let ring = work.path().join("keyring");
    std::fs::create_dir_all(ring.join("rotations")).unwrap();
    std::fs::copy(&pub_a, ring.join("a.pub")).unwrap();
    std::fs::copy(&rotation, ring.join("rotations/b.rotation")).unwrap();
    ok(&mut verify(
        &signed_by_b,
        &["--keyring".as_ref(), ring.as_os_str()],
    ));

    // A is compromised and revokes itself: A's bundle is refused although its signature
    // is valid, and A's rotation to B no longer counts either.
    let revocation = work.path().join("a.revocation");
    ok(ferry()
        .arg("revoke-key")
        .arg("--key")
        .arg(keys.key("a"))
        .arg("--revoke")
        .arg(keys.id("a"))
        .args(["--reason", "compromised"])
        .arg("--out")
        .arg(&revocation));
    std::fs::create_dir_all(ring.join("revocations")).unwrap();
    std::fs::copy(&revocation, ring.join("revocations/a.revocation")).unwrap();
    std::fs::copy(keys.public("b"), ring.join("b.pub")).unwrap();
    let out = exits(
        &mut verify(&signed_by_a, &["--keyring".as_ref(), ring.as_os_str()]),
        3,
    );
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));
    // B is trusted directly now (b.pub in the keyring), so its bundle still installs.
    ok(&mut verify(
        &signed_by_b,
        &["--keyring".as_ref(), ring.as_os_str()],
    ));

    // An operator's plain `revoked` list works the same way.
    let ring2 = work.path().join("keyring2");
    std::fs::create_dir_all(&ring2).unwrap();
    std::fs::copy(&pub_a, ring2.join("a.pub")).unwrap();
    std::fs::copy(keys.public("b"), ring2.join("b.pub")).unwrap();
    std::fs::write(
        ring2.join("revoked"),
        format!("# lost laptop\n{}\n", keys.id("a")),
    )
    .unwrap();
    let out = exits(
        &mut verify(&signed_by_a, &["--keyring".as_ref(), ring2.as_os_str()]),
        3,
    );
    assert!(stderr(&out).contains("revoked"), "{}", stderr(&out));
}
