use std::path::Path;

use clap::Parser as _;
use ferry_format::report::{print_error, print_json, Code};
use ferry_format::verify::DetachedPolicy;
use ferry_format::Limits;
use ferry_install::cli::{Cli, Command};
use ferry_install::{exit, keys, verify};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { Code::Usage.as_i32() } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let command = cli.command.name();
    let json = cli.json;
    if let Err(err) = run(cli) {
        let code = exit::code(&err);
        print_error("ferry-install", command, code, err.as_ref(), json);
        std::process::exit(code.as_i32());
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Verify { bundle, keys: key_args, require_detached } => {
            let keyring = keys::load(&key_args, Path::new("/"))?;
            let policy = if require_detached { DetachedPolicy::Required } else { DetachedPolicy::IfPresent };
            let r = verify::run(&bundle, &keyring, &Limits::default(), policy)?;
            if json {
                print_json("ferry-install", "verify", &r);
            } else {
                verify::print_human(&r);
            }
        }
    }
    Ok(())
}
