//! kina-pause: the sandbox "infra" process that holds a pod's namespaces (like Kubernetes' pause.c).
//!
//! It is PID-1-safe: SIGINT/SIGTERM make it exit 0, SIGCHLD makes it reap every exited child
//! (orphans of the pod's pid namespace are re-parented to it), and otherwise it sleeps forever.
//! Instead of signal handlers + `pause()` it blocks the three signals and waits for them with
//! `sigwait(2)`: blocked signals are never dropped by the kernel, not even for a namespace's init
//! (which otherwise ignores signals it has no handler for), and no `unsafe` is needed.

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use std::process::ExitCode;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-v") | Some("--version") if args.len() == 1 => {
            println!("kina-pause {VERSION}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("kina-pause: unknown argument {other:?} (usage: kina-pause [-v])");
            return ExitCode::from(2);
        }
    }
    if std::process::id() != 1 {
        eprintln!("kina-pause: warning: not running as PID 1");
    }

    let mut set = SigSet::empty();
    for sig in [Signal::SIGCHLD, Signal::SIGINT, Signal::SIGTERM] {
        set.add(sig);
    }
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        eprintln!("kina-pause: sigprocmask: {e}");
        return ExitCode::FAILURE;
    }
    // Children that exited before the mask was installed.
    reap_all();
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => reap_all(),
            Ok(Signal::SIGINT) | Ok(Signal::SIGTERM) => {
                reap_all();
                return ExitCode::SUCCESS;
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("kina-pause: sigwait: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

/// Reaps every child that has exited, without blocking.
fn reap_all() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("kina-pause: waitpid: {e}");
                return;
            }
        }
    }
}
