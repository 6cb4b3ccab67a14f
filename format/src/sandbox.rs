//! ferry's hardened baseline for a service unit, and the knobs a project may turn.
//!
//! Every directive here is one line of the default unit (`templates/unit.service.j2`) with
//! the value ferry sets. A project may relax a knob (`[service.sandbox]` in `ferry.toml`,
//! or a profile); each relaxation is part of the bundle's declared footprint, shown by
//! `ferry inspect` and `--dry-run`, checked against the unit the bundle carries, and
//! bounded by the host's policy. Directives that are not knobs are the floor: what keeps
//! the service from becoming root (`NoNewPrivileges=`, `RestrictSUIDSGID=`, the capability
//! sets) or from writing outside its declared paths (`ProtectSystem=strict`); they are
//! checked as fixed values. Why each value is safe for Go: `templates/README.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How much a relaxation gives away; host policy decides which classes it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// The service sees more of the host (processes, kernel logs, home directories,
    /// tunables), read-only. Accepted by the default policy.
    Visibility,
    /// The service may do more (namespaces, devices, W^X memory, realtime, shared /tmp):
    /// more kernel surface to attack. Needs the host policy's consent.
    Surface,
}

/// One knob: a directive, ferry's value for it, and what a project may set instead.
#[derive(Debug)]
pub struct Knob {
    /// `ferry.toml` key under `[service.sandbox]`, and the manifest's key.
    pub key: &'static str,
    /// The unit directive.
    pub directive: &'static str,
    /// ferry's hardened value.
    pub hardened: &'static str,
    /// Values a project may choose instead, weakest last.
    pub relaxed: &'static [&'static str],
    /// What systemd does when the directive is absent: a unit that leaves it out has
    /// this value, so leaving out a hardened directive is a relaxation too.
    pub unset: &'static str,
    pub class: Class,
    /// What relaxing it gives the service, for reviews and errors.
    pub gives: &'static str,
}

/// The knobs, in the order the default unit writes them.
pub const KNOBS: &[Knob] = &[
    Knob {
        key: "private_users",
        directive: "PrivateUsers",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "the host's user namespace (required for any capability to count)",
    },
    Knob {
        key: "protect_home",
        directive: "ProtectHome",
        hardened: "yes",
        relaxed: &["tmpfs", "read-only", "no"],
        unset: "no",
        class: Class::Visibility,
        gives: "a view of /home, /root and /run/user",
    },
    Knob {
        key: "private_tmp",
        directive: "PrivateTmp",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "the host's shared /tmp and /var/tmp",
    },
    Knob {
        key: "private_devices",
        directive: "PrivateDevices",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "the host's /dev (device access still needs file permissions)",
    },
    Knob {
        key: "device_policy",
        directive: "DevicePolicy",
        hardened: "closed",
        relaxed: &["auto"],
        unset: "auto",
        class: Class::Surface,
        gives: "opening device nodes the cgroup would otherwise deny",
    },
    Knob {
        key: "private_mounts",
        directive: "PrivateMounts",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "mount propagation with the host",
    },
    Knob {
        key: "private_ipc",
        directive: "PrivateIPC",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "the host's System V IPC and POSIX message queues",
    },
    Knob {
        key: "protect_hostname",
        directive: "ProtectHostname",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "the host's UTS namespace",
    },
    Knob {
        key: "protect_clock",
        directive: "ProtectClock",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "the clock devices (setting the clock still needs CAP_SYS_TIME)",
    },
    Knob {
        key: "protect_kernel_tunables",
        directive: "ProtectKernelTunables",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Visibility,
        gives: "/proc/sys, /sys and friends as the host has them",
    },
    Knob {
        key: "protect_kernel_modules",
        directive: "ProtectKernelModules",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "module loading system calls (still needs CAP_SYS_MODULE)",
    },
    Knob {
        key: "protect_kernel_logs",
        directive: "ProtectKernelLogs",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Visibility,
        gives: "the kernel log (/dev/kmsg, /proc/kmsg)",
    },
    Knob {
        key: "protect_control_groups",
        directive: "ProtectControlGroups",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Visibility,
        gives: "the cgroup tree as the host has it",
    },
    Knob {
        key: "protect_proc",
        directive: "ProtectProc",
        hardened: "invisible",
        relaxed: &["ptraceable", "default"],
        unset: "default",
        class: Class::Visibility,
        gives: "other users' processes under /proc",
    },
    Knob {
        key: "proc_subset",
        directive: "ProcSubset",
        hardened: "pid",
        relaxed: &["all"],
        unset: "all",
        class: Class::Visibility,
        gives: "system-wide /proc files (/proc/stat, /proc/meminfo, /proc/net, ...)",
    },
    Knob {
        key: "restrict_namespaces",
        directive: "RestrictNamespaces",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "creating namespaces (a large kernel attack surface)",
    },
    Knob {
        key: "restrict_realtime",
        directive: "RestrictRealtime",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "realtime scheduling (can starve the host)",
    },
    Knob {
        key: "lock_personality",
        directive: "LockPersonality",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "changing the execution domain (personality(2))",
    },
    Knob {
        key: "memory_deny_write_execute",
        directive: "MemoryDenyWriteExecute",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "writable and executable memory (JITs; exploit payloads too)",
    },
    Knob {
        key: "remove_ipc",
        directive: "RemoveIPC",
        hardened: "yes",
        relaxed: &["no"],
        unset: "no",
        class: Class::Surface,
        gives: "IPC objects that outlive the service",
    },
    Knob {
        key: "system_call_filter",
        directive: "SystemCallFilter",
        // Two lines in the unit, joined here by " | ": the allow list, then the deny list.
        hardened: "@system-service | ~@privileged @resources @keyring @setuid",
        relaxed: &[
            "@system-service | ~@privileged @keyring @setuid",
            "@system-service | ~@privileged @setuid",
        ],
        unset: "",
        class: Class::Surface,
        gives: "system calls the filter denies (@resources: setrlimit, sched_setattr; @keyring: the kernel keyring)",
    },
];

/// Directives the unit must carry with exactly these values: the floor no knob, profile
/// or policy lowers.
pub const FLOOR: &[(&str, &str)] = &[
    ("NoNewPrivileges", "yes"),
    ("ProtectSystem", "strict"),
    ("RestrictSUIDSGID", "yes"),
    ("KeyringMode", "private"),
    ("SystemCallArchitectures", "native"),
    ("SystemCallErrorNumber", "EPERM"),
];

pub fn knob(key: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|k| k.key == key)
}

pub fn knob_for_directive(directive: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|k| k.directive == directive)
}

/// The knobs a bundle relaxes, with the values it chose: part of the footprint. Only
/// relaxed knobs are listed; every other knob has its hardened value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sandbox(BTreeMap<&'static str, &'static str>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SandboxError {
    #[error("unknown sandbox setting {key:?} (known: {known})")]
    UnknownKnob { key: String, known: String },
    #[error("sandbox setting {key} = {value:?}: expected {hardened:?} (ferry's default) or one of {relaxed:?}")]
    BadValue {
        key: &'static str,
        value: String,
        hardened: &'static str,
        relaxed: &'static [&'static str],
    },
}

impl Sandbox {
    /// Sets `key` to `value`; the hardened value removes the relaxation.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SandboxError> {
        let k = knob(key).ok_or_else(|| SandboxError::UnknownKnob {
            key: key.chars().take(60).collect(),
            known: KNOBS.iter().map(|k| k.key).collect::<Vec<_>>().join(", "),
        })?;
        if value == k.hardened {
            self.0.remove(k.key);
            return Ok(());
        }
        let v = k
            .relaxed
            .iter()
            .find(|r| **r == value)
            .ok_or_else(|| SandboxError::BadValue {
                key: k.key,
                value: value.chars().take(80).collect(),
                hardened: k.hardened,
                relaxed: k.relaxed,
            })?;
        self.0.insert(k.key, v);
        Ok(())
    }

    /// The value a knob has in this sandbox.
    pub fn value(&self, k: &Knob) -> &'static str {
        self.0.get(k.key).copied().unwrap_or(k.hardened)
    }

    /// `(knob, relaxed value)`, in [`KNOBS`] order.
    pub fn relaxations(&self) -> Vec<(&'static Knob, &'static str)> {
        KNOBS
            .iter()
            .filter_map(|k| self.0.get(k.key).map(|v| (k, *v)))
            .collect()
    }

    pub fn is_hardened(&self) -> bool {
        self.0.is_empty()
    }

    /// Every knob with its effective value, for the unit template.
    pub fn effective(&self) -> BTreeMap<&'static str, &'static str> {
        KNOBS.iter().map(|k| (k.key, self.value(k))).collect()
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl Serialize for Sandbox {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for Sandbox {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        let mut s = Sandbox::default();
        for (k, v) in &raw {
            if knob(k).is_some_and(|kn| kn.hardened == v) {
                return Err(serde::de::Error::custom(format!(
                    "sandbox setting {k} lists ferry's hardened value {v:?}: only relaxations are listed"
                )));
            }
            s.set(k, v).map_err(serde::de::Error::custom)?;
        }
        Ok(s)
    }
}

/// Named sets of relaxations for common kinds of service (`service.sandbox.profile`).
pub struct Profile {
    pub name: &'static str,
    pub what: &'static str,
    pub settings: &'static [(&'static str, &'static str)],
}

pub const PROFILES: &[Profile] = &[
    Profile {
        name: "default",
        what: "ferry's hardened baseline: nothing relaxed",
        settings: &[],
    },
    Profile {
        name: "host-metrics",
        what: "an exporter that reads the whole host: system-wide /proc, every process, \
               kernel tunables and cgroups, home directories read-only (for filesystem \
               statistics); netlink comes with it (service.extra_address_families)",
        settings: &[
            ("proc_subset", "all"),
            ("protect_proc", "default"),
            ("protect_home", "read-only"),
            ("protect_kernel_tunables", "no"),
            ("protect_control_groups", "no"),
        ],
    },
];

pub fn profile(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knobs_are_unique_and_their_values_distinct() {
        for (i, k) in KNOBS.iter().enumerate() {
            assert!(
                KNOBS[i + 1..]
                    .iter()
                    .all(|o| o.key != k.key && o.directive != k.directive),
                "{}",
                k.key
            );
            assert!(!k.relaxed.contains(&k.hardened), "{}", k.key);
            assert!(
                k.unset == k.hardened || k.relaxed.contains(&k.unset) || k.unset.is_empty(),
                "{}: leaving the directive out must be one of its relaxations",
                k.key
            );
            assert!(
                FLOOR.iter().all(|(d, _)| *d != k.directive),
                "{} is both a knob and the floor",
                k.key
            );
        }
        for p in PROFILES {
            let mut s = Sandbox::default();
            for (k, v) in p.settings {
                s.set(k, v).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            }
        }
    }

    #[test]
    fn set_and_round_trip() {
        let mut s = Sandbox::default();
        s.set("proc_subset", "all").unwrap();
        s.set("protect_home", "yes").unwrap();
        assert_eq!(s.relaxations().len(), 1);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"proc_subset":"all"}"#);
        let back: Sandbox = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        for bad in [
            r#"{"proc_subset":"pid"}"#,
            r#"{"proc_subset":"everything"}"#,
            r#"{"no_new_privileges":"no"}"#,
        ] {
            assert!(serde_json::from_str::<Sandbox>(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            s.set("no_new_privileges", "no"),
            Err(SandboxError::UnknownKnob { .. })
        ));
    }
}
