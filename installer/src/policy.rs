//! The host's policy file, `/etc/ferry/policy.toml`: read only when root's and not
//! writable by group or others (like the trust store), judged by
//! `ferry_format::policy`. No file: the default policy.

use anyhow::{anyhow, Result};
use ferry_format::install::HostPath;
use ferry_format::layout::POLICY_FILE;
use ferry_format::policy::Policy;

use crate::exit::Precondition;
use crate::host::Host;
use crate::rootfs::Kind;

pub fn load(host: &Host) -> Result<Policy> {
    let path = HostPath::new(POLICY_FILE).expect("valid");
    let Some((dir, name)) = host.open_parent(&path)? else {
        return Ok(Policy::default());
    };
    let me = rustix::process::geteuid().as_raw();
    let strict = |what: &str, m: &crate::rootfs::Meta| -> Result<()> {
        if (m.uid != 0 && m.uid != me) || m.mode & 0o022 != 0 {
            return Err(anyhow!(Precondition(format!(
                "{what} is owned by uid {} with mode {:04o}: the policy must be root's and not writable by group or others",
                m.uid, m.mode
            ))));
        }
        Ok(())
    };
    strict(&path.parent().expect("has one").to_string(), &dir.meta()?)?;
    let Some(m) = dir.meta_at(&name)? else {
        return Ok(Policy::default());
    };
    if m.kind != Kind::File {
        return Err(anyhow!(Precondition(format!(
            "{path} is not a regular file"
        ))));
    }
    strict(path.as_str(), &m)?;
    let data = host
        .read_file(&path, 1 << 20)?
        .ok_or_else(|| anyhow!("{path} vanished"))?;
    let text = std::str::from_utf8(&data)
        .map_err(|_| anyhow!(Precondition(format!("{path} is not UTF-8"))))?;
    Policy::parse(text, path.as_str()).map_err(|e| anyhow!(Precondition(e.to_string())))
}
