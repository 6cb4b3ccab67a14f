//! `ferry pack`: an already-built payload tree in, a signed reproducible bundle out.
//!
//! The pack step of `ferry build` without Go or templates: every regular file under DIR
//! becomes a payload entry, its role taken from its top-level directory (`bin/` binary,
//! `config/` config, `systemd/` unit, ...). The install section is the one a `ferry.toml`
//! with only `[app]` gets (default directories, user and group named after the app, no
//! health probe); `config/ENV/NAME` files are installed as `/etc/APP/NAME` for
//! environment ENV. The tree must hold a binary; ferry's default unit
//! (`systemd/ENV/APP.service`, one per environment) and sysusers snippet are added unless
//! the tree brings its own.
//!
//! Same tree, same flags and same `SOURCE_DATE_EPOCH`: same bytes.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::archive::{write_bundle, PackFile, PackOptions};
use ferry_format::atomic::{write_atomic, AtomicFile};
use ferry_format::claims::Claims;
use ferry_format::digest::{Hasher, Sha256};
use ferry_format::install::{ConfigFile, Environment, Install, Name, OnUpgrade, Text};
use ferry_format::layout::AppName;
use ferry_format::manifest::{
    App, Build, FileEntry, Manifest, Role, Target, Version, FORMAT_VERSION,
};
use ferry_format::minisign;
use ferry_format::mode::Mode;
use ferry_format::EntryPath;
use serde::Serialize;

use crate::{keys, project, render};

pub struct PackArgs {
    /// `FERRY_PASSPHRASE`, taken out of the environment at start-up.
    pub passphrase: keys::Passphrase,
    /// The payload tree.
    pub dir: PathBuf,
    pub app: String,
    pub version: String,
    pub target: Target,
    pub key: PathBuf,
    /// The bundle file; its detached signature goes beside it as `OUT.minisig`.
    pub out: PathBuf,
    /// zstd level, 1..=22.
    pub level: i32,
}

#[derive(Debug, Serialize)]
pub struct PackReport {
    pub app: String,
    pub version: String,
    pub target: String,
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub manifest_sha256: String,
    pub signature: String,
    pub key_id: String,
    pub files: usize,
    pub payload_bytes: u64,
    pub source_date_epoch: u64,
}

/// `SOURCE_DATE_EPOCH`: a payload tree has no commit to take the time from.
fn source_date_epoch() -> Result<u64> {
    let v = std::env::var("SOURCE_DATE_EPOCH").map_err(|_| {
        anyhow!("SOURCE_DATE_EPOCH is not set: set it so the bundle's timestamps are reproducible")
    })?;
    v.trim()
        .parse()
        .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a Unix time"))
}

/// The role of a payload path, from its top-level directory.
fn role_of(path: &str) -> Role {
    match path.split_once('/').map(|(top, _)| top) {
        Some("bin") => Role::Binary,
        Some("config") => Role::Config,
        Some("systemd") => Role::Unit,
        Some("logrotate") => Role::Logrotate,
        Some("sysusers") => Role::Sysusers,
        Some("tmpfiles") => Role::Tmpfiles,
        Some("sbom") => Role::Sbom,
        _ => Role::Doc,
    }
}

/// The mode a file gets in the bundle: fixed per role where `ferry build` fixes it, else
/// from the executable bit only, so a umask does not change the bytes.
fn mode_of(role: Role, executable: bool) -> &'static str {
    match role {
        Role::Binary => "0755",
        Role::Config => "0640",
        _ if executable => "0755",
        _ => "0644",
    }
}

/// Every regular file under `dir`, as (entry path, source, mode, role), sorted by path.
fn collect(dir: &Path) -> Result<Vec<(EntryPath, PathBuf, Mode, Role)>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .expect("walkdir stays below its root");
        let rel_str = rel
            .to_str()
            .ok_or_else(|| anyhow!("{}: the path is not UTF-8", entry.path().display()))?;
        if !ft.is_file() {
            bail!(
                "{}: only regular files can be packed (no links, devices or FIFOs)",
                entry.path().display()
            );
        }
        let path = EntryPath::new(rel_str)
            .with_context(|| format!("{} as a payload path", entry.path().display()))?;
        let meta = entry
            .metadata()
            .with_context(|| format!("reading {}", entry.path().display()))?;
        let role = role_of(rel_str);
        let mode = Mode::parse(mode_of(role, meta.permissions().mode() & 0o111 != 0))?;
        files.push((path, entry.path().to_path_buf(), mode, role));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// SHA-256 and size of every file, on every core: the manifest, which holds them, is the
/// archive's first member, so this pass comes before packing.
fn digest_all(sources: &[&Path]) -> Result<Vec<(Sha256, u64)>> {
    type Slot = Option<std::io::Result<(Sha256, u64)>>;
    let results: Mutex<Vec<Slot>> = Mutex::new((0..sources.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(sources.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = sources.get(i) else { break };
                    let r = digest_file(path, &mut buf);
                    results.lock().expect("no worker panics holding the lock")[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no worker panics holding the lock")
        .into_iter()
        .zip(sources)
        .map(|(r, path)| {
            r.expect("every index was taken by a worker")
                .with_context(|| format!("reading {}", path.display()))
        })
        .collect()
}

fn digest_file(path: &Path, buf: &mut [u8]) -> std::io::Result<(Sha256, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Hasher::new();
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let len = h.len();
    Ok((h.finish(), len))
}

/// The default project's install section with the configs found under
/// `config/ENV/NAME`, each installed as `/etc/APP/NAME` in environment ENV.
fn install_section(mut install: Install, app: &AppName, files: &[FileEntry]) -> Result<Install> {
    let l = app.layout();
    let mut configs = Vec::new();
    let mut envs: Vec<Name> = Vec::new();
    for f in files.iter().filter(|f| f.role == Role::Config) {
        let parts: Vec<&str> = f.path.as_str().split('/').collect();
        let (env, file) = match parts[..] {
            [_, env, file] => (Name::new(env).ok(), file),
            _ => (None, ""),
        };
        let Some(env) = env else {
            bail!(
                "{}: a config must be config/ENV/NAME (ENV a lower-case environment name), installed as {}/NAME",
                f.path,
                l.etc()
            );
        };
        if !envs.contains(&env) {
            envs.push(env.clone());
        }
        configs.push(ConfigFile {
            env,
            source: f.path.clone(),
            dest: l.config_file(file)?,
            owner: Name::new("root")?,
            group: install.group.clone(),
            mode: Mode::parse("0640")?,
            on_upgrade: OnUpgrade::Preserve,
        });
    }
    if envs.is_empty() {
        envs.push(install.default_env.clone());
    }
    envs.sort();
    // Every environment runs the default project's unit, sandbox and (no) probe.
    let template = install.default().clone();
    install.default_env = envs[0].clone();
    install.environments = envs
        .into_iter()
        .map(|name| Environment {
            name,
            ..template.clone()
        })
        .collect();
    install.configs = configs;
    Ok(install)
}

/// The environments the tree's `config/ENV/NAME` files name, sorted; none: `default`.
fn config_envs(paths: impl Iterator<Item = EntryPath>) -> Vec<Name> {
    let mut envs: Vec<Name> = paths
        .filter_map(|p| match p.as_str().split('/').collect::<Vec<_>>()[..] {
            ["config", env, _] => Name::new(env).ok(),
            _ => None,
        })
        .collect();
    envs.sort();
    envs.dedup();
    if envs.is_empty() {
        envs.push(Name::new("default").expect("a valid name"));
    }
    envs
}

pub fn run(args: PackArgs) -> Result<PackReport> {
    let usage = |msg: String| anyhow!(crate::exit::Usage(msg));
    let app = AppName::new(&args.app).map_err(|e| usage(format!("--app: {e}")))?;
    let version = Version::new(&args.version).map_err(|e| usage(format!("--version: {e}")))?;
    // An output inside DIR would be packed by the next run: not byte-identical on repeat.
    let (dir_abs, out_abs) = (
        std::path::absolute(&args.dir)?,
        std::path::absolute(&args.out)?,
    );
    if out_abs.starts_with(&dir_abs) {
        return Err(usage(format!(
            "--out {} is inside {}, which is what gets packed",
            args.out.display(),
            args.dir.display()
        )));
    }
    let sde = source_date_epoch()?;
    let sk = keys::load_secret(&args.key, args.passphrase)?;
    let l = app.layout();

    // The files ferry generates for the default footprint; the tree's own versions, where
    // it has them, replace them and must conform to the same footprint.
    let loaded = project::Loaded {
        dir: args.dir.clone(),
        // The minimal project names no template; the root is canonical all the same.
        root: project::files::canonical_root(&args.dir)
            .with_context(|| format!("reading {}", args.dir.display()))?,
        project: project::Project::minimal(app.clone(), version.clone()),
        targets: vec![args.target],
    };
    let rendered = render::render(&loaded)?;
    let work = tempfile::Builder::new()
        .prefix("ferry-pack-")
        .tempdir()
        .context("creating a work directory")?;
    let mut found = collect(&args.dir)?;
    // Where each file's bytes come from, for messages.
    let mut origin: BTreeMap<EntryPath, String> = found
        .iter()
        .map(|f| (f.0.clone(), f.1.display().to_string()))
        .collect();
    let socket = l.payload_socket();
    if found.iter().any(|f| f.0 == socket) {
        bail!(
            "{socket}: ferry pack declares no listen addresses (the default footprint); build socket-activated services with ferry build"
        );
    }
    // The default unit serves every environment the configs name, unless the tree
    // brings its own `systemd/ENV/APP.service`.
    let envs = config_envs(found.iter().map(|f| f.0.clone()));
    let default_unit = l.payload_unit(&rendered.install.default_env);
    for f in rendered.files.iter().filter(|f| f.role != Role::Config) {
        let paths = if f.path == default_unit {
            envs.iter().map(|e| l.payload_unit(e)).collect()
        } else {
            vec![f.path.clone()]
        };
        for path in paths {
            if found.iter().any(|x| x.0 == path) {
                continue;
            }
            let dest = work.path().join(path.as_str());
            std::fs::create_dir_all(dest.parent().expect("has parent"))?;
            std::fs::write(&dest, &f.data)?;
            origin.insert(path.clone(), f.template.clone());
            found.push((path, dest, f.mode, f.role));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let sources: Vec<&Path> = found.iter().map(|f| f.1.as_path()).collect();
    let digests = digest_all(&sources)?;
    let entries: Vec<FileEntry> = found
        .iter()
        .zip(&digests)
        .map(|((path, _, mode, role), &(sha256, size))| FileEntry {
            path: path.clone(),
            size,
            mode: *mode,
            role: *role,
            sha256,
        })
        .collect();
    let install = install_section(rendered.install.clone(), &app, &entries)?;
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        app: App {
            name: app.clone(),
            version,
            description: Text::default(),
        },
        target: args.target,
        build: Build {
            go_version: String::new(),
            ferry_version: env!("CARGO_PKG_VERSION").to_owned(),
            module: String::new(),
            package: String::new(),
            source_revision: None,
            source_dirty: false,
            source_date_epoch: sde,
            settings: Vec::new(),
            before: Vec::new(),
        },
        modules: Vec::new(),
        files: entries,
        install,
    };
    manifest
        .validate(&ferry_format::Limits::default())
        .with_context(|| format!("{} cannot be packed as a bundle", args.dir.display()))?;
    render::refuse_unrendered(&manifest)?;
    // The generated files and configs are text the installer writes under /etc: held to
    // the footprint, and scanned for secrets like everything `ferry build` renders.
    let texts: Vec<render::RenderedFile> = found
        .iter()
        .zip(&manifest.files)
        .filter(|(_, e)| {
            e.role == Role::Config || ferry_format::conform::is_generated(&manifest, &e.path)
        })
        .map(|(f, e)| {
            Ok(render::RenderedFile {
                path: e.path.clone(),
                mode: e.mode,
                role: e.role,
                data: std::fs::read(&f.1).with_context(|| format!("reading {}", f.1.display()))?,
                template: origin.get(&e.path).cloned().unwrap_or_default(),
            })
        })
        .collect::<Result<_>>()?;
    for f in &texts {
        render::refuse_secrets(
            f.path.as_str(),
            &f.template,
            &String::from_utf8_lossy(&f.data),
        )?;
    }
    render::conform(&manifest, &texts)?;
    let manifest_bytes = manifest.to_bytes();
    let manifest_sha = Sha256::of(&manifest_bytes);
    let claims = Claims::for_manifest(&manifest, manifest_sha);
    let name = args
        .out
        .file_name()
        .ok_or_else(|| anyhow!("--out {} names no file", args.out.display()))?
        .to_string_lossy()
        .into_owned();
    let manifest_sig = minisign::sign(
        &sk,
        &manifest_bytes,
        &claims.trusted_comment(sde, "manifest.json"),
        "ferry manifest signature",
    )?
    .to_file_string();

    let files: Vec<PackFile> = manifest
        .files
        .iter()
        .zip(&found)
        .map(|(e, f)| PackFile {
            path: e.path.clone(),
            mode: e.mode,
            source: f.1.clone(),
            size: e.size,
            sha256: e.sha256,
        })
        .collect();
    let mut file = AtomicFile::create(&args.out, 0o644)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let threads =
        std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1));
    let (_, out_digests) = write_bundle(
        std::io::BufWriter::with_capacity(1 << 20, file.file()),
        &manifest_bytes,
        manifest_sig.as_bytes(),
        &files,
        &PackOptions {
            level: args.level,
            threads,
            mtime: sde,
        },
        &mut |_| {},
    )
    .with_context(|| format!("writing {}", args.out.display()))?;
    file.commit()
        .with_context(|| format!("writing {}", args.out.display()))?;

    let sig = minisign::sign_prehashed(
        &sk,
        &out_digests.blake2b512,
        &claims.trusted_comment(sde, &name),
        "signature from ferry secret key",
    )?;
    let sig_path = ferry_format::verify::detached_path(&args.out);
    write_atomic(&sig_path, sig.to_file_string().as_bytes(), 0o644)
        .with_context(|| format!("writing {}", sig_path.display()))?;
    Ok(PackReport {
        app: args.app,
        version: args.version,
        target: args.target.to_string(),
        path: args.out.display().to_string(),
        size: out_digests.size,
        sha256: out_digests.sha256.to_string(),
        manifest_sha256: manifest_sha.to_string(),
        signature: sig_path.display().to_string(),
        key_id: sk.key_id().to_string(),
        files: manifest.files.len(),
        payload_bytes: manifest.files.iter().map(|f| f.size).sum(),
        source_date_epoch: sde,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_the_top_level_directory() {
        assert_eq!(role_of("bin/app"), Role::Binary);
        assert_eq!(role_of("config/prod/app.toml"), Role::Config);
        assert_eq!(role_of("systemd/prod/app.service"), Role::Unit);
        assert_eq!(role_of("sysusers/app.conf"), Role::Sysusers);
        assert_eq!(role_of("share/data.bin"), Role::Doc);
        assert_eq!(role_of("README"), Role::Doc);
    }

    #[test]
    fn modes_do_not_depend_on_the_umask() {
        assert_eq!(mode_of(Role::Binary, false), "0755");
        assert_eq!(mode_of(Role::Config, true), "0640");
        assert_eq!(mode_of(Role::Doc, true), "0755");
        assert_eq!(mode_of(Role::Doc, false), "0644");
    }

    #[test]
    fn configs_per_environment_are_installed_under_etc() {
        let file = |path: &str, role| FileEntry {
            path: EntryPath::new(path).unwrap(),
            size: 0,
            mode: Mode::parse("0640").unwrap(),
            role,
            sha256: Sha256::of(b""),
        };
        let files = [
            file("bin/app", Role::Binary),
            file("config/dev/app.toml", Role::Config),
            file("config/prod/app.toml", Role::Config),
            file("systemd/dev/app.service", Role::Unit),
        ];
        let app = AppName::new("app").unwrap();
        let base = || {
            let loaded = project::Loaded {
                dir: std::path::PathBuf::from("/nonexistent"),
                root: std::path::PathBuf::from("/nonexistent"),
                project: project::Project::minimal(app.clone(), Version::new("1.0").unwrap()),
                targets: Vec::new(),
            };
            render::render(&loaded).unwrap().install
        };
        let inst = install_section(base(), &app, &files).unwrap();
        let envs: Vec<&str> = inst.environments.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(envs, ["dev", "prod"]);
        assert_eq!(inst.default_env.as_str(), "dev");
        assert_eq!(inst.configs[1].dest.as_str(), "/etc/app/app.toml");
        assert_eq!(inst.user.as_str(), "app");
        assert!(!inst.service.socket_activated());
        let none = install_section(base(), &app, &files[..1]).unwrap();
        assert_eq!(none.default_env.as_str(), "default");
        let stray = [file("config/app.toml", Role::Config)];
        let e = install_section(base(), &app, &stray)
            .unwrap_err()
            .to_string();
        assert!(e.contains("config/ENV/NAME"), "{e}");
    }
}
