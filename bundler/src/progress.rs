//! Progress on a terminal, silence otherwise: logs and CI stay clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    spinner: Option<ProgressBar>,
}

impl Progress {
    pub fn new(interactive: bool) -> Self {
        let spinner = interactive.then(|| {
            let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            pb.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("style"),
            );
            pb.enable_steady_tick(std::time::Duration::from_millis(120));
            pb
        });
        Self { spinner }
    }

    pub fn step(&self, msg: &str) {
        if let Some(s) = &self.spinner {
            s.set_message(msg.to_owned());
        }
    }

    /// A byte counter for packing; hidden when not interactive.
    pub fn bytes(&self, total: u64) -> ProgressBar {
        if self.spinner.is_none() {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("  {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("style"),
        );
        pb
    }

    /// Warnings always reach stderr, terminal or not.
    pub fn warn(&self, msg: &str) {
        match &self.spinner {
            Some(s) => s.suspend(|| eprintln!("warning: {msg}")),
            None => eprintln!("warning: {msg}"),
        }
    }

    pub fn finish(&self) {
        if let Some(s) = &self.spinner {
            s.finish_and_clear();
        }
    }
}
