//! The hostile-bundle corpus, generated from one real bundle: nothing binary is committed.
//!
//! [`base`] builds `examples/hello` once with the real `ferry build` (amd64 and arm64, a key
//! from `ferry keygen --unencrypted`). Every [`Case`] starts from that bundle, decompresses
//! it to the raw tar, edits it (header bytes, members, or the manifest, re-signed with the
//! test key when the case needs a *validly signed* hostile manifest) and compresses it
//! again. Each case names the exit code `ferry-install` must end with and a piece of text
//! its one `error:` line must contain.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use ferry_format::claims::Claims;
use ferry_format::manifest::Target;
use ferry_format::minisign::{self, KeyId, SecretKey};
use ferry_format::Sha256;
use serde_json::{json, Value};

/// `SOURCE_DATE_EPOCH` of the build.
pub const SDE: u64 = 1_700_000_000;
/// tar's block.
pub const BLOCK: usize = 512;

// ---------------------------------------------------------------------------------------------
// The raw tar, member by member.

/// Byte ranges of the ustar header fields.
pub mod field {
    use std::ops::Range;
    pub const NAME: Range<usize> = 0..100;
    pub const MODE: Range<usize> = 100..108;
    pub const UID: Range<usize> = 108..116;
    pub const GID: Range<usize> = 116..124;
    pub const SIZE: Range<usize> = 124..136;
    pub const CKSUM: Range<usize> = 148..156;
    pub const TYPE: usize = 156;
    pub const LINKNAME: Range<usize> = 157..257;
    pub const MAGIC: Range<usize> = 257..265;
    pub const DEVMAJOR: Range<usize> = 329..337;
    pub const DEVMINOR: Range<usize> = 337..345;
    pub const PREFIX: Range<usize> = 345..500;
}

/// One archive member: its header block and its data (unpadded). The header's size field
/// is whatever a case made it; [`RawTar::to_bytes`] writes the data as given.
#[derive(Clone)]
pub struct Member {
    pub header: [u8; BLOCK],
    pub data: Vec<u8>,
}

fn octal(dst: &mut [u8], value: u64) {
    let width = dst.len() - 1;
    let text = format!("{value:0width$o}");
    assert!(
        text.len() <= width,
        "{value} does not fit {width} octal digits"
    );
    dst[..width].copy_from_slice(text.as_bytes());
    dst[width] = 0;
}

fn parse_octal(field: &[u8]) -> u64 {
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .map(|&b| char::from(b))
        .collect();
    u64::from_str_radix(text.trim_start(), 8).unwrap_or(0)
}

fn set_text(dst: &mut [u8], text: &[u8]) {
    assert!(
        text.len() <= dst.len(),
        "{text:?} is too long for its field"
    );
    dst.fill(0);
    dst[..text.len()].copy_from_slice(text);
}

impl Member {
    /// A ustar header as the bundle writer makes it: regular file, owner 0:0, `SDE` mtime.
    pub fn regular(path: &str, mode: u32, data: Vec<u8>) -> Self {
        let mut header = [0u8; BLOCK];
        set_text(&mut header[field::NAME], path.as_bytes());
        octal(&mut header[field::MODE], u64::from(mode));
        octal(&mut header[field::UID], 0);
        octal(&mut header[field::GID], 0);
        octal(&mut header[field::SIZE], data.len() as u64);
        octal(&mut header[136..148], SDE);
        header[field::TYPE] = b'0';
        header[field::MAGIC].copy_from_slice(b"ustar\x0000");
        let mut m = Self { header, data };
        m.fix_cksum();
        m
    }

    /// A member of another type (no data), such as a symlink to `link`.
    pub fn special(path: &str, kind: u8, link: &str) -> Self {
        let mut m = Self::regular(path, 0o777, Vec::new());
        m.header[field::TYPE] = kind;
        set_text(&mut m.header[field::LINKNAME], link.as_bytes());
        m.fix_cksum();
        m
    }

    /// The path the header names (ustar prefix joined).
    pub fn path(&self) -> String {
        let text = |r: std::ops::Range<usize>| {
            let f = &self.header[r];
            let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let (prefix, name) = (text(field::PREFIX), text(field::NAME));
        if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        }
    }

    pub fn size_field(&self) -> u64 {
        parse_octal(&self.header[field::SIZE])
    }

    pub fn fix_cksum(&mut self) {
        self.header[field::CKSUM].fill(b' ');
        let sum: u32 = self.header.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        self.header[field::CKSUM].copy_from_slice(text.as_bytes());
    }

    /// Edits the header, then recomputes its checksum: the change is all the reader sees.
    pub fn edit(&mut self, f: impl FnOnce(&mut [u8; BLOCK])) -> &mut Self {
        f(&mut self.header);
        self.fix_cksum();
        self
    }

    pub fn set_name(&mut self, name: &[u8]) -> &mut Self {
        self.edit(|h| {
            set_text(&mut h[field::NAME], name);
            h[field::PREFIX].fill(0);
        })
    }

    pub fn set_mode(&mut self, mode: u32) -> &mut Self {
        self.edit(|h| octal(&mut h[field::MODE], u64::from(mode)))
    }

    pub fn set_size_field(&mut self, size: u64) -> &mut Self {
        self.edit(|h| octal(&mut h[field::SIZE], size))
    }

    /// Replaces the data and makes the header agree.
    pub fn set_data(&mut self, data: Vec<u8>) -> &mut Self {
        let len = data.len() as u64;
        self.data = data;
        self.set_size_field(len)
    }

    fn write_to(&self, out: &mut impl io::Write) -> io::Result<()> {
        out.write_all(&self.header)?;
        out.write_all(&self.data)?;
        out.write_all(&vec![0; padding(self.data.len())])
    }
}

fn padding(len: usize) -> usize {
    (BLOCK - len % BLOCK) % BLOCK
}

/// A whole tar: members, then whatever followed them (the end-of-archive zero blocks).
#[derive(Clone)]
pub struct RawTar {
    pub members: Vec<Member>,
    pub end: Vec<u8>,
}

impl RawTar {
    /// Splits a well-formed tar (what `ferry build` wrote) into its members.
    pub fn parse(bytes: &[u8]) -> Self {
        let mut members = Vec::new();
        let mut at = 0;
        while at + BLOCK <= bytes.len() && bytes[at..at + BLOCK].iter().any(|&b| b != 0) {
            let header: [u8; BLOCK] = bytes[at..at + BLOCK].try_into().expect("one block");
            let size = usize::try_from(parse_octal(&header[field::SIZE])).expect("size");
            let start = at + BLOCK;
            members.push(Member {
                header,
                data: bytes[start..start + size].to_vec(),
            });
            at = start + size + padding(size);
        }
        Self {
            members,
            end: bytes[at..].to_vec(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for m in &self.members {
            m.write_to(&mut out).expect("writing to memory");
        }
        out.extend_from_slice(&self.end);
        out
    }

    /// Offset of each member's header in [`RawTar::to_bytes`], then of the end blocks.
    pub fn offsets(&self) -> Vec<usize> {
        let mut at = 0;
        let mut v = Vec::new();
        for m in &self.members {
            v.push(at);
            at += BLOCK + m.data.len() + padding(m.data.len());
        }
        v.push(at);
        v
    }

    pub fn index(&self, path: &str) -> usize {
        self.members
            .iter()
            .position(|m| m.path() == path)
            .unwrap_or_else(|| panic!("no member {path}"))
    }

    pub fn member(&mut self, path: &str) -> &mut Member {
        let i = self.index(path);
        &mut self.members[i]
    }

    pub fn insert(&mut self, at: usize, m: Member) -> &mut Self {
        self.members.insert(at, m);
        self
    }

    pub fn remove(&mut self, path: &str) -> Member {
        let i = self.index(path);
        self.members.remove(i)
    }
}

// ---------------------------------------------------------------------------------------------
// zstd.

pub fn compress(raw: &[u8]) -> Vec<u8> {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).expect("zstd encoder");
    enc.include_checksum(true).expect("zstd checksum flag");
    enc.write_all(raw).expect("compressing");
    enc.finish().expect("finishing the zstd frame")
}

/// Compresses member by member with a flush after each, returning the stream and the
/// compressed offset at which each member (then the end blocks) starts.
pub fn compress_with_boundaries(tar: &RawTar) -> (Vec<u8>, Vec<usize>) {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).expect("zstd encoder");
    enc.include_checksum(true).expect("zstd checksum flag");
    let mut offsets = Vec::new();
    for m in &tar.members {
        enc.flush().expect("flushing");
        offsets.push(enc.get_ref().len());
        m.write_to(&mut enc).expect("compressing");
    }
    enc.flush().expect("flushing");
    offsets.push(enc.get_ref().len());
    enc.write_all(&tar.end).expect("compressing");
    (enc.finish().expect("finishing the zstd frame"), offsets)
}

pub fn decompress(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(bytes).expect("decompressing the base bundle")
}

/// A piece of a hand-made zstd frame.
pub enum Part<'a> {
    /// Stored as raw blocks.
    Data(&'a [u8]),
    /// `count` copies of one byte, as RLE blocks: 4 bytes of frame per 128 KiB.
    Fill(u8, u64),
}

/// A zstd frame built block by block (RFC 8878): raw blocks for data, RLE blocks for
/// runs, a 128 KiB window, no checksum. Lets a case say exactly how far a stream expands.
pub fn frame(parts: &[Part<'_>]) -> Vec<u8> {
    const MAX: usize = 128 << 10;
    let mut blocks: Vec<(u32, Vec<u8>)> = Vec::new(); // (header without the last flag, body)
    for part in parts {
        match part {
            Part::Data(d) => {
                for chunk in d.chunks(MAX) {
                    let size = u32::try_from(chunk.len()).expect("block size");
                    blocks.push((size << 3, chunk.to_vec()));
                }
            }
            Part::Fill(byte, count) => {
                let mut left = *count;
                while left > 0 {
                    let n = left.min(MAX as u64);
                    blocks.push((
                        (u32::try_from(n).expect("block size") << 3) | 0b010,
                        vec![*byte],
                    ));
                    left -= n;
                }
            }
        }
    }
    if blocks.is_empty() {
        blocks.push((0, Vec::new()));
    }
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38];
    let last = blocks.len() - 1;
    for (i, (header, body)) in blocks.into_iter().enumerate() {
        let h = header | u32::from(i == last);
        out.extend_from_slice(&h.to_le_bytes()[..3]);
        out.extend_from_slice(&body);
    }
    out
}

/// A zstd skippable frame (magic 0x184D2A50) holding `data`: decoders skip it silently.
pub fn skippable_frame(data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x50, 0x2a, 0x4d, 0x18];
    v.extend_from_slice(&u32::try_from(data.len()).expect("small").to_le_bytes());
    v.extend_from_slice(data);
    v
}

// ---------------------------------------------------------------------------------------------
// The base bundle.

pub struct Base {
    pub dir: PathBuf,
    pub pubkey: PathBuf,
    pub secret: SecretKey,
    /// A key nobody trusts.
    pub rogue: SecretKey,
    /// The real amd64 and arm64 bundles, as `ferry build` wrote them.
    pub amd64: Vec<u8>,
    pub arm64: Vec<u8>,
    /// The amd64 bundle's raw tar.
    pub tar: RawTar,
    /// Its manifest bytes and their JSON.
    pub manifest: Vec<u8>,
    pub manifest_json: Value,
}

fn workspace_root() -> PathBuf {
    ferry_tests::workspace_root()
}

fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} -> {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `cargo build -p ferry -p ferry-install`, once per test process: no stale binaries.
pub fn build_binaries() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run_ok(Command::new(cargo).current_dir(workspace_root()).args([
            "build",
            "--quiet",
            "-p",
            "ferry",
            "-p",
            "ferry-install",
        ]));
    });
}

/// Removes work directories of test processes that are gone.
fn clean_stale(parent: &Path) {
    let Ok(rd) = fs::read_dir(parent) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("hostile-") {
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Builds the base bundles once per test process.
pub fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        build_binaries();
        let parent = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        clean_stale(&parent);
        let dir = parent.join(format!("hostile-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        let ferry = || {
            let mut c = Command::new(ferry_tests::ferry_bin());
            c.env("SOURCE_DATE_EPOCH", SDE.to_string())
                .env_remove("FERRY_PASSPHRASE")
                .env("LC_ALL", "C");
            c
        };
        run_ok(
            ferry()
                .arg("keygen")
                .arg("--out")
                .arg(dir.join("release"))
                .arg("--unencrypted"),
        );
        let out = dir.join("out");
        run_ok(
            ferry()
                .arg("build")
                .arg(workspace_root().join("examples/hello"))
                .arg("--key")
                .arg(dir.join("release.key"))
                .arg("--out")
                .arg(&out)
                .args(["--target", "linux/amd64", "--target", "linux/arm64"]),
        );
        let amd64 = fs::read(out.join("hello-1.0.0-linux-amd64.tar.zst")).unwrap();
        let arm64 = fs::read(out.join("hello-1.0.0-linux-arm64.tar.zst")).unwrap();
        let tar = RawTar::parse(&decompress(&amd64));
        let manifest = tar.members[0].data.clone();
        let manifest_json: Value = serde_json::from_slice(&manifest).unwrap();
        let secret = SecretKey::load(dir.join("release.key"), None).unwrap();
        let rogue = SecretKey::from_seed(&[0x42; 32], KeyId([0x42; 8]));
        assert_eq!(
            tar.members.iter().map(Member::path).collect::<Vec<_>>(),
            [
                "ferry/manifest.json",
                "ferry/manifest.json.minisig",
                "bin/hello",
                "config/dev/hello.toml",
                "config/prod/hello.toml",
                "config/test/hello.toml",
                "logrotate/hello",
                "sbom/hello.cdx.json",
                "systemd/dev/hello.service",
                "systemd/prod/hello.service",
                "systemd/test/hello.service",
                "sysusers/hello.conf",
                "tmpfiles/hello.conf",
            ],
            "the corpus assumes this layout of the example's bundle"
        );
        Base {
            pubkey: dir.join("release.pub"),
            dir,
            secret,
            rogue,
            amd64,
            arm64,
            tar,
            manifest,
            manifest_json,
        }
    })
}

/// The claims a manifest's signature binds, read from its JSON where it has them.
fn claims_for(manifest: &[u8]) -> Claims {
    let v: Option<Value> = serde_json::from_slice(manifest).ok();
    let get = |ptr: &str, fallback: &str| -> String {
        v.as_ref()
            .and_then(|v| v.pointer(ptr))
            .and_then(Value::as_str)
            .unwrap_or(fallback)
            .to_owned()
    };
    let arch = get("/target/arch", "amd64");
    Claims {
        app: get("/app/name", "hello"),
        version: get("/app/version", "1.0.0"),
        target: Target::parse(&format!("linux/{arch}")).unwrap_or(base_target()),
        manifest_sha256: Sha256::of(manifest),
    }
}

fn base_target() -> Target {
    Target::parse("linux/amd64").expect("target")
}

/// A signature file as `ferry build` makes it, over `manifest`, by `key`, with `trusted`
/// as its trusted comment.
pub fn sign_with(key: &SecretKey, manifest: &[u8], trusted: &str) -> Vec<u8> {
    minisign::sign(key, manifest, trusted, "ferry manifest signature")
        .expect("signing")
        .to_file_string()
        .into_bytes()
}

/// The trusted comment `ferry build` would write for `manifest`.
pub fn comment(manifest: &[u8]) -> String {
    claims_for(manifest).trusted_comment(SDE, "manifest.json")
}

impl Base {
    /// The base tar with `manifest` in place of the manifest, validly signed by the
    /// trusted key (claims read from the manifest).
    pub fn with_manifest(&self, manifest: Vec<u8>) -> RawTar {
        let sig = sign_with(&self.secret, &manifest, &comment(&manifest));
        let mut tar = self.tar.clone();
        tar.members[0].set_data(manifest);
        tar.members[1].set_data(sig);
        tar
    }

    /// The base tar with the manifest edited as JSON, then validly signed.
    pub fn resigned(&self, edit: impl FnOnce(&mut Value)) -> RawTar {
        let mut v = self.manifest_json.clone();
        edit(&mut v);
        self.with_manifest(manifest_bytes(&v))
    }

    /// A detached signature over a whole bundle file, as `ferry build` writes it.
    pub fn detached(&self, key: &SecretKey, bundle: &[u8]) -> Vec<u8> {
        let comment =
            claims_for(&self.manifest).trusted_comment(SDE, "hello-1.0.0-linux-amd64.tar.zst");
        minisign::sign(key, bundle, &comment, "signature from ferry")
            .expect("signing")
            .to_file_string()
            .into_bytes()
    }
}

pub fn manifest_bytes(v: &Value) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("JSON");
    b.push(b'\n');
    b
}

/// The `files` entry of the manifest with this path.
pub fn file_entry<'a>(v: &'a mut Value, path: &str) -> &'a mut Value {
    v["files"]
        .as_array_mut()
        .expect("files")
        .iter_mut()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no file {path} in the manifest"))
}

/// Flips one byte: the result is always different from the input.
fn flip(b: &mut u8) {
    *b ^= 0x20;
}

/// Replaces one base64 character by another valid one.
fn other_b64(b: &mut u8) {
    *b = if *b == b'A' { b'B' } else { b'A' };
}

// ---------------------------------------------------------------------------------------------
// Cases.

/// Makes a case's file (or detached signature) from the base.
pub type Make = Box<dyn Fn(&Base) -> Vec<u8> + Send + Sync>;

pub struct Case {
    pub name: String,
    /// Expected exit code of `ferry-install install` (and `verify` when 3).
    pub code: i32,
    /// Text the `error:` line must contain; `|` separates acceptable alternatives.
    pub message: &'static str,
    pub make: Make,
    /// A `BUNDLE.minisig` placed beside the bundle.
    pub detached: Option<Make>,
    /// Installed (successfully) before the case: the downgrade's newer release.
    pub first: Option<Make>,
    /// Extra `install` arguments.
    pub args: Vec<&'static str>,
    /// `prlimit --as` for the installer: the case must fail within this much memory.
    pub memory_limit: Option<u64>,
    /// Prepares the fake root before the case runs (existing files, a policy, keys).
    pub setup: Option<Setup>,
    /// Trust comes from the root's own `/etc/ferry/keys` (no `--pubkey`).
    pub host_keys: bool,
}

/// Changes made to a case's fake root before it runs.
pub type Setup = Box<dyn Fn(&Base, &Path) + Send + Sync>;

impl Case {
    pub fn new(
        name: impl Into<String>,
        code: i32,
        message: &'static str,
        make: impl Fn(&Base) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            code,
            message,
            make: Box::new(make),
            detached: None,
            first: None,
            args: Vec::new(),
            memory_limit: None,
            setup: None,
            host_keys: false,
        }
    }

    /// The same case, with its fake root prepared by `setup` first.
    pub fn with_setup(mut self, setup: impl Fn(&Base, &Path) + Send + Sync + 'static) -> Self {
        self.setup = Some(Box::new(setup));
        self
    }

    /// The same case, trusting the fake root's `/etc/ferry/keys` instead of `--pubkey`.
    pub fn with_host_keys(mut self) -> Self {
        self.host_keys = true;
        self
    }

    /// The same case, after `first` installed successfully.
    pub fn after(mut self, first: impl Fn(&Base) -> Vec<u8> + Send + Sync + 'static) -> Self {
        self.first = Some(Box::new(first));
        self
    }

    /// A case made by editing the base tar (recompressed afterwards).
    fn tar(
        name: impl Into<String>,
        code: i32,
        message: &'static str,
        edit: impl Fn(&Base, &mut RawTar) + Send + Sync + 'static,
    ) -> Self {
        Self::new(name, code, message, move |b| {
            let mut t = b.tar.clone();
            edit(b, &mut t);
            compress(&t.to_bytes())
        })
    }

    /// A case whose manifest JSON is edited and validly re-signed; `tar_edit` keeps the
    /// payload in step where the case needs it.
    pub fn signed(
        name: impl Into<String>,
        code: i32,
        message: &'static str,
        edit: impl Fn(&mut Value) + Send + Sync + 'static,
        tar_edit: impl Fn(&Base, &mut RawTar) + Send + Sync + 'static,
    ) -> Self {
        Self::new(name, code, message, move |b| {
            let mut t = b.resigned(&edit);
            tar_edit(b, &mut t);
            compress(&t.to_bytes())
        })
    }

    /// A case whose manifest bytes are replaced and validly signed.
    fn signed_bytes(
        name: impl Into<String>,
        code: i32,
        message: &'static str,
        make: impl Fn(&Base) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        Self::new(name, code, message, move |b| {
            compress(&b.with_manifest(make(b)).to_bytes())
        })
    }

    pub fn is_verification(&self) -> bool {
        self.code == 3
    }
}

pub fn no_tar_edit(_: &Base, _: &mut RawTar) {}

/// Offset of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

/// A pax extended header ('x') carrying `records`.
fn pax_header(kind: u8, records: &[(&str, &str)]) -> Member {
    let mut data = Vec::new();
    for (k, v) in records {
        let body = format!(" {k}={v}\n");
        let mut len = body.len() + 1;
        while format!("{len}{body}").len() != len {
            len += 1;
        }
        data.extend_from_slice(format!("{len}{body}").as_bytes());
    }
    let mut m = Member::regular("PaxHeaders.0/hello", 0o644, data);
    m.edit(|h| h[field::TYPE] = kind);
    m
}

/// A GNU extension header ('L' long name or 'K' long link) in a GNU-format header.
fn gnu_header(kind: u8, value: &str) -> Member {
    let mut data = value.as_bytes().to_vec();
    data.push(0);
    let mut m = Member::regular("././@LongLink", 0o644, data);
    m.edit(|h| {
        h[field::TYPE] = kind;
        h[field::MAGIC].copy_from_slice(b"ustar  \0");
    });
    m
}

/// Pseudo-random bytes (xorshift), reproducible.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// A tar whose first member is a pax header of `size` bytes, in a frame that expands
/// about 185 times (under the ratio limit); the real bundle follows. A reader that loads
/// extension headers into memory needs `size` bytes before it sees the manifest.
fn pax_bomb(base: &Base, size: u64) -> Vec<u8> {
    const CHUNK: u64 = 128 << 10;
    let mut h = pax_header(b'x', &[]);
    h.set_size_field(size);
    let noise = noise(700, 3);
    let mut parts = vec![Part::Data(&h.header)];
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK);
        let fill = n.saturating_sub(noise.len() as u64);
        parts.push(Part::Fill(b'7', fill));
        parts.push(Part::Data(
            &noise[..usize::try_from(n - fill).expect("small")],
        ));
        left -= n;
    }
    let pad = vec![0; padding(usize::try_from(size).expect("size"))];
    let rest = base.tar.to_bytes();
    parts.push(Part::Data(&pad));
    parts.push(Part::Data(&rest));
    frame(&parts)
}

/// A validly signed manifest declaring `bin/hello` as `size` zero bytes, and a tar member
/// of that many zeros stored as zstd RLE blocks: the stream expands over 30 000 times.
fn zero_bomb(base: &Base, size: u64) -> Vec<u8> {
    let mut v = base.manifest_json.clone();
    file_entry(&mut v, "bin/hello")["size"] = json!(size);
    let mut tar = base.with_manifest(manifest_bytes(&v));
    let i = tar.index("bin/hello");
    tar.members[i].set_data(Vec::new());
    tar.members[i].set_size_field(size);
    let head = RawTar {
        members: tar.members[..=i].to_vec(),
        end: Vec::new(),
    }
    .to_bytes();
    let tail = RawTar {
        members: tar.members[i + 1..].to_vec(),
        end: tar.end.clone(),
    }
    .to_bytes();
    let pad = vec![0; padding(usize::try_from(size).expect("size"))];
    frame(&[
        Part::Data(&head),
        Part::Fill(0, size),
        Part::Data(&pad),
        Part::Data(&tail),
    ])
}

/// The base bundle as version 2.0.0 (validly signed): a newer release for the downgrade.
pub fn version_2(base: &Base) -> Vec<u8> {
    compress(
        &base
            .resigned(|v| v["app"]["version"] = json!("2.0.0"))
            .to_bytes(),
    )
}

#[allow(clippy::too_many_lines)]
pub fn cases() -> Vec<Case> {
    const SIG: &str = "ferry/manifest.json.minisig";
    let mut v = vec![
        // --- Flipped bytes: manifest, signature, payload (the tar stays well-formed).
        Case::tar("flip/manifest-byte", 3, "is invalid: signature verification failed", |_, t| {
            let at = find(&t.members[0].data, b"Example HTTP");
            flip(&mut t.members[0].data[at]);
        }),
        Case::tar("flip/manifest-last-byte", 3, "is invalid: signature verification failed", |_, t| {
            let d = &mut t.members[0].data;
            let n = d.len() - 1;
            d[n] = b' ';
        }),
        Case::tar("flip/signature-ed25519-bytes", 3, "is invalid: signature verification failed", |_, t| {
            let d = &mut t.member(SIG).data;
            let line2 = find(d, b"\n") + 1;
            other_b64(&mut d[line2 + 40]);
        }),
        Case::tar("flip/signature-key-id", 3, "which is not trusted", |_, t| {
            let d = &mut t.member(SIG).data;
            let line2 = find(d, b"\n") + 1;
            other_b64(&mut d[line2 + 6]);
        }),
        Case::tar("flip/signature-algorithm-tag", 3, "unsupported signature algorithm", |_, t| {
            let d = &mut t.member(SIG).data;
            let line2 = find(d, b"\n") + 1;
            // "RU" encodes 'E','D'...: "RX" makes the tag "Ex".
            d[line2 + 1] = b'X';
        }),
        Case::tar("flip/signature-trusted-comment", 3, "trusted comment was altered", |_, t| {
            let d = &mut t.member(SIG).data;
            let at = find(d, b"timestamp:1") + 11;
            d[at] = b'2';
        }),
        Case::tar("flip/signature-global-signature", 3, "trusted comment was altered", |_, t| {
            let d = &mut t.member(SIG).data;
            let at = d.len() - 10;
            other_b64(&mut d[at]);
        }),
        Case::tar("flip/payload-binary", 3, "bin/hello: SHA-256 is", |_, t| {
            let d = &mut t.member("bin/hello").data;
            let mid = d.len() / 2;
            flip(&mut d[mid]);
        }),
        Case::tar("flip/payload-config", 3, "config/prod/hello.toml: SHA-256 is", |_, t| {
            flip(&mut t.member("config/prod/hello.toml").data[0]);
        }),
        Case::tar("flip/payload-last-member-last-byte", 3, "tmpfiles/hello.conf: SHA-256 is", |_, t| {
            let d = &mut t.member("tmpfiles/hello.conf").data;
            let n = d.len() - 1;
            flip(&mut d[n]);
        }),
        // --- Flipped bytes in tar headers: the checksum catches them...
        Case::tar("header/checksum-field-flipped", 3, "checksum mismatch", |_, t| {
            t.member("bin/hello").header[field::CKSUM.start + 2] ^= 1;
        }),
        Case::tar("header/name-byte-flipped", 3, "checksum mismatch", |_, t| {
            t.member("bin/hello").header[2] ^= 1;
        }),
        Case::tar("header/manifest-mode-byte-flipped", 3, "checksum mismatch", |_, t| {
            t.members[0].header[field::MODE.start + 4] ^= 1;
        }),
        Case::tar("header/size-byte-flipped", 3, "checksum mismatch", |_, t| {
            t.member("systemd/prod/hello.service").header[field::SIZE.start + 8] ^= 1;
        }),
        // ...and with the checksum fixed, each field is checked for what it says.
        Case::tar("header/name-changed", 3, "\"bin/hellp\" is not listed", |_, t| {
            t.member("bin/hello").set_name(b"bin/hellp");
        }),
        Case::tar("header/mode-changed", 3, "mode 0775, expected 0755", |_, t| {
            t.member("bin/hello").set_mode(0o775);
        }),
        Case::tar("header/manifest-mode-changed", 3, "mode 0600, expected 0644", |_, t| {
            t.members[0].set_mode(0o600);
        }),
        Case::tar("header/uid-changed", 3, "owner is not 0:0", |_, t| {
            t.member("config/dev/hello.toml").edit(|h| octal(&mut h[field::UID], 1000));
        }),
        Case::tar("header/gid-changed", 3, "owner is not 0:0", |_, t| {
            t.member(SIG).edit(|h| octal(&mut h[field::GID], 4));
        }),
        Case::tar("header/not-ustar-magic", 3, "non-ustar", |_, t| {
            t.member("bin/hello").edit(|h| h[field::MAGIC].copy_from_slice(b"ustaR\x0000"));
        }),
        Case::tar("header/gnu-format-header", 3, "non-ustar", |_, t| {
            t.member("bin/hello").edit(|h| h[field::MAGIC].copy_from_slice(b"ustar  \0"));
        }),
        // --- Truncated inside a member.
        Case::tar("truncate/tar-mid-header", 3, "truncated", |_, t| {
            let mut raw = t.to_bytes();
            raw.truncate(t.offsets()[2] + 100);
            *t = RawTar { members: Vec::new(), end: raw };
        }),
        Case::tar("truncate/tar-mid-manifest", 3, "truncated", |_, t| {
            let mut raw = t.to_bytes();
            raw.truncate(BLOCK + 1000);
            *t = RawTar { members: Vec::new(), end: raw };
        }),
        Case::tar("truncate/tar-mid-binary", 3, "truncated", |_, t| {
            let mut raw = t.to_bytes();
            raw.truncate(t.offsets()[2] + BLOCK + 1_000_000);
            *t = RawTar { members: Vec::new(), end: raw };
        }),
        Case::tar("truncate/tar-one-end-block-only", 3, "truncated", |_, t| {
            t.end.truncate(BLOCK);
        }),
        Case::new("truncate/empty-file", 3, "truncated", |_| Vec::new()),
        Case::new("truncate/zstd-magic-only", 3, "truncated", |b| b.amd64[..4].to_vec()),
        Case::new("truncate/zstd-half", 3, "truncated", |b| b.amd64[..b.amd64.len() / 2].to_vec()),
        Case::new("truncate/zstd-frame-checksum-cut", 3, "truncated", |b| b.amd64[..b.amd64.len() - 2].to_vec()),
        // --- Keys and the trusted comment.
        Case::tar("key/untrusted-key", 3, "which is not trusted", |b, t| {
            let m = t.members[0].data.clone();
            t.member(SIG).set_data(sign_with(&b.rogue, &m, &comment(&m)));
        }),
        Case::tar("key/forged-trusted-key-id", 3, "is invalid", |b, t| {
            let m = t.members[0].data.clone();
            let forged = SecretKey::from_seed(&[0x42; 32], b.secret.key_id());
            t.member(SIG).set_data(sign_with(&forged, &m, &comment(&m)));
        }),
        Case::tar("key/no-claims-in-trusted-comment", 3, "has no manifest field", |b, t| {
            let m = t.members[0].data.clone();
            t.member(SIG).set_data(sign_with(&b.secret, &m, "timestamp:1700000000\tfile:manifest.json"));
        }),
        Case::tar("key/claims-other-version", 3, "signed version is \"9.9.9\"", |b, t| {
            let m = t.members[0].data.clone();
            let c = comment(&m).replace("version:1.0.0", "version:9.9.9");
            t.member(SIG).set_data(sign_with(&b.secret, &m, &c));
        }),
        Case::tar("key/claims-other-target", 3, "signed target is \"linux/arm64\"", |b, t| {
            let m = t.members[0].data.clone();
            let c = comment(&m).replace("linux/amd64", "linux/arm64");
            t.member(SIG).set_data(sign_with(&b.secret, &m, &c));
        }),
        Case::tar("key/claims-other-manifest", 3, "signed manifest is", |b, t| {
            let m = t.members[0].data.clone();
            let c = comment(b"another manifest");
            t.member(SIG).set_data(sign_with(&b.secret, &m, &c));
        }),
        Case::tar("key/signature-replayed-on-edited-manifest", 3, "is invalid: signature verification failed", |_, t| {
            let m = String::from_utf8(t.members[0].data.clone()).unwrap().replace("\"1.0.0\"", "\"2.0.0\"");
            t.members[0].set_data(m.into_bytes());
        }),
        // --- Members: unlisted, missing, duplicated, reordered.
        Case::tar("member/unlisted-appended", 3, "\"zz/extra\" is not listed", |_, t| {
            let n = t.members.len();
            t.insert(n, Member::regular("zz/extra", 0o644, b"extra\n".to_vec()));
        }),
        Case::tar("member/unlisted-inserted", 3, "\"bin/helper\" is not listed", |_, t| {
            t.insert(3, Member::regular("bin/helper", 0o755, b"#!/bin/sh\n".to_vec()));
        }),
        Case::tar("member/listed-missing-middle", 3, "expected member \"config/prod/hello.toml\", found \"config/test/hello.toml\"", |_, t| {
            t.remove("config/prod/hello.toml");
        }),
        Case::tar("member/listed-missing-last", 3, "\"tmpfiles/hello.conf\" is listed in the manifest but missing", |_, t| {
            t.remove("tmpfiles/hello.conf");
        }),
        Case::signed(
            "member/signed-listed-missing",
            3,
            "expected member \"doc/README\", found \"logrotate/hello\"",
            |v| {
                let files = v["files"].as_array_mut().unwrap();
                let readme = json!({"path": "doc/README", "size": 6, "mode": "0644", "role": "doc",
                    "sha256": Sha256::of(b"hello\n").to_string()});
                files.insert(4, readme);
            },
            no_tar_edit,
        ),
        Case::signed(
            "member/signed-listed-not-in-archive-at-end",
            3,
            "\"zz/last\" is listed in the manifest but missing",
            |v| {
                let files = v["files"].as_array_mut().unwrap();
                files.push(json!({"path": "zz/last", "size": 6, "mode": "0644", "role": "doc",
                    "sha256": Sha256::of(b"hello\n").to_string()}));
            },
            no_tar_edit,
        ),
        Case::tar("member/duplicated-binary", 3, "duplicate", |_, t| {
            let m = t.member("bin/hello").clone();
            t.insert(3, m);
        }),
        Case::tar("member/duplicated-last", 3, "duplicate", |_, t| {
            let m = t.member("tmpfiles/hello.conf").clone();
            let n = t.members.len();
            t.insert(n, m);
        }),
        Case::tar("member/duplicated-manifest", 3, "expected member \"ferry/manifest.json.minisig\", found \"ferry/manifest.json\"", |_, t| {
            let m = t.members[0].clone();
            t.insert(1, m);
        }),
        Case::tar("member/reordered-payload", 3, "expected member \"config/dev/hello.toml\", found \"config/prod/hello.toml\"", |_, t| {
            t.members.swap(3, 4);
        }),
        Case::tar("member/signature-before-manifest", 3, "expected member \"ferry/manifest.json\", found \"ferry/manifest.json.minisig\"", |_, t| {
            t.members.swap(0, 1);
        }),
        Case::tar("member/payload-before-manifest", 3, "expected member \"ferry/manifest.json\", found \"bin/hello\"", |_, t| {
            let m = t.remove("bin/hello");
            t.insert(0, m);
        }),
        Case::tar("member/manifest-renamed-dot-slash", 3, "expected member \"ferry/manifest.json\", found \"./ferry/manifest.json\"", |_, t| {
            t.members[0].set_name(b"./ferry/manifest.json");
        }),
        Case::signed("member/signed-files-unsorted", 3, "not sorted and unique", |v| v["files"].as_array_mut().unwrap().swap(1, 2), |_, t| t.members.swap(3, 4)),
        Case::signed(
            "member/signed-files-duplicated",
            3,
            "not sorted and unique",
            |v| {
                let f = v["files"][0].clone();
                v["files"].as_array_mut().unwrap().insert(1, f);
            },
            |_, t| {
                let m = t.member("bin/hello").clone();
                t.insert(3, m);
            },
        ),
        Case::signed(
            "member/signed-reserved-ferry-path",
            3,
            "reserved ferry/ directory",
            |v| {
                let files = v["files"].as_array_mut().unwrap();
                files.insert(4, json!({"path": "ferry/extra", "size": 6, "mode": "0644", "role": "doc",
                    "sha256": Sha256::of(b"hello\n").to_string()}));
            },
            |_, t| {
                t.insert(6, Member::regular("ferry/extra", 0o644, b"hello\n".to_vec()));
            },
        ),
        // --- Paths that leave the release.
        Case::tar("path/tar-dotdot", 3, "\"../../../../etc/cron.d/evil\" is not listed", |_, t| {
            t.member("bin/hello").set_name(b"../../../../etc/cron.d/evil");
        }),
        Case::tar("path/tar-absolute", 3, "\"/etc/cron.d/evil\" is not listed", |_, t| {
            t.member("bin/hello").set_name(b"/etc/cron.d/evil");
        }),
        Case::tar("path/tar-dotdot-in-ustar-prefix", 3, "\"../bin/hello\" is not listed", |_, t| {
            t.member("bin/hello").edit(|h| {
                set_text(&mut h[field::NAME], b"hello");
                set_text(&mut h[field::PREFIX], b"../bin");
            });
        }),
        Case::tar("path/tar-control-characters", 3, "\"bin/\\u{1b}[2Jhello\" is not listed", |_, t| {
            t.member("bin/hello").set_name(b"bin/\x1b[2Jhello");
        }),
        Case::signed(
            "path/signed-dotdot",
            3,
            "'..' component",
            |v| file_entry(v, "bin/hello")["path"] = json!("../bin/hello"),
            |_, t| {
                t.member("bin/hello").set_name(b"../bin/hello");
            },
        ),
        Case::signed(
            "path/signed-absolute",
            3,
            "is absolute",
            |v| file_entry(v, "bin/hello")["path"] = json!("/usr/local/bin/hello"),
            |_, t| {
                t.member("bin/hello").set_name(b"/usr/local/bin/hello");
            },
        ),
        Case::signed(
            "path/signed-directory-outside-app",
            3,
            "outside the app's own prefixes",
            |v| v["install"]["directories"][0]["path"] = json!("/etc/ssh"),
            no_tar_edit,
        ),
        Case::signed(
            "path/signed-directory-dotdot",
            3,
            "invalid host path",
            |v| v["install"]["directories"][0]["path"] = json!("/var/lib/hello/../../../etc"),
            no_tar_edit,
        ),
        Case::signed(
            "path/signed-config-dest-outside",
            3,
            "config /etc/cron.d/hello is not directly in /etc/hello",
            |v| v["install"]["configs"][0]["dest"] = json!("/etc/cron.d/hello"),
            no_tar_edit,
        ),
        Case::signed(
            "path/signed-secret-outside",
            3,
            "secret /root/.ssh/authorized_keys is not directly in /etc/hello",
            |v| v["install"]["secrets"][0]["path"] = json!("/root/.ssh/authorized_keys"),
            no_tar_edit,
        ),
        Case::signed(
            "path/signed-unit-of-another-service",
            3,
            "systemd/ssh.service has role unit but is not where that role belongs",
            |v| {
                file_entry(v, "systemd/prod/hello.service")["path"] = json!("systemd/ssh.service");
            },
            |_, t| {
                t.member("systemd/prod/hello.service").set_name(b"systemd/ssh.service");
            },
        ),
        Case::signed(
            "path/signed-version-traversal",
            3,
            "invalid version \"../../../etc\"",
            |v| v["app"]["version"] = json!("../../../etc"),
            no_tar_edit,
        ),
        // --- Links, devices, FIFOs, directories, special bits.
        Case::tar("type/symlink-out-of-release", 3, "\"bin/hello\" is a symlink", |_, t| {
            let i = t.index("bin/hello");
            t.members[i] = Member::special("bin/hello", b'2', "../../../../etc/shadow");
        }),
        Case::tar("type/symlink-absolute-unlisted", 3, "\"bin/evil\" is a symlink", |_, t| {
            t.insert(3, Member::special("bin/evil", b'2', "/etc/shadow"));
        }),
        Case::tar("type/hardlink-out-of-release", 3, "\"bin/hello\" is a hard link", |_, t| {
            let i = t.index("bin/hello");
            t.members[i] = Member::special("bin/hello", b'1', "../../../../etc/shadow");
        }),
        Case::tar("type/hardlink-with-data", 3, "\"bin/hello\" is a hard link", |_, t| {
            t.member("bin/hello").edit(|h| {
                h[field::TYPE] = b'1';
                set_text(&mut h[field::LINKNAME], b"/etc/passwd");
            });
        }),
        Case::tar("type/char-device", 3, "\"bin/hello\" is a character device", |_, t| {
            let i = t.index("bin/hello");
            t.members[i] = Member::special("bin/hello", b'3', "");
            t.members[i].edit(|h| {
                octal(&mut h[field::DEVMAJOR], 1);
                octal(&mut h[field::DEVMINOR], 3);
            });
        }),
        Case::tar("type/block-device", 3, "\"bin/hello\" is a block device", |_, t| {
            let i = t.index("bin/hello");
            t.members[i] = Member::special("bin/hello", b'4', "");
            t.members[i].edit(|h| octal(&mut h[field::DEVMAJOR], 8));
        }),
        Case::tar("type/fifo", 3, "\"config/dev/hello.toml\" is a FIFO", |_, t| {
            let i = t.index("config/dev/hello.toml");
            t.members[i] = Member::special("config/dev/hello.toml", b'6', "");
        }),
        Case::tar("type/directory", 3, "\"bin/hello\" is a directory", |_, t| {
            let i = t.index("bin/hello");
            t.members[i] = Member::special("bin/hello", b'5', "");
        }),
        Case::tar("type/contiguous-file", 3, "tar entry of type '7'", |_, t| {
            t.member("bin/hello").edit(|h| h[field::TYPE] = b'7');
        }),
        Case::tar("type/gnu-sparse", 3, "GNU sparse", |_, t| {
            t.member("bin/hello").edit(|h| {
                h[field::TYPE] = b'S';
                h[field::MAGIC].copy_from_slice(b"ustar  \0");
            });
        }),
        Case::tar("type/manifest-as-symlink", 3, "\"ferry/manifest.json\" is a symlink", |_, t| {
            t.members[0] = Member::special("ferry/manifest.json", b'2', "/etc/passwd");
        }),
        Case::tar("mode/header-setuid", 3, "mode 4755, expected 0755", |_, t| {
            t.member("bin/hello").set_mode(0o4755);
        }),
        Case::tar("mode/header-setgid", 3, "mode 2755, expected 0755", |_, t| {
            t.member("bin/hello").set_mode(0o2755);
        }),
        Case::signed(
            "mode/signed-setuid",
            3,
            "setuid, setgid, sticky and world-writable are refused",
            |v| file_entry(v, "bin/hello")["mode"] = json!("4755"),
            |_, t| {
                t.member("bin/hello").set_mode(0o4755);
            },
        ),
        Case::signed(
            "mode/signed-setgid",
            3,
            "setuid, setgid, sticky and world-writable are refused",
            |v| file_entry(v, "bin/hello")["mode"] = json!("2755"),
            |_, t| {
                t.member("bin/hello").set_mode(0o2755);
            },
        ),
        Case::signed(
            "mode/signed-world-writable",
            3,
            "setuid, setgid, sticky and world-writable are refused",
            |v| file_entry(v, "config/prod/hello.toml")["mode"] = json!("0666"),
            |_, t| {
                t.member("config/prod/hello.toml").set_mode(0o666);
            },
        ),
        Case::signed(
            "mode/signed-setgid-directory",
            3,
            "has unsafe mode 2770",
            |v| v["install"]["directories"][0]["mode"] = json!("2770"),
            no_tar_edit,
        ),
        Case::signed(
            "mode/signed-config-setuid",
            3,
            "has unsafe mode 4640",
            |v| v["install"]["configs"][0]["mode"] = json!("4640"),
            no_tar_edit,
        ),
        Case::signed(
            "mode/signed-secret-world-readable",
            3,
            "must not be readable by group or others",
            |v| v["install"]["secrets"][0]["mode"] = json!("0644"),
            no_tar_edit,
        ),
        Case::signed("account/signed-root-user", 3, "must not be root", |v| v["install"]["user"] = json!("root"), no_tar_edit),
        Case::signed(
            "account/signed-root-supplementary-group",
            3,
            "supplementary group root",
            |v| v["install"]["supplementary_groups"] = json!(["root"]),
            no_tar_edit,
        ),
        // --- Sizes that lie.
        Case::tar("size/header-larger-than-manifest", 3, "bin/hello: size is", |_, t| {
            let m = t.member("bin/hello");
            let mut d = m.data.clone();
            d.extend_from_slice(&[0; 512]);
            m.set_data(d);
        }),
        Case::tar("size/header-smaller-than-data", 3, "bin/hello: size is", |_, t| {
            let m = t.member("bin/hello");
            let n = m.size_field();
            m.set_size_field(n - 1000);
        }),
        Case::tar("size/header-zero", 3, "config/dev/hello.toml: size is 0 bytes, manifest says", |_, t| {
            t.member("config/dev/hello.toml").set_size_field(0);
        }),
        Case::tar("size/header-base256-huge", 3, "file size 4611686018427387904 exceeds the limit", |_, t| {
            t.member("bin/hello").edit(|h| {
                let f = &mut h[field::SIZE];
                f.fill(0);
                f[0] = 0x80;
                f[4] = 0x40;
            });
        }),
        Case::signed(
            "size/signed-smaller",
            3,
            "bin/hello: size is",
            |v| {
                let e = file_entry(v, "bin/hello");
                e["size"] = json!(e["size"].as_u64().unwrap() - 1);
            },
            no_tar_edit,
        ),
        Case::signed(
            "size/signed-and-header-larger-than-data",
            3,
            "bin/hello: SHA-256 is",
            |v| {
                let e = file_entry(v, "bin/hello");
                e["size"] = json!(e["size"].as_u64().unwrap() + 4096);
            },
            |_, t| {
                let m = t.member("bin/hello");
                let n = m.data.len() as u64;
                m.set_size_field(n + 4096);
            },
        ),
        Case::signed("size/signed-over-file-limit", 3, "file size 5368709120 exceeds the limit of 4294967296 (raise it with --max-file-bytes)", |v| file_entry(v, "bin/hello")["size"] = json!(5_u64 << 30), no_tar_edit),
        Case::tar("size/manifest-member-huge", 3, "manifest size 8589934591 exceeds the limit of 1048576", |_, t| {
            t.members[0].set_size_field(0o77_777_777_777);
        }),
        Case::tar("size/signature-member-over-limit", 3, "signature size 9000 exceeds the limit of 8192 (raise it with --max-signature-bytes)", |_, t| {
            let mut d = t.member(SIG).data.clone();
            d.resize(9000, b'\n');
            t.member(SIG).set_data(d);
        }),
        // --- Manifests: huge, nested, not UTF-8, other formats.
        Case::signed("manifest/over-size-limit", 3, "manifest size 1048577 exceeds the limit of 1048576 (raise it with --max-manifest-bytes)", pad_manifest_to(1 << 20 | 1), no_tar_edit),
        Case::signed_bytes("manifest/deeply-nested", 3, "manifest is invalid: invalid type: sequence", |b| {
            let text = String::from_utf8(b.manifest.clone()).unwrap();
            let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            text.replacen("\"settings\": [", &format!("\"settings\": [{deep},"), 1).into_bytes()
        }),
        Case::signed_bytes("manifest/deeply-nested-top-level", 3, "manifest is invalid", |_| {
            format!("{}{}", "[".repeat(500_000), "]".repeat(500_000)).into_bytes()
        }),
        Case::signed_bytes("manifest/deeply-nested-unknown-field", 3, "unknown field `zz`", |b| {
            let text = String::from_utf8(b.manifest.clone()).unwrap();
            let deep = format!("{}1{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
            let at = text.rfind('}').unwrap();
            format!("{}, \"zz\": {deep}\n}}\n", text[..at].trim_end()).into_bytes()
        }),
        Case::signed_bytes("manifest/not-utf8", 3, "not UTF-8", |b| {
            let mut m = b.manifest.clone();
            let at = find(&m, b"Example HTTP");
            m[at] = 0xff;
            m
        }),
        Case::signed_bytes("manifest/utf16", 3, "not UTF-8|manifest is invalid", |b| {
            let text = String::from_utf8(b.manifest.clone()).unwrap();
            let mut out = vec![0xff, 0xfe];
            for u in text.encode_utf16() {
                out.extend_from_slice(&u.to_le_bytes());
            }
            out
        }),
        Case::signed("manifest/unknown-format-version", 3, "format_version 3 is not supported", |v| v["format_version"] = json!(3), no_tar_edit),
        Case::signed("manifest/older-format-version", 3, "format_version 1 is not supported", |v| v["format_version"] = json!(1), no_tar_edit),
        Case::signed("manifest/huge-format-version", 3, "format_version 18446744073709551615 is not supported", |v| v["format_version"] = json!(u64::MAX), no_tar_edit),
        Case::signed("manifest/format-version-string", 3, "manifest is invalid: invalid type: string", |v| v["format_version"] = json!("2"), no_tar_edit),
        Case::signed(
            "manifest/format-version-missing",
            3,
            "missing field `format_version`",
            |v| {
                v.as_object_mut().unwrap().remove("format_version");
            },
            no_tar_edit,
        ),
        Case::signed_bytes("manifest/duplicate-key", 3, "duplicate field `format_version`", |b| {
            let text = String::from_utf8(b.manifest.clone()).unwrap();
            text.replacen('{', "{\n  \"format_version\": 2,", 1).into_bytes()
        }),
        Case::signed_bytes("manifest/trailing-characters", 3, "trailing characters", |b| {
            let mut m = b.manifest.clone();
            m.extend_from_slice(b"{}\n");
            m
        }),
        Case::signed_bytes("manifest/null", 3, "manifest is invalid", |_| b"null\n".to_vec()),
        Case::signed_bytes("manifest/empty", 3, "manifest is invalid", |_| Vec::new()),
        Case::signed("manifest/unknown-field-with-terminal-escapes", 3, "unknown field", |v| v["\u{1b}]0;owned\u{7}\u{1b}[2J"] = json!(1), no_tar_edit),
        Case::signed("manifest/socket-unit-not-in-payload", 3, "socket", |v| v["install"]["socket_unit"] = json!("hello.socket"), no_tar_edit),
        Case::signed(
            "manifest/sysusers-not-in-payload",
            3,
            "sysusers/hello.conf",
            |v| {
                v["files"].as_array_mut().unwrap().retain(|f| f["path"] != "sysusers/hello.conf");
            },
            |_, t| {
                t.remove("sysusers/hello.conf");
            },
        ),
        // --- Signature member.
        Case::tar("signature/empty", 3, "signature is malformed", |_, t| {
            t.member(SIG).set_data(Vec::new());
        }),
        Case::tar("signature/not-utf8", 3, "signature is not UTF-8", |_, t| {
            t.member(SIG).data[30] = 0xc3;
        }),
        Case::tar("signature/garbage", 3, "signature is malformed", |_, t| {
            t.member(SIG).set_data(b"untrusted comment: x\nnot base64 at all\n".to_vec());
        }),
        Case::tar("signature/extra-line", 3, "signature is malformed", |_, t| {
            let mut d = t.member(SIG).data.clone();
            d.extend_from_slice(b"extra\n");
            t.member(SIG).set_data(d);
        }),
        // --- The zstd stream and what follows the archive.
        Case::new("zstd/trailing-garbage", 3, "data after the end of the archive", |b| {
            let mut f = b.amd64.clone();
            f.extend_from_slice(b"garbage\n");
            f
        }),
        Case::new("zstd/second-frame-of-zeros", 3, "data after the end of the archive", |b| {
            let mut f = b.amd64.clone();
            f.extend_from_slice(&compress(&[0; 1024]));
            f
        }),
        Case::new("zstd/second-frame-with-a-member", 3, "data after the end of the archive", |b| {
            let mut f = b.amd64.clone();
            let extra = Member::regular("zz/extra", 0o644, b"extra\n".to_vec());
            let mut raw = extra.header.to_vec();
            raw.extend_from_slice(b"extra\n");
            raw.resize(3 * BLOCK, 0);
            f.extend_from_slice(&compress(&raw));
            f
        }),
        Case::new("zstd/skippable-frame-appended", 3, "data after the end of the archive", |b| {
            let mut f = b.amd64.clone();
            f.extend_from_slice(&skippable_frame(b"smuggled"));
            f
        }),
        Case::new("zstd/skippable-frame-prepended", 3, "truncated|skippable|not a readable", |b| {
            let mut f = skippable_frame(b"smuggled");
            f.extend_from_slice(&b.amd64);
            f
        }),
        Case::new("zstd/byte-flipped-early", 3, "not a readable zstd/tar stream|checksum|SHA-256 is|bad tar header|signature", |b| {
            let mut f = b.amd64.clone();
            f[200] ^= 0x55;
            f
        }),
        Case::new("zstd/byte-flipped-middle", 3, "not a readable zstd/tar stream|checksum|SHA-256 is|bad tar header", |b| {
            let mut f = b.amd64.clone();
            let mid = f.len() / 2;
            f[mid] ^= 0x55;
            f
        }),
        Case::new("zstd/frame-checksum-flipped", 3, "not a readable zstd/tar stream", |b| {
            let mut f = b.amd64.clone();
            let n = f.len() - 1;
            f[n] ^= 0x55;
            f
        }),
        Case::new("zstd/magic-flipped", 3, "not a readable zstd/tar stream", |b| {
            let mut f = b.amd64.clone();
            f[0] ^= 1;
            f
        }),
        Case::new(
            "zstd/frame-content-size-lies",
            3,
            "not a readable zstd/tar stream",
            |b| {
                // The frame header declares 1000 bytes of content; the blocks hold the tar.
                let mut f = frame(&[Part::Data(&b.tar.to_bytes())]);
                f[4] = 0x40; // Frame_Content_Size_Flag 1: a 2-byte size (value - 256) follows
                f.splice(6..6, (1000u16 - 256).to_le_bytes());
                f
            },
        ),
        Case::new("zstd/not-zstd-text", 3, "not a readable zstd/tar stream", |_| b"hello, this is not a bundle\n".to_vec()),
        Case::new("zstd/uncompressed-tar", 3, "not a readable zstd/tar stream", |b| b.tar.to_bytes()),
        Case::new("zstd/gzip", 3, "not a readable zstd/tar stream", |_| vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Case::new("zstd/frame-of-noise", 3, "checksum mismatch|not a readable", |_| compress(&noise(100_000, 7))),
        Case::tar("tar/nonzero-after-end-blocks", 3, "data after the end of the archive", |_, t| {
            t.end.extend_from_slice(b"smuggled");
            t.end.resize(t.end.len() + padding(t.end.len()), 0);
        }),
        Case::tar("tar/member-after-end-blocks", 3, "data after the end of the archive", |_, t| {
            let m = Member::regular("zz/extra", 0o644, b"extra\n".to_vec());
            t.end.extend_from_slice(&m.header);
            t.end.extend_from_slice(&[0; 3 * BLOCK]);
        }),
        Case::tar("tar/over-a-mebibyte-of-padding", 3, "data after the end of the archive", |_, t| {
            t.end.resize(2 << 20, 0);
        }),
        // --- Extension headers the format does not have.
        Case::tar("ext/pax-header-before-payload", 3, "pax extended header", |_, t| {
            t.insert(2, pax_header(b'x', &[("path", "bin/hello")]));
        }),
        Case::tar("ext/pax-size-override", 3, "pax extended header", |_, t| {
            t.insert(2, pax_header(b'x', &[("size", "0")]));
        }),
        Case::tar("ext/pax-path-traversal", 3, "pax extended header", |_, t| {
            t.insert(2, pax_header(b'x', &[("path", "../../../../etc/cron.d/evil")]));
        }),
        Case::tar("ext/pax-global-header-first", 3, "pax global header", |_, t| {
            t.insert(0, pax_header(b'g', &[("comment", "hello")]));
        }),
        Case::tar("ext/gnu-long-name-before-manifest", 3, "GNU long name", |_, t| {
            t.insert(0, gnu_header(b'L', "ferry/manifest.json"));
        }),
        Case::tar("ext/gnu-long-name-traversal", 3, "GNU long name", |_, t| {
            t.insert(2, gnu_header(b'L', &format!("{}etc/cron.d/evil", "../".repeat(40))));
        }),
        Case::tar("ext/gnu-long-link", 3, "GNU long link", |_, t| {
            t.insert(2, gnu_header(b'K', "/etc/shadow"));
        }),
        // --- Bombs: memory and disk stay bounded.
        {
            let mut c = Case::new("bomb/zero-payload-declared-3-gib", 3, "decompression ratio", |b| zero_bomb(b, 3 << 30));
            c.memory_limit = Some(256 << 20);
            c
        },
        {
            let mut c = Case::new("bomb/pax-header-of-1-gib-before-manifest", 3, "pax extended header", |b| pax_bomb(b, 1 << 30));
            c.memory_limit = Some(256 << 20);
            c
        },
        // --- Preconditions: verified bundles this host must refuse (exit 4).
        Case::new("precondition/arm64-bundle", 4, "bundle is for linux/arm64, this host is linux/amd64", |b| b.arm64.clone()),
        {
            let mut c = Case::new("precondition/downgrade", 4, "hello 1.0.0 is older than the installed 2.0.0: refusing to downgrade", |b| b.amd64.clone());
            c.first = Some(Box::new(version_2));
            c
        },
        {
            let mut c = Case::new("precondition/unknown-environment", 4, "environment staging is not in the bundle", |b| b.amd64.clone());
            c.args = vec!["--env", "staging"];
            c
        },
        // --- The detached signature beside the bundle.
        {
            let mut c = Case::new("detached/untrusted-key", 3, "which is not trusted", |b| b.amd64.clone());
            c.detached = Some(Box::new(|b| b.detached(&b.rogue, &b.amd64)));
            c
        },
        {
            let mut c = Case::new("detached/other-file", 3, "is invalid", |b| b.amd64.clone());
            c.detached = Some(Box::new(|b| b.detached(&b.secret, b"another file")));
            c
        },
        {
            let mut c = Case::new("detached/garbage", 3, "malformed signature", |b| b.amd64.clone());
            c.detached = Some(Box::new(|_| b"not a signature\n".to_vec()));
            c
        },
    ];
    // Truncation at every member boundary: of the raw tar (then compressed whole), and of
    // the compressed stream itself (flushed at each boundary).
    for i in 0..=base_member_count() {
        let what = member_name(i);
        v.push(Case::tar(
            format!("truncate/tar-before-{what}"),
            3,
            "truncated",
            move |_, t| {
                let mut raw = t.to_bytes();
                raw.truncate(t.offsets()[i]);
                *t = RawTar {
                    members: Vec::new(),
                    end: raw,
                };
            },
        ));
        v.push(Case::new(
            format!("truncate/zstd-before-{what}"),
            3,
            "truncated",
            move |b| {
                let (mut z, offsets) = compress_with_boundaries(&b.tar);
                z.truncate(offsets[i]);
                z
            },
        ));
    }
    v
}

const MEMBER_NAMES: [&str; 11] = [
    "manifest",
    "signature",
    "bin-hello",
    "config-dev",
    "config-prod",
    "config-test",
    "logrotate",
    "sbom",
    "unit",
    "sysusers",
    "tmpfiles",
];

fn base_member_count() -> usize {
    MEMBER_NAMES.len()
}

fn member_name(i: usize) -> &'static str {
    MEMBER_NAMES.get(i).copied().unwrap_or("end-blocks")
}

/// Pads the description so the manifest is exactly `size` bytes.
fn pad_manifest_to(size: usize) -> impl Fn(&mut Value) + Send + Sync + 'static {
    // Padded in the build settings: free text there has no length limit (a description
    // has one).
    move |v| {
        v["build"]["settings"]
            .as_array_mut()
            .unwrap()
            .push(json!(["ferry_test_padding", ""]));
        let len = manifest_bytes(v).len();
        let last = v["build"]["settings"].as_array().unwrap().len() - 1;
        v["build"]["settings"][last][1] = json!("x".repeat(size - len));
        assert_eq!(manifest_bytes(v).len(), size);
    }
}

/// A manifest of exactly `size` bytes, validly signed: for the limit tests.
pub fn padded_manifest_bundle(base: &Base, size: usize) -> Vec<u8> {
    compress(&base.resigned(pad_manifest_to(size)).to_bytes())
}

/// A valid bundle with one more payload file of `size` zeros (role doc) as its first
/// member (`a/zeros` sorts before `bin/`, so the binary's bytes do not dilute the ratio):
/// it compresses far beyond the default ratio limit, yet every digest matches.
pub fn compressible_bundle(base: &Base, size: usize) -> Vec<u8> {
    let zeros = vec![0u8; size];
    let mut tar = base.resigned(|v| {
        let files = v["files"].as_array_mut().unwrap();
        files.insert(
            0,
            json!({"path": "a/zeros", "size": size, "mode": "0644", "role": "doc",
                "sha256": Sha256::of(&zeros).to_string()}),
        );
    });
    tar.insert(2, Member::regular("a/zeros", 0o644, zeros));
    compress(&tar.to_bytes())
}

/// The case's bundle and detached signature written under `dir`.
pub fn write_case(base: &Base, case: &Case, dir: &Path) -> PathBuf {
    let file = dir.join(format!("{}.tar.zst", case.name.replace('/', "--")));
    fs::write(&file, (case.make)(base)).unwrap();
    if let Some(d) = &case.detached {
        fs::write(ferry_format::verify::detached_path(&file), d(base)).unwrap();
    }
    file
}

/// `name == x` for the cases the real host also runs.
pub fn by_name(name: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}
