//! Fleet rollout with Ansible (`ansible/`): ansible-core (from pip) on a control node, three
//! systemd hosts with sshd and no network but a private one this test makes, the role and
//! playbooks run exactly as an operator would run them, and attacked the ways whoever holds
//! the control node's files, the release media or a host's `/tmp` could try.
//!
//! The network, all in network namespaces of this test (nothing in the outer one changes):
//!
//! ```text
//! netns ferry-fleet-PID (control node)      netns ferry-fleet-PID-hN (host N, N = 1..3)
//!   br0 10.213.0.1/24                         eth0 10.213.0.(10+N)/24
//!     hN ─────────────── veth ────────────────┘  (systemd-nspawn --network-namespace-path)
//! ```
//!
//! No namespace has a default route or a link to the outer machine: no packet can leave. The
//! hosts boot from the fleet root (`scripts/mkhost --profile fleet`: the default test host plus
//! sshd, python3 and sudo); each makes its own SSH host key at boot, which the test reads into
//! a `known_hosts` file. `ansible-playbook` runs inside the control node's namespace, from
//! `scripts/fleet-test`'s venv.
//!
//! The hosts: fleet-1 (the canary of every rollout) is reached as root; fleet-2 as `deploy`,
//! an unprivileged user with sudo, the way `inventory.example.ini` recommends; fleet-3 as root
//! with `/tmp` and `/var/tmp` mounted `noexec`, and Ansible's own remote temporary directory
//! in that `/tmp`. The installer comes from a field kit (`ferry kit`), vouched for by its
//! `SHA256SUMS.sig` and the release key, pinned by key id.
//!
//! The story, in order:
//! 1. Trust provisioning (`trust.yml`): a swapped key on the media is refused on the control
//!    node; a key planted on fleet-1 by another user is refused by name, nothing changed
//!    there; fleet-3's weak key and cache directories are fixed; `--check` changes nothing;
//!    `site.yml --tags ferry_trust` places a revocation and runs nothing else.
//! 2. `--check` on fresh hosts says it would install the installer, and changes nothing.
//! 3. Tampered installers, each refused on the control node before anything reaches a host:
//!    one that is not its pinned SHA-256, one altered on the kit, one in a kit re-signed by
//!    another key, one whose release key was swapped too. Then (3a-d) a host policy placed by
//!    `trust.yml` (`ferry_policy`, root:root 0644) on fleet-3 that lets the release key sign
//!    `billing-*` only: the install is refused (exit 4) and the host unchanged but for what
//!    the role copied; a group-writable policy and a symlinked key are refused by the role
//!    before it runs anything, as `ferry-install` run by hand refuses them, while an
//!    operator's file under `/etc/ferry` that `ferry-install` never reads is left alone; a
//!    policy that admits hello replaces the weak one.
//! 4. The first rollout (fleet-3 under its policy); a second run and `--check` change
//!    nothing; the trust stores stay byte-identical throughout.
//! 5. An installer planted on fleet-1 is never run: `status.yml` refuses it, `--check`
//!    reports it would replace it, a real run replaces it before running anything.
//! 6. `--check` of an upgrade changes nothing; `ferry_pubkey` replaces the host's keys for
//!    one run only: on fleet-1, whose own key revoked the attacker's, a bundle signed by a
//!    key no host trusts verifies with that key pinned, and the attacker's bundle with the
//!    attacker's key pinned is still refused (the host's revocation holds); pinned to another
//!    key, the release key's bundle is refused; unpinned, it is refused on the control node. A
//!    rolling upgrade to a release that fails at start stops after the canary, which the
//!    installer rolled back; a good rolling upgrade with `--diff -v` shows the config diffs, a
//!    secret an operator left in a kept config redacted, and prunes the bundle cache; a
//!    release that passes the health gate but restarts soon after fails the canary soak,
//!    which rolls the canary back and stops.
//! 7. `rollback.yml` on the sudo host, `--check` first; `status.yml`.
//! 8. Every way a run can fail carries its message and class: a hung installer (timeout), one
//!    killed by SIGKILL, one printing no JSON, one the kernel cannot execute.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use ferry_format::minisign::{PublicKey, SecretKey};
use ferry_tests::{ferry_bin, static_installer, target_dir, workspace_root, Host, HostOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const HOSTS: usize = 3;
/// The private network's /24, used only inside this test's namespaces.
const SUBNET: &str = "10.213.0";
const SDE: &str = "1700000000";
const HEALTHZ: &str = "http://127.0.0.1:8080/healthz";
const GREETING_11: &str = "Hello from ferry 1.1.0";
/// What `--check` must leave alone on a host (with `/tmp` and `/var/tmp`, where a dry run
/// could stage; not `/var/log/hello`, which grows with each health probe that `ferry-install
/// status` makes).
const WATCHED: &str =
    "/etc /opt /usr/local /var/lib/ferry /var/cache/ferry /var/lib/hello /tmp /var/tmp /root";
/// Where the role puts the installer on the hosts (its default).
const INSTALLER: &str = "/usr/local/sbin/ferry-install";
/// What a tampered installer would leave if it ever ran.
const PWNED: &str = "/root/PWNED";
/// A secret an operator left in fleet-3's kept config: it must never be printed.
const SECRET: &str = "hunter2-do-not-print";
/// The canary soak of ordinary rollouts here, and of the one that must catch a release that
/// restarts `RESTART_AFTER` seconds after its start (long past the installer's health gate).
const SOAK: u32 = 2;
const LONG_SOAK: u32 = 20;
const RESTART_AFTER: u32 = 10;

fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "{cmd:?} -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{}", describe(cmd, &out));
    out
}

fn ip(args: &[&str]) {
    run_ok(Command::new("ip").args(args));
}

fn since(t: Instant) -> String {
    format!("{:.1} s", t.elapsed().as_secs_f64())
}

/// This run's directory, `CARGO_TARGET_TMPDIR/ferry-fleet-PID`: keys, bundles, inventory,
/// one log per playbook run. Removed when the test passes (unless `FERRY_FLEET_KEEP` is set),
/// kept when it fails; those of runs whose process is gone are removed here.
fn run_dir() -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(base).unwrap();
    for entry in fs::read_dir(base).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("ferry-fleet-") {
            if pid
                .parse::<u32>()
                .is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists())
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(format!("ferry-fleet-{}", std::process::id()));
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn key_id(pubkey: &Path) -> String {
    PublicKey::load(pubkey)
        .unwrap_or_else(|e| panic!("{}: {e}", pubkey.display()))
        .key_id()
        .to_string()
}

/// A file the role must never run: on a host it would leave [`PWNED`].
const TAMPERED: &str =
    "#!/bin/sh\n# planted in place of ferry-install\ntouch /root/PWNED\nexit 0\n";

fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Binaries, bundles, kits and the control node's Ansible.

/// `ferry` (debug) and the static installer (`scripts/build-installer`), so the test never runs
/// stale ones. Over the installer's size budget is another test's failure, not this one's.
fn build_binaries() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run_ok(
        Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "ferry"]),
    );
    let mut cmd = Command::new(workspace_root().join("scripts/build-installer"));
    let out = cmd
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/build-installer");
    if !out.status.success() {
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("over the 2 MiB budget")
                && static_installer().is_file(),
            "building the static installer failed: {}",
            describe(&cmd, &out)
        );
    }
}

struct Artifacts {
    /// The release key pair (`release.key`, `release.pub`) and its key id.
    pubkey: PathBuf,
    key_id: String,
    /// Another key pair (`attacker.*`), which an attacker would sign with; the release key
    /// revokes it (`attacker.revocation`).
    attacker: PathBuf,
    attacker_id: String,
    /// A third key pair (`staging.*`), trusted by no host: `ferry_pubkey` trusts it for a run.
    staging: PathBuf,
    staging_id: String,
    /// By version: 1.0.0, 1.1.0 (another default greeting), 2.0.0 (exits at start) and 1.2.0
    /// (passes the health gate, then systemd restarts it after `RESTART_AFTER` seconds).
    by_version: BTreeMap<&'static str, PathBuf>,
    /// 1.1.0 signed by the staging key and by the attacker's, by key name.
    resigned: BTreeMap<&'static str, PathBuf>,
    /// `ferry kit` of 1.0.0 with the static installer (`ferry-install-x86_64`) and a
    /// `SHA256SUMS.sig` signed by the release key.
    kit: PathBuf,
}

/// `ferry build` of `dir/src-VERSION` for amd64, signed by `dir/KEY.key`, into `out`; returns
/// the bundle.
fn ferry_build(dir: &Path, version: &str, key: &str, out: &Path) -> PathBuf {
    run_ok(
        Command::new(ferry_bin())
            .arg("build")
            .arg(dir.join(format!("src-{version}")))
            .arg("--key")
            .arg(dir.join(format!("{key}.key")))
            .arg("--out")
            .arg(out)
            .args(["--target", "linux/amd64"])
            .env("SOURCE_DATE_EPOCH", SDE)
            .env_remove("FERRY_PASSPHRASE"),
    );
    out.join(format!("hello-{version}-linux-amd64.tar.zst"))
}

/// Copies `examples/hello` to `dir/src-VERSION`, sets the version, lets `edit` change more
/// (given the source directory and `ferry.toml`), builds it for amd64 into `dir/out-VERSION`
/// with the release key and returns the bundle.
fn build_bundle(dir: &Path, version: &str, edit: impl Fn(&Path, String) -> String) -> PathBuf {
    let src = dir.join(format!("src-{version}"));
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(workspace_root().join("examples/hello"))
            .arg(&src),
    );
    let toml = src.join("ferry.toml");
    let text = fs::read_to_string(&toml).unwrap();
    assert_eq!(text.matches("version = \"1.0.0\"").count(), 1, "{text}");
    fs::write(
        &toml,
        edit(
            &src,
            text.replace("version = \"1.0.0\"", &format!("version = \"{version}\"")),
        ),
    )
    .unwrap();
    ferry_build(dir, version, "release", &dir.join(format!("out-{version}")))
}

fn once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} in:\n{text}");
    text.replacen(from, to, 1)
}

fn build_artifacts(dir: &Path) -> Artifacts {
    build_binaries();
    for name in ["release", "attacker", "staging"] {
        run_ok(
            Command::new(ferry_bin())
                .arg("keygen")
                .arg("--out")
                .arg(dir.join(name))
                .arg("--unencrypted"),
        );
    }
    // The release key revokes the attacker's, for trust provisioning to place.
    run_ok(
        Command::new(ferry_bin())
            .arg("revoke-key")
            .arg("--key")
            .arg(dir.join("release.key"))
            .args(["--revoke", &key_id(&dir.join("attacker.pub"))])
            .args(["--reason", "compromised"])
            .arg("--out")
            .arg(dir.join("attacker.revocation")),
    );
    let (by_version, resigned) = std::thread::scope(|s| {
        let v1 = s.spawn(|| build_bundle(dir, "1.0.0", |_, t| t));
        // 1.1.0 also signed by the staging key and by the attacker's (the same build).
        let v11 = s.spawn(|| {
            let bundle = build_bundle(dir, "1.1.0", |_, t| {
                once(
                    &t,
                    "greeting = \"Hello from ferry\"",
                    &format!("greeting = \"{GREETING_11}\""),
                )
            });
            let resigned: BTreeMap<&'static str, PathBuf> = ["staging", "attacker"]
                .into_iter()
                .map(|key| {
                    let out = dir.join(format!("out-1.1.0-{key}"));
                    (key, ferry_build(dir, "1.1.0", key, &out))
                })
                .collect();
            (bundle, resigned)
        });
        let v2 = s.spawn(|| {
            build_bundle(dir, "2.0.0", |_, t| {
                once(
                    &t,
                    "\n[build]\n",
                    "\n[build]\nldflags_x = { \"main.crashAtStart\" = \"1\" }\n",
                )
            })
        });
        // A project's own unit template (the default one plus RuntimeMaxSec=): systemd stops
        // the service RESTART_AFTER seconds after each start and, Restart=on-failure,
        // restarts it. Healthy at the installer's gate, not for long.
        let v12 = s.spawn(|| {
            build_bundle(dir, "1.2.0", |src, t| {
                let unit =
                    fs::read_to_string(workspace_root().join("templates/unit.service.j2")).unwrap();
                fs::write(
                    src.join("unit.service.j2"),
                    once(
                        &unit,
                        "RestartSec=2s\n",
                        &format!("RestartSec=2s\nRuntimeMaxSec={RESTART_AFTER}s\n"),
                    ),
                )
                .unwrap();
                format!("{t}\n[templates]\nunit = \"unit.service.j2\"\n")
            })
        });
        let (v11, resigned) = v11.join().unwrap();
        let by_version = BTreeMap::from([
            ("1.0.0", v1.join().unwrap()),
            ("1.1.0", v11),
            ("1.2.0", v12.join().unwrap()),
            ("2.0.0", v2.join().unwrap()),
        ]);
        (by_version, resigned)
    });
    let kit = dir.join("kit");
    run_ok(
        Command::new(ferry_bin())
            .arg("kit")
            .arg(&kit)
            .arg(&by_version["1.0.0"])
            .arg("--key")
            .arg(dir.join("release.key"))
            .arg("--pubkey")
            .arg(dir.join("release.pub"))
            .arg("--installer")
            .arg(static_installer()),
    );
    assert_eq!(
        fs::read(kit.join("ferry-install-x86_64")).unwrap(),
        fs::read(static_installer()).unwrap(),
        "the kit carries the static installer"
    );
    Artifacts {
        key_id: key_id(&dir.join("release.pub")),
        pubkey: dir.join("release.pub"),
        attacker_id: key_id(&dir.join("attacker.pub")),
        attacker: dir.join("attacker"),
        staging_id: key_id(&dir.join("staging.pub")),
        staging: dir.join("staging"),
        by_version,
        resigned,
        kit,
    }
}

/// What an attacker with the media could make of the kit, each a copy in `dir`:
/// `kit-altered` (the installer replaced, the signed list left alone) and `kit-forged` (the
/// installer replaced and the list re-signed with the attacker's key); and `media/release.pub`,
/// the attacker's public key under the release key's name.
fn forge_kits(dir: &Path, art: &Artifacts) {
    for name in ["kit-altered", "kit-forged"] {
        run_ok(
            Command::new("cp")
                .arg("-a")
                .arg(&art.kit)
                .arg(dir.join(name)),
        );
        write_exec(&dir.join(name).join("ferry-install-x86_64"), TAMPERED);
    }
    let forged = dir.join("kit-forged");
    let signed = fs::read(forged.join("SHA256SUMS.sig")).unwrap();
    let list =
        ferry_format::signify::verify_embedded(&PublicKey::load(&art.pubkey).unwrap(), &signed)
            .expect("the kit's list verifies with the release key")
            .to_vec();
    let real = sha256_hex(&fs::read(static_installer()).unwrap());
    let list = String::from_utf8(list)
        .unwrap()
        .replace(&real, &sha256_hex(TAMPERED.as_bytes()));
    assert!(list.contains(&sha256_hex(TAMPERED.as_bytes())), "{list}");
    fs::write(forged.join("SHA256SUMS"), &list).unwrap();
    let attacker = SecretKey::load(art.attacker.with_extension("key"), None).unwrap();
    fs::write(
        forged.join("SHA256SUMS.sig"),
        ferry_format::signify::sign_embedded(&attacker, list.as_bytes(), "verify with release.pub")
            .unwrap(),
    )
    .unwrap();
    fs::create_dir_all(dir.join("media")).unwrap();
    fs::copy(
        art.attacker.with_extension("pub"),
        dir.join("media/release.pub"),
    )
    .unwrap();
}

/// `scripts/fleet-test --prepare`: ansible-core in a venv; returns its bin directory.
fn ansible_bin() -> PathBuf {
    let out = run_ok(
        Command::new(workspace_root().join("scripts/fleet-test"))
            .arg("--prepare")
            .env("CARGO_TARGET_DIR", target_dir()),
    );
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        bin.join("ansible-playbook").is_file(),
        "no ansible-playbook in {}",
        bin.display()
    );
    bin
}

// ---------------------------------------------------------------------------------------------
// The private network.

/// The namespaces of this test's network; dropping it ends the processes left in the control
/// node's namespace (ssh connection masters Ansible started) and deletes every namespace.
struct Network {
    control: String,
    hosts: Vec<String>,
}

fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

fn host_address(i: usize) -> String {
    format!("{SUBNET}.{}", 11 + i)
}

/// Namespaces of earlier runs of this test whose process is gone.
fn reap_stale_namespaces() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("ferry-fleet-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("fleet.rs: removing stale network namespace {name}");
            kill_in_netns(&netns_path(&name));
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

/// SIGKILL every process whose network namespace is the one mounted at `ns`.
fn kill_in_netns(ns: &Path) {
    let Ok(meta) = fs::metadata(ns) else { return };
    let want = format!("net:[{}]", meta.ino());
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if fs::read_link(p.path().join("ns/net")).is_ok_and(|l| l.to_string_lossy() == want) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

impl Network {
    fn create(hosts: usize) -> Self {
        reap_stale_namespaces();
        let control = format!("ferry-fleet-{}", std::process::id());
        let net = Network {
            hosts: (1..=hosts).map(|i| format!("{control}-h{i}")).collect(),
            control,
        };
        let ctl = net.control.as_str();
        ip(&["netns", "add", ctl]);
        ip(&["-n", ctl, "link", "set", "lo", "up"]);
        ip(&["-n", ctl, "link", "add", "br0", "type", "bridge"]);
        ip(&[
            "-n",
            ctl,
            "addr",
            "add",
            &format!("{SUBNET}.1/24"),
            "dev",
            "br0",
        ]);
        ip(&["-n", ctl, "link", "set", "br0", "up"]);
        for (i, ns) in net.hosts.iter().enumerate() {
            let port = format!("h{}", i + 1);
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n", ctl, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                ns,
            ]);
            ip(&["-n", ctl, "link", "set", &port, "master", "br0", "up"]);
            let addr = format!("{}/24", host_address(i));
            ip(&["-n", ns, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
        }
        net
    }

    /// Every namespace routes only its /24 (and loopback): no default route, no way out.
    fn assert_closed(&self) {
        for ns in std::iter::once(&self.control).chain(&self.hosts) {
            for family in ["-4", "-6"] {
                let out =
                    run_ok(Command::new("ip").args([family, "-n", ns, "route", "show", "default"]));
                assert!(
                    out.stdout.is_empty(),
                    "{ns} has a default route: {}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
            let out = run_ok(Command::new("ip").args(["-4", "-n", ns, "-o", "route"]));
            for route in String::from_utf8_lossy(&out.stdout).lines() {
                assert!(
                    route.starts_with(&format!("{SUBNET}.0/24 ")),
                    "{ns} routes outside the private network: {route}"
                );
            }
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in std::iter::once(&self.control).chain(&self.hosts) {
            kill_in_netns(&netns_path(ns));
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The control node: inventory, ssh key, known hosts, ansible-playbook runs.

struct Recap {
    ok: u32,
    changed: u32,
    failed: u32,
    unreachable: u32,
}

struct Play {
    name: String,
    code: Option<i32>,
    output: String,
    recap: BTreeMap<String, Recap>,
}

impl Play {
    fn host(&self, host: &str) -> &Recap {
        self.recap
            .get(host)
            .unwrap_or_else(|| panic!("{}: no recap for {host}\n{}", self.name, self.output))
    }

    #[track_caller]
    fn assert(&self, cond: bool, what: &str) {
        assert!(
            cond,
            "{}: {what}\n===== output =====\n{}",
            self.name, self.output
        );
    }

    fn assert_succeeded(&self) {
        self.assert(self.code == Some(0), "ansible-playbook failed");
        self.assert(!self.recap.is_empty(), "no PLAY RECAP in the output");
        for (host, r) in &self.recap {
            self.assert(
                r.failed == 0 && r.unreachable == 0,
                &format!("{host} failed or unreachable"),
            );
        }
    }
}

/// `PLAY RECAP` lines: `NAME : ok=7 changed=2 unreachable=0 failed=0 ...`.
fn parse_recap(output: &str) -> BTreeMap<String, Recap> {
    let mut recap = BTreeMap::new();
    let Some(start) = output.find("PLAY RECAP") else {
        return recap;
    };
    for line in output[start..].lines().skip(1) {
        let Some((name, counts)) = line.split_once(" : ") else {
            continue;
        };
        let get = |key: &str| {
            counts
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
                .unwrap_or(0)
        };
        recap.insert(
            name.trim().to_owned(),
            Recap {
                ok: get("ok"),
                changed: get("changed"),
                failed: get("failed"),
                unreachable: get("unreachable"),
            },
        );
    }
    recap
}

struct Control {
    dir: PathBuf,
    bin: PathBuf,
    netns: String,
    inventory: String,
    group_vars: Value,
    runs: std::cell::Cell<u32>,
}

impl Control {
    /// Writes the inventory (with `group_vars/fleet.yml` beside it), the ssh key,
    /// `known_hosts` and `ansible.cfg` into `dir`. fleet-2 is reached as `deploy` with sudo;
    /// fleet-3 keeps Ansible's remote temporary files in its `noexec` `/tmp`.
    fn new(dir: &Path, bin: PathBuf, net: &Network, hosts: &[Host], art: &Artifacts) -> Self {
        let key = dir.join("id_ed25519");
        let mut known = String::new();
        let mut inventory = String::from("[fleet]\n");
        for (i, host) in hosts.iter().enumerate() {
            let hostkey = host
                .read_file("/etc/ssh/ssh_host_ed25519_key.pub")
                .expect("the host made its ssh host key at boot");
            let mut fields = hostkey.split_whitespace();
            let (kind, blob) = (fields.next().unwrap(), fields.next().unwrap());
            let _ = writeln!(known, "{} {kind} {blob}", host_address(i));
            let how = match i {
                1 => "ansible_user=deploy ansible_become=true",
                2 => "ansible_user=root ansible_become=false ansible_remote_tmp=/tmp/.ansible-tmp",
                _ => "ansible_user=root ansible_become=false",
            };
            let _ = writeln!(
                inventory,
                "fleet-{} ansible_host={} {how}",
                i + 1,
                host_address(i)
            );
        }
        fs::write(dir.join("known_hosts"), known).unwrap();
        let _ = write!(
            inventory,
            "\n[fleet:vars]\n\
             ansible_python_interpreter=/usr/bin/python3\n\
             ansible_ssh_private_key_file={key}\n\
             ansible_ssh_common_args=-F /dev/null -o UserKnownHostsFile={known} \
             -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes\n",
            key = key.display(),
            known = dir.join("known_hosts").display(),
        );
        // What an operator keeps under version control, apart from the media: the pins.
        let group_vars = json!({
            "ferry_installer": {"x86_64": art.kit.join("ferry-install-x86_64")},
            "ferry_installer_sums": art.kit.join("SHA256SUMS.sig"),
            "ferry_release_key": art.pubkey,
            "ferry_release_key_id": art.key_id,
            "ferry_trusted_keys": [{"src": art.pubkey, "key_id": art.key_id}],
            "ferry_app": "hello",
            "ferry_canary_soak": SOAK,
        });
        fs::create_dir_all(dir.join("cp")).unwrap();
        fs::write(
            dir.join("ansible.cfg"),
            format!(
                "[defaults]\nlocal_tmp = {tmp}\nforks = 10\n\
                 [ssh_connection]\npipelining = true\ncontrol_path_dir = {cp}\n",
                tmp = dir.join("ansible-tmp").display(),
                cp = dir.join("cp").display(),
            ),
        )
        .unwrap();
        let control = Control {
            dir: dir.to_path_buf(),
            bin,
            netns: net.control.clone(),
            inventory,
            group_vars,
            runs: std::cell::Cell::new(0),
        };
        control.variant("main", &[]);
        control
    }

    /// An inventory `dir/NAME/inventory.ini` with the same hosts and group variables, plus
    /// per-host variables; returns its path.
    fn variant(&self, name: &str, host_vars: &[(&str, Value)]) -> PathBuf {
        let at = self.dir.join(name);
        fs::create_dir_all(at.join("group_vars")).unwrap();
        fs::create_dir_all(at.join("host_vars")).unwrap();
        fs::write(at.join("inventory.ini"), &self.inventory).unwrap();
        // JSON is YAML.
        fs::write(at.join("group_vars/fleet.yml"), self.group_vars.to_string()).unwrap();
        for (host, vars) in host_vars {
            fs::write(at.join(format!("host_vars/{host}.yml")), vars.to_string()).unwrap();
        }
        at.join("inventory.ini")
    }

    /// `ansible-playbook -i main/inventory.ini PLAYBOOK ARGS...`.
    fn play(&self, playbook: &str, args: &[&str]) -> Play {
        self.play_with(&self.dir.join("main/inventory.ini"), playbook, args)
    }

    /// `ansible-playbook -i INVENTORY PLAYBOOK ARGS...` from `ansible/`, inside the control
    /// node's namespace. The output is kept in `dir/NN-PLAYBOOK.log`.
    fn play_with(&self, inventory: &Path, playbook: &str, args: &[&str]) -> Play {
        let t0 = Instant::now();
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=10", "300", "ip", "netns", "exec", &self.netns])
            .arg(self.bin.join("ansible-playbook"))
            .arg("-i")
            .arg(inventory)
            .arg(playbook)
            .args(args)
            .current_dir(workspace_root().join("ansible"))
            .env("ANSIBLE_CONFIG", self.dir.join("ansible.cfg"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_FORCE_COLOR", "0")
            .env("LC_ALL", "C.UTF-8")
            .env("LANG", "C.UTF-8")
            // Ansible imports the role's plugins: no __pycache__ in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null());
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let shown_inventory = inventory
            .strip_prefix(&self.dir)
            .unwrap_or(inventory)
            .display()
            .to_string();
        let output = format!(
            "$ ansible-playbook -i {shown_inventory} {playbook} {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let name = format!("{n:02}-{}", playbook.trim_end_matches(".yml"));
        fs::write(self.dir.join(format!("{name}.log")), &output).unwrap();
        eprintln!(
            "fleet.rs: ansible-playbook -i {shown_inventory} {playbook} {} -> {} after {}",
            args.join(" "),
            out.status,
            since(t0)
        );
        Play {
            name: format!("ansible-playbook {playbook} {}", args.join(" ")),
            code: out.status.code(),
            recap: parse_recap(&output),
            output,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Looking at the hosts from outside (through the harness, not Ansible).

/// What `--check` must not change: everything under [`WATCHED`] with its type, mode and
/// owner, and for all but directories (whose mtime a file made and removed again moves) its
/// size and mtime; and the service's invocation.
fn snapshot(host: &Host) -> String {
    host.sh_ok(&format!(
        "find {WATCHED} -xdev \\( -type d -printf '%p d %m %U:%G\\n' \\) \
           -o -printf '%p %y %m %U:%G %s %T@\\n' 2>/dev/null | sort; \
         systemctl show hello.service -p ActiveState -p InvocationID -p NRestarts"
    ))
}

/// The host's trust store, byte for byte: every entry under /etc/ferry with its type, mode
/// and owner, and every file's SHA-256.
fn trust_store(host: &Host) -> String {
    host.sh_ok(
        "if [ -e /etc/ferry ]; then \
           find /etc/ferry -printf '%p %y %m %U:%G\\n' | sort; \
           find /etc/ferry -type f -exec sha256sum {} + | sort; \
         else echo 'no /etc/ferry'; fi",
    )
}

#[track_caller]
fn assert_unchanged(name: &str, before: &str, after: &str) {
    let (b, a): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let gone: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).collect();
    let new: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "{name} changed:\nbefore only: {gone:#?}\nafter only: {new:#?}"
    );
}

/// `stat` of a path inside: `OWNER:GROUP MODE TYPE`, or `absent`.
fn stat(host: &Host, path: &str) -> String {
    host.sh_ok(&format!(
        "stat -c '%U:%G %a %F' {path} 2>/dev/null || echo absent"
    ))
    .trim()
    .to_owned()
}

fn exists(host: &Host, path: &str) -> bool {
    host.path(path).unwrap().symlink_metadata().is_ok()
}

fn installer_sha256(host: &Host) -> String {
    sha256_hex(&fs::read(host.path(INSTALLER).unwrap()).unwrap())
}

fn current_release(host: &Host) -> String {
    host.sh_ok("readlink /opt/hello/current").trim().to_owned()
}

fn invocation(host: &Host) -> String {
    host.ok([
        "systemctl",
        "show",
        "hello.service",
        "-p",
        "InvocationID",
        "--value",
    ])
    .trim()
    .to_owned()
}

#[track_caller]
fn assert_healthy(host: &Host, name: &str, version: &str) {
    assert!(
        host.is_active("hello.service"),
        "{name}: hello inactive:\n{}",
        host.journal("hello.service")
    );
    assert_eq!(
        current_release(host),
        format!("releases/{version}"),
        "{name}"
    );
    let body = host.sh_ok(&format!(
        "curl -fsS --retry 5 --retry-connrefused {HEALTHZ}"
    ));
    assert!(
        body.contains(&format!("\"version\":\"{version}\"")),
        "{name}: {body}"
    );
    let status: Value =
        serde_json::from_str(&host.ok([INSTALLER, "status", "hello", "--json"])).unwrap();
    assert_eq!(status["result"]["version"], version, "{name}: {status}");
    assert_eq!(status["result"]["healthy"], true, "{name}: {status}");
}

/// The cached bundles on a host, each `NAME OWNER:GROUP MODE`.
fn cache(host: &Host) -> Vec<String> {
    let mut v: Vec<String> = host
        .sh_ok("find /var/cache/ferry -type f -printf '%f %u:%g %m\\n'")
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------

/// Boots the hosts and makes each what its role in the test needs: root's key everywhere,
/// `deploy` with sudo on fleet-2, `noexec` temporary directories on fleet-3.
fn prepare_hosts(hosts: &[Host], dir: &Path) {
    run_ok(
        Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "ferry-fleet-test",
                "-f",
            ])
            .arg(dir.join("id_ed25519")),
    );
    let authorized = fs::read_to_string(dir.join("id_ed25519.pub")).unwrap();
    for host in hosts {
        host.write_file("/root/.ssh/authorized_keys", &authorized)
            .unwrap();
        host.ok(["chmod", "0700", "/root/.ssh"]);
        host.ok(["chmod", "0600", "/root/.ssh/authorized_keys"]);
        // Ansible's own temporary directory, as on any host it has managed before: it makes
        // it at first contact, which would show as a change.
        host.ok([
            "install",
            "-d",
            "-m",
            "0700",
            "/root/.ansible",
            "/root/.ansible/tmp",
        ]);
        assert!(host.is_active("ssh.service"), "{}", host.failed_units());
        // The host sees the private network only.
        let routes = host.ok(["ip", "-4", "-o", "route"]);
        assert!(
            routes
                .lines()
                .all(|r| r.starts_with(&format!("{SUBNET}.0/24 "))),
            "{routes}"
        );
    }

    // fleet-2: Ansible logs in as deploy, an ordinary user, and becomes root with sudo. Root's
    // key is removed there, so no play can reach it any other way.
    let h2 = &hosts[1];
    h2.ok(["useradd", "--create-home", "--shell", "/bin/sh", "deploy"]);
    h2.write_file("/home/deploy/.ssh/authorized_keys", &authorized)
        .unwrap();
    h2.sh_ok(
        "chown -R deploy:deploy /home/deploy/.ssh && chmod 0700 /home/deploy/.ssh \
         && chmod 0600 /home/deploy/.ssh/authorized_keys && rm /root/.ssh/authorized_keys",
    );
    h2.write_file(
        "/etc/sudoers.d/deploy",
        "deploy ALL=(ALL:ALL) NOPASSWD: ALL\n",
    )
    .unwrap();
    h2.ok(["chmod", "0440", "/etc/sudoers.d/deploy"]);
    assert_ne!(h2.ok(["id", "-u", "deploy"]).trim(), "0");
    h2.ok(["visudo", "-c"]);

    // fleet-3: /tmp and /var/tmp are noexec, and Ansible's own temporary files go in /tmp.
    let h3 = &hosts[2];
    for tmp in ["/tmp", "/var/tmp"] {
        h3.ok([
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "noexec,nosuid,nodev,mode=1777",
            "tmpfs",
            tmp,
        ]);
        let out = h3.sh(&format!(
            "cp /bin/true {tmp}/t && {tmp}/t; echo $?; rm -f {tmp}/t"
        ));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "126",
            "{tmp} on fleet-3 is not noexec"
        );
    }
    h3.ok(["install", "-d", "-m", "0700", "/tmp/.ansible-tmp"]);
}

/// The play failed on each of these hosts with a message containing the one given (on the
/// host's `fatal:` line, or its `failed:` line for a loop item).
#[track_caller]
fn assert_failed_with(play: &Play, expect: &[(&str, &str)]) {
    play.assert(play.code != Some(0), "ansible-playbook succeeded");
    for (host, message) in expect {
        play.assert(play.host(host).failed == 1, &format!("{host} did not fail"));
        play.assert(
            play.output.lines().any(|l| {
                (l.starts_with(&format!("fatal: [{host}]"))
                    || l.starts_with(&format!("failed: [{host}]")))
                    && l.contains(message)
            }),
            &format!("{host} did not fail with {message:?}"),
        );
    }
}

#[test]
fn ansible_rolls_out_to_a_fleet_on_a_private_network() {
    let t0 = Instant::now();
    let dir = run_dir();

    // Bundles, kits and Ansible come while the network and the hosts come up.
    let (art, bin, net, hosts) = std::thread::scope(|s| {
        let art = s.spawn(|| {
            let t = Instant::now();
            let a = build_artifacts(&dir);
            forge_kits(&dir, &a);
            eprintln!(
                "fleet.rs: binaries, bundles and kits ready after {}",
                since(t)
            );
            a
        });
        let bin = s.spawn(|| {
            let t = Instant::now();
            let b = ansible_bin();
            eprintln!("fleet.rs: ansible-core ready after {}", since(t));
            b
        });
        let net = Network::create(HOSTS);
        net.assert_closed();
        let t = Instant::now();
        let hosts: Vec<Host> = net
            .hosts
            .iter()
            .map(|ns| {
                Host::boot_with(HostOptions {
                    profile: Some("fleet".into()),
                    network_namespace: Some(netns_path(ns)),
                    ..HostOptions::default()
                })
                .expect("booting a fleet host")
            })
            .collect();
        prepare_hosts(&hosts, &dir);
        eprintln!("fleet.rs: {HOSTS} hosts ready after {}", since(t));
        (art.join().unwrap(), bin.join().unwrap(), net, hosts)
    });
    let names: Vec<String> = (1..=HOSTS).map(|i| format!("fleet-{i}")).collect();
    let control = Control::new(&dir, bin, &net, &hosts, &art);
    let bundle = |v: &str| format!("ferry_bundle={}", art.by_version[v].display());
    let real_sha256 = sha256_hex(&fs::read(static_installer()).unwrap());
    eprintln!("fleet.rs: ready to play after {}", since(t0));

    // 1. Trust provisioning. Before it: someone planted a key of theirs on fleet-1, and
    //    fleet-3's key directory and bundle cache are writable by others.
    hosts[0]
        .write_file(
            "/etc/ferry/keys/planted.pub",
            fs::read(art.attacker.with_extension("pub")).unwrap(),
        )
        .unwrap();
    hosts[0].sh_ok("chown 1000:1000 /etc/ferry/keys/planted.pub");
    hosts[2].sh_ok(
        "install -d -m 0777 /etc/ferry/keys && install -d -m 0777 -o 65534 /var/cache/ferry",
    );
    let trust_before: Vec<String> = hosts.iter().map(trust_store).collect();
    let snap_before: Vec<String> = hosts.iter().map(snapshot).collect();

    // 1a. The media's release.pub was swapped for the attacker's: the key id pin refuses it on
    //     the control node, before any host is touched.
    let swapped = json!({"ferry_trusted_keys": [
        {"src": dir.join("media/release.pub"), "key_id": art.key_id}]})
    .to_string();
    let play = control.play("trust.yml", &["-e", &swapped]);
    let refusal = format!(
        "refused on the control node: key {} is key {}, not the pinned {}",
        dir.join("media/release.pub").display(),
        art.attacker_id,
        art.key_id
    );
    assert_failed_with(
        &play,
        &[
            ("fleet-1", &refusal),
            ("fleet-2", &refusal),
            ("fleet-3", &refusal),
        ],
    );
    for (i, host) in hosts.iter().enumerate() {
        assert_unchanged(&names[i], &snap_before[i], &snapshot(host));
    }

    // 1b. The real key: fleet-1's planted key is refused by name and nothing changes there;
    //     fleet-2 gets its trust store; fleet-3's weak directories are fixed.
    let play = control.play("trust.yml", &["--diff"]);
    assert_failed_with(
        &play,
        &[(
            "fleet-1",
            "refused, nothing changed: /etc/ferry/keys/planted.pub (owned by uid 1000",
        )],
    );
    for name in &names[1..] {
        let r = play.host(name);
        play.assert(
            r.failed == 0 && r.changed > 0,
            &format!("{name} not provisioned"),
        );
    }
    assert_eq!(
        trust_store(&hosts[0]),
        trust_before[0],
        "fleet-1's trust store changed"
    );
    assert_unchanged("fleet-1", &snap_before[0], &snapshot(&hosts[0]));

    // 1c. Its owner looked and removed it: --check says what would change, changing nothing,
    //     then the real run.
    hosts[0].ok(["rm", "/etc/ferry/keys/planted.pub"]);
    let before = snapshot(&hosts[0]);
    let play = control.play("trust.yml", &["--check", "--diff", "-l", "fleet-1"]);
    play.assert_succeeded();
    play.assert(play.host("fleet-1").changed > 0, "fleet-1 would not change");
    assert_unchanged("fleet-1", &before, &snapshot(&hosts[0]));
    // With a revocation of the attacker's key, signed by the release key: ferry-install reads
    // it from then on (every later install there proves it accepts the statement).
    let revocations =
        json!({"ferry_trust_revocations": [dir.join("attacker.revocation")]}).to_string();
    let play = control.play(
        "site.yml",
        &["--tags", "ferry_trust", "-l", "fleet-1", "-e", &revocations],
    );
    play.assert_succeeded();
    play.assert(play.host("fleet-1").changed > 0, "fleet-1 not provisioned");
    play.assert(
        !play
            .output
            .contains("TASK [ferry_install : Run ferry-install"),
        "--tags ferry_trust ran the install",
    );
    assert_eq!(
        stat(&hosts[0], "/etc/ferry/keys/revocations"),
        "root:root 755 directory"
    );
    assert_eq!(
        stat(&hosts[0], "/etc/ferry/keys/revocations/attacker.revocation"),
        "root:root 644 regular file"
    );
    let release_pub = fs::read_to_string(&art.pubkey).unwrap();
    for (name, host) in names.iter().zip(&hosts) {
        for (path, want) in [
            ("/etc/ferry", "root:root 755 directory"),
            ("/etc/ferry/keys", "root:root 755 directory"),
            ("/etc/ferry/keys/release.pub", "root:root 644 regular file"),
            ("/var/cache/ferry", "root:root 750 directory"),
        ] {
            assert_eq!(stat(host, path), want, "{name}: {path}");
        }
        assert_eq!(
            host.read_file("/etc/ferry/keys/release.pub").unwrap(),
            release_pub,
            "{name}"
        );
        assert!(!exists(host, "/etc/ferry/keys/planted.pub"), "{name}");
    }
    // From here on, no play but trust provisioning may change what the hosts trust.
    let mut trusted: Vec<String> = hosts.iter().map(trust_store).collect();
    let assert_trust_unchanged = |trusted: &[String], when: &str| {
        for (i, host) in hosts.iter().enumerate() {
            assert_unchanged(
                &format!("{}'s trust store ({when})", names[i]),
                &trusted[i],
                &trust_store(host),
            );
        }
    };

    // 2. --check on fresh hosts: every host would get the installer first, so the dry run
    //    waits for a real one; nothing changes, and nothing runs from /tmp.
    let before: Vec<String> = hosts.iter().map(snapshot).collect();
    let play = control.play("site.yml", &["--check", "--diff", "-e", &bundle("1.0.0")]);
    play.assert_succeeded();
    play.assert(
        play.output
            .matches("would install ferry-install (SHA-256 ")
            .count()
            == HOSTS,
        "no 'would install the installer' for every host",
    );
    for (i, host) in hosts.iter().enumerate() {
        play.assert(
            play.host(&names[i]).changed > 0,
            &format!("{} would not change", names[i]),
        );
        assert_unchanged(&names[i], &before[i], &snapshot(host));
    }
    assert_trust_unchanged(&trusted, "after --check");

    // 3. Tampered installers, each refused on the control node before anything reaches a
    //    host: fleet-1 pins a SHA-256 (the real one) but is handed another file; fleet-2's
    //    kit had its installer replaced; fleet-3's kit was also re-signed with another key.
    //    Then a fourth attack on fleet-2: the release key on the media swapped as well.
    let tampered = dir.join("tampered-ferry-install");
    write_exec(&tampered, TAMPERED);
    let kit_file = |kit: &str| dir.join(kit).join("ferry-install-x86_64");
    let inventory = control.variant(
        "tampered",
        &[
            (
                "fleet-1",
                json!({"ferry_installer": tampered, "ferry_installer_sha256": real_sha256,
                       "ferry_installer_sums": ""}),
            ),
            (
                "fleet-2",
                json!({"ferry_installer": {"x86_64": kit_file("kit-altered")},
                       "ferry_installer_sums": dir.join("kit-altered/SHA256SUMS.sig")}),
            ),
            (
                "fleet-3",
                json!({"ferry_installer": {"x86_64": kit_file("kit-forged")},
                       "ferry_installer_sums": dir.join("kit-forged/SHA256SUMS.sig")}),
            ),
        ],
    );
    let before: Vec<String> = hosts.iter().map(snapshot).collect();
    let tampered_sha256 = sha256_hex(TAMPERED.as_bytes());
    let play = control.play_with(
        &inventory,
        "site.yml",
        &["-e", &bundle("1.0.0"), "-e", "ferry_serial=3"],
    );
    assert_failed_with(
        &play,
        &[
            (
                "fleet-1",
                &format!(
                    "refused on the control node: {} has SHA-256 {tampered_sha256}, not the \
                     pinned {real_sha256}",
                    tampered.display()
                ),
            ),
            (
                "fleet-2",
                &format!(
                    "refused on the control node: {} has SHA-256 {tampered_sha256}, but {} \
                     signed by {} lists {real_sha256}: it was altered",
                    kit_file("kit-altered").display(),
                    dir.join("kit-altered/SHA256SUMS.sig").display(),
                    art.key_id
                ),
            ),
            (
                "fleet-3",
                &format!(
                    "refused on the control node: {} is signed by key {}, not by the pinned \
                     release key",
                    dir.join("kit-forged/SHA256SUMS.sig").display(),
                    art.attacker_id
                ),
            ),
        ],
    );
    let inventory = control.variant(
        "forged",
        &[(
            "fleet-2",
            json!({"ferry_installer": {"x86_64": kit_file("kit-forged")},
                   "ferry_installer_sums": dir.join("kit-forged/SHA256SUMS.sig"),
                   "ferry_release_key": dir.join("media/release.pub")}),
        )],
    );
    let play = control.play_with(
        &inventory,
        "site.yml",
        &["-l", "fleet-2", "-e", &bundle("1.0.0")],
    );
    assert_failed_with(
        &play,
        &[(
            "fleet-2",
            &format!(
                "refused on the control node: release key {} is key {}, not the pinned {}",
                dir.join("media/release.pub").display(),
                art.attacker_id,
                art.key_id
            ),
        )],
    );
    for (i, host) in hosts.iter().enumerate() {
        assert_unchanged(&names[i], &before[i], &snapshot(host));
        assert!(
            !exists(host, PWNED),
            "{}: the tampered installer ran",
            names[i]
        );
        assert!(
            !exists(host, INSTALLER),
            "{}: an installer was copied",
            names[i]
        );
    }

    // 3a. A host policy, placed by trust provisioning (ferry_policy), judges what installs on
    //     fleet-3. First one that lets the release key sign billing-* apps only. An operator's
    //     notes under /etc/ferry, writable by anyone but read by no ferry-install, are none of
    //     trust provisioning's business: neither refused nor changed.
    let h3 = &hosts[2];
    h3.write_file("/etc/ferry/NOTES", "keys: ask the release team\n")
        .unwrap();
    h3.sh_ok("chown 1000:1000 /etc/ferry/NOTES && chmod 0666 /etc/ferry/NOTES");
    let policy = |name: &str, text: &str| -> String {
        fs::write(dir.join(name), text).unwrap();
        json!({"ferry_policy": dir.join(name)}).to_string()
    };
    let billing_only = format!(
        "# The release key signs billing apps only, here.\n\
         [[signer]]\nkey = \"{}\"\napps = [\"billing-*\"]\n",
        art.key_id
    );
    let play = control.play(
        "trust.yml",
        &[
            "-l",
            "fleet-3",
            "-e",
            &policy("billing-only.toml", &billing_only),
        ],
    );
    play.assert_succeeded();
    play.assert(play.host("fleet-3").changed > 0, "no policy placed");
    assert_eq!(
        stat(h3, "/etc/ferry/policy.toml"),
        "root:root 644 regular file"
    );
    assert_eq!(
        h3.read_file("/etc/ferry/policy.toml").unwrap(),
        billing_only
    );
    let notes = || {
        h3.sh_ok("stat -c '%u:%g %a' /etc/ferry/NOTES")
            .trim()
            .to_owned()
    };
    assert_eq!(
        notes(),
        "1000:1000 666",
        "trust provisioning touched the notes"
    );

    // 3b. The first install of hello there: ferry-install refuses it (the policy's exit 4),
    //     and nothing changes but what the role copied before running it (the verified
    //     installer, the bundle in the cache).
    let before = snapshot(h3);
    let trust_before = trust_store(h3);
    let play = control.play("site.yml", &["-l", "fleet-3", "-e", &bundle("1.0.0")]);
    assert_failed_with(
        &play,
        &[(
            "fleet-3",
            &format!(
                "ferry-install exited 4 (precondition or policy not met; nothing changed): \
                 policy refuses hello: key {} may sign only billing-* ([[signer]], \
                 /etc/ferry/policy.toml)",
                art.key_id
            ),
        )],
    );
    let bundle_1 = art.by_version["1.0.0"]
        .file_name()
        .unwrap()
        .to_string_lossy();
    let copied = [
        INSTALLER.to_owned(),
        format!("/var/cache/ferry/{bundle_1}"),
        format!("/var/cache/ferry/{bundle_1}.minisig"),
    ];
    let but_copied = |snap: &str| -> String {
        snap.lines()
            .filter(|l| !copied.iter().any(|c| l.starts_with(&format!("{c} "))))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_unchanged("fleet-3", &but_copied(&before), &but_copied(&snapshot(h3)));
    assert!(copied.iter().all(|c| exists(h3, c)), "{copied:?}");
    assert_unchanged("fleet-3's trust store", &trust_before, &trust_store(h3));

    // 3c. The policy made group-writable and a symlink among the keys: the role refuses to
    //     run the installer, naming both, as ferry-install itself would (run by hand, it
    //     refuses each with exit 4, the keys first). The notes still are no one's concern.
    h3.sh_ok("chmod 0664 /etc/ferry/policy.toml && ln -s release.pub /etc/ferry/keys/old.pub");
    let play = control.play("site.yml", &["-l", "fleet-3", "-e", &bundle("1.0.0")]);
    for weak in [
        "refused: /etc/ferry/keys/old.pub (a symlink, mode ",
        "; /etc/ferry/policy.toml (group-writable, mode 0664). Someone other than root",
    ] {
        assert_failed_with(&play, &[("fleet-3", weak)]);
    }
    play.assert(
        !play.output.contains("/etc/ferry/NOTES"),
        "the notes were judged",
    );
    let by_hand = || {
        let out = h3.sh(&format!(
            "{INSTALLER} install /var/cache/ferry/{bundle_1} --dry-run"
        ));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = by_hand();
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("keys/old.pub is a symlink"), "{stderr}");
    h3.ok(["rm", "/etc/ferry/keys/old.pub"]);
    let (code, stderr) = by_hand();
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("/etc/ferry/policy.toml is owned by uid 0 with mode 0664"),
        "{stderr}"
    );

    // 3d. A policy that lets the release key sign hello too, and allows no exec probe
    //     (hello's probe is HTTP): trust provisioning replaces the weak one (root:root
    //     0644), and the first rollout below installs hello on fleet-3 under it.
    let hello_too = format!(
        "[[signer]]\nkey = \"{}\"\napps = [\"hello\", \"billing-*\"]\n\n\
         [footprint]\nexec_probes = false\n",
        art.key_id
    );
    let play = control.play(
        "trust.yml",
        &["-l", "fleet-3", "-e", &policy("hello-too.toml", &hello_too)],
    );
    play.assert_succeeded();
    assert_eq!(
        stat(h3, "/etc/ferry/policy.toml"),
        "root:root 644 regular file"
    );
    assert_eq!(h3.read_file("/etc/ferry/policy.toml").unwrap(), hello_too);
    assert_eq!(
        notes(),
        "1000:1000 666",
        "trust provisioning touched the notes"
    );
    trusted = hosts.iter().map(trust_store).collect();

    // 4. The first rollout: the canary, its soak, then the rest; every host on 1.0.0, healthy,
    //    with the installer the kit's signed list vouches for, the bundle 0640 in a 0750
    //    cache, and the trust store as trust provisioning left it (fleet-3: under the policy
    //    that admits hello).
    let play = control.play("site.yml", &["-e", &bundle("1.0.0")]);
    play.assert_succeeded();
    play.assert(
        play.output
            .contains("TASK [ferry_install : Soak the canary]"),
        "no canary soak",
    );
    for (i, host) in hosts.iter().enumerate() {
        play.assert(
            play.host(&names[i]).changed > 0,
            &format!("{} unchanged", names[i]),
        );
        assert_healthy(host, &names[i], "1.0.0");
        assert_eq!(installer_sha256(host), real_sha256, "{}", names[i]);
        assert_eq!(
            stat(host, INSTALLER),
            "root:root 755 regular file",
            "{}",
            names[i]
        );
        assert_eq!(
            cache(host),
            [
                "hello-1.0.0-linux-amd64.tar.zst root:root 640",
                "hello-1.0.0-linux-amd64.tar.zst.minisig root:root 640"
            ],
            "{}",
            names[i]
        );
    }
    assert_trust_unchanged(&trusted, "after the first rollout");
    // fleet-2 was only ever reached as deploy, through sudo.
    let sshd = hosts[1].sh_ok("journalctl -u ssh.service --no-pager -o cat");
    assert!(sshd.contains("Accepted publickey for deploy"), "{sshd}");
    assert!(!sshd.contains("Accepted publickey for root"), "{sshd}");

    // Again: nothing changes, and --check says so too.
    let play = control.play("site.yml", &["-e", &bundle("1.0.0")]);
    play.assert_succeeded();
    for name in &names {
        play.assert(play.host(name).changed == 0, &format!("{name} changed"));
    }
    let play = control.play("site.yml", &["--check", "-e", &bundle("1.0.0")]);
    play.assert_succeeded();
    for name in &names {
        play.assert(
            play.host(name).changed == 0,
            &format!("{name} would change"),
        );
    }
    assert_trust_unchanged(&trusted, "after a second run and --check");

    // 5. An installer planted on fleet-1 (root's, so only root could have): status.yml
    //    refuses to run it; --check says it would replace it, running nothing; a real run
    //    replaces it before it runs anything.
    write_exec(&hosts[0].path(INSTALLER).unwrap(), TAMPERED);
    let play = control.play("status.yml", &[]);
    assert_failed_with(
        &play,
        &[(
            "fleet-1",
            &format!(
                "refused on the host: {INSTALLER} is not the verified installer (SHA-256 \
                 {tampered_sha256}, expected {real_sha256}), so it was not run"
            ),
        )],
    );
    for name in &names[1..] {
        play.assert(
            play.host(name).failed == 0,
            &format!("status failed on {name}"),
        );
    }
    let before = snapshot(&hosts[0]);
    let play = control.play("site.yml", &["--check", "-e", &bundle("1.0.0")]);
    play.assert_succeeded();
    play.assert(play.host("fleet-1").changed > 0, "fleet-1 would not change");
    play.assert(
        play.output
            .contains("would install ferry-install (SHA-256 ")
            && play.output.contains("(now other)"),
        "no 'would install the installer' for fleet-1",
    );
    assert_unchanged("fleet-1", &before, &snapshot(&hosts[0]));
    let play = control.play("site.yml", &["-e", &bundle("1.0.0")]);
    play.assert_succeeded();
    play.assert(play.host("fleet-1").changed > 0, "fleet-1 unchanged");
    for (i, host) in hosts.iter().enumerate() {
        assert!(
            !exists(host, PWNED),
            "{}: the planted installer ran",
            names[i]
        );
        assert_eq!(installer_sha256(host), real_sha256, "{}", names[i]);
        assert_healthy(host, &names[i], "1.0.0");
    }

    // 6. --check of an upgrade: would change every host, changes none (fleet-3's dry run reads
    //    the bundle from a private directory in its noexec /var/tmp; the installer runs from
    //    where it is installed).
    let before: Vec<String> = hosts.iter().map(snapshot).collect();
    let play = control.play("site.yml", &["--check", "--diff", "-e", &bundle("2.0.0")]);
    play.assert_succeeded();
    for (i, host) in hosts.iter().enumerate() {
        play.assert(
            play.host(&names[i]).changed > 0,
            &format!("{} would not change", names[i]),
        );
        assert_unchanged(&names[i], &before[i], &snapshot(host));
        assert_healthy(host, &names[i], "1.0.0");
    }
    assert_trust_unchanged(&trusted, "after --check of an upgrade");

    // 6'. ferry_pubkey trusts one key for one run instead of the host's keys (dry runs here),
    //     and the host's trust store stays as it was. fleet-1 holds a revocation of the
    //     attacker's key signed by its own release key: pinned to the staging key, which no
    //     host trusts, the staging key's bundle verifies there (the host's keys still revoke,
    //     and verify nothing else). Then fleet-2, pinned to the attacker's key: the release
    //     key's bundle is refused (exit 3). One host at a time (serial 1): the first failure
    //     ends the play.
    let before: Vec<String> = hosts.iter().take(2).map(snapshot).collect();
    let pubkey = |key: &Path, id: &str, bundle: &Path| -> Value {
        json!({"ferry_pubkey": key.with_extension("pub"), "ferry_pubkey_id": id,
               "ferry_bundle": bundle})
    };
    let inventory = control.variant(
        "pubkey",
        &[
            (
                "fleet-1",
                pubkey(&art.staging, &art.staging_id, &art.resigned["staging"]),
            ),
            (
                "fleet-2",
                pubkey(&art.attacker, &art.attacker_id, &art.by_version["1.1.0"]),
            ),
        ],
    );
    let play = control.play_with(
        &inventory,
        "site.yml",
        &["--check", "-l", "fleet-1,fleet-2", "-e", "ferry_serial=1"],
    );
    let r = play.host("fleet-1");
    play.assert(
        r.failed == 0 && r.changed > 0,
        "fleet-1 would not install the staging key's 1.1.0 with ferry_pubkey",
    );
    // The message names the staged bundle between the two.
    for message in [
        "ferry-install exited 3 (verification failed): ".to_owned(),
        format!(
            "signed by key {}, which is not trusted (trusted: {})",
            art.key_id, art.attacker_id
        ),
    ] {
        assert_failed_with(&play, &[("fleet-2", &message)]);
    }
    // fleet-1 again, pinned to the attacker's key, which fleet-1 revoked, with a bundle the
    // attacker signed: refused, since the host's revocation still holds.
    let inventory = control.variant(
        "revoked",
        &[(
            "fleet-1",
            pubkey(&art.attacker, &art.attacker_id, &art.resigned["attacker"]),
        )],
    );
    let play = control.play_with(&inventory, "site.yml", &["--check", "-l", "fleet-1"]);
    for message in [
        "ferry-install exited 4 (precondition or policy not met; nothing changed): ",
        "every trusted key is revoked",
    ] {
        assert_failed_with(&play, &[("fleet-1", message)]);
    }
    // ferry_pubkey without its key id pinned is refused on the control node.
    let unpinned = format!("ferry_pubkey={}", art.pubkey.display());
    let play = control.play(
        "site.yml",
        &[
            "--check",
            "-l",
            "fleet-2",
            "-e",
            &bundle("1.1.0"),
            "-e",
            &unpinned,
        ],
    );
    assert_failed_with(
        &play,
        &[("fleet-2", "needs its key id pinned in ferry_pubkey_id")],
    );
    for (i, host) in hosts.iter().enumerate().take(2) {
        assert_unchanged(&names[i], &before[i], &snapshot(host));
    }
    assert_trust_unchanged(&trusted, "after runs with ferry_pubkey");

    // 6a. Rolling upgrade to a release that fails at start: the canary (fleet-1) fails, its
    //     installer rolled it back, and the rollout stops there.
    let invocations: Vec<String> = hosts.iter().map(invocation).collect();
    let play = control.play("rolling.yml", &["-e", &bundle("2.0.0")]);
    assert_failed_with(
        &play,
        &[(
            "fleet-1",
            "ferry-install exited 5 (unhealthy after start, rolled back to the previous release)",
        )],
    );
    play.assert(
        play.output.contains("rolled back"),
        "no rollback in the message",
    );
    for name in &names[1..] {
        play.assert(
            play.recap
                .get(name)
                .is_none_or(|r| r.ok == 0 && r.changed == 0),
            &format!("{name} was touched"),
        );
    }
    assert_healthy(&hosts[0], "fleet-1", "1.0.0");
    for (i, host) in hosts.iter().enumerate().skip(1) {
        assert_healthy(host, &names[i], "1.0.0");
        assert_eq!(invocation(host), invocations[i], "{} restarted", names[i]);
        assert!(
            !exists(host, "/var/cache/ferry/hello-2.0.0-linux-amd64.tar.zst"),
            "the 2.0.0 bundle reached {}",
            names[i]
        );
    }

    // 6b. A good release, with --diff. An operator edited fleet-3's config and left a secret
    //     in it: that file is kept, and its diff shows, the secret redacted, even with -v.
    hosts[2].sh_ok(&format!(
        "printf '# db_password = \"{SECRET}\"\\n' >> /etc/hello/hello.toml"
    ));
    let before: Vec<String> = hosts.iter().map(snapshot).collect();
    let play = control.play("site.yml", &["--check", "--diff", "-e", &bundle("1.1.0")]);
    play.assert_succeeded();
    play.assert(
        play.output
            .contains(&format!("+greeting = \"{GREETING_11}\"")),
        "--check --diff shows no config diff",
    );
    play.assert(
        play.output.contains("-# db_password = <redacted>"),
        "--check --diff does not show the kept config's diff, redacted",
    );
    play.assert(
        !play.output.contains(SECRET),
        "--check --diff printed the secret",
    );
    for (i, host) in hosts.iter().enumerate() {
        assert_unchanged(&names[i], &before[i], &snapshot(host));
    }
    let play = control.play("rolling.yml", &["--diff", "-v", "-e", &bundle("1.1.0")]);
    play.assert_succeeded();
    play.assert(
        play.output
            .contains(&format!("+greeting = \"{GREETING_11}\"")),
        "no config diff shown",
    );
    play.assert(
        play.output.contains("-# db_password = <redacted>"),
        "the kept config's diff is not shown redacted",
    );
    play.assert(
        !play.output.contains(SECRET),
        "rolling.yml -v printed the secret",
    );
    for (i, host) in hosts.iter().enumerate() {
        play.assert(
            play.host(&names[i]).changed > 0,
            &format!("{} unchanged", names[i]),
        );
        assert_healthy(host, &names[i], "1.1.0");
    }
    assert!(
        hosts[2]
            .read_file("/etc/hello/hello.toml")
            .unwrap()
            .contains(SECRET),
        "fleet-3's edited config was not kept"
    );
    // The cache holds the releases ferry-install keeps: fleet-1's 2.0.0 bundle (rolled back,
    // not kept) is gone.
    for (i, host) in hosts.iter().enumerate() {
        let bundles: Vec<String> = cache(host)
            .into_iter()
            .filter(|b| b.ends_with(".tar.zst root:root 640"))
            .collect();
        assert_eq!(
            bundles,
            [
                "hello-1.0.0-linux-amd64.tar.zst root:root 640",
                "hello-1.1.0-linux-amd64.tar.zst root:root 640"
            ],
            "{}",
            names[i]
        );
        assert_eq!(cache(host).len(), 4, "{}: {:?}", names[i], cache(host));
    }
    assert_trust_unchanged(&trusted, "after the upgrades");

    // 6c. A release that passes the installer's health gate, then restarts RESTART_AFTER
    //     seconds later: the canary's soak catches it, rolls it back, and stops the rollout.
    let invocations: Vec<String> = hosts.iter().map(invocation).collect();
    let soak = format!("ferry_canary_soak={LONG_SOAK}");
    let play = control.play("site.yml", &["-e", &bundle("1.2.0"), "-e", &soak]);
    // How often it restarted depends on where in its second life the soak ended.
    assert_failed_with(
        &play,
        &[("fleet-1", "canary soak failed: hello 1.2.0 restarted ")],
    );
    assert_failed_with(
        &play,
        &[(
            "fleet-1",
            &format!(
                " within {LONG_SOAK} s of its install; rolled back to 1.1.0, which is healthy \
                 again; the rollout stops here"
            ),
        )],
    );
    for name in &names[1..] {
        play.assert(
            play.recap
                .get(name)
                .is_none_or(|r| r.ok == 0 && r.changed == 0),
            &format!("{name} was touched"),
        );
    }
    for (i, host) in hosts.iter().enumerate() {
        assert_healthy(host, &names[i], "1.1.0");
        if i > 0 {
            assert_eq!(invocation(host), invocations[i], "{} restarted", names[i]);
        }
    }

    // 7. Roll the sudo host back: --check says to which release and changes nothing, then
    //    for real.
    let before = snapshot(&hosts[1]);
    let play = control.play("rollback.yml", &["--check", "-l", "fleet-2"]);
    play.assert_succeeded();
    play.assert(
        play.output
            .contains("hello would roll back from 1.1.0 to 1.0.0"),
        "no rollback plan shown",
    );
    assert_unchanged("fleet-2", &before, &snapshot(&hosts[1]));
    let play = control.play("rollback.yml", &["-l", "fleet-2"]);
    play.assert_succeeded();
    play.assert(play.host("fleet-2").changed > 0, "fleet-2 unchanged");
    play.assert(play.recap.len() == 1, "rollback touched other hosts");
    assert_healthy(&hosts[1], "fleet-2", "1.0.0");

    // Status: each host's release.
    let play = control.play("status.yml", &[]);
    play.assert_succeeded();
    for (name, version) in names.iter().zip(["1.1.0", "1.0.0", "1.1.0"]) {
        play.assert(
            play.host(name).changed == 0,
            &format!("status changed {name}"),
        );
        play.assert(
            play.output
                .contains(&format!("{name}: hello {version} (prod) active, healthy")),
            &format!("no status line for {name} on {version}"),
        );
    }
    assert_trust_unchanged(&trusted, "at the end");

    // 8. Every way a run can fail keeps its message and class. Installers pinned by SHA-256
    //    (the inventory's own pins, as an operator could set them) that hang, die of SIGKILL
    //    or print no JSON, on all three hosts at once; then one the kernel cannot execute.
    let fakes = dir.join("fakes");
    fs::create_dir_all(&fakes).unwrap();
    let fake = |name: &str, text: &str| -> Value {
        let path = fakes.join(name);
        write_exec(&path, text);
        json!({"ferry_installer": path, "ferry_installer_sha256": sha256_hex(text.as_bytes()),
               "ferry_installer_sums": ""})
    };
    let inventory = control.variant(
        "fakes",
        &[
            (
                "fleet-1",
                fake(
                    "hangs",
                    "#!/bin/sh\necho $$ > /run/ferry-fake.pid\nexec sleep 300\n",
                ),
            ),
            (
                "fleet-2",
                fake(
                    "killed",
                    "#!/bin/sh\necho 'about to be killed' >&2\nkill -KILL $$\n",
                ),
            ),
            (
                "fleet-3",
                fake("chatty", "#!/bin/sh\necho 'this is not JSON'\n"),
            ),
        ],
    );
    let t = Instant::now();
    let play = control.play_with(
        &inventory,
        "site.yml",
        &[
            "-e",
            &bundle("1.1.0"),
            "-e",
            "ferry_serial=3",
            "-e",
            "ferry_install_timeout=5",
        ],
    );
    assert_failed_with(
        &play,
        &[
            (
                "fleet-1",
                "ferry-install install did not finish within 5 s (ferry_install_timeout)",
            ),
            (
                "fleet-2",
                "ferry-install install was killed by SIGKILL; its last output: about to be killed",
            ),
            (
                "fleet-3",
                "ferry-install install exited 0 but printed no JSON report (stdout: 'this is not \
                 JSON'",
            ),
        ],
    );
    assert!(
        t.elapsed().as_secs() < 120,
        "the timeout did not end the run"
    );
    // Ansible stopped waiting, as the message says, without stopping the installer: it is
    // still there (ferry-install would hold its lock), until the host's owner ends it.
    let pid = hosts[0].sh_ok("cat /run/ferry-fake.pid");
    assert!(
        hosts[0]
            .sh(&format!("kill -0 {}", pid.trim()))
            .status
            .success(),
        "the hung installer is gone after the timeout, unlike the message says"
    );
    hosts[0].sh(&format!("kill -KILL {}", pid.trim()));

    let inventory = control.variant(
        "noexec",
        &[(
            "fleet-3",
            fake("not-a-program", "no interpreter line, no ELF header\n"),
        )],
    );
    let play = control.play_with(
        &inventory,
        "site.yml",
        &["-l", "fleet-3", "-e", &bundle("1.1.0")],
    );
    assert_failed_with(
        &play,
        &[(
            "fleet-3",
            &format!(
                "could not run {INSTALLER} (ferry-install install): [Errno 8 ENOEXEC] Exec format \
                 error"
            ),
        )],
    );
    // None of these changed what the hosts trust, or which release they run.
    assert_trust_unchanged(&trusted, "after the failing installers");
    for (name, (host, version)) in names
        .iter()
        .zip(hosts.iter().zip(["1.1.0", "1.0.0", "1.1.0"]))
    {
        assert_eq!(
            current_release(host),
            format!("releases/{version}"),
            "{name}"
        );
    }

    drop(hosts);
    drop(net);
    if std::env::var_os("FERRY_FLEET_KEEP").is_none() {
        fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!(
        "fleet.rs: done after {} and {} playbook runs",
        since(t0),
        control.runs.get()
    );
}
