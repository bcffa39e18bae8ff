//! A real Debian `docker-registry` on 127.0.0.1 for tests: plain HTTP, htpasswd basic auth,
//! or TLS with a self-signed CA. Killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How the registry is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Basic { user: String, password: String },
    Tls,
}

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    pub port: u16,
    pub mode: Mode,
    pub dir: tempfile::TempDir,
    child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Creates a CA and a server certificate for 127.0.0.1 in `dir`; returns (ca, cert, key).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca_key, ca, key, csr, cert, ext) = (
        dir.join("ca.key"),
        dir.join("ca.pem"),
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("server.pem"),
        dir.join("ext.cnf"),
    );
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=kina test CA",
        ])
        .arg("-keyout")
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-out")
        .arg(&cert)
        .arg("-extfile")
        .arg(&ext));
    (ca, cert, key)
}

impl Registry {
    /// Starts a registry and waits until it accepts connections.
    pub fn start(mode: Mode) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        match &mode {
            Mode::Plain => {}
            Mode::Basic { user, password } => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .unwrap();
                assert!(out.status.success());
                let f = dir.path().join("htpasswd");
                std::fs::write(&f, out.stdout).unwrap();
                yaml.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: kina-test\n    path: {}\n",
                    f.display()
                ));
            }
            Mode::Tls => {
                let (_, cert, key) = make_certs(dir.path());
                yaml.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                ));
            }
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, yaml).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        let reg = Registry {
            port,
            mode,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry on port {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        reg
    }

    /// `127.0.0.1:PORT`.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` or `https://...`.
    pub fn url(&self) -> String {
        let scheme = if self.mode == Mode::Tls {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.authority())
    }

    /// The CA certificate of a TLS registry.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The on-disk data file of a blob (to corrupt it in fault tests).
    pub fn blob_data(&self, hex: &str) -> PathBuf {
        self.dir.path().join(format!(
            "data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }

    /// Writes `<certs_d>/<registry>/hosts.toml` mirroring `registry` to this registry. The
    /// `server` is this registry too, so no test ever falls back to the real upstream.
    pub fn write_hosts_toml(&self, certs_d: &Path, registry: &str, extra: &str) {
        let d = certs_d.join(registry);
        std::fs::create_dir_all(&d).unwrap();
        let url = self.url();
        std::fs::write(
            d.join("hosts.toml"),
            format!("server = \"{url}\"\n\n[host.\"{url}\"]\n  capabilities = [\"pull\", \"resolve\"]\n{extra}"),
        )
        .unwrap();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
