//! Where everything of an app lives, on the host and in the payload. The one owner of
//! these conventions: the bundler, the installer and the checks all ask here, so a path
//! cannot drift between what is built, what is checked and what is written.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::entry_path::EntryPath;
use crate::install::{HostPath, Name, NameError};

/// ferry's own state on a host: journals, records, release manifests, the account
/// registry. Root's alone, never inside an app's prefixes.
pub const STATE_DIR: &str = "/var/lib/ferry";
/// Accounts ferry created, by name, kept across uninstalls (an account stays, so must the
/// proof that ferry made it): `STATE_DIR/accounts.json`.
pub const ACCOUNTS_FILE: &str = "/var/lib/ferry/accounts.json";
/// The host's trust store: `*.pub`, `rotations/`, `revocations/`, `revoked`.
pub const KEYS_DIR: &str = "/etc/ferry/keys";
/// The host's policy: which keys may sign which apps, and the largest footprint accepted.
pub const POLICY_FILE: &str = "/etc/ferry/policy.toml";
/// Where systemd looks for units an administrator installed.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// Names an app may not take: ferry's own, and names whose prefixes (`/etc/NAME`,
/// `/var/lib/NAME`, ...) are the system's. Any name ending in `.d` is refused as well
/// (`cron.d`, `sudoers.d`, `profile.d`: directories other programs read as root). The
/// installer also refuses any app whose prefixes exist without being recorded as its own,
/// so this list is a first line, not the only one.
pub const RESERVED_APP_NAMES: &[&str] = &[
    "alternatives",
    "apparmor",
    "apt",
    "ca-certificates",
    "credstore",
    "cron",
    "dbus-1",
    "default",
    "dpkg",
    "ferry",
    "init",
    "kernel",
    "ld.so.conf",
    "logrotate",
    "modprobe",
    "network",
    "pam",
    "polkit-1",
    "private",
    "root",
    "security",
    "selinux",
    "skel",
    "ssh",
    "ssl",
    "sudo",
    "sudoers",
    "sysctl",
    "systemd",
    "udev",
];

/// An application name: a [`Name`] that is not reserved. It names the service user, the
/// unit and every host path of the app, so it is checked once, here.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppName(Name);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AppNameError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("app name {name:?} is reserved: its host paths belong to the system or to ferry")]
    Reserved { name: String },
    #[error("app name {name:?} may not contain '@' (systemd template units)")]
    Template { name: String },
}

impl AppName {
    pub fn new(text: &str) -> Result<Self, AppNameError> {
        let name = Name::new(text)?;
        // Names are lower-case already: `.d` is the only spelling.
        #[allow(clippy::case_sensitive_file_extension_comparisons)]
        let dot_d = text.ends_with(".d");
        if RESERVED_APP_NAMES.contains(&text) || dot_d {
            return Err(AppNameError::Reserved {
                name: text.to_owned(),
            });
        }
        if text.contains('@') {
            return Err(AppNameError::Template {
                name: text.to_owned(),
            });
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_name(&self) -> &Name {
        &self.0
    }

    /// Where this app's files go.
    pub fn layout(&self) -> Layout<'_> {
        Layout { app: self.as_str() }
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Serialize for AppName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AppName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AppName::new(&s).map_err(serde::de::Error::custom)
    }
}

impl std::ops::Deref for AppName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for AppName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// The paths of one app. Every function returns a validated path: an [`AppName`] holds
/// only characters both path types accept.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    app: &'a str,
}

#[allow(clippy::needless_pass_by_value)] // called with format!() results
fn host(text: String) -> HostPath {
    HostPath::new(text.as_str()).expect("paths built from an AppName are valid")
}

#[allow(clippy::needless_pass_by_value)]
fn entry(text: String) -> EntryPath {
    EntryPath::new(&text).expect("payload paths built from an AppName are valid")
}

impl Layout<'_> {
    pub fn app(&self) -> &str {
        self.app
    }

    // ---- Host: the app's own prefixes.

    /// `/opt/APP`: releases and the `current` link; root's.
    pub fn opt(&self) -> HostPath {
        host(format!("/opt/{}", self.app))
    }
    pub fn releases(&self) -> HostPath {
        host(format!("/opt/{}/releases", self.app))
    }
    /// `/opt/APP/releases/VERSION`; `version` is a validated [`crate::manifest::Version`].
    pub fn release(&self, version: &str) -> HostPath {
        host(format!("/opt/{}/releases/{version}", self.app))
    }
    /// `/opt/APP/current`, a symlink to `releases/VERSION`.
    pub fn current(&self) -> HostPath {
        host(format!("/opt/{}/current", self.app))
    }
    /// What `current` points at, relative (the link stays valid under `--root`).
    pub fn current_target(version: &str) -> String {
        format!("releases/{version}")
    }
    /// The service executable, through `current`.
    pub fn binary(&self) -> HostPath {
        host(format!("/opt/{}/current/bin/{}", self.app, self.app))
    }
    /// The directory every `Exec*=` program of the unit must be under.
    pub fn exec_root(&self) -> String {
        format!("/opt/{}/current/", self.app)
    }
    pub fn etc(&self) -> HostPath {
        host(format!("/etc/{}", self.app))
    }
    pub fn lib(&self) -> HostPath {
        host(format!("/var/lib/{}", self.app))
    }
    pub fn log(&self) -> HostPath {
        host(format!("/var/log/{}", self.app))
    }
    pub fn cache(&self) -> HostPath {
        host(format!("/var/cache/{}", self.app))
    }
    pub fn srv(&self) -> HostPath {
        host(format!("/srv/{}", self.app))
    }
    /// `/run/APP` (`RuntimeDirectory=`, UNIX sockets).
    pub fn run(&self) -> HostPath {
        host(format!("/run/{}", self.app))
    }

    /// The app's own prefixes: directories, configs and secrets live under these only.
    pub fn prefixes(&self) -> [HostPath; 6] {
        [
            self.etc(),
            self.lib(),
            self.log(),
            self.cache(),
            self.opt(),
            self.srv(),
        ]
    }

    /// Whether `path` is one of the prefixes or below one.
    pub fn owns(&self, path: &HostPath) -> bool {
        self.prefixes().iter().any(|p| path.is_within(p))
    }

    /// The prefix `path` is in, if any.
    pub fn prefix_of(&self, path: &HostPath) -> Option<HostPath> {
        self.prefixes().into_iter().find(|p| path.is_within(p))
    }

    // ---- Host: system files the app installs, named after it.

    pub fn unit_name(&self) -> String {
        format!("{}.service", self.app)
    }
    pub fn socket_name(&self) -> String {
        format!("{}.socket", self.app)
    }
    pub fn unit_file(&self) -> HostPath {
        host(format!("{UNIT_DIR}/{}.service", self.app))
    }
    pub fn socket_file(&self) -> HostPath {
        host(format!("{UNIT_DIR}/{}.socket", self.app))
    }
    /// Where `systemctl edit` puts an operator's drop-ins.
    pub fn unit_dropin_dir(&self) -> HostPath {
        host(format!("{UNIT_DIR}/{}.service.d", self.app))
    }
    pub fn sysusers_file(&self) -> HostPath {
        host(format!("/etc/sysusers.d/{}.conf", self.app))
    }
    pub fn tmpfiles_file(&self) -> HostPath {
        host(format!("/etc/tmpfiles.d/{}.conf", self.app))
    }
    pub fn logrotate_file(&self) -> HostPath {
        host(format!("/etc/logrotate.d/{}", self.app))
    }
    /// Where systemd puts the service's credentials (`$CREDENTIALS_DIRECTORY`).
    pub fn credentials_dir(&self) -> String {
        format!("/run/credentials/{}.service", self.app)
    }

    /// A config file installed directly in `/etc/APP` (`file_name` is one component).
    pub fn config_file(&self, file_name: &str) -> Result<HostPath, crate::install::HostPathError> {
        let path = format!("/etc/{}/{file_name}", self.app);
        if file_name.contains('/') {
            return Err(crate::install::HostPathError { text: path });
        }
        HostPath::new(&path)
    }

    /// Where a declared secret lives on the host: `/etc/APP/NAME` for a credential,
    /// `/etc/APP/NAME.env` for an environment file.
    pub fn secret_file(&self, name: &Name, kind: crate::install::SecretKind) -> HostPath {
        match kind {
            crate::install::SecretKind::Credential => host(format!("/etc/{}/{name}", self.app)),
            crate::install::SecretKind::EnvironmentFile => {
                host(format!("/etc/{}/{name}.env", self.app))
            }
        }
    }

    // ---- Host: ferry's records of the app.

    pub fn state_dir(&self) -> HostPath {
        host(format!("{STATE_DIR}/{}", self.app))
    }
    /// Prefix of the private staging directories under `/opt` (`.ferry-staging-APP-PID`).
    pub fn staging_prefix(&self) -> String {
        format!(".ferry-staging-{}-", self.app)
    }

    // ---- Payload.

    pub fn payload_binary(&self) -> EntryPath {
        entry(format!("bin/{}", self.app))
    }
    /// `systemd/ENV/APP.service`: each environment has its own unit.
    pub fn payload_unit(&self, env: &Name) -> EntryPath {
        entry(format!("systemd/{env}/{}.service", self.app))
    }
    pub fn payload_socket(&self) -> EntryPath {
        entry(format!("systemd/{}.socket", self.app))
    }
    pub fn payload_sysusers(&self) -> EntryPath {
        entry(format!("sysusers/{}.conf", self.app))
    }
    pub fn payload_tmpfiles(&self) -> EntryPath {
        entry(format!("tmpfiles/{}.conf", self.app))
    }
    pub fn payload_logrotate(&self) -> EntryPath {
        entry(format!("logrotate/{}", self.app))
    }
    pub fn payload_sbom(&self) -> EntryPath {
        entry(format!("sbom/{}.cdx.json", self.app))
    }
    /// `config/ENV/NAME`: the config installed as `/etc/APP/NAME` in environment ENV.
    pub fn payload_config(
        env: &Name,
        file_name: &str,
    ) -> Result<EntryPath, crate::entry_path::EntryPathError> {
        EntryPath::new(&format!("config/{env}/{file_name}"))
    }

    /// `(payload member, host destination)` of each system file a release installs in
    /// environment `env`, in the order they are written.
    pub fn system_files(
        &self,
        env: &Name,
        socket: bool,
        tmpfiles: bool,
        logrotate: bool,
    ) -> Vec<(EntryPath, HostPath)> {
        let mut v = vec![(self.payload_unit(env), self.unit_file())];
        if socket {
            v.push((self.payload_socket(), self.socket_file()));
        }
        if logrotate {
            v.push((self.payload_logrotate(), self.logrotate_file()));
        }
        if tmpfiles {
            v.push((self.payload_tmpfiles(), self.tmpfiles_file()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_and_template_names_are_refused() {
        for bad in ["ferry", "cron.d", "sudoers.d", "systemd", "ssh", "a@b"] {
            assert!(AppName::new(bad).is_err(), "{bad}");
        }
        for ok in ["hello", "node-exporter", "caddy", "ferryboat", "d"] {
            assert!(AppName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn paths() {
        use crate::install::SecretKind;
        let app = AppName::new("hello").unwrap();
        let l = app.layout();
        assert_eq!(l.binary().as_str(), "/opt/hello/current/bin/hello");
        assert_eq!(l.unit_file().as_str(), "/etc/systemd/system/hello.service");
        assert_eq!(l.state_dir().as_str(), "/var/lib/ferry/hello");
        assert_eq!(l.payload_sysusers().as_str(), "sysusers/hello.conf");
        assert_eq!(
            l.payload_unit(&Name::new("prod").unwrap()).as_str(),
            "systemd/prod/hello.service"
        );
        assert!(l.owns(&HostPath::new("/var/lib/hello/data").unwrap()));
        assert!(l.owns(&HostPath::new("/etc/hello").unwrap()));
        assert!(!l.owns(&HostPath::new("/etc/hellothere").unwrap()));
        assert!(!l.owns(&HostPath::new("/var/lib/ferry").unwrap()));
        assert_eq!(
            l.prefix_of(&HostPath::new("/srv/hello/a/b").unwrap()),
            Some(l.srv())
        );
        let token = Name::new("token").unwrap();
        assert_eq!(
            l.secret_file(&token, SecretKind::Credential).as_str(),
            "/etc/hello/token"
        );
        assert_eq!(
            l.secret_file(&token, SecretKind::EnvironmentFile).as_str(),
            "/etc/hello/token.env"
        );
        assert_eq!(
            l.config_file("a.toml").unwrap().as_str(),
            "/etc/hello/a.toml"
        );
        assert!(l.config_file("../shadow").is_err());
        assert!(l.config_file("sub/a.toml").is_err());
    }
}
