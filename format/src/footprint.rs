//! A service's declared footprint: everything a bundle may do to a host beyond placing its
//! own files. The manifest's install section declares it, the generated unit, socket,
//! sysusers, tmpfiles and logrotate files must conform to it ([`crate::conform`]), the host
//! policy bounds it ([`crate::policy`]), and reviews show it ([`Footprint`], [`Diff`]).

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::install::{AclKind, HostPath, Install, Name, Probe};
use crate::layout::AppName;

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($variant:ident = $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)* _ => None }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.as_str()) }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| serde::de::Error::custom(format!(
                    concat!("unknown ", $what, " {:?}"), s.chars().take(40).collect::<String>()
                )))
            }
        }
    };
}

named_enum!(
    /// A Linux capability (capabilities(7)), as systemd spells it.
    Capability, "capability", {
    AuditControl = "CAP_AUDIT_CONTROL",
    AuditRead = "CAP_AUDIT_READ",
    AuditWrite = "CAP_AUDIT_WRITE",
    BlockSuspend = "CAP_BLOCK_SUSPEND",
    Bpf = "CAP_BPF",
    CheckpointRestore = "CAP_CHECKPOINT_RESTORE",
    Chown = "CAP_CHOWN",
    DacOverride = "CAP_DAC_OVERRIDE",
    DacReadSearch = "CAP_DAC_READ_SEARCH",
    Fowner = "CAP_FOWNER",
    Fsetid = "CAP_FSETID",
    IpcLock = "CAP_IPC_LOCK",
    IpcOwner = "CAP_IPC_OWNER",
    Kill = "CAP_KILL",
    Lease = "CAP_LEASE",
    LinuxImmutable = "CAP_LINUX_IMMUTABLE",
    MacAdmin = "CAP_MAC_ADMIN",
    MacOverride = "CAP_MAC_OVERRIDE",
    Mknod = "CAP_MKNOD",
    NetAdmin = "CAP_NET_ADMIN",
    NetBindService = "CAP_NET_BIND_SERVICE",
    NetBroadcast = "CAP_NET_BROADCAST",
    NetRaw = "CAP_NET_RAW",
    Perfmon = "CAP_PERFMON",
    Setfcap = "CAP_SETFCAP",
    Setgid = "CAP_SETGID",
    Setpcap = "CAP_SETPCAP",
    Setuid = "CAP_SETUID",
    SysAdmin = "CAP_SYS_ADMIN",
    SysBoot = "CAP_SYS_BOOT",
    SysChroot = "CAP_SYS_CHROOT",
    SysModule = "CAP_SYS_MODULE",
    SysNice = "CAP_SYS_NICE",
    SysPacct = "CAP_SYS_PACCT",
    SysPtrace = "CAP_SYS_PTRACE",
    SysRawio = "CAP_SYS_RAWIO",
    SysResource = "CAP_SYS_RESOURCE",
    SysTime = "CAP_SYS_TIME",
    SysTtyConfig = "CAP_SYS_TTY_CONFIG",
    Syslog = "CAP_SYSLOG",
    WakeAlarm = "CAP_WAKE_ALARM",
});

named_enum!(
    /// A socket address family a service may use (`RestrictAddressFamilies=`).
    AddressFamily, "address family", {
    Unix = "AF_UNIX",
    Inet = "AF_INET",
    Inet6 = "AF_INET6",
    Netlink = "AF_NETLINK",
    Packet = "AF_PACKET",
    Vsock = "AF_VSOCK",
    Can = "AF_CAN",
    Bluetooth = "AF_BLUETOOTH",
    Alg = "AF_ALG",
    Tipc = "AF_TIPC",
    Xdp = "AF_XDP",
    Qipcrtr = "AF_QIPCRTR",
});

named_enum!(
    /// A signal the unit may send the service (reload, log reopen), without `SIG`.
    Signal, "signal", {
    Hup = "HUP",
    Usr1 = "USR1",
    Usr2 = "USR2",
});

named_enum!(
    /// How systemd judges the start (`Type=`).
    ServiceType, "service type", {
    Notify = "notify",
    Exec = "exec",
});

/// Whether the service account is one ferry creates or one the host already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Account {
    /// A new system account (no login shell), created with systemd-sysusers and recorded
    /// as this app's. The default, and the only kind the default policy accepts.
    New,
    /// An account the host already has (`www-data`, say): only where host policy names it.
    Existing,
}

/// A `ListenStream=` address: `PORT`, `IPv4:PORT`, `[IPv6]:PORT`, or an absolute path of
/// a UNIX socket under `/run/APP/`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenAddr(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid listen address {text:?}: expected PORT, IP:PORT, [IPv6]:PORT or /run/APP/NAME")]
pub struct ListenAddrError {
    pub text: String,
}

impl ListenAddr {
    pub fn new(text: &str) -> Result<Self, ListenAddrError> {
        let err = || ListenAddrError {
            text: text.chars().take(80).collect(),
        };
        if text.starts_with('/') {
            HostPath::new(text).map_err(|_| err())?;
        } else {
            let port = match text.parse::<u16>() {
                Ok(p) => p,
                Err(_) => text
                    .parse::<std::net::SocketAddr>()
                    .map_err(|_| err())?
                    .port(),
            };
            if port == 0 {
                return Err(err());
            }
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The TCP port, for an address that is not a UNIX socket.
    pub fn port(&self) -> Option<u16> {
        if self.0.starts_with('/') {
            return None;
        }
        self.0.parse::<u16>().ok().or_else(|| {
            self.0
                .parse::<std::net::SocketAddr>()
                .ok()
                .map(|a| a.port())
        })
    }

    /// The UNIX socket path, if it is one.
    pub fn path(&self) -> Option<HostPath> {
        self.0
            .starts_with('/')
            .then(|| HostPath::new(&self.0).expect("checked on parse"))
    }
}

/// An `IPAddressAllow=` entry: an address, a prefix (`10.0.0.0/8`), or one of systemd's
/// keywords `any`, `localhost`, `link-local`, `multicast`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpAllow(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid IP address allowance {text:?}: expected an address, a prefix (10.0.0.0/8) or any/localhost/link-local/multicast")]
pub struct IpAllowError {
    pub text: String,
}

impl IpAllow {
    pub fn new(text: &str) -> Result<Self, IpAllowError> {
        let err = || IpAllowError {
            text: text.chars().take(80).collect(),
        };
        if matches!(text, "any" | "localhost" | "link-local" | "multicast") {
            return Ok(Self(text.to_owned()));
        }
        let (ip, prefix) = text
            .split_once('/')
            .map_or((text, None), |(i, p)| (i, Some(p)));
        let max = match ip.parse::<IpAddr>().map_err(|_| err())? {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if let Some(p) = prefix {
            if !p.bytes().all(|b| b.is_ascii_digit()) || !p.parse::<u8>().is_ok_and(|n| n <= max) {
                return Err(err());
            }
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_serde {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t>::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_serde!(ListenAddr);
string_serde!(IpAllow);

/// Privileged groups: membership in any of these reaches root or every user's data on a
/// stock Debian host. The default policy refuses them as supplementary or primary groups.
pub const PRIVILEGED_GROUPS: &[&str] = &[
    "root",
    "adm",
    "admin",
    "audio",
    "cdrom",
    "disk",
    "docker",
    "floppy",
    "input",
    "kmem",
    "kvm",
    "libvirt",
    "lxd",
    "mem",
    "netdev",
    "plugdev",
    "render",
    "sgx",
    "shadow",
    "staff",
    "src",
    "sudo",
    "systemd-journal",
    "systemd-network",
    "tape",
    "tty",
    "utmp",
    "video",
    "wheel",
];

pub fn is_privileged_group(name: &str) -> bool {
    PRIVILEGED_GROUPS.contains(&name)
}

// -------------------------------------------------------------------------------------
// The review: one flat list of what a bundle asks for, and what changed between two.

/// One thing a service is granted on a host beyond its own files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    /// Runs as an account the host already has.
    ExistingAccount {
        user: String,
        group: String,
    },
    /// Member of a group beyond its own.
    SupplementaryGroup {
        group: String,
    },
    Capability {
        capability: String,
    },
    AddressFamily {
        family: String,
    },
    /// Has the host's network (not only the sockets systemd passes in).
    HostNetwork,
    /// May reach any address (no `IPAddressAllow=` list).
    AnyAddress,
    /// May reach these addresses (`IPAddressAllow=`).
    Address {
        allow: String,
    },
    /// systemd listens here for it (socket activation).
    Listen {
        address: String,
    },
    /// May write here (state, logs, declared directories).
    WritablePath {
        path: String,
    },
    /// A sandbox knob relaxed from ferry's baseline.
    Relaxed {
        setting: String,
        value: String,
        class: crate::sandbox::Class,
    },
    /// The installer runs this (as the service user, in the unit's sandbox) to judge health.
    ExecProbe {
        argv: Vec<String>,
    },
    /// Another principal gets access to one of the app's directories.
    Grant {
        path: String,
        principal: String,
        perms: String,
    },
}

impl Item {
    /// One line for a person reviewing the footprint.
    pub fn describe(&self) -> String {
        match self {
            Self::ExistingAccount { user, group } => {
                format!("runs as existing account {user}:{group}")
            }
            Self::SupplementaryGroup { group } => format!("member of group {group}"),
            Self::Capability { capability } => format!("capability {capability}"),
            Self::AddressFamily { family } => format!("address family {family}"),
            Self::HostNetwork => "the host's network".into(),
            Self::AnyAddress => "any IP address".into(),
            Self::Address { allow } => format!("IP addresses {allow}"),
            Self::Listen { address } => format!("listens on {address} (socket activation)"),
            Self::WritablePath { path } => format!("writes {path}"),
            Self::Relaxed {
                setting,
                value,
                class,
            } => {
                let class = match class {
                    crate::sandbox::Class::Visibility => "visibility",
                    crate::sandbox::Class::Surface => "surface",
                };
                format!("sandbox {setting} = {value} ({class})")
            }
            Self::ExecProbe { argv } => format!("health probe runs {}", argv.join(" ")),
            Self::Grant {
                path,
                principal,
                perms,
            } => format!("{principal} gets {perms} on {path}"),
        }
    }
}

/// Everything a bundle asks of a host, flattened for review and comparison. The default
/// is the empty footprint (nothing asked), for comparing against nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Footprint {
    pub user: String,
    pub group: String,
    pub account: Account,
    pub items: Vec<Item>,
}

impl Footprint {
    /// The footprint of `inst` installed in environment `env`.
    pub fn of(app: &AppName, inst: &Install, env: &crate::install::Environment) -> Self {
        let s = &inst.service;
        let mut items = BTreeSet::new();
        if inst.account == Account::Existing {
            items.insert(Item::ExistingAccount {
                user: inst.user.to_string(),
                group: inst.group.to_string(),
            });
        }
        for g in &inst.supplementary_groups {
            items.insert(Item::SupplementaryGroup {
                group: g.to_string(),
            });
        }
        for c in &s.capabilities {
            items.insert(Item::Capability {
                capability: c.to_string(),
            });
        }
        for f in &s.address_families {
            items.insert(Item::AddressFamily {
                family: f.to_string(),
            });
        }
        if !s.private_network {
            items.insert(Item::HostNetwork);
            if s.ip_address_allow.is_empty()
                || s.ip_address_allow.iter().any(|a| a.as_str() == "any")
            {
                items.insert(Item::AnyAddress);
            } else {
                for a in &s.ip_address_allow {
                    items.insert(Item::Address {
                        allow: a.to_string(),
                    });
                }
            }
        }
        for l in &s.listen {
            items.insert(Item::Listen {
                address: l.to_string(),
            });
        }
        for p in &s.writable_paths {
            items.insert(Item::WritablePath {
                path: p.to_string(),
            });
        }
        for (k, v) in env.sandbox.relaxations() {
            items.insert(Item::Relaxed {
                setting: k.key.to_owned(),
                value: v.to_owned(),
                class: k.class,
            });
        }
        if let Probe::Exec { argv } = &env.health.probe {
            items.insert(Item::ExecProbe {
                argv: argv.words().to_vec(),
            });
        }
        let own = |kind: AclKind, name: &Name| match kind {
            AclKind::User => name == &inst.user,
            AclKind::Group => name == &inst.group,
        };
        for d in &inst.directories {
            for (kind, name, perms) in [
                (AclKind::User, &d.owner, (d.mode.bits() >> 6) & 7),
                (AclKind::Group, &d.group, (d.mode.bits() >> 3) & 7),
            ] {
                if name.as_str() != "root" && !own(kind, name) && perms != 0 {
                    items.insert(Item::Grant {
                        path: d.path.to_string(),
                        principal: principal(kind, name),
                        perms: perms_string(perms),
                    });
                }
            }
            for (default, e) in d
                .acl
                .iter()
                .map(|e| (false, e))
                .chain(d.default_acl.iter().map(|e| (true, e)))
            {
                if !own(e.kind, &e.name) {
                    items.insert(Item::Grant {
                        path: if default {
                            format!("{} (inherited by new files)", d.path)
                        } else {
                            d.path.to_string()
                        },
                        principal: principal(e.kind, &e.name),
                        perms: e.perms_string(),
                    });
                }
            }
        }
        let _ = app;
        Self {
            user: inst.user.to_string(),
            group: inst.group.to_string(),
            account: inst.account,
            items: items.into_iter().collect(),
        }
    }

    /// What `new` asks for that `self` did not, and what it no longer asks for.
    pub fn diff(&self, new: &Footprint) -> Diff {
        let old: BTreeSet<&Item> = self.items.iter().collect();
        let now: BTreeSet<&Item> = new.items.iter().collect();
        let mut added: Vec<Item> = now.difference(&old).map(|i| (*i).clone()).collect();
        let mut removed: Vec<Item> = old.difference(&now).map(|i| (*i).clone()).collect();
        // Another account is a wider footprint even when both are new accounts: files
        // the old one owned stay its own.
        let known = !self.user.is_empty();
        if known && (self.user != new.user || self.group != new.group) {
            added.push(Item::ExistingAccount {
                user: new.user.clone(),
                group: new.group.clone(),
            });
            removed.push(Item::ExistingAccount {
                user: self.user.clone(),
                group: self.group.clone(),
            });
            added.dedup();
            removed.dedup();
        }
        Diff { added, removed }
    }
}

fn principal(kind: AclKind, name: &Name) -> String {
    match kind {
        AclKind::User => format!("user {name}"),
        AclKind::Group => format!("group {name}"),
    }
}

fn perms_string(p: u32) -> String {
    [(4, 'r'), (2, 'w'), (1, 'x')]
        .iter()
        .map(|&(b, c)| if p & b != 0 { c } else { '-' })
        .collect()
}

impl Default for Footprint {
    fn default() -> Self {
        Self {
            user: String::new(),
            group: String::new(),
            account: Account::New,
            items: Vec::new(),
        }
    }
}

/// How a footprint changes from the installed release to a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub added: Vec<Item>,
    pub removed: Vec<Item>,
}

impl Diff {
    /// An upgrade that asks for anything new widens the footprint.
    pub fn widens(&self) -> bool {
        !self.added.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        assert_eq!(
            Capability::parse("CAP_NET_BIND_SERVICE"),
            Some(Capability::NetBindService)
        );
        assert_eq!(Capability::parse("NET_BIND_SERVICE"), None);
        assert_eq!(Capability::ALL.len(), 41);
        assert_eq!(AddressFamily::Netlink.to_string(), "AF_NETLINK");
        assert!(serde_json::from_str::<Signal>("\"KILL\"").is_err());
    }

    #[test]
    fn listen_and_ip_allow() {
        for ok in [
            "8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "/run/hello/hello.sock",
        ] {
            ListenAddr::new(ok).unwrap();
        }
        for bad in ["0", "localhost:80", "x", "/run/../etc", "127.0.0.1:0", ""] {
            assert!(ListenAddr::new(bad).is_err(), "{bad}");
        }
        assert_eq!(ListenAddr::new("[::1]:9").unwrap().port(), Some(9));
        for ok in ["any", "localhost", "10.0.0.0/8", "::1/128", "192.168.1.1"] {
            IpAllow::new(ok).unwrap();
        }
        for bad in ["10.0.0.0/33", "10.0.0.0/+8", "example.com", "any "] {
            assert!(IpAllow::new(bad).is_err(), "{bad}");
        }
    }
}
