//! Test fixtures: busybox bundles, a runc-CLI-compatible runtime, and a monitored container whose
//! Drop guard deletes it. The runtime is Debian's runc unless KINA_TEST_RUNTIME names another.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const MONITOR: &str = env!("CARGO_BIN_EXE_cri-monitor");

pub fn runtime() -> PathBuf {
    std::env::var_os("KINA_TEST_RUNTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/sbin/runc".into())
}

/// Polls `f` until it yields, failing the test after a generous bound (not a timing assertion).
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// One CRI log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ts: String,
    pub stream: String,
    pub tag: String,
    pub content: String,
}

/// Parses a CRI log file, asserting every line has the CRI shape.
pub fn parse_log(path: &Path) -> Vec<Entry> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "log does not end with a newline"
    );
    text.lines()
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let e = Entry {
                ts: f.next().unwrap().to_string(),
                stream: f
                    .next()
                    .unwrap_or_else(|| panic!("no stream: {l:?}"))
                    .into(),
                tag: f.next().unwrap_or_else(|| panic!("no tag: {l:?}")).into(),
                content: f
                    .next()
                    .unwrap_or_else(|| panic!("no content: {l:?}"))
                    .into(),
            };
            check_timestamp(&e.ts);
            assert!(e.stream == "stdout" || e.stream == "stderr", "{l:?}");
            assert!(e.tag == "P" || e.tag == "F", "{l:?}");
            e
        })
        .collect()
}

/// `2016-10-06T00:17:09.669794202Z` (or with a numeric zone offset).
pub fn check_timestamp(ts: &str) {
    let b = ts.as_bytes();
    let ok = b.len() >= 30
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[20..29].iter().all(u8::is_ascii_digit)
        && (&ts[29..] == "Z" || (ts.len() == 35 && matches!(b[29], b'+' | b'-')));
    assert!(ok, "not an RFC3339Nano timestamp with 9 digits: {ts:?}");
}

/// A busybox-static OCI bundle.
pub struct Bundle {
    pub dir: tempfile::TempDir,
}

impl Bundle {
    pub fn new(args: &[&str], tty: bool) -> Self {
        Self::with(args, tty, |_| {})
    }

    pub fn with(args: &[&str], tty: bool, edit: impl FnOnce(&mut Value)) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mon")
            .tempdir_in("/tmp")
            .unwrap();
        let bin = dir.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        for d in ["proc", "dev", "sys", "tmp"] {
            std::fs::create_dir_all(dir.path().join("rootfs").join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8(list.stdout).unwrap().lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
            }
        }
        let st = Command::new(runtime())
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "runtime spec failed");
        let cfg_path = dir.path().join("config.json");
        let mut cfg: Value = serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
        cfg["process"]["args"] = args.iter().map(|s| Value::from(*s)).collect();
        cfg["process"]["terminal"] = tty.into();
        cfg["process"]["env"] = serde_json::json!(["PATH=/bin", "TERM=xterm"]);
        edit(&mut cfg);
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// The start verdict the monitor prints.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub pid: i32,
    pub monitor_pid: i32,
}

/// A container under a monitor; deleted (with force) on drop.
pub struct Monitored {
    pub bundle: Bundle,
    pub id: String,
    pub state: tempfile::TempDir,
    pub tty: bool,
    pub stdin: bool,
}

impl Monitored {
    pub fn new(name: &str, bundle: Bundle) -> Self {
        let id = format!(
            "mon-{name}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let state = tempfile::Builder::new()
            .prefix("ms")
            .tempdir_in("/tmp")
            .unwrap();
        Self {
            bundle,
            id,
            state,
            tty: false,
            stdin: false,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.state.path().join("runtime")
    }
    pub fn log_path(&self) -> PathBuf {
        self.state.path().join("c.log")
    }
    pub fn exit_file(&self) -> PathBuf {
        self.state.path().join("exit")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.state.path().join("pid")
    }
    pub fn socket_dir(&self) -> PathBuf {
        self.state.path().join("s")
    }

    /// The monitor's command line.
    pub fn command(&self) -> Command {
        let mut c = Command::new(MONITOR);
        c.arg("--runtime")
            .arg(runtime())
            .arg("--root")
            .arg(self.root())
            .arg("--bundle")
            .arg(self.bundle.path())
            .arg("--id")
            .arg(&self.id)
            .arg("--log-path")
            .arg(self.log_path())
            .arg("--exit-file")
            .arg(self.exit_file())
            .arg("--pid-file")
            .arg(self.pid_file())
            .arg("--socket-dir")
            .arg(self.socket_dir());
        if self.tty {
            c.arg("--tty");
        }
        if self.stdin {
            c.arg("--stdin");
        }
        c
    }

    /// Runs the monitor and parses its verdict; `Command::output` also proves the daemon does
    /// not hold the caller's stdout/stderr open.
    pub fn start_monitor(&self) -> Result<Started, (Output, Value)> {
        let out = self.command().stdin(Stdio::null()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            text.lines().count(),
            1,
            "exactly one verdict line: {text:?} {out:?}"
        );
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        if out.status.success() {
            Ok(Started {
                pid: v["pid"].as_i64().unwrap() as i32,
                monitor_pid: v["monitor_pid"].as_i64().unwrap() as i32,
            })
        } else {
            Err((out, v))
        }
    }

    pub fn runtime_cmd(&self, args: &[&str]) -> Output {
        Command::new(runtime())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .unwrap()
    }

    pub fn start(&self) {
        let out = self.runtime_cmd(&["start", &self.id]);
        assert!(out.status.success(), "runtime start: {out:?}");
    }

    pub fn kill(&self, sig: &str) {
        let out = self.runtime_cmd(&["kill", &self.id, sig]);
        assert!(out.status.success(), "runtime kill: {out:?}");
    }

    /// Waits for the exit file and for the monitor to be gone.
    pub fn wait_exit(&self, monitor_pid: i32) -> Value {
        let v = wait_for("the exit file", || {
            let b = std::fs::read(self.exit_file()).ok()?;
            Some(serde_json::from_slice::<Value>(&b).expect("exit file is complete JSON"))
        });
        wait_for("the monitor to exit", || {
            (!alive(monitor_pid)).then_some(())
        });
        v
    }

    pub fn log(&self) -> Vec<Entry> {
        parse_log(&self.log_path())
    }

    pub fn wait_log(&self, what: &str, pred: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
        wait_for(what, || {
            let l = self.log();
            pred(&l).then_some(l)
        })
    }
}

impl Drop for Monitored {
    fn drop(&mut self) {
        let _ = Command::new(runtime())
            .arg("--root")
            .arg(self.root())
            .args(["delete", "-f", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

pub fn lines_of(entries: &[Entry], stream: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.stream == stream)
        .map(|e| e.content.clone())
        .collect()
}
