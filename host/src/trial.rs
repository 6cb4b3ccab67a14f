//! The check for silent breakage (`ferry try`): does ferry's sandbox change what a service
//! does?
//!
//! A hardened unit can break a service without failing it: `node_exporter` under ferry's
//! default unit starts, answers its health probe and passes the installer's gate, while
//! half its collectors fail because `ProcSubset=pid` hides `/proc/stat` and
//! `RestrictAddressFamilies=` refuses netlink. So the trial runs the real bundle in a
//! throwaway, network-less [`Host`] and compares what can be seen from outside:
//!
//! 1. **Install** the bundle with the static `ferry-install` (the real gate: policy,
//!    health probe); a bundle the health gate rolls back is laid out again with
//!    `--no-start` so the unit can still be tried.
//! 2. **Observe** the service under its unit: stop, start, wait until the probe answers,
//!    give it `settle_secs`, then record the unit's state, the answer of the health probe
//!    and of every extra URL, and the error lines the service wrote to the journal during
//!    this run.
//! 3. **Unsandboxed**: a drop-in (`/etc/systemd/system/APP.service.d/zz-ferry-try.conf`,
//!    written inside the throwaway host only) lifts every sandbox directive, knobs and floor
//!    alike, keeping the user, groups and the rest of the unit; observe twice (what differs
//!    between those two runs of the same configuration is noise and is ignored).
//! 4. If the sandboxed run differs: observe with every **knob relaxed** to its weakest
//!    value and every address family allowed, which is the most a bundle can declare; what
//!    still differs is caused by the floor (`ProtectSystem=strict`, `NoNewPrivileges=`, ...)
//!    and reported as unexplained.
//! 5. **Bisect** (`QuickXplain`: split the candidates in halves, recurse) for the smallest set
//!    of relaxations whose run matches the all-relaxed one, then for each knob with several
//!    relaxed values the strongest one that still suffices, then what each finding accounts
//!    for on its own (the run without it).
//!
//! What counts as the same: an observation is a set of normalised items (digits become
//! `N`, so times, durations, pids and counters never count). For an HTTP answer: its status
//! and, for Prometheus text, each series' name and labels (no values) and each collector
//! whose `*_scrape_collector_success` is 0; for any other body, its lines. For the journal:
//! the lines that say error (a `level=`/`"level":` of error, warning or worse, or, without a
//! level, words such as error, failed, denied, not permitted). For the unit: active or not,
//! restarted or not.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::archive::read_manifest_unverified;
use ferry_format::footprint::AddressFamily;
use ferry_format::install::{Environment, Name, Probe};
use ferry_format::manifest::Manifest;
use ferry_format::sandbox::{Class, Knob, KNOBS};
use ferry_format::Limits;
use serde::Serialize;

use crate::Host;

/// Where the trial puts its files inside the throwaway host.
const DIR: &str = "/root/ferry-try";
/// The drop-in's name: last in order, so it wins over any other.
const DROP_IN: &str = "zz-ferry-try.conf";
/// Lines of a non-Prometheus body, and characters of a line, that count.
const MAX_BODY_LINES: usize = 400;
const MAX_LINE: usize = 300;

/// What to try.
#[derive(Debug, Clone)]
pub struct TrialOptions {
    /// The bundle (its `.minisig` is used when it lies beside it).
    pub bundle: PathBuf,
    /// Public keys the installer trusts (at least one).
    pub pubkeys: Vec<PathBuf>,
    /// The static `ferry-install` to run inside.
    pub installer: PathBuf,
    /// `ferry-install install --env`; the trial uses that environment's unit, sandbox and
    /// health probe (none: the bundle's default environment).
    pub env: Option<String>,
    /// More `http://` URLs to compare besides the health probe (e.g. a page the service
    /// serves).
    pub urls: Vec<String>,
    /// A host policy (`/etc/ferry/policy.toml`) for the throwaway host; none: the default.
    pub policy: Option<PathBuf>,
}

/// How the installer took the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct InstallOutcome {
    pub exit_code: i32,
    /// `ferry-install` installed it and its health gate passed.
    pub healthy: bool,
    /// The installer's error message, if any.
    pub message: String,
    pub seconds: f64,
}

/// One run of the service in one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    /// `hardened`, `unsandboxed`, `relaxed`, or the relaxations tried.
    pub config: String,
    pub active: bool,
    pub restarted: bool,
    pub probes: Vec<ProbeAnswer>,
    /// Normalised journal lines that say error, this run only.
    pub journal_errors: Vec<String>,
    pub seconds: f64,
    /// The comparison items (see the module documentation).
    #[serde(skip)]
    pub items: BTreeSet<String>,
}

/// One answer of the health probe or an extra URL.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeAnswer {
    /// The URL, `tcp://ADDRESS` or the probe's command.
    pub target: String,
    /// `HTTP 200`, `no answer (curl exit 7)`, `connected`, `exit 0`, ...
    pub status: String,
    /// Prometheus text: collectors whose `*_scrape_collector_success` is 0.
    pub failing_collectors: Vec<String>,
    /// Prometheus text: distinct metric names.
    pub metric_names: usize,
    /// Prometheus text: distinct series (name and labels).
    pub series: usize,
}

/// A directive whose hardened value makes a difference, and the setting that relaxes it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// `ProcSubset` or `RestrictAddressFamilies`.
    pub directive: String,
    /// The unit's value (`pid`; for address families, the unit's list).
    pub value: String,
    /// `visibility`, `surface` or `address_family`.
    pub class: String,
    /// What to write in `ferry.toml`: `service.sandbox.proc_subset = "all"` or
    /// `service.extra_address_families = ["AF_NETLINK"]`.
    pub setting: String,
    /// The differences this one accounts for on its own.
    pub explains: Vec<String>,
    /// The whole finding as one line.
    pub message: String,
}

/// The trial's result.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    pub app: String,
    pub version: String,
    pub target: String,
    pub bundle: String,
    /// The environment installed and tried.
    pub env: String,
    pub install: InstallOutcome,
    pub sandboxed: Observation,
    pub unsandboxed: Observation,
    /// Every knob at its weakest value and every address family allowed; only when the
    /// sandboxed run differs.
    pub relaxed: Option<Observation>,
    /// How the sandboxed run differs from the unsandboxed one (empty: it does not).
    pub differences: Vec<String>,
    /// The smallest set of relaxations that removes what knobs can remove.
    pub findings: Vec<Finding>,
    /// Differences that remain with every knob relaxed: caused by the floor.
    pub unexplained: Vec<String>,
    /// Items that differed between two unsandboxed runs: ignored.
    pub noise: Vec<String>,
    /// Every run, in order.
    pub runs: Vec<RunRecord>,
    pub seconds: f64,
}

/// One run of the bisection, for the record.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub config: String,
    /// Whether it matched the configuration the bisection aims for.
    pub matches: Option<bool>,
    pub seconds: f64,
}

impl Trial {
    /// No difference between the service under its unit and without its sandbox.
    pub fn clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// A relaxation the bisection can apply.
#[derive(Debug, Clone, Copy)]
enum Relax {
    Knob(&'static Knob, &'static str),
    Family(AddressFamily),
}

impl Relax {
    fn label(self) -> String {
        match self {
            Relax::Knob(k, v) => format!("{}={}", k.directive, v.replace(" | ", " ")),
            Relax::Family(f) => format!("+{f}"),
        }
    }
}

/// Reads the bundle's manifest (unverified: the installer inside verifies it).
pub fn read_manifest(bundle: &Path) -> Result<Manifest> {
    let file = File::open(bundle).with_context(|| format!("opening {}", bundle.display()))?;
    let (manifest, _, _) = read_manifest_unverified(BufReader::new(file), &Limits::default())
        .with_context(|| format!("reading the manifest of {}", bundle.display()))?;
    Ok(manifest)
}

/// The installer refused the bundle in the throwaway host before any service ran: exit 3
/// (verification) or 4 (policy, precondition), with its message.
#[derive(Debug, thiserror::Error)]
#[error("ferry-install refused the bundle in the throwaway host (exit {exit_code}): {message}")]
pub struct InstallRefused {
    pub exit_code: i32,
    pub message: String,
}

/// Boots a throwaway host, runs the trial in it, and tears the host down.
pub fn run(opts: &TrialOptions, progress: &dyn Fn(&str)) -> Result<Trial> {
    let manifest = read_manifest(&opts.bundle)?;
    progress("booting a throwaway network-less host");
    let host = Host::boot().context("booting the throwaway host")?;
    run_in(&host, &manifest, opts, progress)
}

/// The trial in a host the caller booted (a fresh one: the bundle is installed there).
pub fn run_in(
    host: &Host,
    manifest: &Manifest,
    opts: &TrialOptions,
    progress: &dyn Fn(&str),
) -> Result<Trial> {
    let t0 = Instant::now();
    let app = manifest.app.name.to_string();
    let install = install(host, manifest, opts, progress)?;
    // The installer refuses an environment the bundle lacks (exit 4) before this.
    let env = environment(manifest, opts.env.as_deref())?;
    let mut t = Trier::new(host, manifest, env, opts);

    progress("observing the service under its unit");
    let sandboxed = t.observe(&Config::Hardened)?;
    progress("observing it without its sandbox (twice, to see what varies by itself)");
    let unsandboxed = t.observe(&Config::Unsandboxed)?;
    let again = t.observe(&Config::Unsandboxed)?;
    let noise: BTreeSet<String> = unsandboxed
        .items
        .symmetric_difference(&again.items)
        .cloned()
        .collect();
    t.noise.clone_from(&noise);

    let differences = t.describe(&sandboxed.items, &unsandboxed.items);
    let mut trial = Trial {
        app,
        version: manifest.app.version.to_string(),
        target: manifest.target.to_string(),
        bundle: opts.bundle.display().to_string(),
        env: env.name.to_string(),
        install,
        sandboxed,
        unsandboxed,
        relaxed: None,
        differences,
        findings: Vec::new(),
        unexplained: Vec::new(),
        noise: noise.into_iter().collect(),
        runs: Vec::new(),
        seconds: 0.0,
    };
    if !trial.differences.is_empty() {
        progress("the sandbox makes a difference; relaxing every knob");
        let relaxed = t.observe(&Config::Relaxed)?;
        trial.unexplained = t.describe(&relaxed.items, &trial.unsandboxed.items);
        if t.differs(&trial.sandboxed.items, &relaxed.items) {
            t.target.clone_from(&relaxed.items);
            let candidates = t.candidates();
            progress(&format!(
                "bisecting {} relaxations ({} knobs, {} address families)",
                candidates.len(),
                candidates
                    .iter()
                    .filter(|c| matches!(c, Relax::Knob(..)))
                    .count(),
                candidates
                    .iter()
                    .filter(|c| matches!(c, Relax::Family(_)))
                    .count()
            ));
            let needed = t.minimal(&[], &candidates, progress)?;
            let needed = t.weakest_needed(needed, progress)?;
            trial.findings = t.findings(&needed, &trial.sandboxed.items, progress)?;
        }
        trial.relaxed = Some(relaxed);
    }
    trial.runs = std::mem::take(&mut t.runs);
    trial.seconds = t0.elapsed().as_secs_f64();
    Ok(trial)
}

/// The environment `--env` names, else the bundle's default.
fn environment<'m>(manifest: &'m Manifest, env: Option<&str>) -> Result<&'m Environment> {
    let Some(name) = env else {
        return Ok(manifest.install.default());
    };
    Name::new(name)
        .ok()
        .and_then(|n| manifest.install.env(&n))
        .ok_or_else(|| {
            anyhow!(
                "environment {name} is not in the bundle (it has {})",
                manifest
                    .install
                    .environments
                    .iter()
                    .map(|e| e.name.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Copies the installer, keys, policy and bundle in and installs; a bundle the health gate
/// rolled back is laid out again without starting, so its unit can be tried.
fn install(
    host: &Host,
    manifest: &Manifest,
    opts: &TrialOptions,
    progress: &dyn Fn(&str),
) -> Result<InstallOutcome> {
    let installer = format!("{DIR}/ferry-install");
    host.copy_in(&opts.installer, &installer)?;
    let name = opts
        .bundle
        .file_name()
        .ok_or_else(|| anyhow!("{} names no file", opts.bundle.display()))?
        .to_string_lossy()
        .into_owned();
    let bundle = format!("{DIR}/{name}");
    host.copy_in(&opts.bundle, &bundle)?;
    let sig = ferry_format::verify::detached_path(&opts.bundle);
    if sig.is_file() {
        host.copy_in(&sig, format!("{bundle}.minisig"))?;
    }
    if let Some(policy) = &opts.policy {
        host.copy_in(policy, "/etc/ferry/policy.toml")?;
        host.try_ok(["chown", "root:root", "/etc/ferry/policy.toml"])?;
        host.try_ok(["chmod", "0644", "/etc/ferry/policy.toml"])?;
    }
    let mut argv = vec![installer.clone(), "install".into(), bundle.clone()];
    for (i, key) in opts.pubkeys.iter().enumerate() {
        let inside = format!("{DIR}/key{i}.pub");
        host.copy_in(key, &inside)?;
        argv.push("--pubkey".into());
        argv.push(inside);
    }
    if let Some(env) = &opts.env {
        argv.push("--env".into());
        argv.push(env.clone());
    }
    argv.push("--json".into());
    progress(&format!(
        "installing {} {} with ferry-install",
        manifest.app.name, manifest.app.version
    ));
    let t0 = Instant::now();
    // The chosen environment's health timeout; for one the bundle lacks (which the installer
    // refuses), the longest.
    let health_timeout = environment(manifest, opts.env.as_deref()).map_or_else(
        |_| {
            manifest
                .install
                .environments
                .iter()
                .map(|e| e.health.timeout_secs)
                .max()
                .unwrap_or(0)
        },
        |e| e.health.timeout_secs,
    );
    let timeout = Duration::from_secs(u64::from(health_timeout) + 120);
    let (code, message) = run_installer(host, &argv, timeout)?;
    let outcome = InstallOutcome {
        exit_code: code,
        healthy: code == 0,
        message: message.clone(),
        seconds: t0.elapsed().as_secs_f64(),
    };
    match code {
        0 => {}
        5 => {
            progress(&format!(
                "the installer's health gate failed and rolled back ({message}); laying it out \
                 again without starting, to try the unit"
            ));
            let mut again = argv.clone();
            again.insert(again.len() - 1, "--no-start".into());
            let (code, message) = run_installer(host, &again, timeout)?;
            if code != 0 {
                bail!("ferry-install install --no-start failed (exit {code}): {message}");
            }
        }
        3 | 4 => {
            return Err(InstallRefused {
                exit_code: code,
                message,
            }
            .into())
        }
        _ => bail!("ferry-install failed in the throwaway host (exit {code}): {message}"),
    }
    Ok(outcome)
}

fn run_installer(host: &Host, argv: &[String], timeout: Duration) -> Result<(i32, String)> {
    let out = host.try_exec_with(argv, None, timeout)?;
    let code = out.status.code().unwrap_or(1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(&stdout).map_err(|e| {
        anyhow!(
            "ferry-install printed no JSON document ({e}); exit {code}, stderr:\n{}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        )
    })?;
    let mut message = doc["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if let Some(causes) = doc["error"]["causes"].as_array() {
        for c in causes.iter().filter_map(|c| c.as_str()) {
            let _ = write!(message, ": {c}");
        }
    }
    Ok((code, message))
}

/// A configuration of the unit's sandbox.
enum Config {
    /// The unit as installed.
    Hardened,
    /// No sandbox at all (same user and groups).
    Unsandboxed,
    /// Every knob at its weakest value, every address family.
    Relaxed,
    /// The unit plus these relaxations.
    With(Vec<Relax>),
}

struct Trier<'a> {
    host: &'a Host,
    manifest: &'a Manifest,
    /// The environment installed: its sandbox and health probe are the unit's.
    env: &'a Environment,
    app: String,
    urls: Vec<String>,
    /// Items that vary between runs of one configuration.
    noise: BTreeSet<String>,
    /// What the bisection aims for: the all-relaxed run.
    target: BTreeSet<String>,
    /// Runs of relaxation sets, by their labels.
    cache: BTreeMap<Vec<String>, BTreeSet<String>>,
    runs: Vec<RunRecord>,
}

impl<'a> Trier<'a> {
    fn new(
        host: &'a Host,
        manifest: &'a Manifest,
        env: &'a Environment,
        opts: &TrialOptions,
    ) -> Self {
        let mut urls = Vec::new();
        if let Probe::Http { url, .. } = &env.health.probe {
            urls.push(url.as_str().to_owned());
        }
        for u in &opts.urls {
            if !urls.contains(u) {
                urls.push(u.clone());
            }
        }
        Self {
            host,
            manifest,
            env,
            app: manifest.app.name.to_string(),
            urls,
            noise: BTreeSet::new(),
            target: BTreeSet::new(),
            cache: BTreeMap::new(),
            runs: Vec::new(),
        }
    }

    fn unit(&self) -> String {
        format!("{}.service", self.app)
    }

    fn sandbox_value(&self, k: &Knob) -> &'static str {
        self.env.sandbox.value(k)
    }

    /// Every relaxation the bundle could declare that the unit does not have yet.
    fn candidates(&self) -> Vec<Relax> {
        let mut out: Vec<Relax> = KNOBS
            .iter()
            .filter_map(|k| {
                let weakest = *k.relaxed.last()?;
                (self.sandbox_value(k) != weakest).then_some(Relax::Knob(k, weakest))
            })
            .collect();
        let have = &self.manifest.install.service.address_families;
        out.extend(
            AddressFamily::ALL
                .iter()
                .filter(|f| !have.contains(f))
                .map(|f| Relax::Family(*f)),
        );
        out
    }

    fn drop_in(&self, config: &Config) -> Option<String> {
        let mut s = String::from(
            "# Written by ferry try inside a throwaway host, never on a real one.\n[Service]\n",
        );
        let knob_line = |s: &mut String, k: &Knob, v: &str| {
            if k.key == "system_call_filter" {
                s.push_str("SystemCallFilter=\n");
                for part in v.split(" | ").filter(|p| !p.is_empty()) {
                    let _ = writeln!(s, "SystemCallFilter={part}");
                }
            } else {
                let _ = writeln!(s, "{}={v}", k.directive);
            }
        };
        match config {
            Config::Hardened => return None,
            Config::Unsandboxed => {
                for k in KNOBS {
                    knob_line(&mut s, k, if k.unset.is_empty() { "" } else { k.unset });
                }
                s.push_str(
                    "NoNewPrivileges=no\nProtectSystem=no\nRestrictSUIDSGID=no\nKeyringMode=shared\n\
                     SystemCallArchitectures=\nRestrictAddressFamilies=\nIPAddressDeny=\n\
                     IPAddressAllow=\nPrivateNetwork=no\n",
                );
            }
            Config::Relaxed => {
                for c in self.candidates() {
                    push_relax(&mut s, c, &knob_line);
                }
            }
            Config::With(set) => {
                for c in set {
                    push_relax(&mut s, *c, &knob_line);
                }
            }
        }
        Some(s)
    }

    fn label(config: &Config) -> String {
        match config {
            Config::Hardened => "hardened".into(),
            Config::Unsandboxed => "unsandboxed".into(),
            Config::Relaxed => "every knob relaxed".into(),
            Config::With(set) if set.is_empty() => "hardened".into(),
            Config::With(set) => format!(
                "hardened + {}",
                set.iter().map(|r| r.label()).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// Runs the service in `config` and records what it does.
    fn observe(&mut self, config: &Config) -> Result<Observation> {
        let t0 = Instant::now();
        let unit = self.unit();
        let h = self.host;
        let dir = format!("/etc/systemd/system/{unit}.d");
        let path = format!("{dir}/{DROP_IN}");
        let _ = h.try_exec_with(["systemctl", "stop", &unit], None, secs(60))?;
        match self.drop_in(config) {
            Some(text) => {
                h.write_file(&path, text)?;
            }
            None => {
                let _ = h.try_exec_with(["rm", "-f", &path], None, secs(10))?;
            }
        }
        h.try_ok(["systemctl", "daemon-reload"])?;
        let _ = h.try_exec_with(["systemctl", "reset-failed", &unit], None, secs(10))?;
        let cursor = self.cursor()?;
        let health = &self.env.health;
        let timeout = u64::from(health.timeout_secs);
        let started = h.try_exec_with(["systemctl", "start", &unit], None, secs(timeout + 10))?;
        // Until the probe answers (a Type=exec service binds after it started), then the
        // settle time the bundle asks for.
        let deadline = Instant::now() + secs(timeout);
        if started.status.success() {
            while Instant::now() < deadline && !self.probe_answers() && !self.gave_up() {
                sleep(Duration::from_millis(200));
            }
        }
        sleep(secs(u64::from(health.settle_secs.clamp(1, 10))));
        let restarted = self.show("NRestarts").is_ok_and(|n| n.trim() != "0");
        let active = self.show("ActiveState").is_ok_and(|s| s.trim() == "active");
        let mut items = BTreeSet::new();
        items.insert(format!(
            "unit: {}",
            if active { "active" } else { "not active" }
        ));
        if restarted {
            items.insert("unit: restarted".into());
        }
        let probes = self.probes(&mut items)?;
        // What the probes made the service log, too.
        sleep(Duration::from_millis(300));
        let journal_errors = self.journal_errors(&cursor)?;
        for l in &journal_errors {
            items.insert(format!("journal: {l}"));
        }
        let obs = Observation {
            config: Self::label(config),
            active,
            restarted,
            probes,
            journal_errors,
            seconds: t0.elapsed().as_secs_f64(),
            items,
        };
        self.runs.push(RunRecord {
            config: obs.config.clone(),
            matches: None,
            seconds: obs.seconds,
        });
        Ok(obs)
    }

    /// The service is down or waiting to be restarted: no point waiting for its probe.
    fn gave_up(&self) -> bool {
        let state = self.show("ActiveState").unwrap_or_default();
        let sub = self.show("SubState").unwrap_or_default();
        matches!(state.trim(), "failed" | "inactive") || sub.trim() == "auto-restart"
    }

    fn show(&self, property: &str) -> Result<String> {
        self.host
            .try_ok(["systemctl", "show", "--value", "-p", property, &self.unit()])
    }

    fn cursor(&self) -> Result<String> {
        let out =
            self.host
                .try_ok(["journalctl", "-n", "1", "--show-cursor", "-q", "-o", "cat"])?;
        Ok(out
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("-- cursor: "))
            .unwrap_or_default()
            .to_owned())
    }

    fn journal_errors(&self, cursor: &str) -> Result<Vec<String>> {
        let unit = self.unit();
        let mut argv = vec![
            "journalctl".to_owned(),
            "--no-pager".into(),
            "-q".into(),
            "-o".into(),
            "cat".into(),
            "-u".into(),
            unit,
        ];
        if !cursor.is_empty() {
            argv.push(format!("--after-cursor={cursor}"));
        }
        let text = self.host.try_ok(&argv)?;
        let set: BTreeSet<String> = text
            .lines()
            .filter(|l| says_error(l))
            .map(normalise)
            .collect();
        Ok(set.into_iter().collect())
    }

    fn probe_answers(&self) -> bool {
        match &self.env.health.probe {
            Probe::Http { url, .. } => self.http(url.as_str()).is_ok_and(|(s, _)| s.is_some()),
            Probe::Tcp { address } => self.tcp(address.as_str()),
            Probe::None | Probe::Exec { .. } => {
                self.urls.is_empty() || self.http(&self.urls[0]).is_ok_and(|(s, _)| s.is_some())
            }
        }
    }

    /// `(HTTP status, body)`, or `(None, curl's complaint)`.
    fn http(&self, url: &str) -> Result<(Option<u16>, String)> {
        const MARK: &str = "\n__ferry_try_status__ ";
        let out = self.host.try_exec_with(
            [
                "curl",
                "-sS",
                "-m",
                "20",
                "-w",
                &format!("{MARK}%{{http_code}}"),
                "--",
                url,
            ],
            None,
            secs(30),
        )?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Ok((
                None,
                format!("no answer (curl exit {})", out.status.code().unwrap_or(-1)),
            ));
        }
        let (body, status) = text.rsplit_once(MARK).unwrap_or((&text, "0"));
        Ok((status.trim().parse().ok(), body.to_owned()))
    }

    fn tcp(&self, address: &str) -> bool {
        let Some((host, port)) = address.rsplit_once(':') else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.host
            .try_exec_with(
                [
                    "timeout",
                    "5",
                    "bash",
                    "-c",
                    &format!("exec 3<>/dev/tcp/{host}/{port}"),
                ],
                None,
                secs(10),
            )
            .is_ok_and(|o| o.status.success())
    }

    fn probes(&self, items: &mut BTreeSet<String>) -> Result<Vec<ProbeAnswer>> {
        let mut answers = Vec::new();
        match &self.env.health.probe {
            Probe::Tcp { address } => {
                let ok = self.tcp(address.as_str());
                let status = if ok { "connected" } else { "refused" };
                items.insert(format!(
                    "tcp://{address}: {status}",
                    address = address.as_str()
                ));
                answers.push(ProbeAnswer {
                    target: format!("tcp://{}", address.as_str()),
                    status: status.into(),
                    failing_collectors: Vec::new(),
                    metric_names: 0,
                    series: 0,
                });
            }
            Probe::Exec { argv } => {
                // As the service user, like the installer's probe (without its sandbox: the
                // probe checks the service from outside).
                let mut cmd = vec![
                    "systemd-run".to_owned(),
                    "--wait".into(),
                    "--pipe".into(),
                    "--quiet".into(),
                    "--collect".into(),
                    format!("--uid={}", self.manifest.install.user),
                    format!("--gid={}", self.manifest.install.group),
                    "--".into(),
                ];
                cmd.extend(argv.words().iter().cloned());
                let out = self.host.try_exec_with(&cmd, None, secs(60))?;
                let status = format!("exit {}", out.status.code().unwrap_or(-1));
                items.insert(format!("{}: {status}", argv.words().join(" ")));
                answers.push(ProbeAnswer {
                    target: argv.words().join(" "),
                    status,
                    failing_collectors: Vec::new(),
                    metric_names: 0,
                    series: 0,
                });
            }
            Probe::Http { .. } | Probe::None => {}
        }
        for url in &self.urls {
            let (status, body) = self.http(url)?;
            let status = status.map_or(body.clone(), |s| format!("HTTP {s}"));
            items.insert(format!("{url}: {status}"));
            let mut answer = ProbeAnswer {
                target: url.clone(),
                status,
                failing_collectors: Vec::new(),
                metric_names: 0,
                series: 0,
            };
            if let Some(m) = parse_metrics(&body) {
                for c in &m.failing {
                    items.insert(format!("{url}: collector {c} fails"));
                }
                for s in &m.series {
                    items.insert(format!("{url}: series {s}"));
                }
                answer.failing_collectors = m.failing.into_iter().collect();
                answer.metric_names = m.names.len();
                answer.series = m.series.len();
            } else {
                for l in body.lines().take(MAX_BODY_LINES) {
                    items.insert(format!("{url}: body {}", normalise(l)));
                }
            }
            answers.push(answer);
        }
        Ok(answers)
    }

    /// Whether two item sets differ beyond the noise.
    fn differs(&self, a: &BTreeSet<String>, b: &BTreeSet<String>) -> bool {
        a.symmetric_difference(b).any(|i| !self.noise.contains(i))
    }

    /// What `seen` lacks or has beyond `want`, summarised for people.
    fn describe(&self, seen: &BTreeSet<String>, want: &BTreeSet<String>) -> Vec<String> {
        let missing: BTreeSet<&String> = want
            .difference(seen)
            .filter(|i| !self.noise.contains(*i))
            .collect();
        let extra: BTreeSet<&String> = seen
            .difference(want)
            .filter(|i| !self.noise.contains(*i))
            .collect();
        summarise(&missing, &extra)
    }

    /// Whether the unit plus `set` behaves like the all-relaxed run.
    fn matches(&mut self, set: &[Relax], progress: &dyn Fn(&str)) -> Result<bool> {
        let mut key: Vec<String> = set.iter().map(|r| r.label()).collect();
        key.sort();
        if let Some(items) = self.cache.get(&key) {
            return Ok(!self.differs(items, &self.target.clone()));
        }
        let obs = self.observe(&Config::With(set.to_vec()))?;
        let ok = !self.differs(&obs.items, &self.target);
        if let Some(r) = self.runs.last_mut() {
            r.matches = Some(ok);
        }
        progress(&format!(
            "run {}: {} {}",
            self.runs.len(),
            obs.config,
            if ok { "matches" } else { "still differs" }
        ));
        self.cache.insert(key, obs.items);
        Ok(ok)
    }

    /// `QuickXplain`: the smallest subset `m` of `cands` such that `base + m` matches, given
    /// that `base + cands` does and `base` alone does not.
    fn minimal(
        &mut self,
        base: &[Relax],
        cands: &[Relax],
        progress: &dyn Fn(&str),
    ) -> Result<Vec<Relax>> {
        if cands.len() <= 1 {
            return Ok(cands.to_vec());
        }
        let (a, b) = cands.split_at(cands.len() / 2);
        let with = |extra: &[Relax]| -> Vec<Relax> { base.iter().chain(extra).copied().collect() };
        if self.matches(&with(a), progress)? {
            return self.minimal(base, a, progress);
        }
        if self.matches(&with(b), progress)? {
            return self.minimal(base, b, progress);
        }
        // Both halves are needed: the least of `a` given all of `b`, then of `b` given that.
        let from_a = self.minimal(&with(b), a, progress)?;
        let from_b = self.minimal(&with(&from_a), b, progress)?;
        Ok(from_a.into_iter().chain(from_b).collect())
    }

    /// For each knob found, the strongest relaxed value that still matches.
    fn weakest_needed(
        &mut self,
        mut set: Vec<Relax>,
        progress: &dyn Fn(&str),
    ) -> Result<Vec<Relax>> {
        for i in 0..set.len() {
            let Relax::Knob(k, weakest) = set[i] else {
                continue;
            };
            for v in k.relaxed.iter().filter(|v| **v != weakest) {
                let mut trial = set.clone();
                trial[i] = Relax::Knob(k, v);
                if self.matches(&trial, progress)? {
                    set = trial;
                    break;
                }
            }
        }
        Ok(set)
    }

    fn findings(
        &mut self,
        set: &[Relax],
        hardened: &BTreeSet<String>,
        progress: &dyn Fn(&str),
    ) -> Result<Vec<Finding>> {
        let mut out = Vec::new();
        let have: Vec<String> = self
            .manifest
            .install
            .service
            .address_families
            .iter()
            .map(ToString::to_string)
            .collect();
        let families: Vec<String> = set
            .iter()
            .filter_map(|r| match r {
                Relax::Family(f) => Some(f.to_string()),
                Relax::Knob(..) => None,
            })
            .collect();
        for (i, r) in set.iter().enumerate() {
            let without: Vec<Relax> = set
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, r)| *r)
                .collect();
            // What the others leave unexplained is this one's share.
            let items = if without.is_empty() {
                hardened.clone()
            } else {
                self.matches(&without, progress)?;
                let mut key: Vec<String> = without.iter().map(|r| r.label()).collect();
                key.sort();
                self.cache.get(&key).cloned().unwrap_or_default()
            };
            let target = self.target.clone();
            let explains = self.describe(&items, &target);
            let brief = if explains.is_empty() {
                "(needed only together with the others)".to_owned()
            } else {
                explains.join("; ")
            };
            let f = match r {
                Relax::Knob(k, v) => {
                    let verb = match k.class {
                        Class::Visibility => "hides",
                        Class::Surface => "blocks",
                    };
                    let value = self.sandbox_value(k).replace(" | ", " ");
                    let setting = format!("service.sandbox.{} = \"{v}\"", k.key);
                    Finding {
                        directive: k.directive.to_owned(),
                        value: value.clone(),
                        class: match k.class {
                            Class::Visibility => "visibility".into(),
                            Class::Surface => "surface".into(),
                        },
                        message: format!(
                            "{}={value} {verb} {}: {brief}: set {setting}",
                            k.directive,
                            k.gives.trim_start_matches("the ")
                        ),
                        setting,
                        explains,
                    }
                }
                Relax::Family(f) => {
                    let setting = format!(
                        "service.extra_address_families = [{}]",
                        families
                            .iter()
                            .map(|f| format!("\"{f}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    Finding {
                        directive: "RestrictAddressFamilies".into(),
                        value: have.join(" "),
                        class: "address_family".into(),
                        message: format!(
                            "RestrictAddressFamilies={} blocks {f} sockets: {brief}: set {setting}",
                            have.join(" ")
                        ),
                        setting,
                        explains,
                    }
                }
            };
            out.push(f);
        }
        Ok(out)
    }
}

fn push_relax(s: &mut String, r: Relax, knob_line: &dyn Fn(&mut String, &Knob, &str)) {
    match r {
        Relax::Knob(k, v) => knob_line(s, k, v),
        // Allow lists add up: this line widens the unit's own.
        Relax::Family(f) => {
            let _ = writeln!(s, "RestrictAddressFamilies={f}");
        }
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Prometheus text exposition, reduced to what is compared.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Collectors whose `*_scrape_collector_success` is 0.
    pub failing: BTreeSet<String>,
    /// Metric names.
    pub names: BTreeSet<String>,
    /// Series keys (name and normalised labels).
    pub series: BTreeSet<String>,
}

/// Parses Prometheus text format; `None` when the body is not that.
pub fn parse_metrics(body: &str) -> Option<Metrics> {
    if !body
        .lines()
        .any(|l| l.starts_with("# TYPE ") || l.starts_with("# HELP "))
    {
        return None;
    }
    let mut m = Metrics::default();
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = split_sample(line);
        let name = key.split('{').next().unwrap_or(key).to_owned();
        if name.ends_with("_scrape_collector_success") && value.trim() == "0" {
            if let Some(c) = label(key, "collector") {
                m.failing.insert(c);
            }
        }
        m.series.insert(normalise(key));
        m.names.insert(name);
    }
    Some(m)
}

/// `name{labels}` and the value (and timestamp) after it.
fn split_sample(line: &str) -> (&str, &str) {
    let Some(open) = line.find('{') else {
        return line.split_once(' ').unwrap_or((line, ""));
    };
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in line[open..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => {
                let end = open + i + 1;
                return (&line[..end], &line[end..]);
            }
            _ => {}
        }
    }
    (line, "")
}

/// The value of a label in a series key.
fn label(key: &str, name: &str) -> Option<String> {
    let start = key.find(&format!("{name}=\""))? + name.len() + 2;
    let end = key[start..].find('"')?;
    Some(key[start..start + end].to_owned())
}

/// Digits (and so times, durations, pids, counters, addresses) become `N`, runs of hex
/// digits with a digit in them `X`, and the line is cut at [`MAX_LINE`] characters.
pub fn normalise(line: &str) -> String {
    let mut out = String::with_capacity(line.len().min(MAX_LINE));
    let chars: Vec<char> = line.trim().chars().collect();
    let mut i = 0;
    while i < chars.len() && out.len() < MAX_LINE {
        let c = chars[i];
        if c.is_ascii_hexdigit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_hexdigit() {
                i += 1;
            }
            let run = &chars[start..i];
            let word_before = start > 0 && chars[start - 1].is_ascii_alphabetic();
            if run.len() >= 8 && run.iter().any(char::is_ascii_digit) && !word_before {
                out.push('X');
            } else {
                let mut last_n = false;
                for ch in run {
                    if ch.is_ascii_digit() {
                        if !last_n {
                            out.push('N');
                        }
                        last_n = true;
                    } else {
                        out.push(*ch);
                        last_n = false;
                    }
                }
            }
            // "1.25" and "1,000" are one number.
            while i + 1 < chars.len()
                && matches!(chars[i], '.' | ',')
                && chars[i + 1].is_ascii_digit()
                && out.ends_with('N')
            {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Whether a journal line reports an error: by its level when it has one (`level=ERROR`,
/// `"level":"error"`), else by its words.
pub fn says_error(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    for tag in ["level=", "\"level\":\"", "\"level\": \"", "lvl="] {
        if let Some(i) = lower.find(tag) {
            let level: String = lower[i + tag.len()..]
                .trim_start_matches('"')
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            return ["err", "warn", "crit", "fatal", "panic", "alert", "emerg"]
                .iter()
                .any(|l| level.starts_with(l));
        }
    }
    [
        "error",
        "fail",
        "denied",
        "not permitted",
        "panic",
        "fatal",
        "cannot ",
        "can't ",
        "unable to",
        "segfault",
        "core dump",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// People's version of a difference between two item sets (`missing`: in the reference run
/// only; `extra`: in this run only).
fn summarise(missing: &BTreeSet<&String>, extra: &BTreeSet<&String>) -> Vec<String> {
    let mut out = Vec::new();
    let strip = |set: &BTreeSet<&String>, part: &str| -> BTreeMap<String, Vec<String>> {
        let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for i in set {
            if let Some((target, rest)) = i.split_once(": ") {
                if let Some(v) = rest.strip_prefix(part) {
                    by_target
                        .entry(target.to_owned())
                        .or_default()
                        .push(v.to_owned());
                }
            }
        }
        by_target
    };
    // The unit.
    if missing.contains(&"unit: active".to_owned()) {
        out.push("the unit is not active (it is without the sandbox)".to_owned());
    }
    if extra.contains(&"unit: restarted".to_owned()) {
        out.push("the unit restarted".to_owned());
    }
    // Collectors.
    for (target, cs) in strip(extra, "collector ") {
        let names: Vec<String> = cs
            .iter()
            .map(|c| c.trim_end_matches(" fails").to_owned())
            .collect();
        out.push(format!(
            "{target}: {} {} fail{}",
            if names.len() == 1 {
                "collector"
            } else {
                "collectors"
            },
            list(&names),
            if names.len() == 1 { "s" } else { "" }
        ));
    }
    for (target, cs) in strip(missing, "collector ") {
        let names: Vec<String> = cs
            .iter()
            .map(|c| c.trim_end_matches(" fails").to_owned())
            .collect();
        out.push(format!(
            "{target}: {} {} succeed{} only here",
            if names.len() == 1 {
                "collector"
            } else {
                "collectors"
            },
            list(&names),
            if names.len() == 1 { "s" } else { "" }
        ));
    }
    // Series, grouped by metric name.
    let names_of = |series: &[String]| -> BTreeSet<String> {
        series
            .iter()
            .map(|s| s.split('{').next().unwrap_or(s).to_owned())
            .collect()
    };
    let lost = strip(missing, "series ");
    let gained = strip(extra, "series ");
    let targets: BTreeSet<&String> = lost.keys().chain(gained.keys()).collect();
    for target in targets {
        let lost_names = names_of(lost.get(target).map_or(&[][..], Vec::as_slice));
        let gained_names = names_of(gained.get(target).map_or(&[][..], Vec::as_slice));
        let gone: Vec<String> = lost_names.difference(&gained_names).cloned().collect();
        let changed: Vec<String> = lost_names.intersection(&gained_names).cloned().collect();
        let new: Vec<String> = gained_names.difference(&lost_names).cloned().collect();
        let n_lost = lost.get(target).map_or(0, Vec::len);
        let n_gained = gained.get(target).map_or(0, Vec::len);
        if !gone.is_empty() || !changed.is_empty() || !new.is_empty() {
            let mut parts = Vec::new();
            if !gone.is_empty() {
                parts.push(format!("{} metrics missing ({})", gone.len(), list(&gone)));
            }
            if !changed.is_empty() {
                parts.push(format!(
                    "other label sets of {} metrics ({})",
                    changed.len(),
                    list(&changed)
                ));
            }
            if !new.is_empty() {
                parts.push(format!("{} metrics only here ({})", new.len(), list(&new)));
            }
            out.push(format!(
                "{target}: {} ({n_lost} series missing, {n_gained} only here)",
                parts.join(", ")
            ));
        }
    }
    // Status lines and other bodies.
    for i in extra {
        let Some((target, rest)) = i.split_once(": ") else {
            continue;
        };
        if target == "unit" || target == "journal" {
            continue;
        }
        if rest.starts_with("HTTP ")
            || rest.starts_with("no answer")
            || rest.starts_with("exit ")
            || rest == "connected"
            || rest == "refused"
        {
            let was = missing
                .iter()
                .find_map(|m| {
                    m.strip_prefix(&format!("{target}: "))
                        .filter(|r| !r.starts_with("body ") && !r.starts_with("series "))
                        .filter(|r| !r.starts_with("collector "))
                })
                .unwrap_or("?");
            out.push(format!("{target}: {rest} (without the sandbox: {was})"));
        }
    }
    for (target, lines) in strip(missing, "body ") {
        out.push(format!(
            "{target}: {} body line{} missing ({})",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            list(&lines)
        ));
    }
    for (target, lines) in strip(extra, "body ") {
        out.push(format!(
            "{target}: {} body line{} only here ({})",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            list(&lines)
        ));
    }
    // The journal.
    let errs: Vec<String> = extra
        .iter()
        .filter_map(|i| i.strip_prefix("journal: "))
        .map(|l| format!("`{l}`"))
        .collect();
    if !errs.is_empty() {
        out.push(format!(
            "{} journal error line{}: {}",
            errs.len(),
            if errs.len() == 1 { "" } else { "s" },
            list_n(&errs, 2)
        ));
    }
    let gone_errs = missing
        .iter()
        .filter(|i| i.starts_with("journal: "))
        .count();
    if gone_errs > 0 {
        out.push(format!(
            "{gone_errs} journal error line{} only without the sandbox",
            if gone_errs == 1 { "" } else { "s" }
        ));
    }
    out
}

/// `a, b, c, d, e, f and 4 more`.
fn list(items: &[String]) -> String {
    list_n(items, 6)
}

fn list_n(items: &[String], shown: usize) -> String {
    let mut s = items
        .iter()
        .take(shown)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > shown {
        let _ = write!(s, " and {} more", items.len() - shown);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_hides_numbers_and_ids() {
        assert_eq!(
            normalise(
                r#"time=2025-01-02T03:04:05.678Z level=ERROR source=collector.go:168 msg="collector failed" name=cpu duration_seconds=0.000123 err="open /proc/stat: no such file or directory""#
            ),
            r#"time=N-N-NTN:N:NZ level=ERROR source=collector.go:N msg="collector failed" name=cpu duration_seconds=N err="open /proc/stat: no such file or directory""#
        );
        assert_eq!(normalise("pid 12345 id 0123abcdef987654"), "pid N id X");
        assert_eq!(normalise("read 1,024 bytes"), "read N bytes");
        assert_eq!(normalise("device sda1 deadbeef"), "device sdaN deadbeef");
    }

    #[test]
    fn error_lines_by_level_or_words() {
        assert!(says_error(r#"ts=1 level=ERROR msg="collector failed""#));
        assert!(says_error(r#"{"level":"error","msg":"x"}"#));
        assert!(says_error(r#"time=1 level=WARN msg="x""#));
        assert!(!says_error(
            r#"level=INFO msg="failed to do something harmless""#
        ));
        assert!(!says_error(
            r#"{"level":"info","msg":"serving failed requests""#
        ));
        assert!(says_error("open /proc/stat: permission denied"));
        assert!(says_error("hello.service: Failed with result 'exit-code'."));
        assert!(!says_error("Started hello.service."));
    }

    #[test]
    fn prometheus_text_reduces_to_series_and_failing_collectors() {
        let body =
            "# HELP node_scrape_collector_success x\n# TYPE node_scrape_collector_success gauge\n\
                    node_scrape_collector_success{collector=\"cpu\"} 0\n\
                    node_scrape_collector_success{collector=\"time\"} 1\n\
                    node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5\n\
                    node_cpu_seconds_total{cpu=\"1\",mode=\"idle\"} 13\n\
                    node_filesystem_size_bytes{mountpoint=\"/a }b\"} 1e+09\n\
                    go_goroutines 7\n";
        let m = parse_metrics(body).unwrap();
        assert_eq!(m.failing, BTreeSet::from(["cpu".to_owned()]));
        assert_eq!(m.names.len(), 4);
        assert!(m
            .series
            .contains("node_cpu_seconds_total{cpu=\"N\",mode=\"idle\"}"));
        assert!(m
            .series
            .contains("node_filesystem_size_bytes{mountpoint=\"/a }b\"}"));
        assert!(m.series.contains("go_goroutines"));
        assert!(parse_metrics("<html>hello</html>\n").is_none());
    }

    #[test]
    fn summaries_name_collectors_metrics_and_journal_lines() {
        let missing_s = [
            "u: series node_cpu_seconds_total{cpu=\"N\"}".to_owned(),
            "u: series node_load1".to_owned(),
            "u: HTTP 200".to_owned(),
        ];
        let extra_s = [
            "u: collector cpu fails".to_owned(),
            "u: collector loadavg fails".to_owned(),
            "journal: level=ERROR msg=\"collector failed\" name=cpu".to_owned(),
            "u: HTTP 500".to_owned(),
        ];
        let missing: BTreeSet<&String> = missing_s.iter().collect();
        let extra: BTreeSet<&String> = extra_s.iter().collect();
        let s = summarise(&missing, &extra);
        assert!(
            s.contains(&"u: collectors cpu, loadavg fail".to_owned()),
            "{s:#?}"
        );
        assert!(s.iter().any(|l| l.starts_with("u: 2 metrics missing (node_cpu_seconds_total, node_load1)")), "{s:#?}");
        assert!(
            s.contains(&"u: HTTP 500 (without the sandbox: HTTP 200)".to_owned()),
            "{s:#?}"
        );
        assert!(
            s.iter()
                .any(|l| l.starts_with("1 journal error line: `level=ERROR")),
            "{s:#?}"
        );
    }
}
