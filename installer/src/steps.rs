//! Progress lines, named points in an install, and a test hook that kills the installer
//! at one of them (`FERRY_TEST_KILL_AT=<step>`), so crash consistency is tested at every
//! boundary. A kill there is exactly what a power cut does; the next run undoes the
//! journal.

/// One progress line on stderr.
pub fn step(msg: &str) {
    eprintln!("ferry-install: {msg}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Staged,
    Users,
    Directories,
    Placed,
    Switched,
    Configs,
    Units,
    Applied,
    Recorded,
}

impl Step {
    pub const ALL: [Step; 9] = [
        Step::Staged,
        Step::Users,
        Step::Directories,
        Step::Placed,
        Step::Switched,
        Step::Configs,
        Step::Units,
        Step::Applied,
        Step::Recorded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Staged => "staged",
            Step::Users => "users",
            Step::Directories => "directories",
            Step::Placed => "placed",
            Step::Switched => "switched",
            Step::Configs => "configs",
            Step::Units => "units",
            Step::Applied => "applied",
            Step::Recorded => "recorded",
        }
    }
}

pub fn reached(step: Step) {
    if std::env::var("FERRY_TEST_KILL_AT").is_ok_and(|v| v == step.name()) {
        eprintln!(
            "ferry-install: FERRY_TEST_KILL_AT={}: killing myself",
            step.name()
        );
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
