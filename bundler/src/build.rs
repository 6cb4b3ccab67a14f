//! `ferry build`: project in, signed reproducible bundles out.
//!
//! Phase 1 does everything that can fail for project reasons (templates, vendoring,
//! compiling, the static check) in a private work directory. Only when every target has
//! built does phase 2 write to OUT, each file atomically, so a failed build leaves OUT
//! as it was.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use ferry_format::archive::{write_bundle, PackFile, PackOptions};
use ferry_format::atomic::{write_atomic, AtomicFile};
use ferry_format::claims::Claims;
use ferry_format::digest::{sha256_file, Sha256};
use ferry_format::manifest::{App, Build, FileEntry, Manifest, Role, Target, FORMAT_VERSION};
use ferry_format::minisign::{self, SecretKey};
use ferry_format::mode::Mode;
use serde::Serialize;

use crate::gobuild::{Need, Stamp};
use crate::progress::Progress;
use crate::project::types::{GoSymbol, LdflagsValue, Revision, StampValues, StampVar};
use crate::project::{Loaded, Project};
use crate::{before, checks, gobuild, keys, project, render, sbom, source, sums};

pub struct BuildArgs {
    /// `FERRY_PASSPHRASE`, taken out of the environment at start-up.
    pub passphrase: keys::Passphrase,
    pub dir: PathBuf,
    pub key: PathBuf,
    pub out: PathBuf,
    pub targets: Vec<Target>,
    pub strictness: checks::Strictness,
    /// `--revision`: the source revision, before git's and the module cache's.
    pub revision: Option<Revision>,
    /// `--run-before`: the release engineer agrees to run the project's `[build] before`
    /// steps on this machine.
    pub run_before: bool,
}

#[derive(Debug, Serialize)]
pub struct BuiltBundle {
    pub target: String,
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub manifest_sha256: String,
    pub signature: String,
    pub sbom: String,
    pub key_id: String,
}

#[derive(Debug, Serialize)]
pub struct BuildReport {
    pub app: String,
    pub version: String,
    pub source_date_epoch: u64,
    pub source_revision: Option<String>,
    pub go_version: String,
    pub bundles: Vec<BuiltBundle>,
    pub sha256sums: String,
    pub sha256sums_sig: String,
    pub checks: Vec<checks::CheckResult>,
}

/// Every `-X` of the build, rendered: the version variable first, then
/// `build.ldflags_x` by name. A value that uses `{{ revision }}` when none is known fails
/// here, before any work, naming the key and the ways to supply one.
pub fn stamps(p: &Project, values: &StampValues<'_>) -> Result<Vec<Stamp>> {
    let (symbol, need) = match &p.app.version_variable {
        Some(s) => (s.clone(), Need::Required),
        None => (GoSymbol::default(), Need::IfPresent),
    };
    let mut out = vec![Stamp {
        key: "app.version_variable".into(),
        symbol,
        value: LdflagsValue::new(p.app.version.as_str())
            .map_err(|e| anyhow!("app.version: {e}"))?,
        need,
    }];
    for (symbol, template) in &p.build.ldflags_x {
        let key = format!("build.ldflags_x.\"{symbol}\"");
        if values.revision.is_none() && template.uses(StampVar::Revision) {
            bail!(
                "{key} uses {{{{ revision }}}}, but no revision is known: pass \
                 `ferry build --revision REV` (a commit hash or tag), build from a git checkout \
                 (git rev-parse HEAD), or build a module in the Go module cache (go mod \
                 download -json MODULE@VERSION) whose .info records Origin.Hash"
            );
        }
        let value = template.render(values).map_err(|e| anyhow!("{key}: {e}"))?;
        out.push(Stamp {
            key,
            symbol: symbol.clone(),
            value,
            need: Need::Required,
        });
    }
    Ok(out)
}

/// The `[build] before` steps as the manifest records them.
fn before_steps(p: &Project) -> Vec<ferry_format::manifest::BeforeStep> {
    p.build.before.iter().map(|s| s.0.clone()).collect()
}

/// One target after phase 1: everything needed to pack it.
struct Prepared {
    target: Target,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    files: Vec<PackFile>,
    sbom_path: PathBuf,
    checks: Vec<checks::CheckResult>,
}

pub fn run(args: BuildArgs, progress: &Progress) -> Result<BuildReport> {
    // The key first: decrypted (and the passphrase dropped) before any child runs, and
    // an unprotected key file refused before any work.
    let sk = keys::load_secret(&args.key, args.passphrase)?;
    let loaded = project::load(&args.dir)?;
    let p = &loaded.project;
    let targets = if args.targets.is_empty() {
        loaded.targets.clone()
    } else {
        args.targets.clone()
    };
    before::require_consent(&before_steps(p), args.run_before)?;
    let git = source::git(&args.dir);
    // The module cache is asked only where git has no answer.
    let module = if git.revision.is_none() {
        source::module_info(&args.dir)
    } else {
        None
    };
    let sde = source::source_date_epoch(
        std::env::var("SOURCE_DATE_EPOCH").ok().as_deref(),
        &args.dir,
        &git,
        module.as_ref(),
    )?;
    let revision = source::revision(args.revision.as_ref(), &git, module.as_ref());
    let date = source::rfc3339(sde);
    if date.is_none() && p.build.ldflags_x.values().any(|v| v.uses(StampVar::Date)) {
        bail!("SOURCE_DATE_EPOCH={sde} is past the year 9999: {{{{ date }}}} cannot render it");
    }
    let stamps = stamps(
        p,
        &StampValues {
            version: p.app.version.as_str(),
            revision: revision.as_ref().map(Revision::as_str),
            date: date.as_deref().unwrap_or(""),
        },
    )?;
    let revision = revision.map(|r| r.to_string());
    let dirty = git.dirty;

    progress.step("rendering templates");
    let rendered = render::render(&loaded)?;

    let work = tempfile::Builder::new()
        .prefix("ferry-build-")
        .tempdir()
        .context("creating a work directory")?;
    let src = work.path().join("src");
    let out_abs = std::path::absolute(&args.out).unwrap_or_else(|_| args.out.clone());
    progress.step("copying the project into a clean build directory");
    gobuild::copy_source(&args.dir, &src, &[out_abs])?;
    before::run(&before_steps(p), &src, sde, progress)?;
    let payload_dir = work.path().join("payload");

    // The template checks only read the rendered files, and each target builds from the
    // same vendored tree into its own directory: they run side by side. Results and
    // errors are taken in the old order (checks, then targets in order), so output and
    // bundles do not depend on which finishes first.
    let (checks, built) = std::thread::scope(|s| {
        let checks = s.spawn(|| checks::run(&loaded, &rendered, args.strictness, progress));
        let built = (|| -> Result<(String, Vec<Prepared>)> {
            progress.step("go mod download, verify, vendor");
            gobuild::vendor(&src)?;
            let go_version = gobuild::go_version()?;
            let prepared = each_in_parallel(&targets, |&target| {
                progress.step(&format!("go build for {target}"));
                prepare_target(
                    &loaded,
                    &rendered,
                    &src,
                    &payload_dir,
                    &stamps,
                    target,
                    sde,
                    revision.clone(),
                    dirty,
                    args.strictness,
                    progress,
                )
            })?;
            Ok((go_version, prepared))
        })();
        (checks.join().expect("the check thread panicked"), built)
    });
    let mut check_results = checks?;
    let (go_version, prepared) = built?;

    for prep in &prepared {
        check_results.extend(prep.checks.iter().cloned());
    }
    // Phase 2: nothing above wrote to OUT.
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    // Each target's bundle is its own file: packed side by side, reported in order.
    let bundles = each_in_parallel(&prepared, |prep| {
        progress.step(&format!("packing {}", prep.manifest.bundle_file_name()));
        pack(
            &loaded,
            prep,
            &sk,
            &args.out,
            sde,
            p.build.zstd_level.get(),
            progress,
        )
    })?;
    progress.step("writing SHA256SUMS and SHA256SUMS.sig");
    let (sums_path, sums_sig) = sums::write(&args.out, &sk)?;
    progress.finish();
    Ok(BuildReport {
        app: p.app.name.to_string(),
        version: p.app.version.to_string(),
        source_date_epoch: sde,
        source_revision: revision,
        go_version,
        bundles,
        sha256sums: sums_path.display().to_string(),
        sha256sums_sig: sums_sig.display().to_string(),
        checks: check_results,
    })
}

/// `f` on every item, each on its own thread; the results in the items' order, and of
/// several errors the first item's.
fn each_in_parallel<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    std::thread::scope(|s| {
        let f = &f;
        let workers: Vec<_> = items.iter().map(|item| s.spawn(move || f(item))).collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a worker thread panicked"))
            .collect()
    })
}

#[allow(clippy::too_many_arguments)]
fn prepare_target(
    loaded: &Loaded,
    rendered: &render::Rendered,
    src: &Path,
    payload_root: &Path,
    stamps: &[Stamp],
    target: Target,
    sde: u64,
    revision: Option<String>,
    dirty: bool,
    strictness: checks::Strictness,
    progress: &Progress,
) -> Result<Prepared> {
    let p = &loaded.project;
    let l = p.layout();
    let root = payload_root.join(target.arch.as_str());
    let bin_rel = l.payload_binary();
    let bin_path = root.join(bin_rel.as_str());
    std::fs::create_dir_all(bin_path.parent().expect("has parent"))?;
    let unstamped = gobuild::build(loaded, src, target, &bin_path, stamps)?;
    crate::elf::check_static(&bin_path, target.arch)?;
    let binary_checks = checks::binary(loaded, &bin_path, &unstamped, strictness, progress)?;
    let info = gobuild::build_info(&bin_path, &src.join("go.sum"))?;
    let (bin_sha, bin_size) = sha256_file(&bin_path)?;

    let mut entries: Vec<(FileEntry, PathBuf)> = vec![(
        FileEntry {
            path: bin_rel,
            size: bin_size,
            mode: Mode::parse("0755")?,
            role: Role::Binary,
            sha256: bin_sha,
        },
        bin_path,
    )];
    for f in &rendered.files {
        let dest = root.join(f.path.as_str());
        std::fs::create_dir_all(dest.parent().expect("has parent"))?;
        std::fs::write(&dest, &f.data).with_context(|| format!("writing {}", dest.display()))?;
        entries.push((
            FileEntry {
                path: f.path.clone(),
                size: f.data.len() as u64,
                mode: f.mode,
                role: f.role,
                sha256: Sha256::of(&f.data),
            },
            dest,
        ));
    }
    let sbom_bytes = sbom::cyclonedx(&sbom::SbomInput {
        app: p.app.name.as_str(),
        version: p.app.version.as_str(),
        description: p.app.description.as_str(),
        module: &info.module,
        target,
        go_version: &info.go_version,
        modules: &info.modules,
        binary_sha256: bin_sha,
        source_date_epoch: sde,
    });
    let sbom_rel = l.payload_sbom();
    let sbom_path = root.join(sbom_rel.as_str());
    std::fs::create_dir_all(sbom_path.parent().expect("has parent"))?;
    std::fs::write(&sbom_path, &sbom_bytes)?;
    entries.push((
        FileEntry {
            path: sbom_rel,
            size: sbom_bytes.len() as u64,
            mode: Mode::parse("0644")?,
            role: Role::Sbom,
            sha256: Sha256::of(&sbom_bytes),
        },
        sbom_path.clone(),
    ));
    entries.sort_by(|a, b| a.0.path.cmp(&b.0.path));

    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        app: App {
            name: p.app.name.clone(),
            version: p.app.version.clone(),
            description: p.app.description.clone(),
        },
        target,
        build: Build {
            go_version: info.go_version,
            ferry_version: env!("CARGO_PKG_VERSION").to_owned(),
            module: info.module,
            package: p.app.package.to_string(),
            source_revision: revision,
            source_dirty: dirty,
            source_date_epoch: sde,
            settings: info.settings,
            before: before_steps(p),
        },
        modules: info.modules,
        files: entries.iter().map(|(e, _)| e.clone()).collect(),
        install: rendered.install.clone(),
    };
    // The bundler checks what the installer will check, so it never ships a bundle the
    // installer would refuse.
    manifest
        .validate(&ferry_format::Limits::default())
        .context("the manifest ferry built is invalid")?;
    render::refuse_unrendered(&manifest)?;
    // The same check every reader makes: a template override that says more than the
    // manifest fails here, before anything is signed.
    render::conform(&manifest, &rendered.files)?;
    let files = entries
        .into_iter()
        .map(|(e, source)| PackFile {
            path: e.path,
            mode: e.mode,
            source,
            size: e.size,
            sha256: e.sha256,
        })
        .collect();
    Ok(Prepared {
        target,
        manifest_bytes: manifest.to_bytes(),
        manifest,
        files,
        sbom_path,
        checks: binary_checks,
    })
}

fn pack(
    loaded: &Loaded,
    prep: &Prepared,
    sk: &SecretKey,
    out: &Path,
    sde: u64,
    level: i32,
    progress: &Progress,
) -> Result<BuiltBundle> {
    let name = prep.manifest.bundle_file_name();
    let manifest_sha = Sha256::of(&prep.manifest_bytes);
    let claims = Claims::for_manifest(&prep.manifest, manifest_sha);
    let manifest_sig = minisign::sign(
        sk,
        &prep.manifest_bytes,
        &claims.trusted_comment(sde, "manifest.json"),
        "ferry manifest signature",
    )?
    .to_file_string();

    let dest = out.join(&name);
    let mut file =
        AtomicFile::create(&dest, 0o644).with_context(|| format!("creating {}", dest.display()))?;
    let threads =
        std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1));
    let total: u64 = prep.files.iter().map(|f| f.size).sum();
    let bar = progress.bytes(total);
    let (_, digests) = write_bundle(
        std::io::BufWriter::with_capacity(1 << 20, file.file()),
        &prep.manifest_bytes,
        manifest_sig.as_bytes(),
        &prep.files,
        &PackOptions {
            level,
            threads,
            mtime: sde,
        },
        &mut |n| bar.inc(n),
    )
    .with_context(|| format!("writing {}", dest.display()))?;
    bar.finish_and_clear();
    file.commit()
        .with_context(|| format!("writing {}", dest.display()))?;

    let sig = minisign::sign_prehashed(
        sk,
        &digests.blake2b512,
        &claims.trusted_comment(sde, &name),
        "signature from ferry secret key",
    )?;
    let sig_path = ferry_format::verify::detached_path(&dest);
    write_atomic(&sig_path, sig.to_file_string().as_bytes(), 0o644)
        .with_context(|| format!("writing {}", sig_path.display()))?;

    let sbom_dest = out.join(format!(
        "{}-{}-linux-{}.cdx.json",
        loaded.project.app.name, loaded.project.app.version, prep.target.arch
    ));
    let sbom_data = std::fs::read(&prep.sbom_path)?;
    write_atomic(&sbom_dest, &sbom_data, 0o644)
        .with_context(|| format!("writing {}", sbom_dest.display()))?;
    Ok(BuiltBundle {
        target: prep.target.to_string(),
        path: dest.display().to_string(),
        size: digests.size,
        sha256: digests.sha256.to_string(),
        manifest_sha256: manifest_sha.to_string(),
        signature: sig_path.display().to_string(),
        sbom: sbom_dest.display().to_string(),
        key_id: sk.key_id().to_string(),
    })
}

/// Progress bars only when a person is watching.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(extra: &str) -> Project {
        crate::project::parse(&format!("[app]\nname = \"a\"\nversion = \"1.0\"\n{extra}")).unwrap()
    }

    #[test]
    fn stamps_render_version_first_then_ldflags_x_by_name() {
        let p = project(
            "version_variable = \"main.v\"\n[build]\nldflags_x = { \"main.z\" = \"{{ date }}\", \"main.a\" = \"{{ version }}+{{ revision }}\" }\n",
        );
        let values = StampValues {
            version: "1.0",
            revision: Some("abc1234"),
            date: "2023-11-14T22:13:20Z",
        };
        let got: Vec<(String, String, String)> = stamps(&p, &values)
            .unwrap()
            .into_iter()
            .map(|s| (s.key, s.symbol.to_string(), s.value.to_string()))
            .collect();
        let want = [
            ("app.version_variable", "main.v", "1.0"),
            ("build.ldflags_x.\"main.a\"", "main.a", "1.0+abc1234"),
            (
                "build.ldflags_x.\"main.z\"",
                "main.z",
                "2023-11-14T22:13:20Z",
            ),
        ];
        assert_eq!(
            got,
            want.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
        );
        assert_eq!(
            gobuild::ldflags(&stamps(&p, &values).unwrap()),
            "-s -w -buildid= -dumpdep -X main.v=1.0 -X main.a=1.0+abc1234 -X main.z=2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn only_a_version_variable_the_project_names_is_required() {
        let values = StampValues {
            version: "1.0",
            revision: None,
            date: "",
        };
        for (extra, symbol, need) in [
            ("", "main.version", Need::IfPresent),
            (
                "version_variable = \"main.version\"\n",
                "main.version",
                Need::Required,
            ),
            (
                "version_variable = \"example.com/v.V\"\n",
                "example.com/v.V",
                Need::Required,
            ),
        ] {
            let st = &stamps(&project(extra), &values).unwrap()[0];
            assert_eq!((st.symbol.as_str(), st.need), (symbol, need), "{extra:?}");
        }
    }

    #[test]
    fn a_revision_nobody_supplied_names_the_key_and_the_three_ways() {
        let p = project("[build]\nldflags_x = { \"main.commit\" = \"{{ revision }}\" }\n");
        let values = StampValues {
            version: "1.0",
            revision: None,
            date: "",
        };
        let e = stamps(&p, &values).unwrap_err().to_string();
        for needle in [
            "build.ldflags_x.\"main.commit\" uses {{ revision }}",
            "--revision REV",
            "git checkout",
            "Go module cache",
        ] {
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
        assert!(!e.contains('\n'));
        // Without {{ revision }} nothing needs one.
        stamps(&project(""), &values).unwrap();
    }
}
