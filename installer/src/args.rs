//! The command line, parsed by hand: clap's parser and help machinery cost the static
//! installer about 120 KiB of its 2 MiB budget, and this CLI is small and fixed. The
//! grammar is the usual one: `--flag value`, `--flag=value`, `--` ends flags, `--json`,
//! `-h`/`--help` and `-V`/`--version` anywhere.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::{Cli, Command, KeyArgs, LimitArgs};

/// What the command line asks for.
pub enum Parsed {
    Run(Box<Cli>),
    /// Print this on stdout and exit 0.
    Help(String),
    Version,
}

/// A usage error: printed with the usage line, exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

const KEY_FLAGS: &[&str] = &["pubkey", "keyring", "rotation", "revocation"];
const LIMIT_FLAGS: &[&str] = &[
    "max-manifest-bytes",
    "max-signature-bytes",
    "max-files",
    "max-file-bytes",
    "max-total-bytes",
    "max-path-bytes",
    "max-ratio",
    "max-generated-bytes",
    "max-before-steps",
    "max-before-step-bytes",
];

struct Spec {
    name: &'static str,
    /// Positional names; `?` suffix marks optional.
    positional: &'static [&'static str],
    value_flags: &'static [&'static str],
    bool_flags: &'static [&'static str],
    keys: bool,
    limits: bool,
    help: &'static str,
}

const TOP_HELP: &str = "\
Verify and install ferry bundles on air-gapped systemd hosts

Usage: ferry-install [--json] <COMMAND>

Commands:
  verify     Verify a bundle (or a field kit): signatures and every file's SHA-256
  install    Verify a bundle and install it; start it, check its health, roll back on failure
  status     Show an installed application's release, service state and health
  list       List installed applications
  rollback   Return to the previous release
  uninstall  Remove an application; configuration, data and logs stay unless --purge

Options:
      --json     Print one JSON document on stdout (results or error)
  -h, --help     Print help (also after a command)
  -V, --version  Print version

Exit codes: 0 ok, 1 failed, 2 usage, 3 verification failed, 4 precondition not met,
5 unhealthy after start and rolled back.
";

const KEY_HELP: &str = "\
Trusted keys:
      --pubkey <PUB>         Trusted minisign public key (repeatable)
      --keyring <DIR>        Keys (*.pub, used without --pubkey), rotations/*.rotation,
                             revocations/*.revocation and a `revoked` list
                             [default: /etc/ferry/keys]
      --rotation <FILE>      Key rotation statement to accept (repeatable)
      --revocation <FILE>    Key revocation statement to enforce (repeatable)
";

const LIMIT_HELP: &str = "\
Limits (defaults in README, \"Limits\"):
      --max-manifest-bytes <BYTES>   --max-signature-bytes <BYTES>   --max-files <N>
      --max-file-bytes <BYTES>       --max-total-bytes <BYTES>       --max-path-bytes <BYTES>
      --max-ratio <N>                --max-generated-bytes <BYTES>
      --max-before-steps <N>         --max-before-step-bytes <BYTES>
";

const SPECS: &[Spec] = &[
    Spec {
        name: "verify",
        positional: &["BUNDLE?"],
        value_flags: &["kit", "volume"],
        bool_flags: &["require-detached"],
        keys: true,
        limits: true,
        help: "\
Verify a bundle: manifest signature, every file's SHA-256, detached signature

Usage: ferry-install verify [OPTIONS] <BUNDLE>
       ferry-install verify [OPTIONS] --kit <DIR>

Options:
      --kit <DIR>            Check a field kit (or one VOL-NNN volume) against its signed index
      --volume <DIR>         Another directory holding kit volumes (repeatable)
      --require-detached     Fail if BUNDLE.minisig is missing
      --json                 Print one JSON document on stdout
",
    },
    Spec {
        name: "install",
        positional: &["BUNDLE"],
        value_flags: &["volume", "tmpdir", "env", "root"],
        bool_flags: &["dry-run", "no-start", "allow-downgrade", "allow-escalation"],
        keys: true,
        limits: true,
        help: "\
Verify a bundle and install it: user, directories, release, configs, unit; start it and
check its health; roll back on failure

Usage: ferry-install install [OPTIONS] <BUNDLE>

BUNDLE is a bundle file, or a field kit: its directory, its kit.index, or a bundle's first
part (NAME.part001); parts are read in order as one stream, never joined on disk.

Options:
      --env <NAME>           Environment whose configuration to install [default: the bundle's]
      --root <DIR>           Install into an offline root (image building): everything but starting
      --dry-run              Verify and print the plan; change nothing
      --no-start             Lay out and enable, but do not (re)start the service
      --allow-downgrade      Allow installing a version older than the installed one
      --allow-escalation     Allow an upgrade that widens the service's footprint (review
                             it first with --dry-run)
      --volume <DIR>         Another directory holding kit volumes (repeatable)
      --tmpdir <DIR>         Scratch space on the host; nothing is written beside the bundle
                             [default: /var/tmp]
      --json                 Print one JSON document on stdout
",
    },
    Spec {
        name: "status",
        positional: &["APP"],
        value_flags: &["root"],
        bool_flags: &[],
        keys: false,
        limits: false,
        help: "\
Show an installed application's release, service state and health

Usage: ferry-install status [--root <DIR>] [--json] <APP>
",
    },
    Spec {
        name: "list",
        positional: &[],
        value_flags: &["root"],
        bool_flags: &[],
        keys: false,
        limits: false,
        help: "\
List installed applications

Usage: ferry-install list [--root <DIR>] [--json]
",
    },
    Spec {
        name: "rollback",
        positional: &["APP"],
        value_flags: &["root"],
        bool_flags: &[],
        keys: false,
        limits: false,
        help: "\
Return to the previous release

Usage: ferry-install rollback [--root <DIR>] [--json] <APP>
",
    },
    Spec {
        name: "uninstall",
        positional: &["APP"],
        value_flags: &["root"],
        bool_flags: &["purge"],
        keys: false,
        limits: false,
        help: "\
Remove an application; configuration, data and logs stay unless --purge

Usage: ferry-install uninstall [--purge] [--root <DIR>] [--json] <APP>

Options:
      --purge                Also remove configuration, data and logs
",
    },
];

impl Spec {
    fn full_help(&self) -> String {
        let mut h = self.help.to_owned();
        if self.keys {
            h.push('\n');
            h.push_str(KEY_HELP);
        }
        if self.limits {
            h.push('\n');
            h.push_str(LIMIT_HELP);
        }
        h
    }

    fn takes_value(&self, flag: &str) -> Option<bool> {
        if self.value_flags.contains(&flag)
            || (self.keys && KEY_FLAGS.contains(&flag))
            || (self.limits && LIMIT_FLAGS.contains(&flag))
        {
            Some(true)
        } else if self.bool_flags.contains(&flag) {
            Some(false)
        } else {
            None
        }
    }
}

/// Flags and positionals of one command line.
struct Matches {
    /// `(flag, value)`, in command-line order.
    values: Vec<(String, String)>,
    bools: Vec<String>,
    positional: Vec<String>,
    command: &'static str,
}

impl Matches {
    fn flag(&self, name: &str) -> bool {
        self.bools.iter().any(|b| b == name)
    }

    fn all(&self, name: &str) -> Vec<PathBuf> {
        self.values
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| PathBuf::from(v))
            .collect()
    }

    fn one(&self, name: &str) -> Result<Option<String>, UsageError> {
        let mut given = self.values.iter().filter(|(n, _)| n == name);
        match (given.next(), given.next()) {
            (None, _) => Ok(None),
            (Some((_, v)), None) => Ok(Some(v.clone())),
            (Some(_), Some(_)) => Err(UsageError(format!("--{name} given more than once"))),
        }
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, UsageError> {
        self.one(name)?
            .map(|v| {
                v.parse()
                    .map_err(|_| UsageError(format!("--{name} {v:?}: expected a whole number")))
            })
            .transpose()
    }

    fn keys(&self) -> KeyArgs {
        KeyArgs {
            pubkeys: self.all("pubkey"),
            keyring: self
                .all("keyring")
                .pop()
                .unwrap_or_else(|| PathBuf::from("/etc/ferry/keys")),
            rotations: self.all("rotation"),
            revocations: self.all("revocation"),
        }
    }

    fn limits(&self) -> Result<LimitArgs, UsageError> {
        Ok(LimitArgs {
            max_manifest_bytes: self.number("max-manifest-bytes")?,
            max_signature_bytes: self.number("max-signature-bytes")?,
            max_files: self.number("max-files")?,
            max_file_bytes: self.number("max-file-bytes")?,
            max_total_bytes: self.number("max-total-bytes")?,
            max_path_bytes: self.number("max-path-bytes")?,
            max_ratio: self.number("max-ratio")?,
            max_generated_bytes: self.number("max-generated-bytes")?,
            max_before_steps: self.number("max-before-steps")?,
            max_before_step_bytes: self.number("max-before-step-bytes")?,
        })
    }

    fn app(&self) -> String {
        self.positional[0].clone()
    }

    fn root(&self) -> Result<Option<PathBuf>, UsageError> {
        Ok(self.one("root")?.map(PathBuf::from))
    }
}

/// Parses `std::env::args_os()`.
pub fn parse(argv: impl IntoIterator<Item = OsString>) -> Result<Parsed, UsageError> {
    let mut tokens = Vec::new();
    for a in argv.into_iter().skip(1) {
        tokens.push(
            a.into_string()
                .map_err(|a| UsageError(format!("argument {a:?} is not valid UTF-8")))?,
        );
    }
    let mut json = false;
    let mut help = false;
    let mut rest = Vec::new();
    let mut after_dashdash = false;
    for t in tokens {
        match t.as_str() {
            _ if after_dashdash => rest.push(t),
            "--" => {
                after_dashdash = true;
                rest.push(t);
            }
            "--json" => json = true,
            "-h" | "--help" => help = true,
            _ => rest.push(t),
        }
    }
    let Some(first) = rest.first().cloned() else {
        return if help {
            Ok(Parsed::Help(TOP_HELP.to_owned()))
        } else {
            Err(UsageError("a command is required".into()))
        };
    };
    if first == "-V" || first == "--version" {
        return Ok(Parsed::Version);
    }
    let spec = SPECS
        .iter()
        .find(|s| s.name == first)
        .ok_or_else(|| UsageError(format!("unrecognized command {first:?}")))?;
    if help {
        return Ok(Parsed::Help(spec.full_help()));
    }
    let m = matches(spec, &rest[1..])?;
    Ok(Parsed::Run(Box::new(Cli {
        json,
        command: build(&m)?,
    })))
}

fn matches(spec: &Spec, args: &[String]) -> Result<Matches, UsageError> {
    let mut m = Matches {
        values: Vec::new(),
        bools: Vec::new(),
        positional: Vec::new(),
        command: spec.name,
    };
    let mut it = args.iter();
    let mut flags_done = false;
    while let Some(t) = it.next() {
        if flags_done || !t.starts_with('-') || t == "-" {
            m.positional.push(t.clone());
            continue;
        }
        if t == "--" {
            flags_done = true;
            continue;
        }
        let body = t
            .strip_prefix("--")
            .ok_or_else(|| UsageError(format!("unexpected argument {t:?}")))?;
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        match spec.takes_value(name) {
            None => {
                return Err(UsageError(format!(
                    "unexpected argument '--{name}' for '{}'",
                    spec.name
                )))
            }
            Some(true) => {
                let v = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| UsageError(format!("--{name} needs a value")))?,
                };
                m.values.push((name.to_owned(), v));
            }
            Some(false) => {
                if inline.is_some() {
                    return Err(UsageError(format!("--{name} takes no value")));
                }
                m.bools.push(name.to_owned());
            }
        }
    }
    let required = spec.positional.iter().filter(|p| !p.ends_with('?')).count();
    if m.positional.len() > spec.positional.len() {
        return Err(UsageError(format!(
            "unexpected argument {:?} for '{}'",
            m.positional[spec.positional.len()],
            spec.name
        )));
    }
    if m.positional.len() < required {
        return Err(UsageError(format!(
            "'{}' needs <{}>",
            spec.name,
            spec.positional[m.positional.len()].trim_end_matches('?')
        )));
    }
    Ok(m)
}

fn build(m: &Matches) -> Result<Command, UsageError> {
    Ok(match m.command {
        "verify" => {
            let kit = m.one("kit")?.map(PathBuf::from);
            let bundle = m.positional.first().map(PathBuf::from);
            match (&bundle, &kit) {
                (None, None) => {
                    return Err(UsageError("'verify' needs <BUNDLE> or --kit <DIR>".into()))
                }
                (Some(_), Some(_)) => {
                    return Err(UsageError("give <BUNDLE> or --kit, not both".into()))
                }
                _ => {}
            }
            Command::Verify {
                bundle,
                kit,
                volumes: m.all("volume"),
                keys: m.keys(),
                require_detached: m.flag("require-detached"),
                limits: m.limits()?,
            }
        }
        "install" => Command::Install {
            bundle: PathBuf::from(&m.positional[0]),
            volumes: m.all("volume"),
            tmpdir: m
                .one("tmpdir")?
                .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from),
            keys: m.keys(),
            env: m.one("env")?,
            root: m.root()?,
            dry_run: m.flag("dry-run"),
            no_start: m.flag("no-start"),
            allow_downgrade: m.flag("allow-downgrade"),
            allow_escalation: m.flag("allow-escalation"),
            limits: m.limits()?,
        },
        "status" => Command::Status {
            app: m.app(),
            root: m.root()?,
        },
        "list" => Command::List { root: m.root()? },
        "rollback" => Command::Rollback {
            app: m.app(),
            root: m.root()?,
        },
        "uninstall" => Command::Uninstall {
            app: m.app(),
            purge: m.flag("purge"),
            root: m.root()?,
        },
        other => return Err(UsageError(format!("unrecognized command {other:?}"))),
    })
}

/// The usage line shown under a usage error.
pub fn usage_hint(argv0_command: Option<&str>) -> String {
    match argv0_command {
        Some(c) if SPECS.iter().any(|s| s.name == c) => {
            format!("For more information, try 'ferry-install {c} --help'.")
        }
        _ => "For more information, try 'ferry-install --help'.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, UsageError> {
        parse(
            std::iter::once("ferry-install")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    fn cmd(args: &[&str]) -> Command {
        match p(args) {
            Ok(Parsed::Run(c)) => c.command,
            Ok(_) => panic!("{args:?}: help or version"),
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    #[test]
    fn accepted() {
        match cmd(&[
            "install",
            "b.tar.zst",
            "--pubkey",
            "a.pub",
            "--pubkey=b.pub",
            "--env",
            "dev",
            "--dry-run",
            "--max-files",
            "7",
        ]) {
            Command::Install {
                bundle,
                keys,
                env,
                dry_run,
                no_start,
                limits,
                tmpdir,
                ..
            } => {
                assert_eq!(bundle, PathBuf::from("b.tar.zst"));
                assert_eq!(keys.pubkeys.len(), 2);
                assert_eq!(env.as_deref(), Some("dev"));
                assert!(dry_run && !no_start);
                assert_eq!(limits.max_files, Some(7));
                assert_eq!(tmpdir, PathBuf::from("/var/tmp"));
            }
            _ => panic!(),
        }
        assert!(matches!(
            cmd(&["--json", "uninstall", "--purge", "hello"]),
            Command::Uninstall { purge: true, .. }
        ));
        assert!(matches!(
            cmd(&["verify", "--kit", "/media/kit"]),
            Command::Verify {
                kit: Some(_),
                bundle: None,
                ..
            }
        ));
        assert!(matches!(cmd(&["list"]), Command::List { root: None }));
        assert!(matches!(
            cmd(&["status", "--", "-odd-name"]),
            Command::Status { .. }
        ));
    }

    #[test]
    fn refused() {
        for bad in [
            &[][..],
            &["frobnicate"],
            &["install"],
            &["install", "a", "b"],
            &["install", "a", "--pubkey"],
            &["install", "a", "--purge"],
            &["install", "a", "--dry-run=yes"],
            &["install", "a", "--max-files", "many"],
            &["install", "a", "--env", "x", "--env", "y"],
            &["verify"],
            &["verify", "b", "--kit", "k"],
            &["status"],
            &["list", "extra"],
            &["uninstall", "-x", "hello"],
        ] {
            assert!(p(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(p(&["--help"]), Ok(Parsed::Help(h)) if h.contains("Commands:")));
        assert!(
            matches!(p(&["install", "--help"]), Ok(Parsed::Help(h)) if h.contains("--dry-run") && h.contains("--pubkey"))
        );
        assert!(matches!(p(&["-V"]), Ok(Parsed::Version)));
    }
}
