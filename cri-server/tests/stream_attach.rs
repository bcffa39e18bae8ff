//! Attach through the streaming server to a main process the nsenter backend keeps: attach,
//! detach without killing it, re-attach over another transport, and the exit ending the
//! session; wrong-kind tokens and finished processes are refused.

mod stream_support;

use std::sync::Arc;

use cri_server::stream::nsenter::NsenterRuntime;
use k8s_cri::v1::AttachRequest;
use stream_support::*;

const SCRIPT: &str =
    r#"while read l; do [ "$l" = quit ] && exit 3; echo "got $l"; echo "err $l" >&2; done"#;

fn attach_req() -> AttachRequest {
    AttachRequest {
        container_id: "main".into(),
        stdin: true,
        tty: false,
        stdout: true,
        stderr: true,
    }
}

async fn read_until(s: &mut cri_server::stream::spdy::Stream, want: &str) {
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(want) {
        let b = tokio::time::timeout(T, s.reader.read())
            .await
            .expect("output in time")
            .expect("stream open");
        seen.extend_from_slice(&b);
    }
}

#[tokio::test]
async fn attach_detach_reattach_and_exit() {
    let target = Target::start();
    let rt = Arc::new(NsenterRuntime::new());
    let argv: Vec<String> = ["sh", "-c", SCRIPT].iter().map(|s| s.to_string()).collect();
    let pid = rt.start_main("main", target.pid, &argv).unwrap();
    let srv = server_on(rt.clone()).await;

    // First client over SPDY: both output streams, then detach.
    let url = srv.get_attach_url(&attach_req()).unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &["v4.channel.k8s.io"])
        .await
        .unwrap();
    let _error = open(&conn, &[("streamType", "error")]).await;
    let stdin = open(&conn, &[("streamType", "stdin")]).await;
    let mut stdout = open(&conn, &[("streamType", "stdout")]).await;
    let mut stderr = open(&conn, &[("streamType", "stderr")]).await;
    stdin.writer.write(b"a\n").await.unwrap();
    read_until(&mut stdout, "got a").await;
    read_until(&mut stderr, "err a").await;
    drop(conn);
    eventually("the detached session ends", || srv.active_sessions() == 0).await;
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "detaching killed the process"
    );

    // Second client over WebSocket v5: talk, then make the process exit.
    let url = srv.get_attach_url(&attach_req()).unwrap();
    let (mut ws, _) = ws_connect(srv.local_addr(), &url, "v5.channel.k8s.io")
        .await
        .unwrap();
    ws_send(&mut ws, 0, b"b\n", false).await;
    ws_send(&mut ws, 0, b"quit\n", false).await;
    let msgs = ws_collect(&mut ws, false).await;
    assert_eq!(String::from_utf8_lossy(&channel(&msgs, 1)), "got b\n");
    assert_eq!(String::from_utf8_lossy(&channel(&msgs, 2)), "err b\n");
    let st: serde_json::Value = serde_json::from_slice(&channel(&msgs, 3)).unwrap();
    assert_eq!(st["status"], "Success");

    // The container stopped: attach and exec are refused with a clear error.
    let url = srv.get_attach_url(&attach_req()).unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &["v4.channel.k8s.io"])
        .await
        .unwrap();
    let out = spdy_run(conn, Some(b""), true, true).await;
    assert!(
        out.status()["message"]
            .as_str()
            .unwrap()
            .contains("container main is not running"),
        "{}",
        out.error()
    );
}

#[tokio::test]
async fn attach_tokens_are_not_exec_tokens() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let url = srv
        .get_attach_url(&AttachRequest {
            container_id: "ctr".into(),
            stdout: true,
            ..Default::default()
        })
        .unwrap();
    let wrong = url.replace("/attach/", "/exec/");
    let (code, _) = spdy_connect(srv.local_addr(), &wrong, &["v5.channel.k8s.io"])
        .await
        .err()
        .unwrap();
    assert_eq!(code, 404);
    // The token was spent by the wrong route.
    let (code, _) = spdy_connect(srv.local_addr(), &url, &["v5.channel.k8s.io"])
        .await
        .err()
        .unwrap();
    assert_eq!(code, 404);
}
