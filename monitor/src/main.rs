//! cri-monitor: the per-container monitor process spawned by cri-server (like CRI-O's conmon).
//!
//! See the module docs: [`args`] (command line), [`diag`] (own diagnostics), [`sync`] (start-up protocol and
//! daemonisation), [`runtime`] (`runtime create`), [`log`] (CRI log), [`attach`], [`ctl`],
//! [`console`], [`reaper`] (signals, reaping, exit file), [`oom`], [`monitor`] (the poll loop).

mod args;
mod attach;
mod clock;
mod console;
mod ctl;
mod diag;
mod log;
mod monitor;
mod oom;
mod reaper;
mod runtime;
mod sync;
mod sys;

use std::process::ExitCode;
use sync::SyncMessage;

fn main() -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let args = match args::parse(std::env::args_os().skip(1), &cwd) {
        Ok(args::Command::Run(a)) => a,
        Ok(args::Command::Help) => {
            println!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(args::Command::Version) => {
            println!("cri-monitor {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("cri-monitor: {e}\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let keep: Vec<i32> = args.sync_fd.into_iter().collect();
    if let Err(e) = sys::close_inherited_fds(&keep) {
        eprintln!("cri-monitor: closing inherited descriptors: {e}");
    }
    diag::init();
    let mut notifier = match sync::daemonize(args.sync_fd) {
        Ok(n) => n,
        Err(e) => {
            // Nothing forked yet: report on stdout as the protocol's error line.
            let msg = SyncMessage::Failed {
                error: format!("container {}: {e}", args.id),
            };
            println!("{}", serde_json::to_string(&msg).unwrap_or_default());
            return ExitCode::FAILURE;
        }
    };
    let _ = nix::unistd::chdir("/");
    let monitor = match monitor::Monitor::start(&args) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(id = %args.id, "{e}");
            let _ = notifier.send(&SyncMessage::Failed {
                error: e.to_string(),
            });
            return ExitCode::FAILURE;
        }
    };
    let started = SyncMessage::Started {
        pid: monitor.pid().as_raw(),
        monitor_pid: sync::my_pid(),
    };
    if let Err(e) = notifier.send(&started) {
        // The caller is gone; the container runs anyway and its exit must still be recorded.
        tracing::warn!(id = %args.id, "sending the start verdict: {e}");
    }
    drop(notifier);
    match monitor.run() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(id = %args.id, "{e}");
            ExitCode::FAILURE
        }
    }
}
