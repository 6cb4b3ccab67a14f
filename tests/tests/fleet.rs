//! Fleet rollout with Ansible (`ansible/`): ansible-core (from pip) on a control node, three
//! systemd hosts with sshd and no network but a private one this test makes, the role and
//! playbooks run exactly as an operator would run them.
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
//! sshd and python3); each makes its own SSH host key at boot, which the test reads
//! into a `known_hosts` file, and root's `authorized_keys` gets a key made for this run.
//! `ansible-playbook` runs inside the control node's namespace, from `scripts/fleet-test`'s
//! venv.
//!
//! The story, in order: `--check` on fresh hosts changes nothing; the first rollout installs
//! 1.0.0 everywhere; a second run changes nothing; `--check` of an upgrade changes nothing; a
//! rolling upgrade to a release whose binary fails at start stops after the first batch, whose
//! host the installer rolled back, the others untouched; a rolling upgrade to a good release
//! with `--diff` shows the config diff; `rollback.yml` on one host, `--check` first;
//! `status.yml` reports each host's release.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use ferry_tests::{ferry_bin, static_installer, target_dir, workspace_root, Host, HostOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const HOSTS: usize = 3;
/// The private network's /24, used only inside this test's namespaces.
const SUBNET: &str = "10.213.0";
const SDE: &str = "1700000000";
const HEALTHZ: &str = "http://127.0.0.1:8080/healthz";
const GREETING_11: &str = "Hello from ferry 1.1.0";
/// What `--check` must leave alone on a host (with `/tmp`, where the dry run stages; not
/// `/var/log/hello`, which grows with each health probe that `ferry-install status` makes).
const WATCHED: &str = "/etc /opt /usr/local /var/lib/ferry /var/cache/ferry /var/lib/hello /tmp";

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

// ---------------------------------------------------------------------------------------------
// Binaries, bundles and the control node's Ansible.

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

struct Bundles {
    pubkey: PathBuf,
    /// By version: 1.0.0, 1.1.0 (another default greeting) and 2.0.0 (exits at start).
    by_version: BTreeMap<&'static str, PathBuf>,
}

/// Copies `examples/hello` to `dir/src-VERSION`, sets the version, lets `edit` change more,
/// builds it for amd64 into `dir/out-VERSION` and returns the bundle.
fn build_bundle(dir: &Path, version: &str, edit: impl Fn(String) -> String) -> PathBuf {
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
        edit(text.replace("version = \"1.0.0\"", &format!("version = \"{version}\""))),
    )
    .unwrap();
    let out = dir.join(format!("out-{version}"));
    run_ok(
        Command::new(ferry_bin())
            .arg("build")
            .arg(&src)
            .arg("--key")
            .arg(dir.join("release.key"))
            .arg("--out")
            .arg(&out)
            .args(["--target", "linux/amd64"])
            .env("SOURCE_DATE_EPOCH", SDE)
            .env_remove("FERRY_PASSPHRASE"),
    );
    out.join(format!("hello-{version}-linux-amd64.tar.zst"))
}

fn build_bundles(dir: &Path) -> Bundles {
    build_binaries();
    run_ok(
        Command::new(ferry_bin())
            .arg("keygen")
            .arg("--out")
            .arg(dir.join("release"))
            .arg("--unencrypted"),
    );
    let once = |text: String, from: &str, to: &str| {
        assert_eq!(text.matches(from).count(), 1, "{from:?} in:\n{text}");
        text.replacen(from, to, 1)
    };
    let by_version = std::thread::scope(|s| {
        let v1 = s.spawn(|| build_bundle(dir, "1.0.0", |t| t));
        let v11 = s.spawn(|| {
            build_bundle(dir, "1.1.0", |t| {
                once(
                    t,
                    "greeting = \"Hello from ferry\"",
                    &format!("greeting = \"{GREETING_11}\""),
                )
            })
        });
        let v2 = s.spawn(|| {
            build_bundle(dir, "2.0.0", |t| {
                once(
                    t,
                    "\n[build]\n",
                    "\n[build]\nldflags_x = { \"main.crashAtStart\" = \"1\" }\n",
                )
            })
        });
        BTreeMap::from([
            ("1.0.0", v1.join().unwrap()),
            ("1.1.0", v11.join().unwrap()),
            ("2.0.0", v2.join().unwrap()),
        ])
    });
    Bundles {
        pubkey: dir.join("release.pub"),
        by_version,
    }
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
    runs: std::cell::Cell<u32>,
}

impl Control {
    /// Writes the inventory, the ssh key, `known_hosts` and `ansible.cfg` into `dir`.
    fn new(dir: &Path, bin: PathBuf, net: &Network, hosts: &[Host], bundles: &Bundles) -> Self {
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
            let _ = writeln!(
                inventory,
                "fleet-{} ansible_host={}",
                i + 1,
                host_address(i)
            );
        }
        fs::write(dir.join("known_hosts"), known).unwrap();
        let _ = write!(
            inventory,
            "\n[fleet:vars]\n\
             ansible_user=root\n\
             ansible_become=false\n\
             ansible_python_interpreter=/usr/bin/python3\n\
             ansible_ssh_private_key_file={key}\n\
             ansible_ssh_common_args=-F /dev/null -o UserKnownHostsFile={known} \
             -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes\n\
             ferry_installer={installer}\n\
             ferry_pubkey={pubkey}\n\
             ferry_app=hello\n",
            key = key.display(),
            known = dir.join("known_hosts").display(),
            installer = static_installer().display(),
            pubkey = bundles.pubkey.display(),
        );
        fs::write(dir.join("inventory.ini"), inventory).unwrap();
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
        Control {
            dir: dir.to_path_buf(),
            bin,
            netns: net.control.clone(),
            runs: std::cell::Cell::new(0),
        }
    }

    /// `ansible-playbook -i inventory.ini PLAYBOOK ARGS...` from `ansible/`, inside the control
    /// node's namespace. The output is kept in `dir/NN-PLAYBOOK.log`.
    fn play(&self, playbook: &str, args: &[&str]) -> Play {
        let t0 = Instant::now();
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=10", "300", "ip", "netns", "exec", &self.netns])
            .arg(self.bin.join("ansible-playbook"))
            .arg("-i")
            .arg(self.dir.join("inventory.ini"))
            .arg(playbook)
            .args(args)
            .current_dir(workspace_root().join("ansible"))
            .env("ANSIBLE_CONFIG", self.dir.join("ansible.cfg"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_FORCE_COLOR", "0")
            .env("LC_ALL", "C.UTF-8")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let output = format!(
            "$ ansible-playbook {playbook} {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let name = format!("{n:02}-{}", playbook.trim_end_matches(".yml"));
        fs::write(self.dir.join(format!("{name}.log")), &output).unwrap();
        eprintln!(
            "fleet.rs: ansible-playbook {playbook} {} -> {} after {}",
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

#[track_caller]
fn assert_unchanged(name: &str, before: &str, after: &str) {
    let (b, a): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let gone: Vec<&&str> = b.iter().filter(|l| !a.contains(l)).collect();
    let new: Vec<&&str> = a.iter().filter(|l| !b.contains(l)).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "--check changed {name}:\nbefore only: {gone:#?}\nafter only: {new:#?}"
    );
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
    let status: Value = serde_json::from_str(&host.ok([
        "/usr/local/sbin/ferry-install",
        "status",
        "hello",
        "--json",
    ]))
    .unwrap();
    assert_eq!(status["result"]["version"], version, "{name}: {status}");
    assert_eq!(status["result"]["healthy"], true, "{name}: {status}");
}

// ---------------------------------------------------------------------------------------------

#[test]
fn ansible_rolls_out_to_a_fleet_on_a_private_network() {
    let t0 = Instant::now();
    let dir = run_dir();

    // Bundles and Ansible come while the network and the hosts come up.
    let (bundles, bin, net, hosts) = std::thread::scope(|s| {
        let bundles = s.spawn(|| {
            let t = Instant::now();
            let b = build_bundles(&dir);
            eprintln!("fleet.rs: binaries and bundles ready after {}", since(t));
            b
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
        eprintln!("fleet.rs: {HOSTS} hosts running after {}", since(t));
        (bundles.join().unwrap(), bin.join().unwrap(), net, hosts)
    });
    let names: Vec<String> = (1..=HOSTS).map(|i| format!("fleet-{i}")).collect();

    // Root's key for this run only; each host's own host key goes into known_hosts.
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
    for host in &hosts {
        host.write_file("/root/.ssh/authorized_keys", &authorized)
            .unwrap();
        host.ok(["chmod", "0700", "/root/.ssh"]);
        host.ok(["chmod", "0600", "/root/.ssh/authorized_keys"]);
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
    let control = Control::new(&dir, bin, &net, &hosts, &bundles);
    let bundle = |v: &str| format!("ferry_bundle={}", bundles.by_version[v].display());
    eprintln!("fleet.rs: ready to play after {}", since(t0));

    // 1. --check on fresh hosts: says every host would change, changes nothing.
    let before: Vec<String> = hosts.iter().map(snapshot).collect();
    let play = control.play("site.yml", &["--check", "--diff", "-e", &bundle("1.0.0")]);
    play.assert_succeeded();
    for (name, (host, before)) in names.iter().zip(hosts.iter().zip(&before)) {
        play.assert(
            play.host(name).changed > 0,
            &format!("{name} would not change"),
        );
        assert_unchanged(name, before, &snapshot(host));
    }

    // 2. First rollout: 1.0.0 everywhere, healthy.
    let play = control.play("site.yml", &["-e", &bundle("1.0.0")]);
    play.assert_succeeded();
    for (name, host) in names.iter().zip(&hosts) {
        play.assert(play.host(name).changed > 0, &format!("{name} unchanged"));
        assert_healthy(host, name, "1.0.0");
    }

    // 3. Again: nothing changes, and --check says so too.
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

    // 4. --check of an upgrade: would change every host, changes none.
    let before: Vec<String> = hosts.iter().map(snapshot).collect();
    let play = control.play("site.yml", &["--check", "--diff", "-e", &bundle("2.0.0")]);
    play.assert_succeeded();
    for (name, (host, before)) in names.iter().zip(hosts.iter().zip(&before)) {
        play.assert(
            play.host(name).changed > 0,
            &format!("{name} would not change"),
        );
        assert_unchanged(name, before, &snapshot(host));
        assert_healthy(host, name, "1.0.0");
    }

    // 5. Rolling upgrade to a release that fails at start: the first batch (fleet-1) fails,
    //    its installer rolled it back, and the rollout stops there.
    let invocations: Vec<String> = hosts.iter().map(invocation).collect();
    let play = control.play("rolling.yml", &["-e", &bundle("2.0.0")]);
    play.assert(play.code != Some(0), "the rollout succeeded");
    play.assert(play.host("fleet-1").failed == 1, "fleet-1 did not fail");
    play.assert(
        play.output.contains("ferry-install exited 5") && play.output.contains("rolled back"),
        "no installer message in the failure",
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
            !host
                .path("/var/cache/ferry/hello-2.0.0-linux-amd64.tar.zst")
                .unwrap()
                .exists(),
            "the 2.0.0 bundle reached {}",
            names[i]
        );
    }

    // 6. Rolling upgrade to a good release, with --diff: the config diff shows, first as
    //    what --check predicts (changing nothing), then as what the upgrade did.
    let before: Vec<String> = hosts.iter().map(snapshot).collect();
    let play = control.play("site.yml", &["--check", "--diff", "-e", &bundle("1.1.0")]);
    play.assert_succeeded();
    play.assert(
        play.output
            .contains(&format!("+greeting = \\\"{GREETING_11}\\\"")),
        "--check --diff shows no config diff",
    );
    for (name, (host, before)) in names.iter().zip(hosts.iter().zip(&before)) {
        assert_unchanged(name, before, &snapshot(host));
    }
    let play = control.play("rolling.yml", &["--diff", "-e", &bundle("1.1.0")]);
    play.assert_succeeded();
    play.assert(
        play.output
            .contains(&format!("+greeting = \\\"{GREETING_11}\\\"")),
        "no config diff shown",
    );
    for (name, host) in names.iter().zip(&hosts) {
        play.assert(play.host(name).changed > 0, &format!("{name} unchanged"));
        assert_healthy(host, name, "1.1.0");
    }

    // 7. Roll one host back: --check says to which release and changes nothing, then for real.
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

    // 8. Status: each host's release.
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

    drop(hosts);
    drop(net);
    if std::env::var_os("FERRY_FLEET_KEEP").is_none() {
        fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!("fleet.rs: done after {}", since(t0));
}
