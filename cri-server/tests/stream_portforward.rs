//! Port forwarding through the streaming server into a real network namespace: SPDY
//! (`portforward.k8s.io`) and WebSocket (`v4.channel.k8s.io`), several ports and connections
//! in one session, closed ports reported on the error stream, and cleanup on disconnect.

mod stream_support;

use k8s_cri::v1::PortForwardRequest;
use stream_support::*;

fn pf() -> PortForwardRequest {
    PortForwardRequest {
        pod_sandbox_id: "pod".into(),
        port: vec![],
    }
}

/// One forwarded connection over SPDY: returns what came back after sending `msg` and
/// half-closing, plus the error stream's content.
async fn spdy_roundtrip(
    conn: &cri_server::stream::spdy::Connection,
    port: u16,
    request: &str,
    msg: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let p = port.to_string();
    let mut error = open(
        conn,
        &[
            ("streamType", "error"),
            ("port", &p),
            ("requestID", request),
        ],
    )
    .await;
    let mut data = open(
        conn,
        &[("streamType", "data"), ("port", &p), ("requestID", request)],
    )
    .await;
    data.writer.write(msg).await.unwrap();
    data.writer.close().await.unwrap();
    tokio::time::timeout(T, async {
        tokio::join!(data.reader.read_to_end(), error.reader.read_to_end())
    })
    .await
    .expect("forwarded connection finished")
}

#[tokio::test]
async fn spdy_forwards_two_ports_and_connections_in_one_session() {
    let target = Target::start();
    let a = echo_server_in(&target.netns());
    let b = echo_server_in(&target.netns());
    let srv = server(&target, None).await;
    let url = srv.get_portforward_url(&pf()).unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &["portforward.k8s.io"])
        .await
        .unwrap();
    // Two connections per port, concurrently, in one session.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (r1, r2, r3, r4) = tokio::join!(
        spdy_roundtrip(&conn, a, "0", b"first to a"),
        spdy_roundtrip(&conn, b, "1", b"first to b"),
        spdy_roundtrip(&conn, a, "2", &big),
        spdy_roundtrip(&conn, b, "3", b"second to b"),
    );
    assert_eq!(r1, (b"first to a".to_vec(), vec![]));
    assert_eq!(r2, (b"first to b".to_vec(), vec![]));
    assert_eq!(r3.0.len(), big.len());
    assert_eq!(r3.0, big);
    assert_eq!(r4.0, b"second to b");
    assert_eq!(srv.active_sessions(), 1);
    drop(conn);
    eventually("the session ends", || srv.active_sessions() == 0).await;
}

#[tokio::test]
async fn spdy_closed_port_is_an_error_on_the_error_stream() {
    let target = Target::start();
    let open_port = echo_server_in(&target.netns());
    let srv = server(&target, None).await;
    let url = srv.get_portforward_url(&pf()).unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &["portforward.k8s.io"])
        .await
        .unwrap();
    // A port nothing listens on inside the namespace (the echo port is open on the host? no:
    // the host netns is different, so pick one that is closed in the pod).
    let closed = if open_port == 1 { 2 } else { open_port - 1 };
    let (data, err) = spdy_roundtrip(&conn, closed, "7", b"x").await;
    assert!(data.is_empty());
    let err = String::from_utf8(err).unwrap();
    assert!(
        err.contains(&format!("error forwarding port {closed} to pod pod")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "{err}");
    // The session still works for an open port afterwards.
    let (data, err) = spdy_roundtrip(&conn, open_port, "8", b"still here").await;
    assert_eq!((data, err), (b"still here".to_vec(), vec![]));
}

#[tokio::test]
async fn spdy_old_clients_without_request_ids_are_paired_by_stream_id() {
    let target = Target::start();
    let port = echo_server_in(&target.netns());
    let srv = server(&target, None).await;
    let url = srv.get_portforward_url(&pf()).unwrap();
    let conn = spdy_connect(srv.local_addr(), &url, &[]).await.unwrap();
    let p = port.to_string();
    let mut error = open(&conn, &[("streamType", "error"), ("port", &p)]).await;
    let mut data = open(&conn, &[("streamType", "data"), ("port", &p)]).await;
    data.writer.write(b"legacy").await.unwrap();
    data.writer.close().await.unwrap();
    let (d, e) = tokio::time::timeout(T, async {
        tokio::join!(data.reader.read_to_end(), error.reader.read_to_end())
    })
    .await
    .unwrap();
    assert_eq!((d, e), (b"legacy".to_vec(), vec![]));
}

#[tokio::test]
async fn websocket_forwards_several_ports_and_reports_closed_ones() {
    let target = Target::start();
    let a = echo_server_in(&target.netns());
    let b = echo_server_in(&target.netns());
    let closed = if a.max(b) == u16::MAX {
        a.min(b) - 1
    } else {
        a.max(b) + 1
    };
    let srv = server(&target, None).await;
    let url = srv.get_portforward_url(&pf()).unwrap();
    let url = format!("{url}?port={a}&port={b}&port={closed}");
    let (mut ws, proto) = ws_connect(srv.local_addr(), &url, "v4.channel.k8s.io")
        .await
        .unwrap();
    assert_eq!(proto, "v4.channel.k8s.io");
    ws_send(&mut ws, 0, b"to a", false).await;
    ws_send(&mut ws, 2, b"to b", false).await;
    let mut got: Vec<(u8, Vec<u8>)> = Vec::new();
    let want_a = [a.to_le_bytes().to_vec(), b"to a".to_vec()].concat();
    let want_b = [b.to_le_bytes().to_vec(), b"to b".to_vec()].concat();
    use futures_util::StreamExt;
    tokio::time::timeout(T, async {
        while channel(&got, 0) != want_a
            || channel(&got, 2) != want_b
            || channel(&got, 5).len() <= 2
        {
            let m = ws.next().await.expect("socket open").unwrap();
            if let Some((ch, d)) = cri_server::stream::websocket::decode(&m, false) {
                got.push((ch, d.to_vec()));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("echoes and error not seen: {got:?}"));
    // Every channel starts with its port number, little endian.
    for (ch, port) in [(0u8, a), (1, a), (2, b), (3, b), (4, closed), (5, closed)] {
        assert_eq!(channel(&got, ch)[..2], port.to_le_bytes(), "channel {ch}");
    }
    let err = String::from_utf8_lossy(&channel(&got, 5)[2..]).into_owned();
    assert!(
        err.contains(&format!("error forwarding port {closed} to pod pod")),
        "{err}"
    );
    drop(ws);
    eventually("the session ends", || srv.active_sessions() == 0).await;
}

#[tokio::test]
async fn websocket_port_forward_needs_ports() {
    let target = Target::start();
    let srv = server(&target, None).await;
    let url = srv.get_portforward_url(&pf()).unwrap();
    let err = ws_connect(srv.local_addr(), &url, "v4.channel.k8s.io")
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("400"), "{err}");
}

#[tokio::test]
async fn spdy_tunnelled_in_websocket_forwards_ports() {
    let target = Target::start();
    let a = echo_server_in(&target.netns());
    let b = echo_server_in(&target.netns());
    let srv = server(&target, None).await;
    let url = srv.get_portforward_url(&pf()).unwrap();
    let (ws, proto) = ws_connect(srv.local_addr(), &url, "SPDY/3.1+portforward.k8s.io")
        .await
        .unwrap();
    assert_eq!(proto, "SPDY/3.1+portforward.k8s.io");
    let (bytes, _pump) = cri_server::stream::websocket::tunnel(ws);
    let conn = cri_server::stream::spdy::Connection::client(bytes);
    let big: Vec<u8> = (0..500_000u32).map(|i| (i % 249) as u8).collect();
    let (r1, r2) = tokio::join!(
        spdy_roundtrip(&conn, a, "0", &big),
        spdy_roundtrip(&conn, b, "1", b"tunnelled to b"),
    );
    assert!(r1.0 == big && r1.1.is_empty(), "{} bytes back", r1.0.len());
    assert_eq!(r2, (b"tunnelled to b".to_vec(), vec![]));
    drop(conn);
    eventually("the session ends", || srv.active_sessions() == 0).await;
}
