//! `ferry inspect`: what a bundle says about itself, trusting none of it.
//!
//! Besides the manifest, it shows the bundle's declared footprint (what the service may do
//! to a host beyond placing its own files, `ferry_format::footprint`), grouped for a
//! review; with `--previous OLD`, what the new release adds and drops; with `--policy
//! FILE`, whether a host with that policy would accept it. Security teams approve bundles
//! with this before they reach a host. Nothing here verifies a signature: the signer is
//! the key id the bundle claims, and the policy's signer rule is judged on that claim.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use ferry_format::archive::read_manifest_unverified;
use ferry_format::footprint::{Account, Footprint, Item};
use ferry_format::manifest::Manifest;
use ferry_format::minisign::Signature;
use ferry_format::policy::Policy;
use ferry_format::Limits;
use serde::Serialize;

use crate::exit::Usage;

pub struct InspectArgs {
    pub bundle: PathBuf,
    /// The release it would replace: show what changes.
    pub previous: Option<PathBuf>,
    /// A host policy file: say whether that host would accept the bundle.
    pub policy: Option<PathBuf>,
    /// The environment to show; `None`: the bundle's default.
    pub env: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub bundle: String,
    /// Always false: `inspect` reads the manifest without checking any signature.
    pub signature_verified: bool,
    /// Key id from the embedded signature; not verified by `inspect`.
    pub signer_key_id: String,
    pub trusted_comment: String,
    pub manifest_sha256: String,
    /// The environment whose footprint this is.
    pub env: String,
    pub footprint: FootprintView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Previous>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Verdict>,
    pub manifest: Manifest,
}

/// The footprint grouped for a reader; `items` is the flat list hosts compare.
#[derive(Debug, Serialize)]
pub struct FootprintView {
    pub account: AccountView,
    pub supplementary_groups: Vec<String>,
    pub capabilities: Vec<String>,
    pub network: NetworkView,
    pub listen: Vec<String>,
    pub writable_paths: Vec<String>,
    pub sandbox_relaxations: Vec<Relaxation>,
    pub exec_probe: Option<Vec<String>>,
    pub grants: Vec<Grant>,
    pub items: Vec<Item>,
}

#[derive(Debug, Serialize)]
pub struct AccountView {
    pub user: String,
    pub group: String,
    /// `new` (a system account ferry creates) or `existing` (one the host has).
    pub kind: Account,
}

#[derive(Debug, Serialize)]
pub struct NetworkView {
    /// The host's network; false: only the sockets systemd passes in.
    pub host_network: bool,
    /// No `IPAddressAllow=` list: any address.
    pub any_address: bool,
    pub allowed_addresses: Vec<String>,
    pub address_families: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Relaxation {
    pub setting: String,
    pub directive: String,
    pub value: String,
    /// `visibility` (sees more, read-only) or `surface` (may do more).
    pub class: ferry_format::sandbox::Class,
    pub gives: String,
}

#[derive(Debug, Serialize)]
pub struct Grant {
    pub path: String,
    pub principal: String,
    pub perms: String,
}

/// What changes from the release `--previous` names.
#[derive(Debug, Serialize)]
pub struct Previous {
    pub bundle: String,
    pub version: String,
    pub added: Vec<Item>,
    pub removed: Vec<Item>,
    /// Whether the new release asks for anything the old one did not.
    pub widens: bool,
}

/// A host policy's answer.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub file: String,
    pub accepted: bool,
    /// What the policy refuses, naming the rule and where it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// The signer rule was judged on the key id the bundle claims.
    pub signer_checked_unverified: bool,
    /// With `--previous`: why the host would refuse the upgrade unless its operator
    /// passes `--allow-escalation` (the new release widens the footprint and the policy
    /// does not let upgrades widen). Not a refusal of the bundle itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_needs_consent: Option<String>,
}

fn read(path: &Path) -> Result<(Manifest, Signature, ferry_format::Sha256)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    read_manifest_unverified(BufReader::new(file), &Limits::default())
        .with_context(|| format!("reading {}", path.display()))
}

fn view(fp: &Footprint) -> FootprintView {
    let mut v = FootprintView {
        account: AccountView {
            user: fp.user.clone(),
            group: fp.group.clone(),
            kind: fp.account,
        },
        supplementary_groups: Vec::new(),
        capabilities: Vec::new(),
        network: NetworkView {
            host_network: false,
            any_address: false,
            allowed_addresses: Vec::new(),
            address_families: Vec::new(),
        },
        listen: Vec::new(),
        writable_paths: Vec::new(),
        sandbox_relaxations: Vec::new(),
        exec_probe: None,
        grants: Vec::new(),
        items: fp.items.clone(),
    };
    for item in &fp.items {
        match item {
            // The account is shown from the footprint's own fields.
            Item::ExistingAccount { .. } => {}
            Item::SupplementaryGroup { group } => v.supplementary_groups.push(group.clone()),
            Item::Capability { capability } => v.capabilities.push(capability.clone()),
            Item::AddressFamily { family } => v.network.address_families.push(family.clone()),
            Item::HostNetwork => v.network.host_network = true,
            Item::AnyAddress => v.network.any_address = true,
            Item::Address { allow } => v.network.allowed_addresses.push(allow.clone()),
            Item::Listen { address } => v.listen.push(address.clone()),
            Item::WritablePath { path } => v.writable_paths.push(path.clone()),
            Item::Relaxed {
                setting,
                value,
                class,
            } => {
                let knob = ferry_format::sandbox::knob(setting);
                v.sandbox_relaxations.push(Relaxation {
                    setting: setting.clone(),
                    directive: knob.map_or_else(String::new, |k| format!("{}=", k.directive)),
                    value: value.clone(),
                    class: *class,
                    gives: knob.map_or_else(String::new, |k| k.gives.to_owned()),
                });
            }
            Item::ExecProbe { argv } => v.exec_probe = Some(argv.clone()),
            Item::Grant {
                path,
                principal,
                perms,
            } => v.grants.push(Grant {
                path: path.clone(),
                principal: principal.clone(),
                perms: perms.clone(),
            }),
        }
    }
    v
}

pub fn run(args: &InspectArgs) -> Result<Inspection> {
    let (manifest, sig, digest) = read(&args.bundle)?;
    let app = &manifest.app.name;
    let env = match &args.env {
        None => manifest.install.default(),
        Some(name) => ferry_format::install::Name::new(name)
            .ok()
            .and_then(|n| manifest.install.env(&n))
            .ok_or_else(|| {
                anyhow!(Usage(format!(
                    "--env {name}: the bundle has no such environment; it has {}",
                    env_names(&manifest)
                )))
            })?,
    };
    let footprint = Footprint::of(app, &manifest.install, env);
    let mut diff = None;
    let previous = match &args.previous {
        None => None,
        Some(path) => {
            let (old, _, _) = read(path)?;
            if old.app.name != *app {
                return Err(anyhow!(Usage(format!(
                    "--previous {} is a bundle of {}, not of {app}: compare releases of one app",
                    path.display(),
                    old.app.name
                ))));
            }
            // The same environment in the old release, else what it installed by default.
            let old_env = old
                .install
                .env(&env.name)
                .unwrap_or_else(|| old.install.default());
            let d = Footprint::of(&old.app.name, &old.install, old_env).diff(&footprint);
            let p = Previous {
                bundle: path.display().to_string(),
                version: old.app.version.to_string(),
                widens: d.widens(),
                added: d.added.clone(),
                removed: d.removed.clone(),
            };
            diff = Some(d);
            Some(p)
        }
    };
    let policy = match &args.policy {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the policy {}", path.display()))?;
            let policy = Policy::parse(&text, &path.display().to_string())?;
            let refusal = policy
                .check_signer(&sig.key_id, app)
                .and_then(|()| policy.check_footprint(app, &manifest.install, env))
                .err()
                .map(|v| v.to_string());
            let upgrade_needs_consent = diff
                .as_ref()
                .and_then(|d| policy.check_upgrade(app, d, false).err())
                .map(|v| v.to_string());
            Some(Verdict {
                file: path.display().to_string(),
                accepted: refusal.is_none(),
                refusal,
                signer_checked_unverified: true,
                upgrade_needs_consent,
            })
        }
    };
    Ok(Inspection {
        bundle: args.bundle.display().to_string(),
        signature_verified: false,
        signer_key_id: sig.key_id.to_string(),
        trusted_comment: sig.trusted_comment.clone(),
        manifest_sha256: digest.to_string(),
        env: env.name.to_string(),
        footprint: view(&footprint),
        previous,
        policy,
        manifest,
    })
}

impl Inspection {
    /// The policy's refusal, when `--policy` was given and refuses the bundle.
    pub fn refusal(&self) -> Option<String> {
        let v = self.policy.as_ref()?;
        v.refusal
            .as_ref()
            .map(|r| format!("{r}; inspect did not verify the bundle's signature"))
    }
}

fn env_names(m: &Manifest) -> String {
    m.install
        .environments
        .iter()
        .map(|e| e.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}

pub fn print_human(i: &Inspection) {
    let m = &i.manifest;
    println!("bundle:     {}", i.bundle);
    println!("            NOT VERIFIED: inspect checks no signature; use `ferry verify` with the release key");
    println!("app:        {} {}", m.app.name, m.app.version);
    println!("target:     {}", m.target);
    println!(
        "signer:     {} (claimed, not verified; use `ferry verify`)",
        i.signer_key_id
    );
    println!("manifest:   sha256:{}", i.manifest_sha256);
    println!("go:         {} ({})", m.build.go_version, m.build.module);
    println!(
        "source:     {}{}",
        m.build
            .source_revision
            .as_deref()
            .unwrap_or("(no revision)"),
        if m.build.source_dirty { " (dirty)" } else { "" }
    );
    println!(
        "built at:   SOURCE_DATE_EPOCH={}",
        m.build.source_date_epoch
    );
    // Programs that ran on the release machine before the compile (`--run-before`).
    for (i, step) in m.build.before.iter().enumerate() {
        println!(
            "{}{step}",
            if i == 0 {
                "before:     "
            } else {
                "            "
            }
        );
    }
    println!(
        "service:    {} as {}:{}",
        m.app.name.layout().unit_name(),
        m.install.user,
        m.install.group
    );
    println!(
        "envs:       {} (default {}; footprint of {})",
        env_names(m),
        m.install.default_env,
        i.env
    );
    print_footprint(&i.footprint);
    if let Some(p) = &i.previous {
        println!("changes from {} {} ({}):", m.app.name, p.version, p.bundle);
        if p.added.is_empty() && p.removed.is_empty() {
            println!("  (the footprint is the same)");
        }
        for a in &p.added {
            println!("  + {}", a.describe());
        }
        for r in &p.removed {
            println!("  - {}", r.describe());
        }
        if p.widens {
            println!("  the new release asks for more: hosts refuse the upgrade without --allow-escalation unless their policy lets upgrades widen");
        }
    }
    if let Some(v) = &i.policy {
        match &v.refusal {
            None => println!(
                "policy:     {}: ACCEPTED (signer {} as claimed by the bundle)",
                v.file, i.signer_key_id
            ),
            Some(r) => println!("policy:     {}: REFUSED: {r}", v.file),
        }
        if let Some(u) = &v.upgrade_needs_consent {
            println!("            as an upgrade: {u}");
        }
    }
    println!("files:");
    for f in &m.files {
        println!(
            "  {} {:>10} {:<9} {}  {}",
            f.mode,
            f.size,
            format!("{:?}", f.role).to_lowercase(),
            f.sha256,
            f.path
        );
    }
    println!("modules:");
    for md in &m.modules {
        println!(
            "  {}@{} {}",
            md.path,
            md.version,
            md.sum.as_deref().unwrap_or("-")
        );
    }
}

fn print_footprint(f: &FootprintView) {
    println!("footprint:  what the service may do beyond placing its own files");
    println!(
        "  account:        {}:{} ({})",
        f.account.user,
        f.account.group,
        match f.account.kind {
            Account::New => "a new system account ferry creates",
            Account::Existing => "an EXISTING account of the host",
        }
    );
    println!("  groups:         {}", list(&f.supplementary_groups));
    println!("  capabilities:   {}", list(&f.capabilities));
    let n = &f.network;
    let reach = if !n.host_network {
        "none of its own (PrivateNetwork=yes: only the sockets systemd passes in)".to_owned()
    } else if n.any_address {
        "the host's network, any address".to_owned()
    } else {
        format!(
            "the host's network, only {}",
            n.allowed_addresses.join(", ")
        )
    };
    println!("  network:        {reach}");
    println!("  families:       {}", list(&n.address_families));
    println!("  listen:         {}", list(&f.listen));
    println!("  writable:       {}", list(&f.writable_paths));
    if f.sandbox_relaxations.is_empty() {
        println!("  sandbox:        ferry's hardened baseline, nothing relaxed");
    } else {
        for (k, r) in f.sandbox_relaxations.iter().enumerate() {
            let class = match r.class {
                ferry_format::sandbox::Class::Visibility => "visibility",
                ferry_format::sandbox::Class::Surface => "SURFACE",
            };
            println!(
                "  {}{}{} ({class}): {}",
                if k == 0 {
                    "sandbox:        "
                } else {
                    "                "
                },
                r.directive,
                r.value,
                r.gives
            );
        }
    }
    match &f.exec_probe {
        None => println!("  exec probe:     (none)"),
        Some(argv) => println!(
            "  exec probe:     {} (run by the installer as the service user)",
            argv.join(" ")
        ),
    }
    if f.grants.is_empty() {
        println!("  grants:         (none)");
    }
    for (k, g) in f.grants.iter().enumerate() {
        println!(
            "  {}{} gets {} on {}",
            if k == 0 {
                "grants:         "
            } else {
                "                "
            },
            g.principal,
            g.perms,
            g.path
        );
    }
}
