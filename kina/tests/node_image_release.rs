//! Downloading Kubernetes release binaries against a real HTTP server on 127.0.0.1: a good
//! checksum is accepted, a corrupted one rejected naming the URL and both digests, a 404 named.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use kina::node_image::NodeImageError;
use kina::node_image::kube_binaries::{self, KubeSource, all_binaries};
use sha2::{Digest, Sha256};

/// A minimal HTTP/1.1 file server: path → body; anything else is 404. Stops on drop.
struct Server {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, f, r) = (stop.clone(), files.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    serve(conn, &f, &r);
                }
            }
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
            files,
            requests,
        }
    }

    fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_owned(), body.into());
    }

    fn remove(&self, path: &str) {
        self.files.lock().unwrap().remove(path);
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, files: &Mutex<HashMap<String, Vec<u8>>>, requests: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    requests.lock().unwrap().push(path.clone());
    let body = files.lock().unwrap().get(&path).cloned();
    let mut conn = conn;
    let (status, body) = match body {
        Some(b) => ("200 OK", b),
        None => ("404 Not Found", b"404 page not found\n".to_vec()),
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(&body);
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A fake binary set for `version`: kubeadm reports it, the others are small scripts.
fn publish(server: &Server, version: &str, arch: &str) -> HashMap<&'static str, Vec<u8>> {
    let mut bodies = HashMap::new();
    for name in all_binaries() {
        let body = if name == "kubeadm" {
            format!("#!/bin/sh\n[ \"$*\" = \"version -o short\" ] && echo {version}\n").into_bytes()
        } else {
            format!("#!/bin/sh\necho {name}\n").into_bytes()
        };
        let path = format!("/release/{version}/bin/linux/{arch}/{name}");
        server.put(&format!("{path}.sha256"), sha256(&body));
        server.put(&path, body.clone());
        bodies.insert(name, body);
    }
    bodies
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn release_binaries_with_good_checksums_are_installed() {
    let server = Server::start();
    let arch = kube_binaries::host_arch().unwrap();
    let bodies = publish(&server, "v1.99.0", arch);
    let dl = tempdir();
    let source = KubeSource::Release {
        version: "v1.99.0".into(),
        base_url: format!("{}/release", server.addr),
    };
    let bins = kube_binaries::resolve(&source, dl.path()).unwrap();
    assert_eq!(bins.version, "v1.99.0");
    assert_eq!(bins.dir, dl.path().join("v1.99.0"));
    for (name, body) in &bodies {
        let p = bins.path(name);
        assert_eq!(&std::fs::read(&p).unwrap(), body, "{name}");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }
    // A second resolve keeps verified files: only the checksums are fetched again.
    let before = server.requests().len();
    kube_binaries::resolve(&source, dl.path()).unwrap();
    let again: Vec<String> = server.requests()[before..].to_vec();
    assert_eq!(again.len(), 7, "{again:?}");
    assert!(again.iter().all(|p| p.ends_with(".sha256")), "{again:?}");
}

#[test]
fn a_corrupted_binary_is_rejected_and_not_left_behind() {
    let server = Server::start();
    let arch = kube_binaries::host_arch().unwrap();
    publish(&server, "v1.99.1", arch);
    let path = format!("/release/v1.99.1/bin/linux/{arch}/kubelet");
    server.put(&path, b"#!/bin/sh\necho tampered\n".to_vec());
    let dl = tempdir();
    let source = KubeSource::Release {
        version: "v1.99.1".into(),
        base_url: format!("{}/release", server.addr),
    };
    let err = kube_binaries::resolve(&source, dl.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, NodeImageError::Checksum { .. }), "{msg}");
    assert!(
        msg.contains("checksum mismatch") && msg.contains(&path),
        "{msg}"
    );
    assert!(
        msg.contains(&sha256(b"#!/bin/sh\necho tampered\n")),
        "{msg}"
    );
    let dir = dl.path().join("v1.99.1");
    assert!(!dir.join("kubelet").exists() && !dir.join("kubelet.partial").exists());
}

#[test]
fn missing_files_and_bad_checksum_files_are_named() {
    let server = Server::start();
    let arch = kube_binaries::host_arch().unwrap();
    let base_url = format!("{}/release", server.addr);
    let dl = tempdir();

    let err = kube_binaries::resolve(
        &KubeSource::Release {
            version: "v1.98.0".into(),
            base_url: base_url.clone(),
        },
        dl.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("HTTP 404")
            && err.contains("/release/v1.98.0/bin/linux/")
            && err.contains(".sha256"),
        "{err}"
    );

    publish(&server, "v1.99.2", arch);
    server.remove(&format!("/release/v1.99.2/bin/linux/{arch}/kube-proxy"));
    let err = kube_binaries::resolve(
        &KubeSource::Release {
            version: "v1.99.2".into(),
            base_url: base_url.clone(),
        },
        dl.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("HTTP 404") && err.ends_with("kube-proxy: HTTP 404 Not Found"),
        "{err}"
    );

    publish(&server, "v1.99.3", arch);
    server.put(
        &format!("/release/v1.99.3/bin/linux/{arch}/kubeadm.sha256"),
        "<html>oops</html>",
    );
    let err = kube_binaries::resolve(
        &KubeSource::Release {
            version: "v1.99.3".into(),
            base_url: base_url.clone(),
        },
        dl.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("kubeadm.sha256") && err.contains("not a sha256 checksum"),
        "{err}"
    );

    // kubeadm reporting another version than asked for.
    publish(&server, "v1.99.4", arch);
    let body = b"#!/bin/sh\necho v1.2.3\n".to_vec();
    let p = format!("/release/v1.99.4/bin/linux/{arch}/kubeadm");
    server.put(&format!("{p}.sha256"), sha256(&body));
    server.put(&p, body);
    let err = kube_binaries::resolve(
        &KubeSource::Release {
            version: "v1.99.4".into(),
            base_url,
        },
        dl.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("--kube-version v1.99.4") && err.contains("v1.2.3"),
        "{err}"
    );

    // Nothing listens here: a connection error, naming the URL.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/r", closed.local_addr().unwrap());
    drop(closed);
    let err = kube_binaries::resolve(
        &KubeSource::Release {
            version: "v1.99.5".into(),
            base_url: url.clone(),
        },
        dl.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!("download {url}/v1.99.5/")),
        "{err}"
    );
    assert!(Path::new(dl.path()).exists());
}
