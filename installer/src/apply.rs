//! Phase 3 of an install: every change to the host before the service starts, each
//! recorded in the journal first. Any error: the caller undoes the journal.

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::digest::sha256_file;
use ferry_format::footprint::Account;
use ferry_format::install::{ConfigFile, HostPath, Name, OnUpgrade};
use ferry_format::layout::{AppName, Layout};
use ferry_format::manifest::Manifest;
use serde::Serialize;

use crate::accounts::{is_nologin, Accounts};
use crate::host::{Host, Mode};
use crate::journal::Journal;
use crate::stage::Staging;
use crate::state::{AccountRecord, InstalledFile, Registry};
use crate::steps::{self, step, Step};

/// Largest config read back from the host to compare or diff.
pub const MAX_CONFIG: u64 = 16 << 20;

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

/// What an applied install placed outside its release directory.
pub struct Applied {
    pub files: Vec<InstalledFile>,
    pub configs: Vec<ConfigChange>,
}

/// `config.dest` + `.new`.
pub fn new_default_path(dest: &HostPath) -> HostPath {
    HostPath::new(&format!("{dest}.new")).expect("a valid path plus .new is valid")
}

/// Runs systemd-sysusers on the verified file, then checks the account is what the
/// manifest says (and records an account ferry created).
fn accounts(
    host: &Host,
    m: &Manifest,
    release_path: &std::path::Path,
    journal: &mut Journal,
) -> Result<Accounts> {
    let inst = &m.install;
    let l = m.app.name.layout();
    step(&format!(
        "creating user {} and group {}",
        inst.user, inst.group
    ));
    let data = std::fs::read(release_path.join(l.payload_sysusers().as_str()))
        .context("reading the verified sysusers file")?;
    journal.ensure_dir(&HostPath::new("/etc/sysusers.d").expect("valid"), 0o755)?;
    journal.put_root_file(&l.sysusers_file(), &data, 0o644)?;
    // The account is ferry's before it exists: a crash between its creation and the
    // record must not leave an account ferry would then refuse as someone else's.
    let record = |uid, gid| AccountRecord {
        app: m.app.name.to_string(),
        user: inst.user.to_string(),
        uid,
        group: inst.group.to_string(),
        gid,
    };
    if inst.account == Account::New {
        let before = Accounts::load(&host.root)?;
        if before.uid(inst.user.as_str()).is_none() {
            Registry::load(host)?.record(host, record(None, None))?;
        }
    }
    host.sysusers(&host.path(&l.sysusers_file()))?;
    let accounts = Accounts::load(&host.root)?;
    let user = accounts
        .users
        .get(inst.user.as_str())
        .ok_or_else(|| anyhow!("systemd-sysusers did not create user {}", inst.user))?;
    let gid = accounts
        .gid(inst.group.as_str())
        .ok_or_else(|| anyhow!("systemd-sysusers did not create group {}", inst.group))?;
    if inst.account == Account::New {
        if !is_nologin(&user.shell) {
            bail!(
                "user {} has login shell {}; expected nologin",
                inst.user,
                user.shell
            );
        }
        if user.uid == 0 || gid == 0 {
            bail!("user {} or group {} has id 0", inst.user, inst.group);
        }
        Registry::load(host)?.record(host, record(Some(user.uid), Some(gid)))?;
    }
    Ok(accounts)
}

/// Moves the staged, verified release into `/opt/APP/releases/VERSION` (unless exactly
/// that release is already there).
fn place_release(host: &Host, m: &Manifest, staging: Staging, journal: &mut Journal) -> Result<()> {
    let l = m.app.name.layout();
    let release = l.release(&m.app.version);
    let release_path = host.path(&release);
    let same = release_path.is_dir()
        && m.files.iter().all(|f| {
            sha256_file(&release_path.join(f.path.as_str())).is_ok_and(|(d, _)| d == f.sha256)
        });
    if same {
        drop(staging);
        return Ok(());
    }
    let releases = host
        .open_dir(&l.releases())?
        .ok_or_else(|| anyhow!("{} does not exist", l.releases()))?;
    let version = m.app.version.as_str();
    if releases.meta_at(version)?.is_some() {
        let backup = journal.replaced_release(&release)?;
        releases
            .rename_at(version, &releases, &backup)
            .with_context(|| format!("moving aside {release}"))?;
    } else {
        journal.placed_release(&release)?;
    }
    let staged = staging
        .keep()
        .context("writing the staged release to disk")?;
    let opt = host
        .system_dir("/opt")?
        .ok_or_else(|| anyhow!("/opt vanished"))?;
    let staged_name = staged
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("staging directory has no name"))?
        .to_owned();
    opt.rename_at(&staged_name, &releases, version)
        .with_context(|| format!("moving the verified release into {release}"))?;
    releases.must_child(version)?.chmod(0o755)?;
    releases.sync()?;
    opt.sync()?;
    Ok(())
}

/// Everything that changes the host before the service is started.
pub fn apply(
    host: &Host,
    m: &Manifest,
    env: &Name,
    staging: Staging,
    journal: &mut Journal,
) -> Result<Applied> {
    let inst = &m.install;
    let app = &m.app.name;
    let l = app.layout();
    let staged = staging.path.clone();

    let accounts = accounts(host, m, &staged, journal)?;
    steps::reached(Step::Users);

    step("creating directories with owners, modes and ACLs");
    crate::directories::apply(host, &inst.directories, &accounts, journal)?;
    steps::reached(Step::Directories);

    step(&format!("placing release {}", m.app.version));
    place_release(host, m, staging, journal)?;
    steps::reached(Step::Placed);
    let release_path = host.path(&l.release(&m.app.version));

    step("switching current");
    journal.switch_symlink(&l.current(), &Layout::current_target(&m.app.version))?;
    steps::reached(Step::Switched);

    step("installing configuration");
    let mut configs = Vec::new();
    for c in inst.configs.iter().filter(|c| &c.env == env) {
        let data = std::fs::read(release_path.join(c.source.as_str()))?;
        let uid = accounts
            .uid(c.owner.as_str())
            .ok_or_else(|| anyhow!("no user {}", c.owner))?;
        let gid = accounts
            .gid(c.group.as_str())
            .ok_or_else(|| anyhow!("no group {}", c.group))?;
        let existing = host.read_file(&c.dest, MAX_CONFIG)?;
        let sha = m
            .file(c.source.as_str())
            .expect("Manifest::validate: every config source is a member")
            .sha256;
        let change = config_change(host, app, c, existing.as_deref(), sha, Some(&data));
        let target = match &change.new_default {
            Some(_) => new_default_path(&c.dest),
            None => c.dest.clone(),
        };
        journal.put_file(&target, &data, uid, gid, c.mode.bits())?;
        configs.push(change);
    }
    for s in &inst.secrets {
        let uid = accounts.uid(s.owner.as_str()).unwrap_or(0);
        let gid = accounts.gid(s.group.as_str()).unwrap_or(0);
        journal.create_if_absent(&s.path, uid, gid, s.mode.bits())?;
    }
    steps::reached(Step::Configs);

    step("installing the unit, logrotate rules and tmpfiles snippet");
    // The sysusers file is recorded too: it is the app's, and an upgrade replaces it.
    let mut files = vec![InstalledFile {
        path: l.sysusers_file().to_string(),
        sha256: ferry_format::Sha256::of(
            &std::fs::read(release_path.join(l.payload_sysusers().as_str()))
                .context("reading the release's sysusers file")?,
        )
        .to_string(),
    }];
    for (src, dest) in crate::activate::system_files(m, env) {
        let data = std::fs::read(release_path.join(src.as_str()))
            .with_context(|| format!("reading {src} from the release"))?;
        if let Some(parent) = dest.parent() {
            journal.ensure_dir(&parent, 0o755)?;
        }
        journal.put_root_file(&dest, &data, 0o644)?;
        files.push(InstalledFile {
            path: dest.to_string(),
            sha256: ferry_format::Sha256::of(&data).to_string(),
        });
    }
    steps::reached(Step::Units);
    let unit = l.unit_name();
    if host.mode == Mode::Live {
        host.systemctl(&["daemon-reload"])?;
    }
    host.systemctl(&["enable", &unit])?;
    if inst.service.socket_activated() {
        host.systemctl(&["enable", &l.socket_name()])?;
    }
    Ok(Applied { files, configs })
}

/// What installing config `c` (digest `sha256`; its bytes `data` when at hand, to diff)
/// does where the host has `old`: `created`, `unchanged`, `replaced`, or `kept` (the new
/// default then goes beside it as `NAME.new`), with the diff when they differ.
pub fn config_change(
    host: &Host,
    app: &AppName,
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
                change("kept", Some(new_default_path(&c.dest).to_string()), diff)
            } else {
                change("replaced", None, diff)
            }
        }
    }
}

/// Whether `data` is byte for byte the default that a release ferry still records (the
/// current one or a kept previous one, each with the environment it was installed with)
/// put at `dest`: such a file was never edited by anyone.
pub fn is_recorded_default(host: &Host, app: &AppName, dest: &HostPath, data: &[u8]) -> bool {
    let Ok(Some(st)) = crate::state::load(host, app) else {
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
