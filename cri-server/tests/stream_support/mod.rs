//! Shared helpers for the streaming tests: target processes in fresh namespaces, a TCP echo
//! server inside a network namespace, and clients for the SPDY and WebSocket protocols
//! written from the Go client's wire behaviour (client-go remotecommand/portforward).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cri_server::stream::nsenter::NsenterRuntime;
use cri_server::stream::spdy::{Connection, Headers, Stream};
use cri_server::stream::{StreamConfig, StreamServer};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub const T: Duration = Duration::from_secs(20);

/// A process in new pid, mount, uts and network namespaces (loopback up).
pub struct Target {
    unshare: Child,
    pub pid: u32,
}

impl Target {
    // The child is reaped in `Drop`.
    #[allow(clippy::zombie_processes)]
    pub fn start() -> Target {
        let unshare = Command::new("unshare")
            .args([
                "--fork",
                "--pid",
                "--mount-proc",
                "--mount",
                "--uts",
                "--net",
                "sh",
                "-c",
                "ip link set lo up && exec sleep 100000",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn unshare");
        let upid = unshare.id();
        let deadline = Instant::now() + T;
        loop {
            let children = std::fs::read_to_string(format!("/proc/{upid}/task/{upid}/children"))
                .unwrap_or_default();
            if let Some(pid) = children
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok())
            {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "sleep" {
                    return Target { unshare, pid };
                }
            }
            if Instant::now() > deadline {
                let mut unshare = unshare;
                let _ = unshare.kill();
                let _ = unshare.wait();
                panic!("target process did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn netns(&self) -> String {
        format!("/proc/{}/ns/net", self.pid)
    }

    /// Kill the target (the container "stops").
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
        let _ = self.unshare.wait();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .status();
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// A streaming server backed by `NsenterRuntime`, with `target` registered as container
/// "ctr" and sandbox "pod".
pub async fn server(target: &Target, ttl: Option<Duration>) -> StreamServer {
    server_with(target, |cfg| {
        if let Some(t) = ttl {
            cfg.token_ttl = t;
        }
    })
    .await
}

/// A streaming server on a runtime the test prepared.
pub async fn server_on(rt: Arc<NsenterRuntime>) -> StreamServer {
    let cfg = StreamConfig::new("127.0.0.1:0".parse().unwrap());
    StreamServer::start(cfg, rt)
        .await
        .expect("start streaming server")
}

/// Like [`server`], with the configuration adjusted by `tweak`.
pub async fn server_with(target: &Target, tweak: impl FnOnce(&mut StreamConfig)) -> StreamServer {
    let rt = NsenterRuntime::new();
    rt.register("ctr", target.pid);
    rt.register("pod", target.pid);
    let mut cfg = StreamConfig::new("127.0.0.1:0".parse().unwrap());
    tweak(&mut cfg);
    StreamServer::start(cfg, Arc::new(rt))
        .await
        .expect("start streaming server")
}

/// A TCP echo server listening on 127.0.0.1 inside `netns`; returns its port.
pub fn echo_server_in(netns: &str) -> u16 {
    let netns = netns.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&netns).unwrap();
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        tx.send(l.local_addr().unwrap().port()).unwrap();
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    rx.recv_timeout(T).expect("echo server port")
}

/// Path part of a streaming URL.
pub fn path_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http URL");
    rest[rest.find('/').unwrap()..].to_string()
}

/// Send an HTTP/1.1 upgrade request; returns the status code and the socket.
pub async fn http_upgrade(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, TcpStream) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(T, tcp.read(&mut b))
            .await
            .expect("response head")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed inside the response head: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let code = head[9..12].parse().unwrap();
    (code, head, tcp)
}

/// Upgrade to SPDY offering `protocols`; returns the client connection.
pub async fn spdy_connect(
    addr: std::net::SocketAddr,
    url: &str,
    protocols: &[&str],
) -> Result<Connection, (u16, String)> {
    let mut hdrs = vec![("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")];
    for p in protocols {
        hdrs.push(("X-Stream-Protocol-Version", p));
    }
    let (code, head, tcp) = http_upgrade(addr, &path_of(url), &hdrs).await;
    if code != 101 {
        return Err((code, head));
    }
    Ok(Connection::client(tcp))
}

pub async fn open(conn: &Connection, pairs: &[(&str, &str)]) -> Stream {
    conn.open(Headers::from_pairs(pairs.iter().copied()), T)
        .await
        .expect("open stream")
}

/// Output of a remote command run.
#[derive(Debug, Default)]
pub struct Outcome {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub error: Vec<u8>,
}

impl Outcome {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn error(&self) -> String {
        String::from_utf8_lossy(&self.error).into_owned()
    }
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_slice(&self.error)
            .unwrap_or_else(|e| panic!("status JSON {:?}: {e}", self.error()))
    }
}

/// Run a remote command over SPDY as client-go's v2–v5 stream protocols do: open the error
/// stream, then stdin/stdout/stderr, write `stdin` and half-close it, read everything.
pub async fn spdy_run(
    conn: Connection,
    stdin: Option<&[u8]>,
    stdout: bool,
    stderr: bool,
) -> Outcome {
    let mut error = open(&conn, &[("streamType", "error")]).await;
    let sin = match stdin {
        Some(_) => Some(open(&conn, &[("streamType", "stdin")]).await),
        None => None,
    };
    let sout = if stdout {
        Some(open(&conn, &[("streamType", "stdout")]).await)
    } else {
        None
    };
    let serr = if stderr {
        Some(open(&conn, &[("streamType", "stderr")]).await)
    } else {
        None
    };
    if let (Some(s), Some(data)) = (&sin, stdin) {
        s.writer.write(data).await.unwrap();
        s.writer.close().await.unwrap();
    }
    let out = async {
        match sout {
            Some(mut s) => s.reader.read_to_end().await,
            None => Vec::new(),
        }
    };
    let err = async {
        match serr {
            Some(mut s) => s.reader.read_to_end().await,
            None => Vec::new(),
        }
    };
    let (stdout, stderr, error) = tokio::time::timeout(T, async {
        tokio::join!(out, err, error.reader.read_to_end())
    })
    .await
    .expect("remote command finished");
    drop(conn);
    Outcome {
        stdout,
        stderr,
        error,
    }
}

pub type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Open a WebSocket offering `protocols`; returns the negotiated protocol.
pub async fn ws_connect(
    addr: std::net::SocketAddr,
    url: &str,
    protocols: &str,
) -> Result<(Ws, String), tokio_tungstenite::tungstenite::Error> {
    let ws_url = format!("ws://{addr}{}", path_of(url));
    let mut req = ws_url.into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, resp) = tokio_tungstenite::client_async(req, tcp).await?;
    let proto = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    Ok((ws, proto))
}

/// Collect channel messages until the server closes the socket.
pub async fn ws_collect(ws: &mut Ws, base64: bool) -> Vec<(u8, Vec<u8>)> {
    let mut got = Vec::new();
    let res = tokio::time::timeout(T, async {
        while let Some(Ok(m)) = ws.next().await {
            if let Some((ch, data)) = cri_server::stream::websocket::decode(&m, base64) {
                got.push((ch, data.to_vec()));
            }
            if m.is_close() {
                break;
            }
        }
    })
    .await;
    res.expect("server closed the WebSocket");
    got
}

pub fn channel(msgs: &[(u8, Vec<u8>)], ch: u8) -> Vec<u8> {
    msgs.iter()
        .filter(|(c, _)| *c == ch)
        .flat_map(|(_, d)| d.clone())
        .collect()
}

pub async fn ws_send(ws: &mut Ws, ch: u8, data: &[u8], base64: bool) {
    ws.send(cri_server::stream::websocket::encode(ch, data, base64))
        .await
        .unwrap();
}

/// Host pids whose command line is exactly `argv`.
pub fn pids_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

/// Poll `cond` until it holds or `T` passes.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
