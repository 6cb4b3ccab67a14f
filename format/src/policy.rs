//! The host's policy (`/etc/ferry/policy.toml`): which keys may sign which apps, and the
//! largest footprint the host accepts. A valid signature says who made a bundle; the
//! policy says what the host lets it do. Without a file, [`Policy::default`] applies: no
//! privileged groups, no capability beyond `CAP_NET_BIND_SERVICE`, no existing accounts,
//! sandbox relaxations of the visibility class only. README.md, "Host policy", documents
//! every key.

mod toml;

use std::fmt;

use crate::footprint::{
    is_privileged_group, Account, AddressFamily, Capability, Diff, Footprint, Item,
};
use crate::install::{AclKind, Install, Probe};
use crate::layout::AppName;
use crate::minisign::KeyId;
use crate::sandbox::{Class, KNOBS};

pub use toml::TomlError;

/// An app-name pattern: `*` matches any run of characters, `?` one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    pub fn new(text: &str) -> Option<Self> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'.' | b'-' | b'*' | b'?')
            });
        ok.then(|| Self(text.to_owned()))
    }

    pub fn matches(&self, name: &str) -> bool {
        fn go(p: &[u8], n: &[u8]) -> bool {
            match (p.first(), n.first()) {
                (None, None) => true,
                (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
                (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
                (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
                _ => false,
            }
        }
        go(self.0.as_bytes(), name.as_bytes())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which supplementary (and existing primary) groups a service may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    /// Any group not in [`crate::footprint::PRIVILEGED_GROUPS`].
    Unprivileged,
    /// Only these.
    Only(Vec<String>),
}

/// How much network a service may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Network {
    /// Only the sockets systemd passes in (`PrivateNetwork=yes`).
    None,
    /// The host's network, limited by `IPAddressAllow=` (not `any`).
    Restricted,
    Any,
}

/// Which sandbox knobs a service may relax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxRule {
    /// Nothing: ferry's hardened baseline only.
    None,
    /// Knobs of the visibility class ([`crate::sandbox::Class`]).
    Visibility,
    /// Any knob.
    Any,
    /// These knobs (by `[service.sandbox]` key).
    Only(Vec<String>),
}

/// The largest footprint accepted: for every app, or for the apps an `[[app]]` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub capabilities: Vec<Capability>,
    pub groups: Groups,
    pub existing_accounts: Vec<String>,
    pub exec_probes: bool,
    pub network: Network,
    pub address_families: Vec<AddressFamily>,
    pub sandbox: SandboxRule,
    /// Principals (`user:NAME`, `group:NAME`) other than the service's own that a
    /// directory may give write access to.
    pub acl_write: Vec<String>,
    /// An upgrade may widen the footprint without `--allow-escalation`.
    pub upgrades_may_widen: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            capabilities: vec![Capability::NetBindService],
            groups: Groups::Unprivileged,
            existing_accounts: Vec::new(),
            exec_probes: true,
            network: Network::Any,
            address_families: vec![
                AddressFamily::Unix,
                AddressFamily::Inet,
                AddressFamily::Inet6,
                AddressFamily::Netlink,
            ],
            sandbox: SandboxRule::Visibility,
            acl_write: Vec::new(),
            upgrades_may_widen: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerRule {
    pub key: KeyId,
    pub apps: Vec<Pattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRule {
    pub name: Pattern,
    pub limits: Limits,
    /// Line of the `[[app]]` header, for messages.
    pub line: usize,
}

/// A host's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Where it came from (a path, or "the default policy"), for messages.
    pub origin: String,
    /// `None`: every trusted key may sign every app.
    pub signers: Option<Vec<SignerRule>>,
    pub footprint: Limits,
    pub apps: Vec<AppRule>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            origin: "the default policy (no /etc/ferry/policy.toml)".into(),
            signers: None,
            footprint: Limits::default(),
            apps: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{origin}:{line}: {problem}")]
pub struct PolicyError {
    pub origin: String,
    pub line: usize,
    pub problem: String,
}

/// What the policy refuses, naming the rule and where it comes from.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("policy refuses {app}: {what} ({rule}, {origin})")]
pub struct Violation {
    pub app: String,
    pub what: String,
    /// The policy key that decided, e.g. `footprint.capabilities` or `app "x".sandbox`.
    pub rule: String,
    pub origin: String,
}

use toml::Value;

fn expect_str(v: &Value, key: &str, line: usize, origin: &str) -> Result<String, PolicyError> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(PolicyError {
            origin: origin.into(),
            line,
            problem: format!("{key} must be a string"),
        }),
    }
}

fn expect_strs(
    v: &Value,
    key: &str,
    line: usize,
    origin: &str,
) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| expect_str(i, key, line, origin))
            .collect(),
        _ => Err(PolicyError {
            origin: origin.into(),
            line,
            problem: format!("{key} must be an array of strings"),
        }),
    }
}

impl Policy {
    /// Parses a policy file; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let perr = |line: usize, problem: String| PolicyError {
            origin: origin.into(),
            line,
            problem,
        };
        let doc = toml::parse(text).map_err(|e| perr(e.line, e.problem))?;
        if let Some((k, _, line)) = doc.root.entries.first() {
            return Err(perr(*line, format!("unknown top-level key {k:?} (keys belong in [footprint], [[signer]] or [[app]])")));
        }
        let mut p = Policy {
            origin: origin.to_owned(),
            signers: None,
            footprint: Limits::default(),
            apps: Vec::new(),
        };
        for (name, array, table) in &doc.tables {
            match (name.as_str(), array) {
                ("footprint", false) => {
                    p.footprint = limits(table, Limits::default(), &[], origin)?;
                }
                ("signer", true) => {
                    let mut key = None;
                    let mut apps = None;
                    for (k, v, line) in &table.entries {
                        match k.as_str() {
                            "key" => {
                                let s = expect_str(v, k, *line, origin)?;
                                key = Some(s.parse::<KeyId>().map_err(|_| {
                                    perr(
                                        *line,
                                        format!("key {s:?} is not a key id (16 hex digits)"),
                                    )
                                })?);
                            }
                            "apps" => {
                                apps = Some(
                                    expect_strs(v, k, *line, origin)?
                                        .iter()
                                        .map(|a| Pattern::new(a).ok_or_else(|| perr(*line, format!("app pattern {a:?}: lower-case names with * and ? only"))))
                                        .collect::<Result<Vec<_>, _>>()?,
                                );
                            }
                            other => {
                                return Err(perr(
                                    *line,
                                    format!("unknown key {other:?} in [[signer]] (key, apps)"),
                                ))
                            }
                        }
                    }
                    let (Some(key), Some(apps)) = (key, apps) else {
                        return Err(perr(table.line, "[[signer]] needs key and apps".into()));
                    };
                    p.signers
                        .get_or_insert_with(Vec::new)
                        .push(SignerRule { key, apps });
                }
                ("app", true) => {
                    let mut pattern = None;
                    for (k, v, line) in &table.entries {
                        if k == "name" {
                            let s = expect_str(v, k, *line, origin)?;
                            pattern = Some(Pattern::new(&s).ok_or_else(|| {
                                perr(
                                    *line,
                                    format!(
                                        "app pattern {s:?}: lower-case names with * and ? only"
                                    ),
                                )
                            })?);
                        }
                    }
                    let name =
                        pattern.ok_or_else(|| perr(table.line, "[[app]] needs name".into()))?;
                    p.apps.push(AppRule {
                        name,
                        limits: Limits::default(),
                        line: table.line,
                    });
                }
                (other, _) => {
                    return Err(perr(
                        table.line,
                        format!("unknown table {other:?} (footprint, signer, app)"),
                    ));
                }
            }
        }
        // [[app]] entries override [footprint], whatever the order in the file.
        let mut i = 0;
        for (name, array, table) in &doc.tables {
            if name == "app" && *array {
                p.apps[i].limits = limits(table, p.footprint.clone(), &["name"], origin)?;
                i += 1;
            }
        }
        Ok(p)
    }

    /// The limits for `app`: the first `[[app]]` whose name matches, else `[footprint]`,
    /// with where they come from.
    pub fn limits_for(&self, app: &str) -> (&Limits, String) {
        match self.apps.iter().find(|a| a.name.matches(app)) {
            Some(a) => (
                &a.limits,
                format!("[[app]] {} in {}:{}", a.name, self.origin, a.line),
            ),
            None => (&self.footprint, self.origin.clone()),
        }
    }

    /// May `key` sign `app`?
    pub fn check_signer(&self, key: &KeyId, app: &AppName) -> Result<(), Violation> {
        let Some(rules) = &self.signers else {
            return Ok(());
        };
        if rules
            .iter()
            .any(|r| r.key == *key && r.apps.iter().any(|p| p.matches(app.as_str())))
        {
            return Ok(());
        }
        let allowed: Vec<String> = rules
            .iter()
            .filter(|r| r.key == *key)
            .flat_map(|r| r.apps.iter().map(ToString::to_string))
            .collect();
        Err(Violation {
            app: app.to_string(),
            what: if allowed.is_empty() {
                format!("key {key} may sign no app")
            } else {
                format!("key {key} may sign only {}", allowed.join(", "))
            },
            rule: "[[signer]]".into(),
            origin: self.origin.clone(),
        })
    }

    /// Is the footprint of `inst` within what the host accepts for `app`?
    pub fn check_footprint(
        &self,
        app: &AppName,
        inst: &Install,
        env: &crate::install::Environment,
    ) -> Result<(), Violation> {
        let (lim, origin) = self.limits_for(app.as_str());
        let v = |what: String, rule: &str| Violation {
            app: app.to_string(),
            what,
            rule: format!("footprint.{rule}"),
            origin: origin.clone(),
        };
        let svc = &inst.service;
        if inst.account == Account::Existing
            && !lim
                .existing_accounts
                .iter()
                .any(|a| a == inst.user.as_str())
        {
            return Err(v(
                format!("it runs as the existing account {}", inst.user),
                "existing_accounts",
            ));
        }
        let group_ok = |g: &str| match &lim.groups {
            Groups::Unprivileged => !is_privileged_group(g),
            Groups::Only(list) => list.iter().any(|x| x == g),
        };
        if inst.account == Account::Existing && !group_ok(inst.group.as_str()) {
            return Err(v(
                format!(
                    "its primary group {} is privileged or not allowed",
                    inst.group
                ),
                "groups",
            ));
        }
        if is_privileged_group(inst.group.as_str()) && lim.groups == Groups::Unprivileged {
            return Err(v(
                format!("its primary group {} is privileged", inst.group),
                "groups",
            ));
        }
        for g in &inst.supplementary_groups {
            if !group_ok(g.as_str()) {
                return Err(v(
                    match &lim.groups {
                        Groups::Unprivileged => format!("supplementary group {g} is privileged"),
                        Groups::Only(_) => format!("supplementary group {g} is not allowed"),
                    },
                    "groups",
                ));
            }
        }
        for c in &svc.capabilities {
            if !lim.capabilities.contains(c) {
                return Err(v(
                    format!(
                        "capability {c} is not allowed (allowed: {})",
                        list(&lim.capabilities)
                    ),
                    "capabilities",
                ));
            }
        }
        for f in &svc.address_families {
            if !lim.address_families.contains(f) {
                return Err(v(
                    format!(
                        "address family {f} is not allowed (allowed: {})",
                        list(&lim.address_families)
                    ),
                    "address_families",
                ));
            }
        }
        let network = if svc.private_network {
            Network::None
        } else if svc.ip_address_allow.is_empty()
            || svc.ip_address_allow.iter().any(|a| a.as_str() == "any")
        {
            Network::Any
        } else {
            Network::Restricted
        };
        if network > lim.network {
            return Err(v(
                match lim.network {
                    Network::None => "it has the host's network; only socket activation with PrivateNetwork= is allowed".into(),
                    _ => "it may reach any address; IPAddressAllow= must restrict it".into(),
                },
                "network",
            ));
        }
        for (k, value) in env.sandbox.relaxations() {
            // Capabilities need the host's user namespace; the capability is what is
            // judged (above), not the relaxation it implies.
            if k.key == "private_users" && !svc.capabilities.is_empty() {
                continue;
            }
            let ok = match &lim.sandbox {
                SandboxRule::None => false,
                SandboxRule::Visibility => k.class == Class::Visibility,
                SandboxRule::Any => true,
                SandboxRule::Only(keys) => keys.iter().any(|x| x == k.key),
            };
            if !ok {
                return Err(v(
                    format!(
                        "sandbox {} = {value} is not allowed ({} gives {})",
                        k.key, k.directive, k.gives
                    ),
                    "sandbox",
                ));
            }
        }
        if let Probe::Exec { .. } = env.health.probe {
            if !lim.exec_probes {
                return Err(v("its health probe runs a command".into(), "exec_probes"));
            }
        }
        for d in &inst.directories {
            for e in d.acl.iter().chain(&d.default_acl) {
                let own = match e.kind {
                    AclKind::User => e.name == inst.user,
                    AclKind::Group => e.name == inst.group,
                };
                let who = match e.kind {
                    AclKind::User => format!("user:{}", e.name),
                    AclKind::Group => format!("group:{}", e.name),
                };
                if !own && e.perms & 2 != 0 && !lim.acl_write.contains(&who) {
                    return Err(v(
                        format!("{}: ACL entry {e} gives {who} write access", d.path),
                        "acl_write",
                    ));
                }
            }
            for (name, kind, bits) in [
                (&d.owner, "user", (d.mode.bits() >> 6) & 7),
                (&d.group, "group", (d.mode.bits() >> 3) & 7),
            ] {
                let own = name == &inst.user || name == &inst.group || name.as_str() == "root";
                let who = format!("{kind}:{name}");
                if !own && bits & 2 != 0 && !lim.acl_write.contains(&who) {
                    return Err(v(
                        format!("{}: owned by {who} with write access", d.path),
                        "acl_write",
                    ));
                }
                if kind == "group" && !own && bits != 0 && !group_ok(name.as_str()) {
                    return Err(v(
                        format!("{}: gives privileged group {name} access", d.path),
                        "groups",
                    ));
                }
            }
        }
        Ok(())
    }

    /// May an upgrade from `old` to `new` (footprints of the installed and the new
    /// release) go ahead? `allow_escalation` is the operator's explicit consent.
    pub fn check_upgrade(
        &self,
        app: &AppName,
        diff: &Diff,
        allow_escalation: bool,
    ) -> Result<(), Violation> {
        if !diff.widens() || allow_escalation {
            return Ok(());
        }
        let (lim, origin) = self.limits_for(app.as_str());
        if lim.upgrades_may_widen {
            return Ok(());
        }
        Err(Violation {
            app: app.to_string(),
            what: format!(
                "the upgrade widens its footprint ({}); review it with --dry-run and pass --allow-escalation",
                diff.added.iter().map(Item::describe).collect::<Vec<_>>().join("; ")
            ),
            rule: "footprint.upgrades_may_widen".into(),
            origin,
        })
    }

    /// Both checks a new install makes, in order.
    pub fn check(
        &self,
        key: &KeyId,
        app: &AppName,
        inst: &Install,
        env: &crate::install::Environment,
    ) -> Result<Footprint, Violation> {
        self.check_signer(key, app)?;
        self.check_footprint(app, inst, env)?;
        Ok(Footprint::of(app, inst, env))
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn limits(
    table: &toml::Table,
    mut l: Limits,
    skip: &[&str],
    origin: &str,
) -> Result<Limits, PolicyError> {
    let perr = |line: usize, problem: String| PolicyError {
        origin: origin.into(),
        line,
        problem,
    };
    for (k, v, line) in &table.entries {
        let line = *line;
        if skip.contains(&k.as_str()) {
            continue;
        }
        match k.as_str() {
            "capabilities" => {
                l.capabilities = expect_strs(v, k, line, origin)?
                    .iter()
                    .map(|c| {
                        Capability::parse(c)
                            .ok_or_else(|| perr(line, format!("unknown capability {c:?}")))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "groups" => {
                l.groups = match v {
                    Value::Str(s) if s == "unprivileged" => Groups::Unprivileged,
                    Value::Array(_) => Groups::Only(expect_strs(v, k, line, origin)?),
                    _ => {
                        return Err(perr(
                            line,
                            "groups must be \"unprivileged\" or an array of group names".into(),
                        ))
                    }
                };
            }
            "existing_accounts" => l.existing_accounts = expect_strs(v, k, line, origin)?,
            "exec_probes" => {
                l.exec_probes = match v {
                    Value::Bool(b) => *b,
                    _ => return Err(perr(line, "exec_probes must be true or false".into())),
                };
            }
            "upgrades_may_widen" => {
                l.upgrades_may_widen = match v {
                    Value::Bool(b) => *b,
                    _ => {
                        return Err(perr(
                            line,
                            "upgrades_may_widen must be true or false".into(),
                        ))
                    }
                };
            }
            "network" => {
                l.network = match expect_str(v, k, line, origin)?.as_str() {
                    "none" => Network::None,
                    "restricted" => Network::Restricted,
                    "any" => Network::Any,
                    other => {
                        return Err(perr(
                            line,
                            format!(
                                "network {other:?}: expected \"none\", \"restricted\" or \"any\""
                            ),
                        ))
                    }
                };
            }
            "address_families" => {
                l.address_families = expect_strs(v, k, line, origin)?
                    .iter()
                    .map(|f| {
                        AddressFamily::parse(f)
                            .ok_or_else(|| perr(line, format!("unknown address family {f:?}")))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "sandbox" => {
                l.sandbox = match v {
                    Value::Str(s) => match s.as_str() {
                        "none" => SandboxRule::None,
                        "visibility" => SandboxRule::Visibility,
                        "any" => SandboxRule::Any,
                        other => return Err(perr(line, format!("sandbox {other:?}: expected \"none\", \"visibility\", \"any\" or a list of settings"))),
                    },
                    Value::Array(_) => {
                        let keys = expect_strs(v, k, line, origin)?;
                        if let Some(bad) = keys.iter().find(|x| !KNOBS.iter().any(|kn| kn.key == x.as_str())) {
                            return Err(perr(line, format!("unknown sandbox setting {bad:?}")));
                        }
                        SandboxRule::Only(keys)
                    }
                    _ => return Err(perr(line, "sandbox must be a string or an array".into())),
                };
            }
            "acl_write" => {
                let p = expect_strs(v, k, line, origin)?;
                if let Some(bad) = p
                    .iter()
                    .find(|x| !(x.starts_with("user:") || x.starts_with("group:")))
                {
                    return Err(perr(
                        line,
                        format!("acl_write entry {bad:?}: expected user:NAME or group:NAME"),
                    ));
                }
                l.acl_write = p;
            }
            other => return Err(perr(line, format!("unknown key {other:?}"))),
        }
    }
    Ok(l)
}

#[cfg(test)]
mod tests;
