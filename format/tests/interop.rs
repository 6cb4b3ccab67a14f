//! Interoperability with the stock tools security teams verify with: minisign,
//! signify-openbsd and coreutils' sha256sum. These tests never skip: a missing tool
//! fails them, saying how to install it.
//!
//! Keys encrypted the way minisign does it (scrypt, N = 2^20, 1 GiB) take seconds to
//! derive on both sides; each test derives as few as it can.

use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ferry_format::minisign::{
    self, Algorithm, Encryption, Prehasher, PublicKey, SecretKey, SigError, Signature,
};
use ferry_format::signify;
use ferry_format::sums::SumsList;
use sha2::Digest as _;
use tempfile::TempDir;
use zeroize::Zeroizing;

const INSTALL_HINT: &str =
    "these interop tests need the stock tools: apt-get install -y minisign signify-openbsd coreutils";

const MESSAGE: &[u8] = b"ferry bundle bytes\n\x00\x01\x02 and some binary\xff\n";
const PASSPHRASE: &str = "correct horse battery staple";

fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed; {INSTALL_HINT}"))
}

/// Runs a stock tool in `dir`, feeding `stdin` (passwords) if given.
fn run<S: AsRef<OsStr>>(dir: &Path, name: &str, args: &[S], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(tool(name));
    cmd.args(args)
        .current_dir(dir)
        // Newer minisign reads the password from here; the tests feed it on stdin.
        .env_remove("MINISIGN_PASSWORD")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{name}`: {e}; {INSTALL_HINT}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write to the tool's stdin");
    }
    child.wait_with_output().expect("wait for the tool")
}

fn describe(name: &str, args: &[impl AsRef<OsStr>], out: &Output) -> String {
    let args: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    format!(
        "`{name} {}` exited with {}\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a tool that must succeed; returns its stdout.
fn succeeds<S: AsRef<OsStr>>(dir: &Path, name: &str, args: &[S], stdin: Option<&str>) -> String {
    let out = run(dir, name, args, stdin);
    assert!(out.status.success(), "{}", describe(name, args, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a tool that must fail; returns its exit code.
fn fails<S: AsRef<OsStr>>(dir: &Path, name: &str, args: &[S], stdin: Option<&str>) -> i32 {
    let out = run(dir, name, args, stdin);
    assert!(
        !out.status.success(),
        "expected a failure: {}",
        describe(name, args, &out)
    );
    out.status.code().unwrap_or(-1)
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, contents).unwrap();
}

fn scrypt(passphrase: &str) -> Encryption {
    Encryption::Scrypt {
        passphrase: Zeroizing::new(passphrase.to_owned()),
    }
}

/// Our public key file is minisign's byte for byte, except that minisign 0.11 writes the
/// key id in the (untrusted) comment without leading zeros, where newer versions and we
/// pad it to 16 digits.
fn assert_same_public_key_file(ours: &str, theirs: &str) {
    const PREFIX: &str = "untrusted comment: minisign public key ";
    let split = |text: &str| -> (u64, String) {
        let (comment, rest) = text.split_once('\n').expect("two lines");
        let id = comment.strip_prefix(PREFIX).expect("minisign's comment");
        (
            u64::from_str_radix(id, 16).expect("hex key id"),
            rest.to_owned(),
        )
    };
    assert_eq!(split(ours), split(theirs), "ours:\n{ours}theirs:\n{theirs}");
}

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("create a temp dir")
}

#[test]
fn minisign_verifies_our_prehashed_signatures() {
    let dir = tempdir();
    let d = dir.path();
    let sk = SecretKey::generate().unwrap();
    write(d, "ferry.pub", sk.public_key().to_file_string());
    write(d, "bundle.tar.zst", MESSAGE);
    let trusted = "app:hello\tversion:1.2.3\ttarget:x86_64-linux\tmanifest:ab12";
    let sig = minisign::sign(&sk, MESSAGE, trusted, "signature from ferry").unwrap();
    write(d, "bundle.tar.zst.minisig", sig.to_file_string());

    let out = succeeds(
        d,
        "minisign",
        &["-V", "-p", "ferry.pub", "-m", "bundle.tar.zst"],
        None,
    );
    assert!(
        out.contains(&format!("Trusted comment: {trusted}")),
        "minisign printed:\n{out}"
    );
    // -H insists on a prehashed signature.
    succeeds(
        d,
        "minisign",
        &["-V", "-H", "-p", "ferry.pub", "-m", "bundle.tar.zst"],
        None,
    );
    // The public key also works inline, as `minisign -P` takes it.
    let b64 = sk.public_key().to_base64();
    succeeds(
        d,
        "minisign",
        &["-V", "-P", b64.as_str(), "-m", "bundle.tar.zst"],
        None,
    );

    // A signature from the streaming path is the same file.
    let mut h = Prehasher::new();
    h.update(&MESSAGE[..7]);
    h.update(&MESSAGE[7..]);
    let streamed =
        minisign::sign_prehashed(&sk, &h.finalize(), trusted, "signature from ferry").unwrap();
    assert_eq!(streamed, sig);

    // Tampering with the file, the trusted comment or the key id is caught.
    write(d, "bundle.tar.zst", b"something else");
    assert_eq!(
        fails(
            d,
            "minisign",
            &["-V", "-p", "ferry.pub", "-m", "bundle.tar.zst"],
            None
        ),
        1
    );
    write(d, "bundle.tar.zst", MESSAGE);
    let edited = sig
        .to_file_string()
        .replace("version:1.2.3", "version:9.9.9");
    write(d, "bundle.tar.zst.minisig", edited);
    assert_eq!(
        fails(
            d,
            "minisign",
            &["-V", "-p", "ferry.pub", "-m", "bundle.tar.zst"],
            None
        ),
        1
    );
    let other = SecretKey::generate().unwrap();
    write(d, "other.pub", other.public_key().to_file_string());
    write(d, "bundle.tar.zst.minisig", sig.to_file_string());
    assert_eq!(
        fails(
            d,
            "minisign",
            &["-V", "-p", "other.pub", "-m", "bundle.tar.zst"],
            None
        ),
        1
    );
}

#[test]
fn minisign_accepts_the_spec_test_vector() {
    let dir = tempdir();
    let d = dir.path();
    let seed: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap());
    let sk = SecretKey::from_seed(&seed, minisign::KeyId([1, 2, 3, 4, 5, 6, 7, 8]));
    let trusted = "timestamp:1700000000\tfile:msg.txt\thashed";
    let sig = minisign::sign(&sk, b"hello world\n", trusted, "c").unwrap();
    write(d, "k.pub", sk.public_key().to_file_string());
    write(d, "msg.txt", b"hello world\n");
    write(d, "msg.txt.minisig", sig.to_file_string());
    succeeds(d, "minisign", &["-V", "-p", "k.pub", "-m", "msg.txt"], None);
    assert_eq!(
        sk.public_key().to_file_string(),
        "untrusted comment: minisign public key 0807060504030201\n\
         RWQBAgMEBQYHCAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4\n"
    );
}

#[test]
fn minisign_signs_with_our_unencrypted_key() {
    let dir = tempdir();
    let d = dir.path();
    let sk = SecretKey::generate().unwrap();
    write(
        d,
        "ferry.key",
        sk.to_file_string(&Encryption::Unencrypted).unwrap(),
    );
    write(d, "ferry.pub", sk.public_key().to_file_string());
    write(d, "file.bin", MESSAGE);

    succeeds(
        d,
        "minisign",
        &[
            "-S",
            "-s",
            "ferry.key",
            "-m",
            "file.bin",
            "-t",
            "trusted text",
            "-c",
            "untrusted text",
        ],
        None,
    );
    let sig = Signature::load(d.join("file.bin.minisig")).unwrap();
    assert_eq!(sig.algorithm, Algorithm::Prehashed);
    assert_eq!(sig.key_id, sk.key_id());
    assert_eq!(sig.trusted_comment, "trusted text");
    assert_eq!(sig.untrusted_comment, "untrusted text");
    sk.public_key().verify(&sig, MESSAGE).unwrap();
    // Ed25519 is deterministic: minisign's file is exactly the one we would write.
    let ours = minisign::sign(&sk, MESSAGE, "trusted text", "untrusted text").unwrap();
    assert_eq!(
        fs::read_to_string(d.join("file.bin.minisig")).unwrap(),
        ours.to_file_string()
    );

    // minisign -R takes the public half from our secret key file.
    succeeds(
        d,
        "minisign",
        &["-R", "-s", "ferry.key", "-p", "recreated.pub"],
        None,
    );
    assert_same_public_key_file(
        &sk.public_key().to_file_string(),
        &fs::read_to_string(d.join("recreated.pub")).unwrap(),
    );
}

#[test]
fn minisign_signs_with_our_encrypted_key() {
    let dir = tempdir();
    let d = dir.path();
    let sk = SecretKey::generate().unwrap();
    let key_file = sk.to_file_string(&scrypt(PASSPHRASE)).unwrap();
    assert!(SecretKey::is_encrypted(&key_file).unwrap());
    write(d, "ferry.key", &key_file);
    write(d, "ferry.pub", sk.public_key().to_file_string());
    write(d, "file.bin", MESSAGE);

    // minisign reads the password as one line from stdin when it is not a terminal, and
    // checks the key's checksum: success proves our encryption and checksum are right.
    let stdin = format!("{PASSPHRASE}\n");
    succeeds(
        d,
        "minisign",
        &[
            "-S",
            "-s",
            "ferry.key",
            "-m",
            "file.bin",
            "-t",
            "from our encrypted key",
        ],
        Some(&stdin),
    );
    let sig = Signature::load(d.join("file.bin.minisig")).unwrap();
    assert_eq!(sig.trusted_comment, "from our encrypted key");
    sk.public_key().verify(&sig, MESSAGE).unwrap();
    succeeds(
        d,
        "minisign",
        &["-V", "-p", "ferry.pub", "-m", "file.bin"],
        None,
    );
}

#[test]
fn keys_from_minisign_g_w_load_and_sign() {
    let dir = tempdir();
    let d = dir.path();
    succeeds(
        d,
        "minisign",
        &["-G", "-W", "-p", "m.pub", "-s", "m.key"],
        None,
    );
    let key_file = fs::read_to_string(d.join("m.key")).unwrap();
    assert!(!SecretKey::is_encrypted(&key_file).unwrap());
    let sk = SecretKey::load(d.join("m.key"), None).unwrap();
    let pk = PublicKey::load(d.join("m.pub")).unwrap();
    assert_eq!(sk.public_key(), pk);
    assert_same_public_key_file(
        &pk.to_file_string(),
        &fs::read_to_string(d.join("m.pub")).unwrap(),
    );

    write(d, "file.bin", MESSAGE);
    let sig = minisign::sign(&sk, MESSAGE, "signed by ferry with a minisign key", "c").unwrap();
    write(d, "file.bin.minisig", sig.to_file_string());
    let out = succeeds(
        d,
        "minisign",
        &["-V", "-p", "m.pub", "-m", "file.bin"],
        None,
    );
    assert!(out.contains("Trusted comment: signed by ferry with a minisign key"));

    // Written back unencrypted by us, minisign still signs with it.
    write(
        d,
        "again.key",
        sk.to_file_string(&Encryption::Unencrypted).unwrap(),
    );
    succeeds(
        d,
        "minisign",
        &[
            "-S",
            "-s",
            "again.key",
            "-m",
            "file.bin",
            "-x",
            "again.minisig",
        ],
        None,
    );
    pk.verify(&Signature::load(d.join("again.minisig")).unwrap(), MESSAGE)
        .unwrap();
}

#[test]
fn encrypted_keys_from_minisign_g_load_and_sign() {
    let dir = tempdir();
    let d = dir.path();
    // Password, then confirmation.
    let stdin = format!("{PASSPHRASE}\n{PASSPHRASE}\n");
    succeeds(
        d,
        "minisign",
        &["-G", "-p", "m.pub", "-s", "m.key"],
        Some(&stdin),
    );
    let key_file = fs::read_to_string(d.join("m.key")).unwrap();
    assert!(SecretKey::is_encrypted(&key_file).unwrap());
    assert!(matches!(
        SecretKey::parse(&key_file, None),
        Err(SigError::PassphraseRequired)
    ));
    assert!(matches!(
        SecretKey::parse(&key_file, Some("not the passphrase")),
        Err(SigError::WrongPassphrase)
    ));
    let sk = SecretKey::parse(&key_file, Some(PASSPHRASE)).unwrap();
    let pk = PublicKey::load(d.join("m.pub")).unwrap();
    assert_eq!(sk.public_key(), pk);

    write(d, "file.bin", MESSAGE);
    let sig = minisign::sign(&sk, MESSAGE, "signed by ferry", "c").unwrap();
    write(d, "file.bin.minisig", sig.to_file_string());
    succeeds(
        d,
        "minisign",
        &["-V", "-H", "-p", "m.pub", "-m", "file.bin"],
        None,
    );
}

#[test]
fn we_verify_minisign_signatures_of_both_kinds() {
    let dir = tempdir();
    let d = dir.path();
    succeeds(
        d,
        "minisign",
        &["-G", "-W", "-p", "m.pub", "-s", "m.key"],
        None,
    );
    let pk = PublicKey::load(d.join("m.pub")).unwrap();
    write(d, "msg.txt", MESSAGE);
    succeeds(
        d,
        "minisign",
        &["-S", "-s", "m.key", "-m", "msg.txt", "-x", "ed.minisig"],
        None,
    );
    succeeds(
        d,
        "minisign",
        &[
            "-S",
            "-l",
            "-s",
            "m.key",
            "-m",
            "msg.txt",
            "-x",
            "legacy.minisig",
        ],
        None,
    );

    let ed = Signature::load(d.join("ed.minisig")).unwrap();
    assert_eq!(ed.algorithm, Algorithm::Prehashed);
    assert!(ed.trusted_comment.starts_with("timestamp:"));
    assert!(ed.trusted_comment.ends_with("\tfile:msg.txt\thashed"));
    pk.verify(&ed, MESSAGE).unwrap();
    pk.verify_prehashed(&ed, &minisign::prehash(MESSAGE))
        .unwrap();
    // Our writer reproduces minisign's file exactly.
    assert_eq!(
        ed.to_file_string(),
        fs::read_to_string(d.join("ed.minisig")).unwrap()
    );

    let legacy = Signature::load(d.join("legacy.minisig")).unwrap();
    assert_eq!(legacy.algorithm, Algorithm::Legacy);
    assert!(legacy.trusted_comment.ends_with("\tfile:msg.txt"));
    pk.verify(&legacy, MESSAGE).unwrap();
    assert!(matches!(
        pk.verify_prehashed(&legacy, &minisign::prehash(MESSAGE)),
        Err(SigError::AlgorithmMismatch { .. })
    ));

    for sig in [&ed, &legacy] {
        assert!(matches!(
            pk.verify(sig, b"tampered"),
            Err(SigError::BadSignature)
        ));
    }

    // signify reads only the first two lines: a legacy minisign signature verifies
    // with it, a prehashed one does not.
    succeeds(
        d,
        "signify-openbsd",
        &["-V", "-p", "m.pub", "-x", "legacy.minisig", "-m", "msg.txt"],
        None,
    );
    fails(
        d,
        "signify-openbsd",
        &["-V", "-p", "m.pub", "-x", "ed.minisig", "-m", "msg.txt"],
        None,
    );
}

#[test]
fn signify_verifies_our_embedded_signatures() {
    let dir = tempdir();
    let d = dir.path();
    let sk = SecretKey::generate().unwrap();
    write(d, "ferry.pub", sk.public_key().to_file_string());
    let message = "release notes\nline two\n";
    let file = signify::sign_embedded(&sk, message.as_bytes(), "verify with ferry.pub").unwrap();
    write(d, "notes.sig", &file);

    succeeds(
        d,
        "signify-openbsd",
        &[
            "-V",
            "-e",
            "-p",
            "ferry.pub",
            "-x",
            "notes.sig",
            "-m",
            "notes.out",
        ],
        None,
    );
    assert_eq!(fs::read_to_string(d.join("notes.out")).unwrap(), message);

    write(d, "tampered.sig", file.replace("line two", "line 2"));
    fails(
        d,
        "signify-openbsd",
        &[
            "-V",
            "-e",
            "-p",
            "ferry.pub",
            "-x",
            "tampered.sig",
            "-m",
            "tampered.out",
        ],
        None,
    );
}

#[test]
fn we_verify_signify_embedded_signatures() {
    let dir = tempdir();
    let d = dir.path();
    succeeds(
        d,
        "signify-openbsd",
        &["-G", "-n", "-c", "stock", "-p", "s.pub", "-s", "s.sec"],
        None,
    );
    write(d, "msg.txt", MESSAGE);
    succeeds(
        d,
        "signify-openbsd",
        &["-S", "-e", "-s", "s.sec", "-m", "msg.txt", "-x", "msg.sig"],
        None,
    );
    let pk = PublicKey::load(d.join("s.pub")).unwrap();
    let file = fs::read(d.join("msg.sig")).unwrap();
    assert_eq!(signify::verify_embedded(&pk, &file).unwrap(), MESSAGE);
    let other = SecretKey::generate().unwrap().public_key();
    assert!(matches!(
        signify::verify_embedded(&other, &file),
        Err(SigError::KeyIdMismatch { .. })
    ));
}

#[test]
fn signify_and_sha256sum_check_our_sums_list() {
    let keys = tempdir();
    let dir = tempdir();
    let d = dir.path();
    let files: [(&str, &[u8]); 5] = [
        ("bin/hello", b"\x7fELF pretend binary\x00\x01"),
        ("etc/hello/config.toml", b"listen = \"127.0.0.1:8080\"\n"),
        ("share/doc/READ ME.md", b"spaces are fine\n"),
        ("h\u{e9}llo.txt", b"non-ASCII names are fine\n"),
        ("SHA256 (tricky.txt", b"looks like a line, is a name\n"),
    ];
    let mut list = SumsList::new();
    for (path, contents) in files {
        write(d, path, contents);
        list.push(path, sha2::Sha256::digest(contents).into())
            .unwrap();
    }
    let sums = list.to_string();
    let sk = SecretKey::generate().unwrap();
    let pub_path = keys.path().join("ferry.pub");
    fs::write(&pub_path, sk.public_key().to_file_string()).unwrap();
    write(d, "SHA256SUMS", &sums);
    write(
        d,
        "SHA256SUMS.sig",
        signify::sign_embedded(&sk, sums.as_bytes(), "verify with ferry.pub").unwrap(),
    );

    let check = [
        OsStr::new("-C"),
        OsStr::new("-p"),
        pub_path.as_os_str(),
        OsStr::new("-x"),
        OsStr::new("SHA256SUMS.sig"),
    ];
    let out = succeeds(d, "signify-openbsd", &check, None);
    for (path, _) in files {
        assert!(
            out.contains(&format!("{path}: OK")),
            "signify printed:\n{out}"
        );
    }
    succeeds(d, "sha256sum", &["--strict", "-c", "SHA256SUMS"], None);

    // Our own reader agrees.
    let signed = fs::read(d.join("SHA256SUMS.sig")).unwrap();
    let message = signify::verify_embedded(&sk.public_key(), &signed).unwrap();
    assert_eq!(
        SumsList::parse(std::str::from_utf8(message).unwrap()).unwrap(),
        list
    );

    // One changed file fails both tools.
    write(d, "etc/hello/config.toml", b"listen = \"0.0.0.0:8080\"\n");
    assert_eq!(fails(d, "signify-openbsd", &check, None), 1);
    assert_eq!(
        fails(d, "sha256sum", &["--strict", "-c", "SHA256SUMS"], None),
        1
    );
}
