//! Runs the real cri-server binary on a temporary socket and drives it with crictl.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A running cri-server; SIGKILLed on drop if still running.
#[derive(Debug)]
pub struct CriServer {
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
}

/// Path of crictl: `$CRICTL`, else `<workspace>/../shared/bin/crictl`.
pub fn crictl_path() -> PathBuf {
    std::env::var_os("CRICTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bin/crictl"))
}

impl CriServer {
    /// Writes a config under `dir` (root, state, socket, hosts.toml dir `certs_d`) and starts.
    pub fn start(dir: &Path, certs_d: &Path) -> CriServer {
        let socket = dir.join("cri.sock");
        let cfg = dir.join("config.toml");
        std::fs::write(
            &cfg,
            format!(
                "root_dir = \"{}\"\nstate_dir = \"{}\"\nlisten = \"{}\"\nlog_level = \"debug\"\n[registry]\nconfig_path = \"{}\"\n",
                dir.join("root").display(),
                dir.join("state").display(),
                socket.display(),
                certs_d.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("cri-server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cri-server"))
            .arg("--config")
            .arg(&cfg)
            .stderr(log)
            .spawn()
            .unwrap();
        let s = CriServer {
            dir: dir.to_owned(),
            socket,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&s.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "cri-server did not listen: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("cri-server.log")).unwrap_or_default()
    }

    /// Runs crictl against this server.
    pub fn crictl(&self, args: &[&str]) -> Output {
        let ep = format!("unix://{}", self.socket.display());
        Command::new(crictl_path())
            .args([
                "--image-endpoint",
                &ep,
                "--runtime-endpoint",
                &ep,
                "--timeout",
                "60s",
            ])
            .args(args)
            .output()
            .expect("run crictl")
    }

    /// crictl that must succeed; returns stdout.
    pub fn crictl_ok(&self, args: &[&str]) -> String {
        let out = self.crictl(args);
        assert!(
            out.status.success(),
            "crictl {args:?} failed: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub fn stop(mut self) -> bool {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        child.wait().unwrap().success()
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for CriServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
