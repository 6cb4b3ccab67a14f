//! `ferry try`: the check for silent breakage. Runs a bundle in a throwaway, network-less
//! systemd host, under its unit and without its sandbox, and names each sandbox directive
//! that changes what the service does, with the `ferry.toml` setting that relaxes it. The
//! work is `ferry_host::trial`'s, which the end-to-end tests share.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use ferry_format::install::HttpUrl;
use ferry_format::manifest::{Arch, Os, Target};
use ferry_host::trial::{self, InstallRefused, Observation, Trial, TrialOptions};
use serde::Serialize;

use crate::exit::{Precondition, Usage};

pub struct TryArgs {
    pub bundle: Option<PathBuf>,
    pub pubkeys: Vec<PathBuf>,
    pub installer: Option<PathBuf>,
    pub env: Option<String>,
    pub urls: Vec<String>,
    pub policy: Option<PathBuf>,
    pub prepare: bool,
}

#[derive(Debug, Serialize)]
pub struct TryReport {
    /// The throwaway host's cached root, when `--prepare` built or checked it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepared: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial: Option<Trial>,
}

impl TryReport {
    /// Why the exit code is not 0: a difference (exit 5), or a service that is unhealthy
    /// even without its sandbox (exit 1).
    pub fn verdict(&self) -> Option<(i32, String)> {
        let t = self.trial.as_ref()?;
        if !t.clean() {
            return Some((
                5,
                format!(
                    "the sandbox changes what {} does: {}",
                    t.app,
                    if t.findings.is_empty() {
                        "no knob explains it (see unexplained)".to_owned()
                    } else {
                        t.findings
                            .iter()
                            .map(|f| f.setting.clone())
                            .collect::<Vec<_>>()
                            .join("; ")
                    }
                ),
            ));
        }
        if !t.install.healthy {
            return Some((
                1,
                format!(
                    "{} is unhealthy without its sandbox too, so the sandbox is not the cause: {}",
                    t.app, t.install.message
                ),
            ));
        }
        None
    }
}

pub fn run(args: &TryArgs, json: bool) -> Result<TryReport> {
    if args.bundle.is_none() && !args.prepare {
        return Err(anyhow!(Usage(
            "ferry try needs BUNDLE (or --prepare)".into()
        )));
    }
    let project = args
        .bundle
        .as_ref()
        .is_some_and(|p| p.join("ferry.toml").is_file());
    if args.bundle.is_some() && args.pubkeys.is_empty() && !project {
        return Err(anyhow!(Usage(
            "ferry try BUNDLE needs --pubkey PUB: the installer in the throwaway host \
             verifies the bundle like any other host (a PROJECT directory is built and \
             signed with a throwaway key instead)"
                .into()
        )));
    }
    if project && !args.pubkeys.is_empty() {
        return Err(anyhow!(Usage(
            "--pubkey is for a BUNDLE: a PROJECT directory is signed with a throwaway key".into()
        )));
    }
    for u in &args.urls {
        HttpUrl::new(u).map_err(|e| anyhow!(Usage(format!("--url: {e}"))))?;
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(anyhow!(Precondition(
            "ferry try needs root: it boots a throwaway host with systemd-nspawn (overlay \
             mounts, cgroups, namespaces)"
                .into()
        )));
    }
    if !in_path("systemd-nspawn") {
        return Err(anyhow!(Precondition(
            "ferry try needs systemd-nspawn: apt-get install systemd-container (or run \
             ferry try --prepare, which installs it with the host's root)"
                .into()
        )));
    }
    let progress = |msg: &str| eprintln!("ferry try: {msg}");
    let mut report = TryReport {
        prepared: None,
        trial: None,
    };
    if args.prepare {
        progress(&format!(
            "preparing the throwaway host's root in {} (scripts/mkhost's recipe; about two \
             minutes the first time, needs the Debian mirror)",
            ferry_host::host_cache_dir().display()
        ));
        let cache = ferry_host::host_cache().context("preparing the throwaway host's root")?;
        report.prepared = Some(cache.display().to_string());
    }
    let Some(bundle) = &args.bundle else {
        return Ok(report);
    };
    if !ferry_host::host_cache_ready() {
        return Err(anyhow!(Precondition(format!(
            "no throwaway host root at {}: run `ferry try --prepare` once (as root, with \
             the Debian mirror reachable), or point FERRY_HOST_CACHE at a root made by \
             scripts/mkhost",
            ferry_host::host_cache_dir().display()
        ))));
    }
    // A project: built for this machine with a throwaway key, kept until the trial ends.
    let work;
    let (bundle, pubkeys) = if project {
        let here = Arch::from_uname(std::env::consts::ARCH).ok_or_else(|| {
            anyhow!(Precondition(format!(
                "ferry builds for x86_64 and aarch64, not {}",
                std::env::consts::ARCH
            )))
        })?;
        work = tempfile::Builder::new()
            .prefix("ferry-try-")
            .tempdir()
            .context("creating a work directory")?;
        let key = crate::keys::keygen(
            &work.path().join("try"),
            crate::keys::Protection::Unencrypted,
            false,
            crate::keys::Passphrase::none(),
        )?;
        progress(&format!(
            "building {} for linux/{here} with a throwaway key",
            bundle.display()
        ));
        let report = crate::build::run(
            crate::build::BuildArgs {
                passphrase: crate::keys::Passphrase::none(),
                dir: bundle.clone(),
                key: key.secret,
                out: work.path().join("out"),
                targets: vec![Target {
                    os: Os::Linux,
                    arch: here,
                }],
                strictness: crate::checks::Strictness::Warn,
                revision: None,
                // A project's [build] before steps run only when its release engineer
                // says so on `ferry build`; `ferry try PROJECT` never runs them.
                run_before: false,
            },
            &crate::progress::Progress::new(false),
        )?;
        let built = report
            .bundles
            .first()
            .map(|b| PathBuf::from(&b.path))
            .ok_or_else(|| anyhow!("ferry build made no bundle"))?;
        (built, vec![key.public])
    } else {
        (bundle.clone(), args.pubkeys.clone())
    };
    let bundle = &bundle;
    let manifest = trial::read_manifest(bundle)?;
    let here = Arch::from_uname(std::env::consts::ARCH);
    if here != Some(manifest.target.arch) {
        return Err(anyhow!(Precondition(format!(
            "{} is built for {}; this machine ({}) can only boot a host of its own \
             architecture: build with --target linux/{}",
            bundle.display(),
            manifest.target,
            std::env::consts::ARCH,
            here.map_or("?", Arch::as_str)
        ))));
    }
    let installer = match &args.installer {
        Some(p) => p.clone(),
        None => default_installer()?,
    };
    if !installer.is_file() {
        return Err(anyhow!(Precondition(format!(
            "--installer {}: no such file",
            installer.display()
        ))));
    }
    let opts = TrialOptions {
        bundle: bundle.clone(),
        pubkeys,
        installer,
        env: args.env.clone(),
        urls: args.urls.clone(),
        policy: args.policy.clone(),
    };
    let quiet = |_: &str| {};
    let trial =
        trial::run(&opts, if json { &quiet } else { &progress }).map_err(|e| match e
            .downcast_ref::<InstallRefused>()
        {
            Some(r) if r.exit_code == 4 => anyhow!(Precondition(r.to_string())),
            Some(r) => anyhow!(crate::exit::Verification(r.to_string())),
            None => e,
        })?;
    report.trial = Some(trial);
    Ok(report)
}

fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
}

/// `ferry-install` from PATH, else the static one `scripts/build-installer` leaves in the
/// build tree (from the current directory, or the target directory `ferry` was built in).
fn default_installer() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("ferry-install"))
            .find(|p| p.is_file())
    }) {
        return Ok(p);
    }
    let here = PathBuf::from(crate::kit::DEFAULT_INSTALLER);
    if here.is_file() {
        return Ok(here);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let target = exe.parent()?.parent()?;
            let p = target.join("x86_64-unknown-linux-gnu/installer/ferry-install");
            p.is_file().then_some(p)
        })
        .ok_or_else(|| {
            anyhow!(Precondition(format!(
                "no ferry-install in PATH nor at {}: build it with scripts/build-installer or \
                 pass --installer PATH",
                crate::kit::DEFAULT_INSTALLER
            )))
        })
}

fn describe(o: &Observation) -> String {
    let mut parts = vec![if o.active { "active" } else { "not active" }.to_owned()];
    if o.restarted {
        parts.push("restarted".into());
    }
    for p in &o.probes {
        let mut s = format!("{} {}", p.target, p.status);
        if p.metric_names > 0 {
            let _ = write!(
                s,
                ", {} metric names, {} series, {} failing collector{}",
                p.metric_names,
                p.series,
                p.failing_collectors.len(),
                if p.failing_collectors.len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
            if !p.failing_collectors.is_empty() {
                let _ = write!(s, " ({})", p.failing_collectors.join(", "));
            }
        }
        parts.push(s);
    }
    parts.push(format!(
        "{} journal error line{}",
        o.journal_errors.len(),
        if o.journal_errors.len() == 1 { "" } else { "s" }
    ));
    parts.join("; ")
}

pub fn print_human(r: &TryReport) {
    if let Some(p) = &r.prepared {
        println!("throwaway host root ready: {p}");
    }
    let Some(t) = &r.trial else {
        return;
    };
    println!(
        "{} {} ({}, environment {}) in a throwaway host",
        t.app, t.version, t.target, t.env
    );
    println!(
        "  install:        {} (ferry-install exit {}{})",
        if t.install.healthy {
            "healthy"
        } else {
            "unhealthy, rolled back"
        },
        t.install.exit_code,
        if t.install.message.is_empty() {
            String::new()
        } else {
            format!(": {}", t.install.message)
        }
    );
    println!("  under its unit: {}", describe(&t.sandboxed));
    println!("  unsandboxed:    {}", describe(&t.unsandboxed));
    if let Some(relaxed) = &t.relaxed {
        println!("  knobs relaxed:  {}", describe(relaxed));
    }
    if t.clean() {
        println!(
            "no difference: the sandbox changes nothing seen from outside ({} runs, {:.0} s)",
            t.runs.len(),
            t.seconds
        );
        return;
    }
    println!("differences under the unit:");
    for d in &t.differences {
        println!("  - {d}");
    }
    if !t.findings.is_empty() {
        println!(
            "what makes them (bisected in {} runs, {:.0} s):",
            t.runs.len(),
            t.seconds
        );
        for f in &t.findings {
            println!("  {}", f.message);
        }
    }
    if !t.unexplained.is_empty() {
        println!(
            "left with every knob relaxed (ferry's floor, which no setting lowers: \
             ProtectSystem=strict, NoNewPrivileges=yes, RestrictSUIDSGID=yes, ...):"
        );
        for d in &t.unexplained {
            println!("  - {d}");
        }
    }
}

/// The apps of the bundles already in OUT (read from their manifests, unverified), before a
/// build writes new ones.
pub fn apps_in(out: &Path) -> std::collections::BTreeSet<String> {
    let Ok(dir) = std::fs::read_dir(out) else {
        return std::collections::BTreeSet::new();
    };
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tar.zst"))
        .filter_map(|e| trial::read_manifest(&e.path()).ok())
        .map(|m| m.app.name.to_string())
        .collect()
}

/// `ferry build`'s hint for an app with no earlier bundle in OUT.
pub fn hint_for_new_app(out: &Path, app: &str, bundles: &[String]) -> String {
    let amd64 = bundles
        .iter()
        .find(|b| b.ends_with("-linux-amd64.tar.zst"))
        .or_else(|| bundles.first())
        .cloned()
        .unwrap_or_else(|| out.display().to_string());
    format!(
        "hint: {app} is new here (no earlier {app} bundle in {}): check that ferry's sandbox \
         breaks nothing it does with `ferry try {amd64} --pubkey KEY.pub` (root, \
         systemd-nspawn; README \"Checking a new service: ferry try\")",
        out.display()
    )
}
