//! Exit codes and the output envelope both binaries share: one `--json` document on
//! stdout (results or error), human text otherwise, errors as `error:` plus `caused by:`.

use std::error::Error;

use serde::Serialize;

/// The documented exit codes (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Code {
    Ok = 0,
    Failed = 1,
    Usage = 2,
    VerificationFailed = 3,
    PreconditionNotMet = 4,
    UnhealthyRolledBack = 5,
}

impl Code {
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// Version of the JSON envelope; bumped on any incompatible change.
pub const JSON_SCHEMA: u32 = 1;

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    schema: u32,
    tool: &'a str,
    command: &'a str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDoc>,
}

#[derive(Serialize)]
struct ErrorDoc {
    exit_code: i32,
    message: String,
    causes: Vec<String>,
}

/// Prints a successful result as the one JSON document on stdout.
pub fn print_json<T: Serialize>(tool: &str, command: &str, result: &T) {
    let doc = Envelope {
        schema: JSON_SCHEMA,
        tool,
        command,
        ok: true,
        result: Some(result),
        error: None,
    };
    emit_stdout(&serde_json::to_string_pretty(&doc).expect("json"));
}

/// Writes one document to stdout; a reader that went away (`| head`) is not an error.
fn emit_stdout(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing to stdout: {e}");
            std::process::exit(Code::Failed.as_i32());
        }
    }
}

fn chain(err: &(dyn Error + 'static)) -> (String, Vec<String>) {
    let mut causes = Vec::new();
    let mut cur = err.source();
    while let Some(c) = cur {
        let text = c.to_string();
        // thiserror's `{0}`-style messages repeat their source: skip exact repeats.
        if causes.last().is_none_or(|l: &String| l != &text) && !err.to_string().ends_with(&text) {
            causes.push(text);
        }
        cur = c.source();
    }
    (err.to_string(), causes)
}

/// Reports an error: a JSON document on stdout with `--json`, else `error:` and
/// `caused by:` lines on stderr.
pub fn print_error(tool: &str, command: &str, code: Code, err: &(dyn Error + 'static), json: bool) {
    let (message, causes) = chain(err);
    if json {
        let doc: Envelope<'_, ()> = Envelope {
            schema: JSON_SCHEMA,
            tool,
            command,
            ok: false,
            result: None,
            error: Some(ErrorDoc {
                exit_code: code.as_i32(),
                message,
                causes,
            }),
        };
        emit_stdout(&serde_json::to_string_pretty(&doc).expect("json"));
    } else {
        eprintln!("error: {message}");
        for c in causes {
            eprintln!("caused by: {c}");
        }
    }
}
