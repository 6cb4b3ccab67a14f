//! `ferry-install install`: plan, stage, apply, then activate or roll back, then record.
//! The host ends on the old release or the new one.
//!
//! 1. **plan** ([`crate::plan`]): the manifest is verified (first members only), judged
//!    by the host's policy and checked against the host; nothing is written.
//! 2. **stage** ([`crate::stage`]): the bundle streams once into a private directory on
//!    the release's filesystem while every digest is checked and the generated files are
//!    held against the manifest; any failure removes the staging directory.
//! 3. **apply** ([`crate::apply`]): each change is journaled first.
//! 4. **activate**: restart and the health gate; unhealthy: the journal is undone and the
//!    previous release restarted (exit 5).
//! 5. **record**: the state, the release manifest and the account registry, then the
//!    journal is dropped.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::archive::read_verified_manifest;
use ferry_format::digest::sha256_file;
use ferry_format::install::{ConfigFile, Name};
use ferry_format::keyring::Keyring;
use ferry_format::layout::Layout;
use ferry_format::manifest::Manifest;
use ferry_format::verify::Failed;
use ferry_format::Limits;
use serde::Serialize;

use crate::accounts::Accounts;
use crate::apply::{self, ConfigChange};
use crate::exit::{Precondition, RolledBack};
use crate::host::{Host, Mode};
use crate::journal::Journal;
pub use crate::plan::{Downgrade, Escalation, Plan};
use crate::stage::Staging;
use crate::state::{self, AppState, Registry, Release};
use crate::steps::{self, step};

/// Whether to change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    Yes,
    /// `--dry-run`: verify and print the plan only.
    DryRun,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Yes,
    /// `--no-start`: lay out and enable, do not (re)start.
    No,
}

pub struct InstallArgs {
    pub bundle: PathBuf,
    pub keyring: Keyring,
    pub env: Option<String>,
    pub host: Host,
    pub apply: Apply,
    pub start: Start,
    pub downgrade: Downgrade,
    pub escalation: Escalation,
    pub limits: Limits,
    /// Set when `bundle` names a field kit: the parts to read as one stream.
    pub kit: Option<crate::kit::KitBundle>,
    /// Scratch space on the host; checked by preflight.
    pub tmpdir: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct InstallReport {
    pub app: String,
    pub version: String,
    pub previous_version: Option<String>,
    pub env: String,
    /// What the run changed; for a dry run, whether a real run would change anything.
    pub changed: bool,
    pub dry_run: bool,
    pub key_id: String,
    pub bundle_sha256: Option<String>,
    pub manifest_sha256: String,
    pub plan: Plan,
    pub configs: Vec<ConfigChange>,
    pub started: bool,
    /// What an undo found changed under it and left alone.
    pub notes: Vec<String>,
    pub message: String,
}

/// The footprint as a review, the way a dry run shows it to a person: what the service may
/// do on this host beyond its own files, and what an upgrade adds or removes.
pub fn print_footprint(plan: &Plan) {
    let f = &plan.footprint;
    println!(
        "footprint: runs as {}:{} ({} account); judged by {}",
        f.user,
        f.group,
        match f.account {
            ferry_format::footprint::Account::New => "a new",
            ferry_format::footprint::Account::Existing => "an existing",
        },
        plan.policy
    );
    for i in &f.items {
        println!("  {}", i.describe());
    }
    if let Some(d) = &plan.footprint_changes {
        print_changes(d);
    }
}

/// `+`/`-` lines for what an upgrade adds to and removes from the footprint.
pub fn print_changes(d: &ferry_format::footprint::Diff) {
    if d.added.is_empty() && d.removed.is_empty() {
        println!("footprint unchanged from the installed release");
        return;
    }
    println!("footprint changes from the installed release:");
    for i in &d.added {
        println!("  + {}", i.describe());
    }
    for i in &d.removed {
        println!("  - {}", i.describe());
    }
}

/// Largest config a dry run holds in memory to diff.
const MAX_DIFFED: u64 = 1 << 20;

/// Whether the host already runs exactly this bundle with this environment.
fn already_installed(
    host: &Host,
    m: &Manifest,
    manifest_sha: &str,
    env: &Name,
    current: Option<&Release>,
) -> bool {
    let Some(cur) = current else { return false };
    if cur.manifest_sha256 != manifest_sha || cur.env != env.as_str() {
        return false;
    }
    let l = m.app.name.layout();
    let link_ok = host
        .open_parent(&l.current())
        .ok()
        .flatten()
        .and_then(|(d, name)| d.readlink_at(&name).ok().flatten())
        .is_some_and(|t| t == Layout::current_target(&m.app.version));
    if !link_ok {
        return false;
    }
    let release = host.path(&l.release(&m.app.version));
    let release_ok = m
        .files
        .iter()
        .all(|f| sha256_file(&release.join(f.path.as_str())).is_ok_and(|(d, _)| d == f.sha256));
    let files_ok = cur.files.iter().all(|f| {
        ferry_format::install::HostPath::new(&f.path).is_ok_and(|p| {
            host.read_file(&p, apply::MAX_CONFIG)
                .ok()
                .flatten()
                .is_some_and(|d| ferry_format::Sha256::of(&d).to_hex() == f.sha256)
        })
    });
    if !release_ok || !files_ok {
        return false;
    }
    if host.mode == Mode::Live {
        return host
            .unit_properties(&l.unit_name(), &["ActiveState"])
            .is_ok_and(|p| p.get("ActiveState").is_some_and(|s| s == "active"));
    }
    true
}

pub fn run(args: &InstallArgs) -> Result<InstallReport> {
    let host = &args.host;
    step(&format!(
        "reading and verifying the manifest of {}",
        args.bundle.display()
    ));
    let mut input = crate::kit::open_source(&args.bundle, args.kit.as_ref())?;
    // `&mut dyn Read`, as in the verifying pass: one copy of the tar and zstd reader.
    let (manifest, manifest_sha, key_id) =
        read_verified_manifest(&mut *input, &args.keyring, &args.limits).map_err(|e| Failed {
            path: args.bundle.clone(),
            source: e.into(),
        })?;
    let app = manifest.app.name.clone();
    let env = match &args.env {
        Some(e) => Name::new(e).map_err(|e| anyhow!(Precondition(e.to_string())))?,
        None => manifest.install.default_env.clone(),
    };

    // Held until the report is out: state, journal and layout belong to this run alone.
    let _lock = if args.apply == Apply::Yes && nix::unistd::geteuid().is_root() {
        let lock = crate::lock::acquire(&host.root)?;
        crate::plan::check_state_dir(host)?;
        crate::recover::recover(host, &app)?;
        Some(lock)
    } else {
        None
    };

    // 1. Plan: nothing below writes until the plan holds.
    crate::plan::check_state_dir(host)?;
    let existing = state::load(host, &app)?;
    let current = existing.as_ref().and_then(|s| s.current.clone());
    let installed = crate::plan::installed_manifest(host, existing.as_ref(), &app)?;
    let installed_env = current.as_ref().map(|c| state::env_name(&c.env));
    let policy = crate::policy::load(host)?;
    let (footprint, changes) = crate::plan::check_policy(
        &policy,
        &key_id,
        &manifest,
        &env,
        installed.as_ref().zip(installed_env.as_ref()),
        args.escalation,
    )?;
    let accounts = Accounts::load(&host.root)?;
    crate::plan::check_preconditions(
        host,
        &manifest,
        &env,
        current.as_ref(),
        args.downgrade,
        &accounts,
        &args.tmpdir,
    )?;
    crate::plan::check_ownership(host, &manifest, existing.as_ref())?;
    crate::plan::check_accounts(
        host,
        &manifest,
        &accounts,
        &Registry::load(host)?,
        installed.as_ref(),
    )?;
    let the_plan = crate::plan::plan(&manifest, &env, host, footprint, changes, &policy);
    let mut report = InstallReport {
        app: app.to_string(),
        version: manifest.app.version.to_string(),
        previous_version: current.as_ref().map(|c| c.version.clone()),
        env: env.to_string(),
        changed: false,
        dry_run: args.apply == Apply::DryRun,
        key_id: key_id.to_string(),
        bundle_sha256: None,
        manifest_sha256: manifest_sha.to_string(),
        plan: the_plan,
        configs: Vec::new(),
        started: false,
        notes: Vec::new(),
        message: String::new(),
    };

    let unchanged = already_installed(
        host,
        &manifest,
        &manifest_sha.to_string(),
        &env,
        current.as_ref(),
    );
    if args.apply == Apply::DryRun || unchanged {
        return verify_only(args, &manifest, &env, unchanged, report);
    }

    // 2. Stage on the filesystem the release will live on, so placing it is a rename.
    let opt = host.rel("/opt");
    let staging = Staging::create(&opt, &app)
        .with_context(|| format!("creating a staging directory in {}", opt.display()))?;
    step("verifying the bundle while extracting it into a staging directory");
    let outcome = crate::kit::verify_source(
        &args.bundle,
        args.kit.as_ref(),
        &args.keyring,
        &args.limits,
        &mut |e, r| staging.write(e, r),
    )?;
    steps::reached(steps::Step::Staged);
    if outcome.verified.manifest_sha256 != manifest_sha {
        bail!("the bundle changed while it was being read");
    }
    report.bundle_sha256 = Some(outcome.verified.bundle.sha256.to_string());

    // 3. Apply.
    let mut journal = Journal::begin(
        host,
        &app,
        current.as_ref().map(|c| c.version.as_str()),
        &manifest.app.version,
    )?;
    let unit = app.layout().unit_name();
    let was_active = host.mode == Mode::Live
        && current.is_some()
        && host
            .unit_properties(&unit, &["ActiveState"])
            .is_ok_and(|p| p.get("ActiveState").is_some_and(|s| s == "active"));
    let applied = match apply::apply(host, &manifest, &env, staging, &mut journal) {
        Ok(a) => a,
        Err(e) => {
            step(&format!("failed: {e:#}; undoing"));
            journal
                .undo(&mut |n| report.notes.push(n))
                .context("undoing a failed install")?;
            if current.is_none() {
                crate::recover::keep_leftovers(host, &app, Some(&manifest))?;
            }
            if host.mode == Mode::Live {
                let _ = host.systemctl(&["daemon-reload"]);
                if was_active {
                    let _ = host.systemctl(&["restart", &unit]);
                }
            }
            return Err(e);
        }
    };
    steps::reached(steps::Step::Applied);
    report.configs = applied.configs;

    // 4. Activate, or roll back.
    if host.mode == Mode::Live && args.start == Start::Yes {
        if let Err(unhealthy) = crate::activate::start_and_check(host, &manifest, &env) {
            return Err(roll_back(
                host,
                &manifest,
                current.as_ref(),
                journal,
                &unhealthy.0,
            ));
        }
        report.started = true;
    }

    // 5. Record, then forget the journal: from here on the new release is the installed one.
    let mut st = existing.unwrap_or_else(|| AppState::new(&app));
    if let Some(prev) = st.current.take() {
        if prev.version != *manifest.app.version {
            st.previous.retain(|r| r.version != prev.version);
            st.previous.push(prev);
        }
    }
    st.previous.retain(|r| r.version != *manifest.app.version);
    st.kept.clear();
    st.current = Some(Release {
        version: manifest.app.version.to_string(),
        env: env.to_string(),
        bundle_sha256: outcome.verified.bundle.sha256.to_string(),
        manifest_sha256: manifest_sha.to_string(),
        key_id: key_id.to_string(),
        installed_at: state::now(),
        files: applied.files,
    });
    crate::recover::save_release_manifest(&app, &manifest, &mut journal)?;
    state::save_journaled(&st, &app, &mut journal)?;
    steps::reached(steps::Step::Recorded);
    journal.commit()?;
    crate::recover::prune(host, &app, &mut st)?;
    report.changed = true;
    report.message = format!(
        "{app} {} installed ({env}){}",
        manifest.app.version,
        if report.started {
            ", active and healthy"
        } else {
            ""
        }
    );
    Ok(report)
}

/// The new release did not become healthy: undo the journal, restart the previous
/// release (or remove a first install's service), and say what happened (exit 5).
fn roll_back(
    host: &Host,
    m: &Manifest,
    current: Option<&Release>,
    journal: Journal,
    why: &str,
) -> anyhow::Error {
    let app = &m.app.name;
    let unit = app.layout().unit_name();
    let tail = host.journal_tail(&unit, 15);
    step(&format!(
        "{app} {} is unhealthy: {why}; rolling back",
        m.app.version
    ));
    let mut notes = Vec::new();
    if let Err(e) = journal.undo(&mut |n| notes.push(n)) {
        return e.context("rolling back after a failed health check");
    }
    let _ = host.systemctl(&["daemon-reload"]);
    let _ = host.systemctl(&["reset-failed", &unit]);
    let restored = if let Some(prev) = current {
        match crate::recover::release_manifest(host, app, &prev.version) {
            Ok(pm) => {
                crate::activate::start_and_check(host, &pm, &crate::state::env_name(&prev.env))
                    .map_or_else(
                        |e| {
                            format!(
                                "the previous release {} is unhealthy too: {}",
                                prev.version, e.0
                            )
                        },
                        |()| format!("{} is running and healthy again", prev.version),
                    )
            }
            Err(e) => format!(
                "the previous release {} cannot be read: {e:#}",
                prev.version
            ),
        }
    } else {
        let _ = host.systemctl(&["disable", "--now", &unit]);
        let _ = crate::recover::keep_leftovers(host, app, Some(m));
        "it was a first install: the service is stopped and removed".into()
    };
    for n in &notes {
        step(&format!("warning: {n}"));
    }
    anyhow!(RolledBack(format!(
        "{app} {} did not become healthy ({why}); rolled back: {restored}. Last journal lines:\n{tail}",
        m.app.version
    )))
}

/// A dry run, or a run that finds the bundle installed: verify every byte (and the
/// generated files against the manifest), report what a real run would do.
fn verify_only(
    args: &InstallArgs,
    manifest: &Manifest,
    env: &Name,
    unchanged: bool,
    mut report: InstallReport,
) -> Result<InstallReport> {
    let host = &args.host;
    let app = &manifest.app.name;
    step("verifying every file of the bundle (nothing is written)");
    // A dry run reports what would happen to each config, diffs included: the
    // environment's config members are kept in memory as they stream past (they are
    // small; one larger than MAX_DIFFED is judged by its digest, without a diff).
    let configs: Vec<&ConfigFile> = manifest
        .install
        .configs
        .iter()
        .filter(|c| &c.env == env)
        .collect();
    let mut contents = std::collections::BTreeMap::<String, Vec<u8>>::new();
    let outcome = crate::kit::verify_source(
        &args.bundle,
        args.kit.as_ref(),
        &args.keyring,
        &args.limits,
        &mut |e, r| {
            if args.apply == Apply::DryRun
                && e.size <= MAX_DIFFED
                && configs.iter().any(|c| c.source == e.path)
            {
                let mut data = Vec::new();
                r.read_to_end(&mut data)?;
                contents.insert(e.path.to_string(), data);
                Ok(())
            } else {
                std::io::copy(r, &mut std::io::sink()).map(|_| ())
            }
        },
    )?;
    if args.apply == Apply::DryRun {
        for c in configs {
            let old = host.read_file(&c.dest, apply::MAX_CONFIG)?;
            let file = manifest
                .file(c.source.as_str())
                .expect("Manifest::validate: every config source is a member");
            report.configs.push(apply::config_change(
                host,
                app,
                c,
                old.as_deref(),
                file.sha256,
                contents.get(c.source.as_str()).map(Vec::as_slice),
            ));
        }
    }
    report.bundle_sha256 = Some(outcome.verified.bundle.sha256.to_string());
    // A dry run answers "would a real run change the host?", as `--check` does in
    // configuration tools; the real run reports what it did.
    report.changed = args.apply == Apply::DryRun && !unchanged;
    let v = &manifest.app.version;
    report.message = if unchanged && args.apply == Apply::Yes {
        format!("{app} {v} ({env}) is already installed and active: nothing to do")
    } else if unchanged {
        format!("dry run: {app} {v} verified; it is already installed and active, an install would change nothing")
    } else {
        format!(
            "dry run: {app} {v} verified; an install would change the host; nothing was changed"
        )
    };
    Ok(report)
}
