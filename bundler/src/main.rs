use clap::Parser as _;
use ferry::cli::{Cli, Command};
use ferry::{build, checks, exit, inspect, keys, kit, progress, trust_cmd, try_cmd, verify};
use ferry_format::report::{print_error, print_json, Code};
use ferry_format::verify::DetachedPolicy;

fn main() {
    // Before anything else, while this is the only thread and no child exists: no process
    // ferry starts (go, git, systemd-analyze, ...) may inherit the passphrase, or read it
    // (or the decrypted key) from this process.
    keys::protect_process();
    let passphrase = keys::Passphrase::take_from_env();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Code::Usage.as_i32()
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let command = cli.command.name();
    let json = cli.json;
    if let Err(err) = run(cli, passphrase) {
        let code = exit::code(&err);
        print_error("ferry", command, code, err.as_ref(), json);
        std::process::exit(code.as_i32());
    }
}

fn run(cli: Cli, passphrase: keys::Passphrase) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Keygen {
            out,
            unencrypted,
            force,
        } => {
            let protection = if unencrypted {
                keys::Protection::Unencrypted
            } else {
                keys::Protection::Scrypt
            };
            let kp = keys::keygen(&out, protection, force, passphrase)?;
            let key = ferry_format::minisign::PublicKey::load(&kp.public)?;
            let result = serde_json::json!({
                "secret_key": kp.secret, "public_key": kp.public, "key_id": key.key_id().to_string(),
            });
            if json {
                print_json("ferry", "keygen", &result);
            } else {
                println!(
                    "key id {}: wrote {} and {}",
                    key.key_id(),
                    kp.secret.display(),
                    kp.public.display()
                );
            }
        }
        Command::Build {
            dir,
            key,
            out,
            targets,
            strict,
            revision,
            run_before,
        } => {
            let out_dir = out.clone();
            let args = build::BuildArgs {
                passphrase,
                dir,
                key,
                out,
                targets,
                revision,
                run_before,
                strictness: if strict {
                    checks::Strictness::Fail
                } else {
                    checks::Strictness::Warn
                },
            };
            let earlier = try_cmd::apps_in(&args.out);
            let report = build::run(
                args,
                &progress::Progress::new(build::interactive() && !json),
            )?;
            if !earlier.contains(&report.app) {
                let paths: Vec<String> = report.bundles.iter().map(|b| b.path.clone()).collect();
                eprintln!(
                    "{}",
                    try_cmd::hint_for_new_app(&out_dir, &report.app, &paths)
                );
            }
            if json {
                print_json("ferry", "build", &report);
            } else {
                for b in &report.bundles {
                    println!("{}  {}", b.sha256, b.path);
                }
            }
        }
        Command::Kit {
            out,
            bundles,
            key,
            pubkey,
            installers,
            volume_size,
        } => {
            let r = kit::run(
                &kit::KitArgs {
                    out,
                    bundles,
                    key,
                    pubkey,
                    installers,
                    volume_size,
                },
                passphrase,
            )?;
            if json {
                print_json("ferry", "kit", &r);
            } else {
                kit::print_human(&r);
            }
        }
        Command::Pack {
            dir,
            app,
            version,
            target,
            key,
            out,
            level,
        } => {
            let r = ferry::pack_cmd::run(ferry::pack_cmd::PackArgs {
                passphrase,
                dir,
                app,
                version,
                target,
                key,
                out,
                level,
            })?;
            if json {
                print_json("ferry", "pack", &r);
            } else {
                println!("{}  {}", r.sha256, r.path);
            }
        }
        Command::RotateKey { old, new, out } => {
            let r = trust_cmd::rotate(&old, &new, &out, passphrase)?;
            if json {
                print_json("ferry", "rotate-key", &r);
            } else {
                println!(
                    "wrote {}: {} replaces {}",
                    r.statement,
                    r.subject.join(", "),
                    r.signed_by
                );
            }
        }
        Command::RevokeKey {
            key,
            revoke,
            reason,
            out,
        } => {
            let r = trust_cmd::revoke(&key, &revoke, &reason, &out, passphrase)?;
            if json {
                print_json("ferry", "revoke-key", &r);
            } else {
                println!(
                    "wrote {}: {} revoked, signed by {}",
                    r.statement,
                    r.subject.join(", "),
                    r.signed_by
                );
            }
        }
        Command::Inspect {
            bundle,
            previous,
            policy,
            env,
        } => {
            let i = inspect::run(&inspect::InspectArgs {
                bundle,
                previous,
                policy,
                env,
            })?;
            let refusal = i.refusal();
            match (json, refusal) {
                (true, None) => print_json("ferry", "inspect", &i),
                (false, None) => inspect::print_human(&i),
                // The review is the point: a refusal still shows everything, then exits 4.
                (true, Some(why)) => {
                    let code = Code::PreconditionNotMet.as_i32();
                    let doc = serde_json::json!({
                        "schema": ferry_format::report::JSON_SCHEMA,
                        "tool": "ferry",
                        "command": "inspect",
                        "ok": false,
                        "result": i,
                        "error": { "exit_code": code, "message": why, "causes": [] },
                    });
                    println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
                    std::process::exit(code);
                }
                (false, Some(why)) => {
                    inspect::print_human(&i);
                    return Err(anyhow::anyhow!(exit::Precondition(why)));
                }
            }
        }
        Command::Try {
            bundle,
            pubkeys,
            installer,
            env,
            urls,
            policy,
            prepare,
        } => {
            let r = try_cmd::run(
                &try_cmd::TryArgs {
                    bundle,
                    pubkeys,
                    installer,
                    env,
                    urls,
                    policy,
                    prepare,
                },
                json,
            )?;
            let verdict = r.verdict();
            match (json, verdict) {
                (true, None) => print_json("ferry", "try", &r),
                (false, None) => try_cmd::print_human(&r),
                // The findings are the point: a difference still shows everything, then
                // exits with its code.
                (true, Some((code, why))) => {
                    let doc = serde_json::json!({
                        "schema": ferry_format::report::JSON_SCHEMA,
                        "tool": "ferry",
                        "command": "try",
                        "ok": false,
                        "result": r,
                        "error": { "exit_code": code, "message": why, "causes": [] },
                    });
                    println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
                    std::process::exit(code);
                }
                (false, Some((code, why))) => {
                    try_cmd::print_human(&r);
                    eprintln!("error: {why}");
                    std::process::exit(code);
                }
            }
        }
        Command::Verify {
            bundle,
            pubkeys,
            require_detached,
        } => {
            let policy = if require_detached {
                DetachedPolicy::Required
            } else {
                DetachedPolicy::IfPresent
            };
            let r = verify::run(&bundle, &pubkeys, policy)?;
            if json {
                print_json("ferry", "verify", &r);
            } else {
                verify::print_human(&r);
            }
        }
    }
    Ok(())
}
