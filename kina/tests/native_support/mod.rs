//! Shared by the native-provider tests: a network namespace the test owns (everything kina
//! does to the network happens inside it, never on the host's), running kina there, and a
//! busybox image archive built locally.

#![allow(dead_code)]

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A named network namespace (`/run/netns/<name>`) with loopback up, deleted on drop.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new(tag: &str) -> Self {
        let name = format!("kina-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ok(Command::new("ip").args(["netns", "add", &name]));
        ok(Command::new("ip").args(["netns", "exec", &name, "ip", "link", "set", "lo", "up"]));
        Self { name }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// A command run in this network namespace only (mounts stay the host's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        c
    }

    /// Runs `f` on a thread that has joined this network namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        std::thread::scope(|s| {
            s.spawn(move || {
                let ns = File::open(&path).unwrap();
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `cmd`, panicking with its output unless it succeeds.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Polls `f` every 200 ms until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A fresh state dir for one test whose `images/` is shared by every test of the run: the
/// node image is imported once (it is large), while clusters, nodes and networks stay apart.
pub fn fresh_state_dir(tag: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let shared = tmp.join("kina-test-images");
    fs::create_dir_all(&shared).unwrap();
    let dir = tmp.join(format!("state-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&shared, dir.join("images")).unwrap();
    dir
}

/// The kina binary and, beside it, kina-runtime.
pub fn kina_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kina"))
}

pub fn runtime_bin() -> PathBuf {
    let p = kina_bin().with_file_name("kina-runtime");
    if !p.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        ok(Command::new(cargo)
            .args(["build", "-p", "kina-runtime", "--bin", "kina-runtime"])
            .current_dir(env!("CARGO_MANIFEST_DIR")));
    }
    p
}

/// A ustar header owned by root with a fixed mtime.
fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Writes an OCI-layout tar holding one image named `name` (e.g. `kina.test/web:v1`):
/// busybox-static with its applets linked, and a page at /www/index.html saying `page`;
/// the image runs `httpd` on port 80 in the foreground.
pub fn busybox_web_image(dest: &Path, name: &str, page: &str) {
    let mut layer = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, p: &str| {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, p, std::io::empty()).unwrap();
    };
    for d in ["bin", "www", "tmp", "etc"] {
        dir(&mut layer, d);
    }
    let busybox = fs::read("/bin/busybox").expect("busybox-static is installed");
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    layer
        .append_data(&mut h, "bin/busybox", &busybox[..])
        .unwrap();
    for applet in [
        "sh", "httpd", "cat", "sleep", "echo", "ls", "wget", "hostname",
    ] {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        layer
            .append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    for (path, data) in [
        ("www/index.html", page.as_bytes()),
        ("etc/passwd", b"root:x:0:0:root:/:/bin/sh\n".as_slice()),
    ] {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        layer.append_data(&mut h, path, data).unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let layer_digest = sha(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Cmd": ["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"],
            "Env": ["PATH=/bin"], "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(&manifest),
                       "size": manifest.len(), "annotations": {"io.containerd.image.name": name}}],
    })
    .to_string()
    .into_bytes();
    let mut out = tar::Builder::new(File::create(dest).unwrap());
    let mut put = |path: String, data: &[u8]| {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        out.append_data(&mut h, path, data).unwrap();
    };
    for blob in [&layer, &config, &manifest] {
        put(format!("blobs/sha256/{}", &sha(blob)[7..]), blob);
    }
    put("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    put("index.json".into(), &index);
    out.into_inner().unwrap().flush().unwrap();
}

/// Mount points under `dir` in the host's mount table.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_owned)
        .collect()
}

/// Processes whose cgroup path (any hierarchy) mentions `needle`.
pub fn processes_in_cgroup(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cg) = fs::read_to_string(e.path().join("cgroup"))
            && cg.contains(needle)
        {
            found.push(name);
        }
    }
    found
}
