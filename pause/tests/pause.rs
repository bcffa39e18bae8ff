//! Real behaviour of kina-pause: signal handling, zombie reaping as PID 1 of a new pid namespace,
//! and the static build running alone in an empty chroot.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PAUSE: &str = env!("CARGO_BIN_EXE_kina-pause");
/// Absolute, because the test clears the environment (and so PATH) for the chroot.
const CHROOT: &str = "/usr/sbin/chroot";

/// Kills and reaps the child on drop so a failing test leaks no process.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kill(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid} failed");
}

/// Waits (bounded, generous) for the child to exit and returns its exit code.
fn wait_exit(child: &mut Child, what: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st
                .code()
                .unwrap_or_else(|| panic!("{what} killed by signal: {st:?}"));
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("children");
        let s = std::fs::read_to_string(path).unwrap_or_default();
        out.extend(s.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
    }
    out
}

fn state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.trim_start().chars().next()
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn version_flag_prints_version() {
    let out = Command::new(PAUSE).arg("-v").output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        s.trim(),
        format!("kina-pause {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_argument_is_rejected() {
    let out = Command::new(PAUSE).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}

#[test]
fn sigterm_and_sigint_exit_zero() {
    for sig in ["-TERM", "-INT"] {
        let mut g = Guard(Command::new(PAUSE).stderr(Stdio::null()).spawn().unwrap());
        // Still running: it does not exit on its own.
        std::thread::sleep(Duration::from_millis(200));
        assert!(g.0.try_wait().unwrap().is_none(), "pause exited by itself");
        kill(g.0.id(), sig);
        assert_eq!(
            wait_exit(&mut g.0, "kina-pause"),
            0,
            "exit code after {sig}"
        );
    }
}

#[test]
fn reaps_orphaned_zombies_as_pid1_of_a_pid_namespace() {
    let mut g = Guard(
        Command::new("unshare")
            .args(["-fp", "--mount-proc", PAUSE])
            .spawn()
            .expect("run unshare (util-linux)"),
    );
    let unshare = g.0.id();
    let pause = wait_for("pause to start inside the namespace", || {
        children(unshare).into_iter().find(|&c| {
            std::fs::read_link(format!("/proc/{c}/exe")).ok() == Some(PathBuf::from(PAUSE))
        })
    });
    // Wait until it has become pause (exec done) and blocks on its signals.
    std::thread::sleep(Duration::from_millis(100));
    // A shell inside the namespace double-forks: `sleep` is orphaned and re-parented to pause.
    let st = Command::new("nsenter")
        .args([
            "-t",
            &pause.to_string(),
            "-p",
            "-m",
            "--",
            "sh",
            "-c",
            "sleep 1 &",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let orphan = wait_for("the orphan to be re-parented to pause", || {
        children(pause).first().copied()
    });
    // Once the orphan exits, pause must reap it: no <defunct> child may remain.
    wait_for("the orphan to be reaped", || {
        (state(orphan).is_none() && children(pause).is_empty()).then_some(())
    });
    assert_ne!(state(orphan), Some('Z'));
    kill(pause, "-TERM");
    assert_eq!(wait_exit(&mut g.0, "unshare/pause"), 0);
}

fn build_static(out: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("build-static.sh");
    let st = Command::new("bash").arg(script).arg(out).status().unwrap();
    assert!(st.success(), "build-static.sh failed");
}

#[test]
fn static_binary_runs_alone_in_an_empty_chroot() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    build_static(&root.join("pause"));

    // No program interpreter and no shared-library dependencies (readelf: binutils).
    let headers = Command::new("readelf")
        .arg("-lW")
        .arg(root.join("pause"))
        .output()
        .unwrap();
    assert!(headers.status.success());
    assert!(!String::from_utf8_lossy(&headers.stdout).contains("INTERP"));
    let dynamic = Command::new("readelf")
        .arg("-dW")
        .arg(root.join("pause"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&dynamic.stdout).contains("(NEEDED)"));
    let ldd = Command::new("ldd")
        .arg(root.join("pause"))
        .output()
        .unwrap();
    let ldd =
        String::from_utf8_lossy(&ldd.stdout).to_string() + &String::from_utf8_lossy(&ldd.stderr);
    assert!(
        ldd.contains("not a dynamic executable") || ldd.contains("statically linked"),
        "{ldd}"
    );
    // The chroot holds nothing but the binary.
    let entries: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert_eq!(entries.len(), 1);

    let out = Command::new(CHROOT)
        .env_clear()
        .arg(&root)
        .args(["/pause", "-v"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("kina-pause "));

    let mut g = Guard(
        Command::new(CHROOT)
            .env_clear()
            .arg(&root)
            .arg("/pause")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = g.0.id();
    // chroot execs pause in place, so the child pid is pause itself.
    wait_for("pause to exec in the chroot", || {
        (std::fs::read_link(format!("/proc/{pid}/exe")).ok()? == Path::new("/pause")
            || std::fs::read_link(format!("/proc/{pid}/root")).ok()? == root)
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        g.0.try_wait().unwrap().is_none(),
        "static pause died in the chroot"
    );
    kill(pid, "-TERM");
    assert_eq!(wait_exit(&mut g.0, "static pause"), 0);
}
