//! Exec over the streaming server with real processes in real namespaces (NsenterRuntime):
//! SPDY v2/v4/v5 and WebSocket v5/v4/base64/channel.k8s.io, stdin close, TTY resize, exit
//! statuses on the error channel, stopped containers and expired or reused tokens.

mod stream_support;

use k8s_cri::v1::ExecRequest;
use stream_support::*;

fn exec(cmd: &[&str], stdin: bool, stdout: bool, stderr: bool, tty: bool) -> ExecRequest {
    ExecRequest {
        container_id: "ctr".into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        stdin,
        stdout,
        stderr,
        tty,
    }
}

const OUT_ERR_7: &[&str] = &["sh", "-c", "echo out; echo err >&2; exit 7"];

#[tokio::test]
async fn spdy_v4_separates_stdout_and_stderr_and_reports_exit_code() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let url = srv
        .get_exec_url(&exec(OUT_ERR_7, false, true, true, false))
        .unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &["v4.channel.k8s.io"])
        .await
        .unwrap();
    let out = spdy_run(conn, None, true, true).await;
    assert_eq!(out.stdout(), "out\n");
    assert_eq!(out.stderr(), "err\n");
    let st = out.status();
    assert_eq!(st["status"], "Failure");
    assert_eq!(st["reason"], "NonZeroExitCode");
    assert_eq!(st["details"]["causes"][0]["reason"], "ExitCode");
    assert_eq!(st["details"]["causes"][0]["message"], "7");
}

#[tokio::test]
async fn spdy_v5_stdin_close_ends_cat_with_success() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let url = srv
        .get_exec_url(&exec(&["cat"], true, true, false, false))
        .unwrap();
    let conn = spdy_connect(
        srv.local_addr(),
        &url,
        &["v5.channel.k8s.io", "v4.channel.k8s.io"],
    )
    .await
    .unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let out = spdy_run(conn, Some(&data), true, false).await;
    assert_eq!(out.stdout.len(), data.len());
    assert_eq!(out.stdout, data);
    assert_eq!(out.status()["status"], "Success");
}

#[tokio::test]
async fn spdy_v2_reports_failures_as_text() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let url = srv
        .get_exec_url(&exec(OUT_ERR_7, false, true, true, false))
        .unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &["v2.channel.k8s.io"])
        .await
        .unwrap();
    let out = spdy_run(conn, None, true, true).await;
    assert_eq!(out.stdout(), "out\n");
    assert_eq!(
        out.error(),
        "command terminated with non-zero exit code: error executing command [sh -c echo out; echo err >&2; exit 7], exit code 7"
    );
}

#[tokio::test]
async fn spdy_negotiation_failure_is_forbidden_and_runs_nothing() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let url = srv
        .get_exec_url(&exec(&["touch", "/tmp/never"], false, true, false, false))
        .unwrap();
    let (code, head) = spdy_connect(srv.local_addr(), &url, &["v9.channel.k8s.io"])
        .await
        .err()
        .unwrap();
    assert_eq!(code, 403, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-accepted-stream-protocol-versions")
    );
}

#[tokio::test]
async fn websocket_v5_channels_stdin_close_and_exit_code() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let url = srv
        .get_exec_url(&exec(
            &["sh", "-c", "cat; echo bye >&2; exit 3"],
            true,
            true,
            true,
            false,
        ))
        .unwrap();
    let (mut ws, proto) = ws_connect(
        srv.local_addr(),
        &url,
        "v5.channel.k8s.io, v4.channel.k8s.io",
    )
    .await
    .unwrap();
    assert_eq!(proto, "v5.channel.k8s.io");
    // Messages on channels this session does not read (resize without a TTY) are dropped,
    // not left to stall the socket.
    for _ in 0..100 {
        ws_send(&mut ws, 4, br#"{"Width":1,"Height":1}"#, false).await;
    }
    ws_send(&mut ws, 0, b"hello over ws\n", false).await;
    ws_send(&mut ws, 255, &[0], false).await; // v5: close stdin
    let msgs = ws_collect(&mut ws, false).await;
    assert_eq!(channel(&msgs, 1), b"hello over ws\n");
    assert_eq!(channel(&msgs, 2), b"bye\n");
    let st: serde_json::Value = serde_json::from_slice(&channel(&msgs, 3)).unwrap();
    assert_eq!(st["reason"], "NonZeroExitCode");
    assert_eq!(st["details"]["causes"][0]["message"], "3");
}

#[tokio::test]
async fn websocket_v4_base64_and_v1_binary() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let url = srv
        .get_exec_url(&exec(&["echo", "hi"], false, true, true, false))
        .unwrap();
    let (mut ws, proto) = ws_connect(srv.local_addr(), &url, "v4.base64.channel.k8s.io")
        .await
        .unwrap();
    assert_eq!(proto, "v4.base64.channel.k8s.io");
    let msgs = ws_collect(&mut ws, true).await;
    assert_eq!(channel(&msgs, 1), b"hi\n");
    let st: serde_json::Value = serde_json::from_slice(&channel(&msgs, 3)).unwrap();
    assert_eq!(st["status"], "Success");

    let url = srv
        .get_exec_url(&exec(&["sh", "-c", "exit 4"], false, true, false, false))
        .unwrap();
    let (mut ws, proto) = ws_connect(srv.local_addr(), &url, "channel.k8s.io")
        .await
        .unwrap();
    assert_eq!(proto, "channel.k8s.io");
    let msgs = ws_collect(&mut ws, false).await;
    assert_eq!(
        channel(&msgs, 3),
        b"command terminated with non-zero exit code: error executing command [sh -c exit 4], exit code 4"
    );
}

/// Type a line into a shell on the terminal until `stty size` prints `want`.
async fn wait_for_size_spdy(
    stdin: &cri_server::stream::spdy::Stream,
    stdout: &mut cri_server::stream::spdy::Stream,
    want: &str,
) {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + T;
    while !String::from_utf8_lossy(&seen).contains(want) {
        assert!(
            std::time::Instant::now() < deadline,
            "no {want:?} in {:?}",
            String::from_utf8_lossy(&seen)
        );
        stdin.writer.write(b"size?\n").await.unwrap();
        while let Ok(Some(b)) =
            tokio::time::timeout(std::time::Duration::from_millis(300), stdout.reader.read()).await
        {
            seen.extend_from_slice(&b);
        }
    }
}

#[tokio::test]
async fn spdy_tty_resize_reaches_the_terminal() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let script = "while read x; do stty size; done; exit 5";
    let url = srv
        .get_exec_url(&exec(&["sh", "-c", script], true, true, false, true))
        .unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &["v4.channel.k8s.io"])
        .await
        .unwrap();
    let mut error = open(&conn, &[("streamType", "error")]).await;
    let stdin = open(&conn, &[("streamType", "stdin")]).await;
    let mut stdout = open(&conn, &[("streamType", "stdout")]).await;
    let resize = open(&conn, &[("streamType", "resize")]).await;
    resize
        .writer
        .write(br#"{"Width":100,"Height":30}"#)
        .await
        .unwrap();
    wait_for_size_spdy(&stdin, &mut stdout, "30 100").await;
    resize
        .writer
        .write(br#"{"Width":132,"Height":43}"#)
        .await
        .unwrap();
    wait_for_size_spdy(&stdin, &mut stdout, "43 132").await;
    // Closing stdin reaches the shell as end of file on the terminal.
    stdin.writer.close().await.unwrap();
    let (status, rest) = tokio::time::timeout(T, async {
        tokio::join!(error.reader.read_to_end(), stdout.reader.read_to_end())
    })
    .await
    .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&status).unwrap();
    assert_eq!(
        st["details"]["causes"][0]["message"],
        "5",
        "output: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[tokio::test]
async fn websocket_tty_resize_reaches_the_terminal() {
    use futures_util::StreamExt;
    let target = Target::start();
    let srv = server(&target, None).await;
    let script = "while read x; do stty size; done; exit 6";
    let url = srv
        .get_exec_url(&exec(&["sh", "-c", script], true, true, false, true))
        .unwrap();
    let (mut ws, _) = ws_connect(srv.local_addr(), &url, "v5.channel.k8s.io")
        .await
        .unwrap();
    ws_send(&mut ws, 4, br#"{"Width":91,"Height":27}"#, false).await;
    // Ask for the size until the resize has reached the terminal.
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + T;
    while !String::from_utf8_lossy(&out).contains("27 91") {
        assert!(
            std::time::Instant::now() < deadline,
            "stty said {:?}",
            String::from_utf8_lossy(&out)
        );
        ws_send(&mut ws, 0, b"size?\n", false).await;
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(std::time::Duration::from_millis(300), ws.next()).await
        {
            if let Some((1, d)) = cri_server::stream::websocket::decode(&m, false) {
                out.extend_from_slice(&d);
            }
        }
    }
    // v5 stdin close reaches the shell as end of file on the terminal.
    ws_send(&mut ws, 255, &[0], false).await;
    let msgs = ws_collect(&mut ws, false).await;
    let st: serde_json::Value = serde_json::from_slice(&channel(&msgs, 3)).unwrap();
    assert_eq!(st["details"]["causes"][0]["message"], "6");
}

#[tokio::test]
async fn exec_into_a_stopped_container_is_a_clear_error() {
    let mut target = Target::start();
    let srv = server(&target, None).await;
    target.stop();
    let url = srv
        .get_exec_url(&exec(&["true"], false, true, false, false))
        .unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &["v4.channel.k8s.io"])
        .await
        .unwrap();
    let out = spdy_run(conn, None, true, false).await;
    let st = out.status();
    assert_eq!(st["status"], "Failure");
    assert_eq!(st["reason"], "InternalError");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("container ctr is not running"),
        "{st}"
    );
}

#[tokio::test]
async fn reused_and_expired_tokens_are_404_and_run_nothing() {
    let target = Target::start();
    let srv = server(&target, Some(std::time::Duration::from_millis(300))).await;
    let marker = format!("/tmp/kina-stream-marker-{}", std::process::id());
    let _ = std::fs::remove_file(&marker);
    let touch = exec(&["touch", &marker], false, true, false, false);

    let url = srv.get_exec_url(&touch).unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &["v4.channel.k8s.io"])
        .await
        .unwrap();
    assert_eq!(
        spdy_run(conn, None, true, false).await.status()["status"],
        "Success"
    );
    assert!(std::path::Path::new(&marker).exists());
    std::fs::remove_file(&marker).unwrap();
    let (code, _) = spdy_connect(srv.local_addr(), &url, &["v4.channel.k8s.io"])
        .await
        .err()
        .unwrap();
    assert_eq!(code, 404, "reused token");

    let url = srv.get_exec_url(&touch).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (code, _) = spdy_connect(srv.local_addr(), &url, &["v4.channel.k8s.io"])
        .await
        .err()
        .unwrap();
    assert_eq!(code, 404, "expired token");
    let err = ws_connect(
        srv.local_addr(),
        &format!("http://x/exec/{}", "AAAAAAAAAAA"),
        "v5.channel.k8s.io",
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("404"), "{err}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !std::path::Path::new(&marker).exists(),
        "an expired token ran the command"
    );
    assert_eq!(srv.active_sessions(), 0);
}

#[tokio::test]
async fn invalid_requests_get_no_url() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let e = srv
        .get_exec_url(&exec(&["sh"], false, true, true, true))
        .unwrap_err();
    assert!(e.to_string().contains("tty and stderr"), "{e}");
    let e = srv
        .get_exec_url(&exec(&["sh"], false, false, false, false))
        .unwrap_err();
    assert!(
        e.to_string().contains("one of stdin, stdout, or stderr"),
        "{e}"
    );
    let e = srv
        .get_exec_url(&exec(&[], false, true, false, false))
        .unwrap_err();
    assert!(e.to_string().contains("cmd"), "{e}");
}

#[tokio::test]
async fn client_disconnect_kills_the_process_and_ends_the_session() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let argv = ["sleep", "987654"];
    for tty in [false, true] {
        let url = srv
            .get_exec_url(&exec(&argv, true, true, false, tty))
            .unwrap();
        let conn = spdy_connect(srv.local_addr(), &url, &["v4.channel.k8s.io"])
            .await
            .unwrap();
        let _e = open(&conn, &[("streamType", "error")]).await;
        let _i = open(&conn, &[("streamType", "stdin")]).await;
        let _o = open(&conn, &[("streamType", "stdout")]).await;
        if tty {
            let _r = open(&conn, &[("streamType", "resize")]).await;
        }
        eventually("the command runs", || pids_running(&argv).len() == 1).await;
        assert_eq!(srv.active_sessions(), 1);
        drop(conn);
        eventually("the command is killed", || pids_running(&argv).is_empty()).await;
        eventually("the session ends", || srv.active_sessions() == 0).await;
    }
}

#[tokio::test]
async fn websocket_disconnect_kills_the_process() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let argv = ["sleep", "987653"];
    let url = srv
        .get_exec_url(&exec(&argv, true, true, true, false))
        .unwrap();
    let (ws, _) = ws_connect(srv.local_addr(), &url, "v5.channel.k8s.io")
        .await
        .unwrap();
    eventually("the command runs", || pids_running(&argv).len() == 1).await;
    drop(ws);
    eventually("the command is killed", || pids_running(&argv).is_empty()).await;
    eventually("the session ends", || srv.active_sessions() == 0).await;
}

#[tokio::test]
async fn dropping_the_server_stops_running_sessions() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let argv = ["sleep", "987652"];
    let url = srv
        .get_exec_url(&exec(&argv, false, true, false, false))
        .unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &["v4.channel.k8s.io"])
        .await
        .unwrap();
    let _e = open(&conn, &[("streamType", "error")]).await;
    let _o = open(&conn, &[("streamType", "stdout")]).await;
    eventually("the command runs", || pids_running(&argv).len() == 1).await;
    drop(srv);
    eventually("the command is killed", || pids_running(&argv).is_empty()).await;
    let closed = conn.closed();
    tokio::time::timeout(T, closed)
        .await
        .expect("server closed the connection");
}

#[tokio::test]
async fn idle_sessions_are_closed_and_their_process_killed() {
    let target = Target::start();
    let srv = server_with(&target, |c| {
        c.idle_timeout = std::time::Duration::from_millis(500)
    })
    .await;
    let argv = ["sleep", "987651"];
    let url = srv
        .get_exec_url(&exec(&argv, false, true, false, false))
        .unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &["v4.channel.k8s.io"])
        .await
        .unwrap();
    let _e = open(&conn, &[("streamType", "error")]).await;
    let _o = open(&conn, &[("streamType", "stdout")]).await;
    eventually("the command runs", || pids_running(&argv).len() == 1).await;
    // Nobody speaks: the server gives up on the session.
    tokio::time::timeout(T, conn.closed())
        .await
        .expect("idle session closed");
    eventually("the command is killed", || pids_running(&argv).is_empty()).await;
    eventually("the session ends", || srv.active_sessions() == 0).await;
}
