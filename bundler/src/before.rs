//! `[build] before`: programs a project runs in the build copy before ferry vendors and
//! compiles it, for generated assets (a web UI built with npm that the Go program
//! embeds).
//!
//! A step runs arbitrary code on the release machine, next to the signing key, so a
//! `ferry.toml` author cannot make it run: only the release engineer's `ferry build
//! --run-before` does ([`require_consent`], exit 4 without it). Each step runs without a
//! shell, in the build copy, with stdin from `/dev/null`, `SOURCE_DATE_EPOCH` set to the
//! build's, and ferry's environment minus every `FERRY_*` variable (the passphrase is
//! already gone from it, see [`crate::keys`]). Its output is kept, bounded, and shown
//! when it fails.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _, Result};
use ferry_format::manifest::BeforeStep;

use crate::exit::Precondition;
use crate::progress::Progress;

/// Output kept per stream of a failing step: its last bytes.
const KEEP: usize = 64 << 10;

/// Environment variables in ferry's namespace (`FERRY_PASSPHRASE`, ...) never reach a step.
const SCRUBBED_PREFIX: &str = "FERRY_";

/// The steps joined for one line: `npm ci; npm run build`.
pub fn describe(steps: &[BeforeStep]) -> String {
    steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Exit 4, naming the steps and the flag, unless the release engineer passed
/// `--run-before`.
pub fn require_consent(steps: &[BeforeStep], run_before: bool) -> Result<()> {
    if steps.is_empty() || run_before {
        return Ok(());
    }
    Err(Precondition(format!(
        "ferry.toml declares [build] before steps, which would run programs on this machine: \
         {}; review them and pass --run-before to run them",
        describe(steps)
    ))
    .into())
}

/// Runs each step in `dir`, in order; the first that fails stops the build.
pub fn run(steps: &[BeforeStep], dir: &Path, sde: u64, progress: &Progress) -> Result<()> {
    for (i, step) in steps.iter().enumerate() {
        let n = i + 1;
        progress.step(&format!("build step {n}: {step}"));
        let mut cmd = Command::new(step.program());
        cmd.args(&step.argv()[1..])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("SOURCE_DATE_EPOCH", sde.to_string());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with(SCRUBBED_PREFIX) {
                cmd.env_remove(k);
            }
        }
        let (status, stdout, stderr) = run_captured(&mut cmd).with_context(|| {
            format!(
                "build.before[{i}]: cannot run `{step}` (is {} installed and on PATH?)",
                step.program()
            )
        })?;
        if !status.success() {
            let mut shown = String::new();
            for (name, data) in [("stdout", stdout), ("stderr", stderr)] {
                let text = String::from_utf8_lossy(&data);
                let text = text.trim_end();
                if !text.is_empty() {
                    let _ = write!(shown, "\n--- {name} (last {} KiB) ---\n{text}", KEEP >> 10);
                }
            }
            bail!("build.before[{i}] (`{step}`) failed ({status}){shown}");
        }
    }
    Ok(())
}

/// Runs `cmd` with both outputs piped, keeping the last [`KEEP`] bytes of each.
fn run_captured(
    cmd: &mut Command,
) -> std::io::Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>)> {
    let mut child = cmd.spawn()?;
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let (o, e) = std::thread::scope(|s| {
        let o = s.spawn(|| tail(out));
        let e = tail(err);
        (o.join().expect("the output reader panicked"), e)
    });
    let status = child.wait()?;
    Ok((status, o?, e?))
}

/// Reads `r` to its end, keeping its last [`KEEP`] bytes.
fn tail(mut r: impl std::io::Read) -> std::io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => kept.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if kept.len() > 2 * KEEP {
            kept.drain(..kept.len() - KEEP);
        }
    }
    if kept.len() > KEEP {
        kept.drain(..kept.len() - KEEP);
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(words: &[&str]) -> BeforeStep {
        BeforeStep::new(words.iter().map(|w| (*w).to_owned()).collect()).unwrap()
    }

    #[test]
    fn steps_need_the_flag() {
        let steps = [step(&["npm", "ci"]), step(&["npm", "run", "build"])];
        assert!(require_consent(&[], false).is_ok());
        assert!(require_consent(&steps, true).is_ok());
        let e = require_consent(&steps, false).unwrap_err();
        assert!(e.is::<Precondition>());
        let msg = e.to_string();
        assert!(
            msg.contains("npm ci; npm run build") && msg.contains("--run-before"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }

    /// Steps (argv lists) and what the error must contain, if any.
    type Case<'a> = (&'a [&'a [&'a str]], Option<&'a [&'a str]>);

    #[test]
    fn steps_run_in_order_in_the_directory_and_failures_show_output() {
        let dir = tempfile::tempdir().unwrap();
        let p = Progress::new(false);
        let cases: &[Case] = &[
            (
                &[
                    &["sh", "-c", "mkdir -p dist && echo one > dist/a"],
                    &[
                        "sh",
                        "-c",
                        "cat dist/a > dist/b; echo $SOURCE_DATE_EPOCH >> dist/b",
                    ],
                ],
                None,
            ),
            (
                &[&["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"]],
                Some(&[
                    "build.before[0]",
                    "exit status: 3",
                    "to-stdout",
                    "to-stderr",
                ]),
            ),
            (
                &[&["true"], &["/nonexistent/program", "x"]],
                Some(&["build.before[1]: cannot run `/nonexistent/program x`"]),
            ),
            (
                // stdin is /dev/null: a step that asks for input reads end-of-file.
                &[&["sh", "-c", "read x || exit 9"]],
                Some(&["build.before[0]", "exit status: 9"]),
            ),
        ];
        for (steps, want) in cases {
            let steps: Vec<BeforeStep> = steps.iter().map(|s| step(s)).collect();
            match (run(&steps, dir.path(), 1_700_000_000, &p), want) {
                (Ok(()), None) => {}
                (Err(e), Some(needles)) => {
                    let e = format!("{e:#}");
                    for n in *needles {
                        assert!(e.contains(n), "{n:?} not in {e}");
                    }
                }
                (r, w) => panic!("{steps:?}: {r:?}, wanted {w:?}"),
            }
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("dist/b")).unwrap(),
            "one\n1700000000\n"
        );
    }

    #[test]
    fn only_the_tail_of_a_long_output_is_kept() {
        let data: Vec<u8> = (0..5 * KEEP)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let kept = tail(&data[..]).unwrap();
        assert_eq!(kept, data[data.len() - KEEP..]);
        assert_eq!(tail(&b"short"[..]).unwrap(), b"short");
    }
}
