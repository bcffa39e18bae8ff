//! The real Go client against the streaming server: kubectl (client-go remotecommand and
//! portforward, SPDY and WebSocket) talks to a minimal front that answers the pod GET and
//! forwards the exec/portforward upgrade to the URL the streaming server issued, as the API
//! server does for the kubelet.

mod stream_support;

use std::process::Stdio;
use std::sync::Arc;

use cri_server::stream::StreamServer;
use cri_server::stream::nsenter::NsenterRuntime;
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use stream_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn query(target: &str, key: &str) -> Vec<String> {
    let q = target.split_once('?').map(|x| x.1).unwrap_or_default();
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| unescape(v))
        .collect()
}

fn flag(target: &str, key: &str) -> bool {
    query(target, key)
        .first()
        .is_some_and(|v| v == "true" || v == "1")
}

const POD: &str = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"default","uid":"u1"},"spec":{"containers":[{"name":"c","image":"busybox"}]},"status":{"phase":"Running","containerStatuses":[{"name":"c","ready":true,"restartCount":0,"image":"busybox","imageID":"","state":{"running":{}}}]}}"#;

/// Upgrade kinds kubectl asked for, in order.
static UPGRADES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

const API: &str = r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}"#;
const APIS: &str = r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#;
const API_V1: &str = r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]},{"name":"pods/exec","singularName":"","namespaced":true,"kind":"PodExecOptions","verbs":["create","get"]},{"name":"pods/portforward","singularName":"","namespaced":true,"kind":"PodPortForwardOptions","verbs":["create","get"]}]}"#;

/// Serve kubectl: the pod GET, then hand exec/portforward upgrades to the streaming server.
async fn front(srv: Arc<StreamServer>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (c, _) = l.accept().await.unwrap();
            tokio::spawn(serve(c, srv.clone()));
        }
    });
    port
}

async fn serve(mut c: TcpStream, srv: Arc<StreamServer>) {
    loop {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if c.read(&mut b).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let mut first = head.lines().next().unwrap().split(' ');
        let (method, target) = (first.next().unwrap(), first.next().unwrap().to_string());
        let path = target.split('?').next().unwrap();
        let url = if path.ends_with("/pods/p/exec") {
            let req = ExecRequest {
                container_id: "ctr".into(),
                cmd: query(&target, "command"),
                stdin: flag(&target, "stdin"),
                stdout: flag(&target, "stdout"),
                stderr: flag(&target, "stderr"),
                tty: flag(&target, "tty"),
            };
            srv.get_exec_url(&req).unwrap()
        } else if path.ends_with("/pods/p/attach") {
            let req = AttachRequest {
                container_id: "main".into(),
                stdin: flag(&target, "stdin"),
                stdout: flag(&target, "stdout"),
                stderr: flag(&target, "stderr"),
                tty: flag(&target, "tty"),
            };
            srv.get_attach_url(&req).unwrap()
        } else if path.ends_with("/pods/p/portforward") {
            srv.get_portforward_url(&PortForwardRequest {
                pod_sandbox_id: "pod".into(),
                port: vec![],
            })
            .unwrap()
        } else {
            let (code, body) = match (method, path) {
                ("GET", "/api/v1/namespaces/default/pods/p") => ("200 OK", POD),
                ("GET", "/api") => ("200 OK", API),
                ("GET", "/apis") => ("200 OK", APIS),
                ("GET", "/api/v1") => ("200 OK", API_V1),
                _ => ("404 Not Found", "{}"),
            };
            let resp = format!(
                "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if c.write_all(resp.as_bytes()).await.is_err() {
                return;
            }
            continue;
        };
        let lower = head.to_ascii_lowercase();
        let kind = if lower.contains("upgrade: websocket") {
            "websocket"
        } else if lower.contains("upgrade: spdy/3.1") {
            "spdy"
        } else {
            "none"
        };
        let endpoint = if path.ends_with("/exec") {
            "exec"
        } else {
            "portforward"
        };
        UPGRADES.lock().unwrap().push(format!("{kind} {endpoint}"));
        // Forward the upgrade with the streaming URL's path, then splice the connection.
        let mut upstream = TcpStream::connect(srv.local_addr()).await.unwrap();
        let rest = head.split_once("\r\n").unwrap().1;
        let rewritten = format!("{method} {} HTTP/1.1\r\n{rest}", path_of(&url));
        upstream.write_all(rewritten.as_bytes()).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut c, &mut upstream).await;
        return;
    }
}

/// The attachable main process: echoes lines to stdout and stderr, exits 0 on "quit".
const ATTACHED: &str =
    r#"while read l; do [ "$l" = quit ] && exit 0; echo "out $l"; echo "err $l" >&2; done"#;

fn kubectl(port: u16, websockets: bool, home: &std::path::Path) -> tokio::process::Command {
    kubectl_pf(port, websockets, false, home)
}

fn kubectl_pf(
    port: u16,
    websockets: bool,
    pf_websockets: bool,
    home: &std::path::Path,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("KUBECONFIG", home.join("none"))
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets.to_string())
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", pf_websockets.to_string())
        .args([
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--request-timeout=20s",
        ])
        .kill_on_drop(true);
    cmd
}

async fn setup() -> (Target, Arc<StreamServer>, u16, tempfile::TempDir) {
    let target = Target::start();
    // "ctr" and "pod" stand for the target's namespaces; "main" is an attachable process.
    let rt = Arc::new(NsenterRuntime::new());
    rt.register("ctr", target.pid);
    rt.register("pod", target.pid);
    let argv: Vec<String> = ["sh", "-c", ATTACHED]
        .iter()
        .map(|s| s.to_string())
        .collect();
    rt.start_main("main", target.pid, &argv).unwrap();
    let srv = Arc::new(server_on(rt).await);
    let port = front(srv.clone()).await;
    (target, srv, port, tempfile::tempdir().unwrap())
}

#[tokio::test]
async fn kubectl_exec_over_spdy_and_websocket() {
    let (_target, srv, port, home) = setup().await;
    for ws in [false, true] {
        let out = kubectl(port, ws, home.path())
            .args([
                "exec",
                "p",
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; exit 7",
            ])
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "out\n",
            "websocket={ws} stderr={stderr}"
        );
        assert!(stderr.contains("err\n"), "websocket={ws}: {stderr}");
        assert!(
            stderr.contains("command terminated with exit code 7"),
            "websocket={ws}: {stderr}"
        );
        assert_eq!(out.status.code(), Some(7), "websocket={ws}");

        let mut child = kubectl(port, ws, home.path())
            .args(["exec", "-i", "p", "--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // 2 MiB of stdin, far beyond SPDY's 64 KiB initial window.
        let big: Vec<u8> = (0..2u32 << 20).map(|i| b'a' + (i % 26) as u8).collect();
        let feed = big.clone();
        tokio::spawn(async move {
            stdin.write_all(&feed).await.unwrap();
        });
        let out = tokio::time::timeout(T, child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            out.stdout == big,
            "websocket={ws}: {} of {} bytes back; {}",
            out.stdout.len(),
            big.len(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success());
    }
    let seen = UPGRADES.lock().unwrap().clone();
    assert!(
        seen.iter().any(|u| u == "spdy exec") && seen.iter().any(|u| u == "websocket exec"),
        "upgrades used: {seen:?}"
    );
    eventually("sessions end", || srv.active_sessions() == 0).await;
}

#[tokio::test]
async fn kubectl_port_forward_over_spdy_and_spdy_in_websocket() {
    let (target, srv, port, home) = setup().await;
    for tunnel in [false, true] {
        let echo = echo_server_in(&target.netns());
        let local = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut child = kubectl_pf(port, false, tunnel, home.path())
            .args(["port-forward", "pod/p", &format!("{local}:{echo}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        tokio::time::timeout(T, async {
            let mut b = [0u8; 256];
            while !String::from_utf8_lossy(&seen).contains("Forwarding from") {
                let n = stdout.read(&mut b).await.unwrap();
                assert!(n > 0, "kubectl port-forward exited");
                seen.extend_from_slice(&b[..n]);
            }
        })
        .await
        .expect("kubectl port-forward started");
        // The last message (4 MiB) goes far beyond SPDY's 64 KiB initial window: a peer that
        // waited for WINDOW_UPDATE would stall.
        let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 253) as u8).collect();
        for msg in [&b"first connection"[..], b"second connection", &big] {
            let mut c = TcpStream::connect(("127.0.0.1", local)).await.unwrap();
            let (mut rd, mut wr) = c.split();
            let mut back = vec![0u8; msg.len()];
            let (w, r) = tokio::time::timeout(T, async {
                tokio::join!(wr.write_all(msg), rd.read_exact(&mut back))
            })
            .await
            .unwrap();
            w.unwrap();
            r.unwrap();
            assert!(back == msg, "{} bytes echoed wrongly", msg.len());
        }
        child.kill().await.unwrap();
        eventually("the session ends", || srv.active_sessions() == 0).await;
    }
    let seen = UPGRADES.lock().unwrap().clone();
    assert!(
        seen.iter().any(|u| u == "spdy portforward")
            && seen.iter().any(|u| u == "websocket portforward"),
        "upgrades used: {seen:?}"
    );
}

#[tokio::test]
async fn kubectl_attach_over_spdy_and_websocket() {
    let (_target, srv, port, home) = setup().await;
    for ws in [false, true] {
        let mut child = kubectl(port, ws, home.path())
            .args(["attach", "-i", "p", "-c", "c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let line = if ws { "second\nquit\n" } else { "first\n" };
        stdin.write_all(line.as_bytes()).await.unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut errout = child.stderr.take().unwrap();
        let want = if ws { "out second\n" } else { "out first\n" };
        let mut seen = Vec::new();
        tokio::time::timeout(T, async {
            let mut b = [0u8; 256];
            while !String::from_utf8_lossy(&seen).contains(want) {
                let n = stdout.read(&mut b).await.unwrap();
                if n == 0 {
                    let mut e = String::new();
                    errout.read_to_string(&mut e).await.unwrap();
                    panic!(
                        "kubectl attach ended early: {:?}; stderr: {e}",
                        String::from_utf8_lossy(&seen)
                    );
                }
                seen.extend_from_slice(&b[..n]);
            }
        })
        .await
        .expect("attached output");
        if ws {
            // "quit" ends the main process, which ends the attach session cleanly.
            let status = tokio::time::timeout(T, child.wait())
                .await
                .unwrap()
                .unwrap();
            assert!(status.success(), "{status}");
        } else {
            // Detach: the main process keeps running for the next client.
            child.kill().await.unwrap();
            eventually("the detached session ends", || srv.active_sessions() == 0).await;
        }
    }
}
