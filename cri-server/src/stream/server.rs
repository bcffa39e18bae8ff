//! The streaming HTTP server: issues single-use URLs for Exec/Attach/PortForward and serves
//! `/exec/{token}`, `/attach/{token}` and `/portforward/{token}` by upgrading to SPDY/3.1 or
//! WebSocket, as kubelet's `cri/streaming` server does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::cache::{CacheError, CachedRequest, MAX_IN_FLIGHT, RequestCache, TOKEN_TTL};
use super::handshake::{Resp, is_websocket, plain, query_ports, spdy_accept, ws_accept};
use super::idle::IdleIo;
use super::runtime::StreamRuntime;
use super::session::{Wanted, spdy_session, ws_session};
use super::spdy::Connection;
use super::websocket::{WsMux, is_base64, tunnel};
use super::{portforward, remotecommand};

/// Where and how the streaming server listens.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Listen address (`127.0.0.1:0` picks a free port).
    pub addr: SocketAddr,
    /// Base of the returned URLs; defaults to `http://<bound address>`.
    pub base_url: Option<String>,
    /// How long the client may take to create its streams (kubelet: 30s).
    pub stream_creation_timeout: Duration,
    /// Token lifetime (kubelet: one minute).
    pub token_ttl: Duration,
    /// A session with no traffic for this long is closed (kubelet: 4 hours).
    pub idle_timeout: Duration,
}

impl StreamConfig {
    pub fn new(addr: SocketAddr) -> Self {
        StreamConfig {
            addr,
            base_url: None,
            stream_creation_timeout: Duration::from_secs(30),
            token_ttl: TOKEN_TTL,
            idle_timeout: Duration::from_secs(4 * 3600),
        }
    }
}

/// Why a streaming request was refused before a URL was issued.
#[derive(Debug, thiserror::Error)]
pub enum StreamServerError {
    #[error("streaming request: {0}")]
    InvalidArgument(&'static str),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("binding the streaming server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl From<StreamServerError> for tonic::Status {
    fn from(e: StreamServerError) -> Self {
        match &e {
            StreamServerError::InvalidArgument(_) => tonic::Status::invalid_argument(e.to_string()),
            StreamServerError::Cache(CacheError::Full(_)) => {
                tonic::Status::resource_exhausted(e.to_string())
            }
            _ => tonic::Status::internal(e.to_string()),
        }
    }
}

struct State {
    cache: RequestCache,
    runtime: Arc<dyn StreamRuntime>,
    config: StreamConfig,
    sessions: AtomicUsize,
    /// Set when the server is dropped: every session stops.
    shutdown: tokio::sync::watch::Sender<bool>,
}

/// The running streaming server; dropping it stops accepting connections and ends every
/// session (their processes are stopped).
pub struct StreamServer {
    state: Arc<State>,
    addr: SocketAddr,
    base_url: String,
    accept: JoinHandle<()>,
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.accept.abort();
        self.state.shutdown.send_replace(true);
    }
}

/// Counts a live session for as long as it is held.
struct SessionGuard(Arc<State>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::SeqCst);
    }
}

fn validate_stdio(
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> Result<(), StreamServerError> {
    if tty && stderr {
        return Err(StreamServerError::InvalidArgument(
            "tty and stderr cannot both be true",
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(StreamServerError::InvalidArgument(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(())
}

impl StreamServer {
    /// Bind the listener and start serving.
    pub async fn start(
        config: StreamConfig,
        runtime: Arc<dyn StreamRuntime>,
    ) -> Result<Self, StreamServerError> {
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| StreamServerError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StreamServerError::Bind {
                addr: config.addr,
                source,
            })?;
        let base_url = config
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let state = Arc::new(State {
            cache: RequestCache::new(config.token_ttl, MAX_IN_FLIGHT),
            runtime,
            config,
            sessions: AtomicUsize::new(0),
            shutdown: tokio::sync::watch::Sender::new(false),
        });
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        tracing::info!(%addr, "streaming server listening");
        Ok(StreamServer {
            state,
            addr,
            base_url,
            accept,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sessions (exec, attach, port-forward) currently being served.
    pub fn active_sessions(&self) -> usize {
        self.state.sessions.load(Ordering::SeqCst)
    }

    fn url(&self, kind: &str, req: CachedRequest) -> Result<String, StreamServerError> {
        let token = self.state.cache.insert(req)?;
        Ok(format!(
            "{}/{kind}/{token}",
            self.base_url.trim_end_matches('/')
        ))
    }

    /// URL for an ExecResponse.
    pub fn get_exec_url(&self, req: &ExecRequest) -> Result<String, StreamServerError> {
        if req.container_id.is_empty() {
            return Err(StreamServerError::InvalidArgument(
                "missing required container_id",
            ));
        }
        if req.cmd.is_empty() {
            return Err(StreamServerError::InvalidArgument("missing required cmd"));
        }
        validate_stdio(req.tty, req.stdin, req.stdout, req.stderr)?;
        self.url("exec", CachedRequest::Exec(req.clone()))
    }

    /// URL for an AttachResponse.
    pub fn get_attach_url(&self, req: &AttachRequest) -> Result<String, StreamServerError> {
        if req.container_id.is_empty() {
            return Err(StreamServerError::InvalidArgument(
                "missing required container_id",
            ));
        }
        validate_stdio(req.tty, req.stdin, req.stdout, req.stderr)?;
        self.url("attach", CachedRequest::Attach(req.clone()))
    }

    /// URL for a PortForwardResponse.
    pub fn get_portforward_url(
        &self,
        req: &PortForwardRequest,
    ) -> Result<String, StreamServerError> {
        if req.pod_sandbox_id.is_empty() {
            return Err(StreamServerError::InvalidArgument(
                "missing required pod_sandbox_id",
            ));
        }
        self.url("portforward", CachedRequest::PortForward(req.clone()))
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a streaming connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let state = state.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(route(state, req)) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades();
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "streaming connection ended");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

fn route(state: Arc<State>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (kind, token) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    if !matches!(kind, "exec" | "attach" | "portforward") || token.is_empty() || token.contains('/')
    {
        return plain(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::POST {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and POST are allowed\n",
        );
    }
    let cached = match state.cache.consume(token) {
        Some(c) => c,
        None => return plain(StatusCode::NOT_FOUND, "404 page not found\n"),
    };
    match (kind, cached) {
        ("exec", CachedRequest::Exec(e)) => {
            let want = Wanted {
                stdin: e.stdin,
                stdout: e.stdout,
                stderr: e.stderr,
                tty: e.tty,
            };
            upgrade_remotecommand(
                state,
                req,
                e.container_id,
                remotecommand::Command::Exec(e.cmd),
                want,
            )
        }
        ("attach", CachedRequest::Attach(a)) => {
            let want = Wanted {
                stdin: a.stdin,
                stdout: a.stdout,
                stderr: a.stderr,
                tty: a.tty,
            };
            upgrade_remotecommand(
                state,
                req,
                a.container_id,
                remotecommand::Command::Attach,
                want,
            )
        }
        ("portforward", CachedRequest::PortForward(p)) => {
            upgrade_portforward(state, req, p.pod_sandbox_id)
        }
        _ => plain(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

/// Run `f` on the upgraded connection in a counted task.
fn on_upgrade<F, Fut>(state: Arc<State>, req: Request<Incoming>, f: F)
where
    F: FnOnce(IdleIo<TokioIo<hyper::upgrade::Upgraded>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    state.sessions.fetch_add(1, Ordering::SeqCst);
    let mut stop = state.shutdown.subscribe();
    let idle_timeout = state.config.idle_timeout;
    let guard = SessionGuard(state);
    tokio::spawn(async move {
        let _guard = guard;
        let work = async move {
            match hyper::upgrade::on(req).await {
                Ok(up) => {
                    let (io, clock) = IdleIo::new(TokioIo::new(up));
                    tokio::select! {
                        () = f(io) => {}
                        () = clock.expired(idle_timeout) => {
                            tracing::info!(?idle_timeout, "closing an idle streaming session");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "streaming upgrade failed"),
            }
        };
        // Dropping the session on shutdown stops its process and closes its connections.
        tokio::select! {
            () = work => {}
            _ = stop.wait_for(|s| *s) => tracing::info!("streaming server stopped; ending a session"),
        }
    });
}

fn upgrade_remotecommand(
    state: Arc<State>,
    req: Request<Incoming>,
    container: String,
    cmd: remotecommand::Command,
    want: Wanted,
) -> Resp {
    let runtime = state.runtime.clone();
    let timeout = state.config.stream_creation_timeout;
    if is_websocket(&req) {
        let (resp, protocol) = match ws_accept(&req, remotecommand::WS_PROTOCOLS) {
            Ok(x) => x,
            Err(r) => return *r,
        };
        on_upgrade(state, req, move |io| async move {
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            let mux = WsMux::start(ws, 5, is_base64(protocol), protocol.starts_with("v5."));
            let session = ws_session(mux, want);
            remotecommand::run(
                runtime.as_ref(),
                &container,
                cmd,
                want.tty,
                session,
                remotecommand::status_is_json(protocol),
            )
            .await;
        });
        return resp;
    }
    let (resp, protocol) = match spdy_accept(&req, remotecommand::SPDY_PROTOCOLS, "channel.k8s.io")
    {
        Ok(x) => x,
        Err(r) => return *r,
    };
    on_upgrade(state, req, move |io| async move {
        let conn = Connection::server(io);
        match spdy_session(
            conn,
            want,
            remotecommand::spdy_supports_resize(protocol),
            timeout,
        )
        .await
        {
            Ok(session) => {
                remotecommand::run(
                    runtime.as_ref(),
                    &container,
                    cmd,
                    want.tty,
                    session,
                    remotecommand::status_is_json(protocol),
                )
                .await;
            }
            Err(e) => {
                tracing::warn!(container = %container, error = %e, "remote command session not started")
            }
        }
    });
    resp
}

fn upgrade_portforward(state: Arc<State>, req: Request<Incoming>, sandbox: String) -> Resp {
    let runtime = state.runtime.clone();
    let timeout = state.config.stream_creation_timeout;
    if is_websocket(&req) {
        let (resp, protocol) = match ws_accept(&req, portforward::WS_PROTOCOLS) {
            Ok(x) => x,
            Err(r) => return *r,
        };
        if protocol == portforward::TUNNEL_PROTOCOL {
            // SPDY/3.1 tunnelled in WebSocket binary messages (KEP-4006).
            on_upgrade(state, req, move |io| async move {
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                let (bytes, _pump) = tunnel(ws);
                portforward::serve_spdy(Connection::server(bytes), runtime, sandbox, timeout).await;
            });
            return resp;
        }
        let ports = match query_ports(&req) {
            Ok(p) => p,
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{e}\n")),
        };
        on_upgrade(state, req, move |io| async move {
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            let mux = WsMux::start(ws, ports.len() * 2, is_base64(protocol), false);
            portforward::serve_ws(mux, runtime, sandbox, ports).await;
        });
        return resp;
    }
    let (resp, _) = match spdy_accept(
        &req,
        &[portforward::SPDY_PROTOCOL],
        portforward::SPDY_PROTOCOL,
    ) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    on_upgrade(state, req, move |io| async move {
        portforward::serve_spdy(Connection::server(io), runtime, sandbox, timeout).await;
    });
    resp
}
