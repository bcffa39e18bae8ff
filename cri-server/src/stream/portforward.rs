//! Port forwarding into a pod's network namespace. SPDY (`portforward.k8s.io`): the client
//! opens a data and an error stream per connection, paired by the `requestID` header and
//! naming the `port`. WebSocket (`v4.channel.k8s.io`): ports come from the `port` query
//! parameters, channel 2i carries port i's data and 2i+1 its errors, and each channel starts
//! with the port number as two little-endian bytes, as kubelet sends it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::netns::connect_in_netns;
use super::runtime::StreamRuntime;
use super::spdy::conn::{StreamReader, StreamWriter};
use super::spdy::{Connection, Stream};
use super::websocket::{WsMux, WsSender};

/// The SPDY port-forward protocol.
pub const SPDY_PROTOCOL: &str = "portforward.k8s.io";
/// WebSocket subprotocols for port forwarding.
pub const WS_PROTOCOLS: &[&str] = &[
    TUNNEL_PROTOCOL,
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
];
/// SPDY port forwarding tunnelled through WebSocket binary messages (client-go's
/// `NewSPDYOverWebsocketDialer`, KEP-4006).
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// How long the grace period lasts after one direction of a forwarded connection ended.
const LINGER: Duration = Duration::from_secs(1);

fn forward_error(port: u16, sandbox: &str, err: &dyn std::fmt::Display) -> String {
    format!("error forwarding port {port} to pod {sandbox}, uid : {err}")
}

async fn connect(
    runtime: &dyn StreamRuntime,
    sandbox: &str,
    port: u16,
) -> Result<TcpStream, String> {
    let netns: PathBuf = runtime
        .port_forward_netns(sandbox)
        .await
        .map_err(|e| e.to_string())?;
    connect_in_netns(&netns, port)
        .await
        .map_err(|e| e.to_string())
}

/// Pump between a TCP connection and a pair of message channels until both directions end
/// (or one ended and the other did not finish within [`LINGER`], as containerd does).
async fn splice(
    tcp: TcpStream,
    mut from_client: mpsc::Receiver<Bytes>,
    to_client: mpsc::Sender<Bytes>,
) {
    let (mut rd, mut wr) = tcp.into_split();
    let up = async move {
        while let Some(b) = from_client.recv().await {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to_client
                        .send(Bytes::copy_from_slice(&buf[..n]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    tokio::pin!(up, down);
    tokio::select! {
        () = &mut up => { let _ = tokio::time::timeout(LINGER, down).await; }
        () = &mut down => { let _ = tokio::time::timeout(LINGER, up).await; }
    }
}

fn spdy_reader_to_channel(
    mut r: StreamReader,
) -> (mpsc::Receiver<Bytes>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(16);
    let h = tokio::spawn(async move {
        while let Some(b) = r.read().await {
            if tx.send(b).await.is_err() {
                return;
            }
        }
    });
    (rx, h)
}

async fn forward_spdy(
    runtime: Arc<dyn StreamRuntime>,
    sandbox: String,
    port: u16,
    data: Stream,
    error: StreamWriter,
) {
    match connect(runtime.as_ref(), &sandbox, port).await {
        Err(e) => {
            let _ = error
                .write(forward_error(port, &sandbox, &e).as_bytes())
                .await;
        }
        Ok(tcp) => {
            let (from_client, feeder) = spdy_reader_to_channel(data.reader);
            let (to_client, mut rx) = mpsc::channel::<Bytes>(16);
            let w = data.writer.clone();
            let drain = tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if w.write(&b).await.is_err() {
                        return;
                    }
                }
            });
            splice(tcp, from_client, to_client).await;
            let _ = drain.await;
            feeder.abort();
        }
    }
    let _ = data.writer.close().await;
    let _ = error.close().await;
}

#[derive(Default)]
struct Pair {
    data: Option<Stream>,
    error: Option<Stream>,
    since: Option<tokio::time::Instant>,
}

/// The pairing key: the `requestID` header, or for old clients the error stream's id
/// (data streams follow their error stream by 2), as kubelet does.
fn request_id(s: &Stream) -> String {
    if let Some(id) = s.headers.get("requestid") {
        return id.to_string();
    }
    match s.headers.get("streamtype") {
        Some("data") => s.id.saturating_sub(2).to_string(),
        _ => s.id.to_string(),
    }
}

/// Serve SPDY port forwarding until the client closes the connection.
pub async fn serve_spdy(
    mut conn: Connection,
    runtime: Arc<dyn StreamRuntime>,
    sandbox: String,
    pair_timeout: Duration,
) {
    let mut pending: HashMap<String, Pair> = HashMap::new();
    let mut forwards = JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            s = conn.accept() => {
                let Some(s) = s else { break };
                let port = s.headers.get("port").and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
                let Some(port) = port else {
                    let msg = format!("invalid port header {:?} on stream {}", s.headers.get("port"), s.id);
                    let _ = s.writer.write(msg.as_bytes()).await;
                    let _ = s.writer.reset().await;
                    continue;
                };
                let key = request_id(&s);
                let entry = pending.entry(key.clone()).or_default();
                entry.since.get_or_insert_with(tokio::time::Instant::now);
                match s.headers.get("streamtype") {
                    Some("data") if entry.data.is_none() => entry.data = Some(s),
                    Some("error") if entry.error.is_none() => entry.error = Some(s),
                    other => {
                        tracing::warn!(stream_type = ?other, request = %key, "unexpected port-forward stream");
                        let _ = s.writer.reset().await;
                        continue;
                    }
                }
                if entry.data.is_some() && entry.error.is_some() {
                    let p = pending.remove(&key).expect("entry exists");
                    let (data, error) = (p.data.expect("data"), p.error.expect("error"));
                    forwards.spawn(forward_spdy(runtime.clone(), sandbox.clone(), port, data, error.writer));
                }
            }
            _ = tick.tick() => {
                let now = tokio::time::Instant::now();
                let stale: Vec<String> = pending
                    .iter()
                    .filter(|(_, p)| p.since.is_some_and(|t| now - t > pair_timeout))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in stale {
                    let p = pending.remove(&k).expect("stale entry exists");
                    if let Some(e) = p.error {
                        let msg = format!("timed out waiting for the data stream of request {k}");
                        let _ = e.writer.write(msg.as_bytes()).await;
                        let _ = e.writer.close().await;
                    }
                    if let Some(d) = p.data {
                        let _ = d.writer.reset().await;
                    }
                }
            }
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
        }
    }
    // The client went away: dropping the set aborts every forward and closes its socket.
    forwards.abort_all();
}

async fn forward_ws(
    runtime: Arc<dyn StreamRuntime>,
    sandbox: String,
    port: u16,
    index: u8,
    from_client: mpsc::Receiver<Bytes>,
    sender: WsSender,
) {
    let (data_ch, err_ch) = (index * 2, index * 2 + 1);
    match connect(runtime.as_ref(), &sandbox, port).await {
        Err(e) => {
            sender
                .send(err_ch, forward_error(port, &sandbox, &e).as_bytes())
                .await;
        }
        Ok(tcp) => {
            let (to_client, mut rx) = mpsc::channel::<Bytes>(16);
            let s = sender.clone();
            let drain = tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if !s.send(data_ch, &b).await {
                        return;
                    }
                }
            });
            splice(tcp, from_client, to_client).await;
            let _ = drain.await;
        }
    }
}

/// Serve WebSocket port forwarding for `ports` (one connection per port).
pub async fn serve_ws(
    mut mux: WsMux,
    runtime: Arc<dyn StreamRuntime>,
    sandbox: String,
    ports: Vec<u16>,
) {
    let mut forwards = JoinSet::new();
    for (i, port) in ports.iter().enumerate() {
        let index = u8::try_from(i).unwrap_or(u8::MAX / 2);
        let prefix = port.to_le_bytes();
        mux.sender.send(index * 2, &prefix).await;
        mux.sender.send(index * 2 + 1, &prefix).await;
        let Some(rx) = mux.inbound.get_mut(i * 2).and_then(Option::take) else {
            continue;
        };
        forwards.spawn(forward_ws(
            runtime.clone(),
            sandbox.clone(),
            *port,
            index,
            rx,
            mux.sender.clone(),
        ));
    }
    // Error channels are write-only: discard anything the client sends on them.
    mux.inbound.iter_mut().for_each(|rx| *rx = None);
    let closed = mux.closed();
    tokio::select! {
        () = async { while forwards.join_next().await.is_some() {} } => mux.close().await,
        () = closed => forwards.abort_all(),
    }
}
