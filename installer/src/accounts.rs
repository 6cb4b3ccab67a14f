//! Users and groups read from the (possibly offline) root's /etc/passwd and /etc/group.
//! A static binary must not call glibc's NSS (getpwnam), so lookups parse the files.

use std::path::Path;

use anyhow::{Context as _, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Accounts {
    pub users: ByName<User>,
    pub groups: ByName<Group>,
}

/// Entries by name, the first of a repeated name winning (as getpwnam's). A list, not a
/// `BTreeMap`: a handful of lookups per run, and the static installer's size counts.
#[derive(Debug, Clone)]
pub struct ByName<T>(Vec<(String, T)>);

impl<T> Default for ByName<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> ByName<T> {
    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A repeat of an earlier name is kept but never found.
    fn add(&mut self, name: &str, value: T) {
        self.0.push((name.to_owned(), value));
    }
}

impl<T> std::ops::Index<&str> for ByName<T> {
    type Output = T;

    fn index(&self, name: &str) -> &T {
        self.get(name).expect("no entry of that name")
    }
}

impl Accounts {
    pub fn load(root: &Path) -> Result<Self> {
        let read = |rel: &str| {
            let p = root.join(rel);
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
        };
        Ok(Self::parse(&read("etc/passwd")?, &read("etc/group")?))
    }

    pub fn parse(passwd: &str, group: &str) -> Self {
        let mut a = Self::default();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 7 || f[0].is_empty() || f[0].starts_with('#') {
                continue;
            }
            let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) else {
                continue;
            };
            a.users.add(
                f[0],
                User {
                    name: f[0].to_owned(),
                    uid,
                    gid,
                    home: f[5].to_owned(),
                    shell: f[6].to_owned(),
                },
            );
        }
        for line in group.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 4 || f[0].is_empty() || f[0].starts_with('#') {
                continue;
            }
            let Ok(gid) = f[2].parse() else { continue };
            a.groups.add(
                f[0],
                Group {
                    name: f[0].to_owned(),
                    gid,
                    members: f[3]
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(str::to_owned)
                        .collect(),
                },
            );
        }
        a
    }

    pub fn uid(&self, name: &str) -> Option<u32> {
        self.users.get(name).map(|u| u.uid)
    }

    pub fn gid(&self, name: &str) -> Option<u32> {
        self.groups.get(name).map(|g| g.gid)
    }

    pub fn in_group(&self, user: &str, group: &str) -> bool {
        let Some(g) = self.groups.get(group) else {
            return false;
        };
        g.members.iter().any(|m| m == user) || self.users.get(user).is_some_and(|u| u.gid == g.gid)
    }
}

/// Shells that let nobody log in.
pub fn is_nologin(shell: &str) -> bool {
    matches!(
        shell,
        "/usr/sbin/nologin" | "/sbin/nologin" | "/bin/false" | "/usr/bin/false"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # comment\n\
        hello:x:998:997:hello service:/var/lib/hello:/usr/sbin/nologin\n\
        broken:x:notanumber:1::/:/bin/sh\n\
        short:x:1\n";
    const GROUP: &str = "root:x:0:\nadm:x:4:syslog,hello\nhello:x:997:\n";

    #[test]
    fn parses_and_skips_malformed_lines() {
        let a = Accounts::parse(PASSWD, GROUP);
        assert_eq!(a.uid("hello"), Some(998));
        assert_eq!(a.gid("adm"), Some(4));
        assert_eq!(a.uid("broken"), None);
        assert_eq!(a.uid("short"), None);
        assert!(a.in_group("hello", "adm"));
        assert!(a.in_group("hello", "hello"), "primary group counts");
        assert!(!a.in_group("root", "adm"));
        assert!(is_nologin(&a.users["hello"].shell));
    }
}
