//! `ferry-install install`: preflight, verify while staging, lay out, activate, check
//! health, roll back on failure, record. The host ends on the old release or the new one.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::archive::read_verified_manifest;
use ferry_format::digest::sha256_file;
use ferry_format::install::{ConfigFile, HostPath, Install, Name, OnUpgrade};
use ferry_format::keyring::Keyring;
use ferry_format::manifest::{Arch, Manifest};
use ferry_format::verify::Failed;
use ferry_format::Limits;
use serde::Serialize;

use crate::accounts::{is_nologin, Accounts};
use crate::exit::{Precondition, RolledBack};
use crate::host::{Host, Mode};
use crate::journal::Journal;
use crate::stage::Staging;
use crate::state::{self, AppState, InstalledFile, Release};
use crate::{activate, layout, steps};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downgrade {
    Refuse,
    Allow,
}

pub struct InstallArgs {
    pub bundle: PathBuf,
    pub keyring: Keyring,
    pub env: Option<String>,
    pub host: Host,
    pub apply: Apply,
    pub start: Start,
    pub downgrade: Downgrade,
    pub limits: Limits,
    /// Set when `bundle` names a field kit: the parts to read as one stream.
    pub kit: Option<crate::kit::KitBundle>,
    /// Scratch space on the host; checked by preflight.
    pub tmpdir: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct PlannedDir {
    pub path: String,
    pub owner: String,
    pub group: String,
    pub mode: String,
    pub acl: Vec<String>,
    pub default_acl: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PlannedFile {
    pub dest: String,
    pub source: String,
    pub owner: String,
    pub group: String,
    pub mode: String,
}

#[derive(Debug, Serialize)]
pub struct Plan {
    pub user: String,
    pub group: String,
    pub supplementary_groups: Vec<String>,
    pub release_dir: String,
    pub directories: Vec<PlannedDir>,
    pub files: Vec<PlannedFile>,
    pub secrets: Vec<String>,
    pub units: Vec<String>,
    pub unit_actions: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ConfigChange {
    pub path: String,
    /// `created`, `replaced`, `kept`, `unchanged`
    pub action: &'static str,
    /// Where the new default went when the host's file was kept.
    pub new_default: Option<String>,
    /// `diff -u` of the host's file against the new one; none for a dry run's config over
    /// 1 MiB.
    pub diff: Option<String>,
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
    pub message: String,
}

/// Largest config a dry run holds in memory to diff.
const MAX_DIFFED: u64 = 1 << 20;

pub fn step(msg: &str) {
    eprintln!("ferry-install: {msg}");
}

fn host_arch() -> Option<Arch> {
    let u = nix::sys::utsname::uname().ok()?;
    Arch::from_uname(&u.machine().to_string_lossy())
}

fn plan(m: &Manifest, env: &Name, host: &Host) -> Plan {
    let inst = &m.install;
    let app = &m.app.name;
    let l = m.app.name.layout();
    let mut units = vec![l.unit_file().to_string()];
    if inst.service.socket_activated() {
        units.push(l.socket_file().to_string());
    }
    Plan {
        user: inst.user.to_string(),
        group: inst.group.to_string(),
        supplementary_groups: inst
            .supplementary_groups
            .iter()
            .map(ToString::to_string)
            .collect(),
        release_dir: format!("/opt/{app}/releases/{}", m.app.version),
        directories: layout::ordered(&inst.directories)
            .into_iter()
            .map(|d| PlannedDir {
                path: d.path.to_string(),
                owner: d.owner.to_string(),
                group: d.group.to_string(),
                mode: d.mode.to_string(),
                acl: d.acl.iter().map(ToString::to_string).collect(),
                default_acl: d.default_acl.iter().map(ToString::to_string).collect(),
            })
            .collect(),
        files: inst
            .configs
            .iter()
            .filter(|c| &c.env == env)
            .map(|c| PlannedFile {
                dest: c.dest.to_string(),
                source: c.source.to_string(),
                owner: c.owner.to_string(),
                group: c.group.to_string(),
                mode: c.mode.to_string(),
            })
            .chain(
                activate::system_files(m)
                    .into_iter()
                    .map(|(src, dest, _)| PlannedFile {
                        dest,
                        source: src,
                        owner: "root".into(),
                        group: "root".into(),
                        mode: "0644".into(),
                    }),
            )
            .collect(),
        secrets: inst.secrets.iter().map(|s| s.path.to_string()).collect(),
        units,
        unit_actions: match host.mode {
            Mode::Live => vec![
                "daemon-reload".into(),
                format!("enable {}", l.unit_name()),
                format!("restart {}", l.unit_name()),
            ],
            Mode::Offline => vec![format!("enable {} (offline root)", l.unit_name())],
        },
    }
}

/// Host preconditions, checked before anything is written. All failures exit 4.
fn preflight(
    args: &InstallArgs,
    m: &Manifest,
    env: &Name,
    current: Option<&Release>,
) -> Result<()> {
    let pre = |s: String| Err(anyhow!(Precondition(s)));
    if !nix::unistd::geteuid().is_root() {
        return pre("ferry-install must run as root".into());
    }
    match host_arch() {
        Some(a) if a == m.target.arch => {}
        a => {
            return pre(format!(
                "bundle is for {}, this host is {}",
                m.target,
                a.map_or_else(
                    || "an unsupported architecture".into(),
                    |a| format!("linux/{a}")
                )
            ))
        }
    }
    if args.host.mode == Mode::Live && !args.host.systemd_running() {
        return pre("systemd is not running (/run/systemd/system is missing); use --root DIR to install into an offline root".into());
    }
    if args.host.mode == Mode::Offline && !args.host.root.join("etc").is_dir() {
        return pre(format!(
            "{} does not look like a root filesystem (no etc/)",
            args.host.root.display()
        ));
    }
    if !m.install.environments.contains(env) {
        return pre(format!(
            "environment {env} is not in the bundle (it has {})",
            m.install
                .environments
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(cur) = current {
        if args.downgrade == Downgrade::Refuse
            && state::compare_versions(&m.app.version, &cur.version) == std::cmp::Ordering::Less
        {
            return pre(format!(
                "{} {} is older than the installed {}: refusing to downgrade (use --allow-downgrade)",
                m.app.name, m.app.version, cur.version
            ));
        }
    }
    // ACL and supplementary group names other than the service's own must already exist.
    let accounts = Accounts::load(&args.host.root)?;
    let inst = &m.install;
    let own = |n: &Name| n == &inst.user || n == &inst.group;
    for d in &inst.directories {
        for e in d.acl.iter().chain(&d.default_acl) {
            let known = match e.kind {
                ferry_format::install::AclKind::User => accounts.uid(e.name.as_str()).is_some(),
                ferry_format::install::AclKind::Group => accounts.gid(e.name.as_str()).is_some(),
            };
            if !known && !own(&e.name) {
                return pre(format!(
                    "{}: ACL entry {e} names a user or group this host does not have",
                    d.path
                ));
            }
        }
        for n in [&d.owner, &d.group] {
            if !own(n) && accounts.uid(n.as_str()).is_none() && accounts.gid(n.as_str()).is_none() {
                return pre(format!("{}: owner {n} does not exist on this host", d.path));
            }
        }
    }
    for g in &inst.supplementary_groups {
        if accounts.gid(g.as_str()).is_none() {
            return pre(format!(
                "supplementary group {g} does not exist on this host"
            ));
        }
    }
    // Room for the release plus the staging copy's metadata and a margin.
    let need: u64 = m.files.iter().map(|f| f.size).sum::<u64>() + (32 << 20);
    let opt = args.host.rel("/opt");
    if let Ok(st) = nix::sys::statvfs::statvfs(&opt) {
        let free = st.blocks_available() * st.fragment_size();
        if free < need {
            return pre(format!(
                "not enough free space on {}: {} MiB free, {} MiB needed",
                opt.display(),
                free >> 20,
                need >> 20
            ));
        }
    }
    if let Some(problem) = crate::kit::tmpdir_problem(&args.tmpdir) {
        return pre(problem);
    }
    Ok(())
}

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
    let app = &m.app.name;
    let link = host.rel(&format!("/opt/{app}/current"));
    if std::fs::read_link(&link).ok() != Some(PathBuf::from(format!("releases/{}", m.app.version)))
    {
        return false;
    }
    let release = host.rel(&format!("/opt/{app}/releases/{}", m.app.version));
    let release_ok = m
        .files
        .iter()
        .all(|f| sha256_file(&release.join(f.path.as_str())).is_ok_and(|(d, _)| d == f.sha256));
    let files_ok = cur
        .files
        .iter()
        .all(|f| sha256_file(&host.rel(&f.path)).is_ok_and(|(d, _)| d.to_hex() == f.sha256));
    if !release_ok || !files_ok {
        return false;
    }
    if host.mode == Mode::Live {
        return host
            .unit_properties(m.app.name.layout().unit_name().as_str(), &["ActiveState"])
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
        crate::recover::recover(host, &app)?;
        Some(lock)
    } else {
        None
    };
    let existing = state::load(host, &app)?;
    let current = existing.as_ref().and_then(|s| s.current.clone());
    preflight(args, &manifest, &env, current.as_ref())?;
    let the_plan = plan(&manifest, &env, host);
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
        step("verifying every file of the bundle (nothing is written)");
        // A dry run reports what would happen to each config, diffs included: the
        // environment's config members are kept in memory as they stream past (they are
        // small; one larger than MAX_DIFFED is judged by its digest, without a diff).
        let configs: Vec<&ConfigFile> = manifest
            .install
            .configs
            .iter()
            .filter(|c| c.env == env)
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
                let old = std::fs::read(host.path(&c.dest)).ok();
                let file = manifest
                    .file(c.source.as_str())
                    .expect("Manifest::validate: every config source is a member");
                report.configs.push(config_change(
                    host,
                    &app,
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
        report.message = if unchanged && args.apply == Apply::Yes {
            format!(
                "{app} {} ({env}) is already installed and active: nothing to do",
                manifest.app.version
            )
        } else if unchanged {
            format!(
                "dry run: {app} {} verified; it is already installed and active, an install would change nothing",
                manifest.app.version
            )
        } else {
            format!(
                "dry run: {app} {} verified; an install would change the host; nothing was changed",
                manifest.app.version
            )
        };
        return Ok(report);
    }

    // Stage on the filesystem the release will live on, so placing it is a rename.
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

    let mut journal = Journal::begin(
        host,
        &app,
        current.as_ref().map(|c| c.version.clone()),
        &manifest.app.version,
    )?;
    let was_active = host.mode == Mode::Live
        && current.is_some()
        && host
            .unit_properties(
                manifest.app.name.layout().unit_name().as_str(),
                &["ActiveState"],
            )
            .is_ok_and(|p| p.get("ActiveState").is_some_and(|s| s == "active"));
    let applied = apply_changes(host, &manifest, &env, staging, &mut journal, &mut report);
    let files = match applied {
        Ok(files) => files,
        Err(e) => {
            step(&format!("failed: {e:#}; undoing"));
            journal.undo().context("undoing a failed install")?;
            if host.mode == Mode::Live {
                let _ = host.systemctl(&["daemon-reload"]);
                if was_active {
                    let _ = host
                        .systemctl(&["restart", manifest.app.name.layout().unit_name().as_str()]);
                }
            }
            return Err(e);
        }
    };
    steps::reached(steps::Step::Applied);

    if host.mode == Mode::Live && args.start == Start::Yes {
        if let Err(unhealthy) = activate::start_and_check(host, &manifest) {
            let tail = host.journal_tail(manifest.app.name.layout().unit_name().as_str(), 15);
            step(&format!(
                "{app} {} is unhealthy: {}; rolling back",
                manifest.app.version, unhealthy.0
            ));
            journal
                .undo()
                .context("rolling back after a failed health check")?;
            host.systemctl(&["daemon-reload"])?;
            let unit_name = manifest.app.name.layout().unit_name();
            let unit = unit_name.as_str();
            let _ = host.systemctl(&["reset-failed", unit]);
            let restored = if let Some(prev) = &current {
                let prev_manifest = crate::recover::release_manifest(host, &app, &prev.version)?;
                activate::start_and_check(host, &prev_manifest).map_or_else(
                    |e| {
                        format!(
                            "the previous release {} is unhealthy too: {}",
                            prev.version, e.0
                        )
                    },
                    |()| format!("{} is running and healthy again", prev.version),
                )
            } else {
                let _ = host.systemctl(&["disable", "--now", unit]);
                "it was a first install: the service is stopped and removed".into()
            };
            return Err(anyhow!(RolledBack(format!(
                "{app} {} did not become healthy ({}); rolled back: {restored}. Last journal lines:\n{tail}",
                manifest.app.version, unhealthy.0
            ))));
        }
        report.started = true;
    }

    // Record, then forget the journal: from here on the new release is the installed one.
    let mut st = existing.unwrap_or(AppState {
        schema: state::STATE_SCHEMA,
        app: app.to_string(),
        current: None,
        previous: Vec::new(),
    });
    if let Some(prev) = st.current.take() {
        if prev.version != *manifest.app.version {
            st.previous.retain(|r| r.version != prev.version);
            st.previous.push(prev);
        }
    }
    st.previous.retain(|r| r.version != *manifest.app.version);
    st.current = Some(Release {
        version: manifest.app.version.to_string(),
        env: env.to_string(),
        bundle_sha256: outcome.verified.bundle.sha256.to_string(),
        manifest_sha256: manifest_sha.to_string(),
        key_id: key_id.to_string(),
        installed_at: state::now(),
        files,
    });
    crate::recover::save_release_manifest(host, &app, &manifest, &mut journal)?;
    state::save_journaled(host, &st, &mut journal)?;
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

/// Everything that changes the host before the service is started. Any error: the
/// caller undoes the journal.
fn apply_changes(
    host: &Host,
    m: &Manifest,
    env: &Name,
    staging: Staging,
    journal: &mut Journal,
    report: &mut InstallReport,
) -> Result<Vec<InstalledFile>> {
    let inst: &Install = &m.install;
    let app = &m.app.name;
    let staged = staging.path.clone();

    step(&format!(
        "creating user {} and group {}",
        inst.user, inst.group
    ));
    let sysusers_src = staged.join(format!("sysusers/{app}.conf"));
    let sysusers_dest = host.rel(&format!("/etc/sysusers.d/{app}.conf"));
    ensure_parent(&sysusers_dest, journal)?;
    let data = std::fs::read(&sysusers_src)
        .with_context(|| format!("reading {}", sysusers_src.display()))?;
    journal.put_file(&sysusers_dest, &data, 0, 0, 0o644)?;
    host.sysusers(&sysusers_dest)?;
    let accounts = Accounts::load(&host.root)?;
    let user = accounts
        .users
        .get(inst.user.as_str())
        .ok_or_else(|| anyhow!("systemd-sysusers did not create user {}", inst.user))?;
    if !is_nologin(&user.shell) {
        bail!(
            "user {} has login shell {}; expected nologin",
            inst.user,
            user.shell
        );
    }
    if accounts.gid(inst.group.as_str()).is_none() {
        bail!("systemd-sysusers did not create group {}", inst.group);
    }
    steps::reached(steps::Step::Users);

    step("creating directories with owners, modes and ACLs");
    for d in layout::ordered(&inst.directories) {
        layout::apply(host, d, &accounts, journal)?;
    }
    steps::reached(steps::Step::Directories);

    step(&format!("placing release {}", m.app.version));
    let release = host.rel(&format!("/opt/{app}/releases/{}", m.app.version));
    let same = release.is_dir()
        && m.files
            .iter()
            .all(|f| sha256_file(&release.join(f.path.as_str())).is_ok_and(|(d, _)| d == f.sha256));
    if same {
        drop(staging);
    } else {
        if release.exists() {
            let backup = journal.replaced_release(&release)?;
            std::fs::rename(&release, &backup)
                .with_context(|| format!("moving aside {}", release.display()))?;
        } else {
            journal.placed_release(&release)?;
        }
        let staged_path = staging
            .keep()
            .context("writing the staged release to disk")?;
        std::fs::rename(&staged_path, &release)
            .with_context(|| format!("moving the verified release into {}", release.display()))?;
        std::fs::set_permissions(
            &release,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        ferry_format::atomic::sync_dir(release.parent().expect("has parent"))?;
    }
    steps::reached(steps::Step::Placed);

    step("switching current");
    journal.switch_symlink(
        &host.rel(&format!("/opt/{app}/current")),
        Path::new(&format!("releases/{}", m.app.version)),
    )?;
    steps::reached(steps::Step::Switched);

    step("installing configuration");
    for c in inst.configs.iter().filter(|c| &c.env == env) {
        let data = std::fs::read(release.join(c.source.as_str()))?;
        let dest = host.path(&c.dest);
        let uid = accounts
            .uid(c.owner.as_str())
            .ok_or_else(|| anyhow!("no user {}", c.owner))?;
        let gid = accounts
            .gid(c.group.as_str())
            .ok_or_else(|| anyhow!("no group {}", c.group))?;
        let existing = std::fs::read(&dest).ok();
        let change = config_change(
            host,
            app,
            c,
            existing.as_deref(),
            m.file(c.source.as_str())
                .expect("Manifest::validate: every config source is a member")
                .sha256,
            Some(&data),
        );
        let target = match &change.new_default {
            Some(_) => PathBuf::from(format!("{}.new", dest.display())),
            None => dest,
        };
        journal.put_file(&target, &data, uid, gid, c.mode.bits())?;
        report.configs.push(change);
    }
    for s in &inst.secrets {
        let uid = accounts.uid(s.owner.as_str()).unwrap_or(0);
        let gid = accounts.gid(s.group.as_str()).unwrap_or(0);
        journal.create_if_absent(&host.path(&s.path), uid, gid, s.mode.bits())?;
    }
    steps::reached(steps::Step::Configs);

    step("installing the unit, logrotate rules and tmpfiles snippet");
    let mut files = Vec::new();
    for (src, dest, _role) in activate::system_files(m) {
        let data = std::fs::read(release.join(&src))
            .with_context(|| format!("reading {src} from the release"))?;
        let dest_path = host.rel(&dest);
        ensure_parent(&dest_path, journal)?;
        journal.put_file(&dest_path, &data, 0, 0, 0o644)?;
        files.push(InstalledFile {
            path: dest,
            sha256: ferry_format::Sha256::of(&data).to_string(),
        });
    }
    steps::reached(steps::Step::Units);
    match host.mode {
        Mode::Live => {
            host.systemctl(&["daemon-reload"])?;
            host.systemctl(&["enable", m.app.name.layout().unit_name().as_str()])?;
            if inst.service.socket_activated() {
                host.systemctl(&["enable", &m.app.name.layout().socket_name()])?;
            }
        }
        Mode::Offline => {
            host.systemctl(&["enable", m.app.name.layout().unit_name().as_str()])?;
            if inst.service.socket_activated() {
                host.systemctl(&["enable", &m.app.name.layout().socket_name()])?;
            }
        }
    }
    Ok(files)
}

/// What installing config `c` (digest `sha256`; its bytes `data` when at hand, to diff)
/// does where the host has `old`: `created`, `unchanged`, `replaced`, or `kept` (the new
/// default then goes beside it as `NAME.new`), with the diff when they differ.
fn config_change(
    host: &Host,
    app: &str,
    c: &ConfigFile,
    old: Option<&[u8]>,
    sha256: ferry_format::Sha256,
    data: Option<&[u8]>,
) -> ConfigChange {
    let change = |action, new_default, diff| ConfigChange {
        path: c.dest.to_string(),
        action,
        new_default,
        diff,
    };
    match old {
        None => change("created", None, None),
        Some(old) if ferry_format::Sha256::of(old) == sha256 => change("unchanged", None, None),
        Some(old) => {
            let diff = data.map(|d| crate::diff::unified(&c.dest.to_string(), old, d));
            // `preserve` keeps what an operator edited; a file that is still exactly a
            // default ferry installed was never edited and takes the new default.
            if c.on_upgrade == OnUpgrade::Preserve && !is_recorded_default(host, app, &c.dest, old)
            {
                change("kept", Some(format!("{}.new", c.dest)), diff)
            } else {
                change("replaced", None, diff)
            }
        }
    }
}

/// Whether `data` is byte for byte the default that a release ferry still records (the
/// current one or a kept previous one, each with the environment it was installed with)
/// put at `dest`: such a file was never edited by anyone.
pub(crate) fn is_recorded_default(host: &Host, app: &str, dest: &HostPath, data: &[u8]) -> bool {
    let Ok(Some(st)) = state::load(host, app) else {
        return false;
    };
    let digest = ferry_format::Sha256::of(data);
    st.current.iter().chain(&st.previous).any(|r| {
        crate::recover::release_manifest(host, app, &r.version).is_ok_and(|m| {
            m.install
                .configs
                .iter()
                .filter(|c| &c.dest == dest && c.env.as_str() == r.env)
                .any(|c| {
                    m.file(c.source.as_str())
                        .is_some_and(|f| f.sha256 == digest)
                })
        })
    })
}

/// Creates a missing system directory such as /etc/sysusers.d, recorded for undo.
fn ensure_parent(path: &Path, journal: &mut Journal) -> Result<()> {
    if let Some(parent) = path.parent() {
        if !parent.exists() {
            journal.created_dir(parent)?;
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn health_module_is_linked() {
        // The install flow relies on health's address parsing refusing names.
        assert!(crate::health::socket_addr("db.example:5432").is_err());
    }
}
