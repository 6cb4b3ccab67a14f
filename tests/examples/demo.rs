//! The main job, end to end, as `scripts/demo` runs it: a throwaway key, `ferry build` of
//! the example service, verification with stock tools, then an install into a throwaway
//! air-gapped host (systemd as PID 1, no network but loopback) and a health check from
//! inside it. Prints what it does; exits non-zero on the first failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use ferry_tests::{ferry_bin, static_installer, workspace_root, Host};

fn run(what: &str, cmd: &mut Command) -> Result<String> {
    println!("\n$ {what}");
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    Ok(stdout)
}

fn main() -> Result<()> {
    let root = workspace_root();
    let work = root.join("target/demo");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let key = work.join("release");
    let out = work.join("out");
    let ferry = ferry_bin();
    run(
        "ferry keygen --out target/demo/release --unencrypted   (a throwaway test key)",
        Command::new(&ferry)
            .arg("keygen")
            .arg("--out")
            .arg(&key)
            .arg("--unencrypted"),
    )?;
    let (sk, pk) = (key.with_extension("key"), key.with_extension("pub"));
    run(
        "ferry build examples/hello --key release.key --out target/demo/out",
        Command::new(&ferry)
            .arg("build")
            .arg(root.join("examples/hello"))
            .arg("--key")
            .arg(&sk)
            .arg("--out")
            .arg(&out)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    )?;
    let bundle = out.join("hello-1.0.0-linux-amd64.tar.zst");
    run(
        "minisign -Vm hello-1.0.0-linux-amd64.tar.zst -p release.pub",
        Command::new("minisign")
            .arg("-Vm")
            .arg(&bundle)
            .arg("-p")
            .arg(&pk),
    )?;
    run(
        "sha256sum -c SHA256SUMS",
        Command::new("sha256sum")
            .arg("-c")
            .arg("SHA256SUMS")
            .current_dir(&out),
    )?;
    run(
        "signify-openbsd -C -p release.pub -x SHA256SUMS.sig",
        Command::new("signify-openbsd")
            .args(["-C", "-p"])
            .arg(&pk)
            .args(["-x", "SHA256SUMS.sig"])
            .current_dir(&out),
    )?;
    run(
        "ferry verify hello-1.0.0-linux-amd64.tar.zst --pubkey release.pub",
        Command::new(&ferry)
            .arg("verify")
            .arg(&bundle)
            .arg("--pubkey")
            .arg(&pk),
    )?;

    println!("\n== booting a throwaway air-gapped host (systemd-nspawn --private-network)");
    let host = Host::boot()?;
    let installer = static_installer();
    run(
        &format!("file {}", installer.display()),
        Command::new("file").arg(&installer),
    )?;
    host.copy_in(&installer, "/usr/local/bin/ferry-install")?;
    host.copy_in(&pk, "/etc/ferry/keys/release.pub")?;
    host.copy_in(&bundle, "/root/hello-1.0.0-linux-amd64.tar.zst")?;
    host.copy_in(
        minisig(&bundle),
        "/root/hello-1.0.0-linux-amd64.tar.zst.minisig",
    )?;
    inside(&host, &["ip", "-brief", "link"])?;
    inside(
        &host,
        &[
            "ferry-install",
            "install",
            "/root/hello-1.0.0-linux-amd64.tar.zst",
        ],
    )?;
    inside(&host, &["ferry-install", "status", "hello"])?;
    inside(&host, &["curl", "-fsS", "http://127.0.0.1:8080/healthz"])?;
    inside(
        &host,
        &["systemd-analyze", "security", "hello.service", "--no-pager"],
    )
    .map(|o| o.lines().last().map(str::to_owned).unwrap_or_default())?;
    println!("\n== done: hello 1.0.0 is installed, active and healthy on an air-gapped host; the host is discarded now");
    Ok(())
}

fn minisig(bundle: &Path) -> PathBuf {
    ferry_format::verify::detached_path(bundle)
}

fn inside(host: &Host, argv: &[&str]) -> Result<String> {
    println!("\n[air-gapped host]$ {}", argv.join(" "));
    let mut full = vec!["env", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"];
    full.extend_from_slice(argv);
    let out = host.try_exec(full)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("{} failed inside the host ({})", argv.join(" "), out.status);
    }
    Ok(stdout)
}
