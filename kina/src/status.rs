//! The status lines users see: a spinner per step, then ✓ or ✗ with the time it took.
//!
//! Like kind: on a terminal each step shows a spinner while it runs and is replaced by
//! ` ✓ Step (1.2s)` or ` ✗ Step (1.2s)`. When stderr is not a terminal the same steps are
//! printed as plain lines (` • Step ...` when it starts, then the result) without any
//! control codes. Quiet mode prints nothing; errors are the caller's to print.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

enum Mode {
    Quiet,
    Plain(Arc<Mutex<dyn Write + Send>>),
    Spinner,
}

/// Step-by-step progress output.
pub struct Status {
    mode: Mode,
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Quiet => "quiet",
            Mode::Plain(_) => "plain",
            Mode::Spinner => "spinner",
        };
        f.debug_struct("Status").field("mode", &mode).finish()
    }
}

impl Status {
    /// Output on stderr: spinners on a terminal, plain lines otherwise, nothing if `quiet`.
    pub fn stderr(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Spinner
        } else {
            Mode::Plain(Arc::new(Mutex::new(std::io::stderr())))
        };
        Status { mode }
    }

    /// Plain lines to `out` (what a non-terminal stderr gets).
    pub fn plain(out: Arc<Mutex<dyn Write + Send>>) -> Self {
        Status {
            mode: Mode::Plain(out),
        }
    }

    /// No output at all.
    pub fn quiet() -> Self {
        Status { mode: Mode::Quiet }
    }

    /// A line of its own, e.g. `Creating cluster "kina" ...`.
    pub fn line(&self, text: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain(out) => write_line(out, text),
            Mode::Spinner => eprintln!("{text}"),
        }
    }

    /// Run `f` as the step `title`, showing its progress and result.
    pub fn step<T, E>(&self, title: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let start = Instant::now();
        let spinner = match &self.mode {
            Mode::Quiet => None,
            Mode::Plain(out) => {
                write_line(out, &format!(" • {title}  ..."));
                None
            }
            Mode::Spinner => {
                let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                pb.set_style(
                    ProgressStyle::with_template(" {spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner())
                        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
                );
                pb.set_message(title.to_string());
                pb.enable_steady_tick(Duration::from_millis(100));
                Some(pb)
            }
        };
        let result = f();
        let line = result_line(title, result.is_ok(), start.elapsed());
        if let Some(pb) = spinner {
            pb.finish_and_clear();
            eprintln!("{line}");
        } else if let Mode::Plain(out) = &self.mode {
            write_line(out, &line);
        }
        result
    }
}

fn write_line(out: &Mutex<dyn Write + Send>, text: &str) {
    // A poisoned lock only means another thread panicked mid-line; keep printing.
    let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(w, "{text}");
    let _ = w.flush();
}

/// ` ✓ Title (1.23s)` or ` ✗ Title (1.23s)`.
pub fn result_line(title: &str, ok: bool, elapsed: Duration) -> String {
    let mark = if ok { '✓' } else { '✗' };
    format!(" {mark} {title} ({})", format_elapsed(elapsed))
}

/// Elapsed time the way people read it: `0.42s`, `12.3s`, `2m5s`.
pub fn format_elapsed(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 10.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let s = d.as_secs();
        format!("{}m{}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture() -> (Arc<Mutex<Vec<u8>>>, Status) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let status = Status::plain(buf.clone());
        (buf, status)
    }

    fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
        String::from_utf8(buf.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn plain_rendering_has_start_and_result_lines_without_control_codes() {
        let (buf, status) = capture();
        status.line("Creating cluster \"kina\" ...");
        let r: Result<u32, String> = status.step("Preparing nodes 📦", || Ok(7));
        assert_eq!(r, Ok(7));
        let r: Result<(), String> =
            status.step("Starting control-plane 🕹️", || Err("boom".into()));
        assert_eq!(r, Err("boom".to_string()));
        let out = text(&buf);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 5, "{out}");
        assert_eq!(lines[0], "Creating cluster \"kina\" ...");
        assert_eq!(lines[1], " • Preparing nodes 📦  ...");
        assert!(
            lines[2].starts_with(" ✓ Preparing nodes 📦 ("),
            "{}",
            lines[2]
        );
        assert!(lines[2].ends_with("s)"), "{}", lines[2]);
        assert_eq!(lines[3], " • Starting control-plane 🕹️  ...");
        assert!(
            lines[4].starts_with(" ✗ Starting control-plane 🕹️ ("),
            "{}",
            lines[4]
        );
        assert!(!out.contains('\u{1b}'), "control codes in {out:?}");
        assert!(!out.contains('\r'), "carriage return in {out:?}");
    }

    #[test]
    fn quiet_prints_nothing_but_runs_the_step() {
        let status = Status::quiet();
        let mut ran = false;
        let r: Result<(), ()> = status.step("x", || {
            ran = true;
            Ok(())
        });
        assert!(r.is_ok() && ran);
    }

    #[test]
    fn elapsed_formats() {
        assert_eq!(format_elapsed(Duration::from_millis(420)), "0.42s");
        assert_eq!(format_elapsed(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(format_elapsed(Duration::from_secs(125)), "2m5s");
        assert_eq!(
            result_line("Installing CNI 🔌", true, Duration::from_millis(1500)),
            " ✓ Installing CNI 🔌 (1.50s)"
        );
    }
}
