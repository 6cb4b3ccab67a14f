//! A fake host root for unit tests: the system directories an install touches, and
//! `/etc/passwd`/`/etc/group` naming the test's own user (so chown works unprivileged).

use crate::accounts::Accounts;
use crate::host::Host;

pub struct TestRoot {
    pub dir: tempfile::TempDir,
    pub host: Host,
    pub uid: u32,
    pub gid: u32,
}

impl TestRoot {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "etc/systemd/system",
            "etc/sysusers.d",
            "opt",
            "run",
            "srv",
            "var/lib",
            "var/log",
            "var/cache",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        std::fs::write(
            dir.path().join("etc/passwd"),
            format!("root:x:0:0::/root:/bin/sh\nhello:x:{uid}:{gid}::/var/lib/hello:/usr/sbin/nologin\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            format!("root:x:0:\nhello:x:{gid}:\n"),
        )
        .unwrap();
        let host = Host::new(Some(dir.path()));
        Self {
            dir,
            host,
            uid,
            gid,
        }
    }

    pub fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel.trim_start_matches('/'))
    }

    pub fn accounts(&self) -> Accounts {
        Accounts::load(self.dir.path()).unwrap()
    }
}
