//! Shared support of the RuntimeService tests: the real binaries (cri-server, cri-monitor,
//! kina-runtime, a static kina-pause), locally built images imported into the store, a real
//! cri-server process with a k8s-cri client, and a bridge CNI network cleaned up on drop.
#![allow(dead_code)]

pub mod images;
pub mod net;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Paths of the binaries under test.
#[derive(Debug, Clone)]
pub struct Bins {
    pub cri_server: PathBuf,
    pub monitor: PathBuf,
    pub kina_runtime: PathBuf,
    pub pause: PathBuf,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds a missing workspace binary in a separate target dir (the outer cargo may still hold
/// the lock of ours) and returns its path.
fn ensure_bin(dir: &Path, package: &str, bin: &str) -> PathBuf {
    let p = dir.join(bin);
    if p.exists() {
        return p;
    }
    let target = dir.join("..").join("runtime-support");
    let st = Command::new(env!("CARGO"))
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "-j2", "-p", package, "--bin", bin])
        .status()
        .expect("run cargo build");
    assert!(st.success(), "cargo build -p {package} failed");
    target.join("debug").join(bin)
}

/// The binaries, building what is missing once per test process.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let cri_server = PathBuf::from(env!("CARGO_BIN_EXE_cri-server"));
        let dir = cri_server.parent().unwrap().to_owned();
        let monitor = ensure_bin(&dir, "cri-monitor", "cri-monitor");
        let kina_runtime = ensure_bin(&dir, "kina-runtime", "kina-runtime");
        let pause = dir.join("..").join("runtime-test").join("pause");
        if !pause.exists() {
            let st = Command::new(workspace().join("pause/build-static.sh"))
                .env("KINA_STATIC_TARGET_DIR", dir.join("..").join("static"))
                .arg(&pause)
                .status()
                .expect("run pause/build-static.sh");
            assert!(st.success(), "pause/build-static.sh failed");
        }
        Bins {
            cri_server,
            monitor,
            kina_runtime,
            pause,
        }
    })
}

/// The runtime handler the tests run on: the native kina-runtime, or `$KINA_TEST_HANDLER`
/// (e.g. `runc`) to compare.
pub fn handler() -> String {
    std::env::var("KINA_TEST_HANDLER").unwrap_or_else(|_| "kina".into())
}

/// Polls `cond` every 20 ms for up to `secs` seconds.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Lines of /proc/self/mountinfo mentioning `needle`.
pub fn mounts_with(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Processes whose command line mentions `needle`.
pub fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}
