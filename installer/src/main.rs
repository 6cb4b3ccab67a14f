use ferry_format::report::{print_error, print_json, Code};
use ferry_format::verify::DetachedPolicy;
use ferry_install::args::{self, Parsed};
use ferry_install::cli::{Cli, Command};
use ferry_install::host::Host;
use ferry_install::install::{self, Apply, Downgrade, InstallArgs, Start};
use ferry_install::manage::{self, Purge};
use ferry_install::{exit, keys, kit, lock, verify};

fn main() {
    let argv: Vec<_> = std::env::args_os().collect();
    let json = argv.iter().any(|a| a == "--json");
    let cli = match args::parse(argv.iter().cloned()) {
        Ok(Parsed::Run(c)) => c,
        Ok(Parsed::Help(text)) => {
            print!("{text}");
            return;
        }
        Ok(Parsed::Version) => {
            println!("ferry-install {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        Err(e) => {
            let command = argv
                .iter()
                .skip(1)
                .filter_map(|a| a.to_str())
                .find(|a| !a.starts_with('-'));
            if json {
                print_error(
                    "ferry-install",
                    command.unwrap_or(""),
                    Code::Usage,
                    &e,
                    true,
                );
            } else {
                eprintln!("error: {e}\n\n{}", args::usage_hint(command));
            }
            std::process::exit(Code::Usage.as_i32());
        }
    };
    let command = cli.command.name();
    if let Err(err) = run(*cli) {
        let code = exit::code(&err);
        print_error("ferry-install", command, code, err.as_ref(), json);
        std::process::exit(code.as_i32());
    }
}

fn emit<T: serde::Serialize>(json: bool, command: &str, value: &T, human: impl FnOnce(&T)) {
    if json {
        print_json("ferry-install", command, value);
    } else {
        human(value);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Verify {
            kit: Some(dir),
            volumes,
            keys: key_args,
            limits,
            ..
        } => {
            let keyring = keys::load(&key_args, &Host::new(None), &mut |n| {
                ferry_install::steps::step(n);
            })?;
            kit::verify_command(&dir, &keyring, &limits.limits(), &volumes, json)?;
        }
        Command::Verify {
            bundle,
            keys: key_args,
            require_detached,
            limits,
            ..
        } => {
            let bundle = bundle.expect("the parser requires BUNDLE without --kit");
            let keyring = keys::load(&key_args, &Host::new(None), &mut |n| {
                ferry_install::steps::step(n);
            })?;
            let policy = if require_detached {
                DetachedPolicy::Required
            } else {
                DetachedPolicy::IfPresent
            };
            let r = verify::run(&bundle, &keyring, &limits.limits(), policy)?;
            emit(json, "verify", &r, verify::print_human);
        }
        Command::Install {
            bundle,
            volumes,
            tmpdir,
            keys: key_args,
            env,
            root,
            dry_run,
            no_start,
            allow_downgrade,
            allow_escalation,
            limits,
        } => {
            let host = Host::new(root.as_deref());
            let keyring = keys::load(&key_args, &host, &mut |n| ferry_install::steps::step(n))?;
            let kit = kit::resolve(&bundle, &keyring, &volumes)?;
            if let Some(k) = &kit {
                kit::check(k)?;
            }
            // Whatever the programs the installer runs need as scratch goes to the host.
            std::env::set_var("TMPDIR", &tmpdir);
            let args = InstallArgs {
                bundle,
                keyring,
                env,
                host,
                apply: if dry_run { Apply::DryRun } else { Apply::Yes },
                start: if no_start { Start::No } else { Start::Yes },
                escalation: if allow_escalation {
                    install::Escalation::Allow
                } else {
                    install::Escalation::Refuse
                },
                downgrade: if allow_downgrade {
                    Downgrade::Allow
                } else {
                    Downgrade::Refuse
                },
                limits: limits.limits(),
                kit,
                tmpdir,
            };
            let r = install::run(&args)?;
            emit(json, "install", &r, |r| {
                for c in &r.configs {
                    if let Some(d) = &c.diff {
                        println!(
                            "{} {}: {}",
                            c.action,
                            c.path,
                            c.new_default
                                .as_deref()
                                .map_or(String::new(), |n| format!("new default in {n}"))
                        );
                        print!("{d}");
                    }
                }
                if r.dry_run {
                    install::print_footprint(&r.plan);
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&r.plan).unwrap_or_default()
                    );
                } else if let Some(d) = r
                    .plan
                    .footprint_changes
                    .as_ref()
                    .filter(|d| !d.added.is_empty() || !d.removed.is_empty())
                {
                    install::print_changes(d);
                }
                println!("{}", r.message);
            });
        }
        Command::Status { app, root } => {
            let s = manage::status(&Host::new(root.as_deref()), &app)?;
            emit(json, "status", &s, |s| {
                println!(
                    "{} {} ({}) unit {} {}/{} restarts {} healthy {}",
                    s.app,
                    s.version,
                    s.env,
                    s.unit,
                    s.active_state.as_deref().unwrap_or("-"),
                    s.sub_state.as_deref().unwrap_or("-"),
                    s.n_restarts.as_deref().unwrap_or("-"),
                    s.healthy.map_or("-".into(), |h| h.to_string())
                );
            });
        }
        Command::List { root } => {
            let l = manage::list(&Host::new(root.as_deref()))?;
            emit(json, "list", &l, |l| {
                for a in l {
                    println!(
                        "{} {} ({}) previous: {}",
                        a.app,
                        a.version,
                        a.env,
                        a.previous_versions.join(", ")
                    );
                }
            });
        }
        Command::Rollback { app, root } => {
            let host = Host::new(root.as_deref());
            let _lock = lock::acquire(&host.root)?;
            let r = manage::rollback(&host, &app)?;
            emit(json, "rollback", &r, |r| {
                println!(
                    "{} rolled back from {} to {}",
                    r.app, r.from_version, r.to_version
                );
            });
        }
        Command::Uninstall { app, purge, root } => {
            let purge = if purge {
                Purge::Everything
            } else {
                Purge::KeepData
            };
            let host = Host::new(root.as_deref());
            let _lock = lock::acquire(&host.root)?;
            let r = manage::uninstall(&host, &app, purge)?;
            emit(json, "uninstall", &r, |r| {
                println!(
                    "{} {} uninstalled; kept: {}",
                    r.app,
                    r.version.as_deref().unwrap_or("(no release)"),
                    if r.kept.is_empty() {
                        "nothing".into()
                    } else {
                        r.kept.join(", ")
                    }
                );
            });
        }
    }
    Ok(())
}
