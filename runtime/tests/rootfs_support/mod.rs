//! Test support shared by the rootfs_* and process_* integration tests.
//!
//! Each test that changes process-wide state (mount namespace, root, credentials, seccomp)
//! runs its body in a fresh process: the parent re-executes this very test binary filtered to
//! exactly that test, under `unshare(1)` with a new mount namespace (plus whatever other
//! namespaces the test asks for). Nothing forks inside the multi-threaded test harness and no
//! `unsafe` pre_exec hook is needed: unshare(1) creates the namespaces before exec'ing us. The
//! child sees `KINA_ENV_CHILD` and runs the body; the parent checks the child ran exactly that
//! one test successfully, then that no mount leaked into the host's mount table. A child that
//! hangs is killed (its whole process group) after a minute and reported with its output.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHILD: &str = "KINA_ENV_CHILD";
const BUNDLE: &str = "KINA_ENV_BUNDLE";

/// In the child: the bundle directory prepared by the parent.
pub fn child_bundle() -> Option<PathBuf> {
    std::env::var_os(CHILD)?;
    std::env::var_os(BUNDLE).map(PathBuf::from)
}

/// A bundle with a busybox rootfs at `<bundle>/rootfs`.
pub struct Bundle {
    pub dir: tempfile::TempDir,
}

impl Bundle {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

/// Builds a bundle whose rootfs holds /bin/busybox (+ /bin/sh) and the usual directories.
pub fn busybox_bundle() -> Bundle {
    let dir = tempfile::Builder::new()
        .prefix("kina-env-")
        .tempdir()
        .unwrap();
    let root = dir.path().join("rootfs");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "run"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    Bundle { dir }
}

/// How long a child test may run before it is killed and reported as hung.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs test `name` again in a child process with a new mount namespace plus `unshare_args`
/// (e.g. "--ipc", "--net"), passing `bundle`. Panics with the child's output if it failed or
/// hung (after [`CHILD_TIMEOUT`] its whole process group is killed).
pub fn run_in_child(name: &str, unshare_args: &[&str], bundle: &Bundle) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "unchanged"])
        .args(unshare_args);
    if unshare_args.contains(&"--fork") {
        cmd.arg("--kill-child");
    }
    let mut child = cmd
        .arg("--")
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env(BUNDLE, bundle.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn unshare");
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            // The child and everything it started share its process group.
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let ok = status.is_some_and(|s| s.success()) && stdout.contains("1 passed");
    assert!(
        ok,
        "child for {name} {}:\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        match status {
            Some(s) => format!("failed ({s})"),
            None => format!("hung for {CHILD_TIMEOUT:?} and was killed"),
        }
    );
    assert_no_leak(bundle.path());
    stdout + &stderr
}

/// No mount under `dir` is visible in the host (parent) mount namespace.
pub fn assert_no_leak(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_string_lossy();
    let leaked: Vec<&str> = info.lines().filter(|l| l.contains(dir.as_ref())).collect();
    assert!(leaked.is_empty(), "mounts leaked to the host: {leaked:#?}");
}

/// Runs `script` with the container's busybox sh; returns (exit code, stdout+stderr).
pub fn sh(script: &str) -> (i32, String) {
    let out = Command::new("/bin/busybox")
        .args(["sh", "-c", script])
        .output()
        .expect("run busybox");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// Runs `script` and asserts it exits 0; returns its output.
pub fn sh_ok(script: &str) -> String {
    let (code, out) = sh(script);
    assert_eq!(code, 0, "script failed: {script}\n{out}");
    out
}

/// Captured tracing output of the child.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Installs a global subscriber writing into the buffer (child process only).
    pub fn install() -> Logs {
        let logs = Logs::default();
        let w = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .init();
        logs
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Parses a spec from JSON, filling in `root.path` = the bundle's rootfs.
pub fn spec(json: serde_json::Value) -> oci_spec::runtime::Spec {
    let mut v = json;
    if v.get("ociVersion").is_none() {
        v["ociVersion"] = "1.2.0".into();
    }
    if v.get("root").is_none() {
        v["root"] = serde_json::json!({"path": "rootfs"});
    }
    serde_json::from_value(v).expect("valid spec")
}

/// One mountinfo line (fields of interest) for `mount_point`, the top-most one.
pub fn mountinfo_line(mount_point: &str) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .rfind(|l| l.split(' ').nth(4) == Some(mount_point))
        .map(str::to_string)
}

/// The per-mount option field (6th) of a mountinfo line.
pub fn mount_opts(line: &str) -> Vec<String> {
    line.split(' ')
        .nth(5)
        .unwrap_or("")
        .split(',')
        .map(str::to_string)
        .collect()
}
