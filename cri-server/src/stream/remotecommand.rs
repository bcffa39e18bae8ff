//! Remote command (exec/attach) protocol handling: version negotiation as
//! `httpstream.Handshake` and wsstream do it, and running a session against the runtime
//! with the exit status reported on the error channel.

use super::runtime::StreamRuntime;
use super::session::Session;
use super::status::Status;

/// SPDY protocols, newest first (kubelet's `SupportedStreamingProtocols`).
pub const SPDY_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// WebSocket subprotocols (wsstream channel protocols kubelet registers).
pub const WS_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// The header carrying SPDY protocol versions.
pub const PROTOCOL_HEADER: &str = "X-Stream-Protocol-Version";

/// Pick the first protocol the client lists that the server supports (client preference).
pub fn negotiate<'a>(client: &[String], server: &[&'a str]) -> Option<&'a str> {
    client
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|c| server.iter().find(|s| **s == c).copied())
}

/// Whether the error channel carries a JSON `metav1.Status` (v4 and later).
pub fn status_is_json(protocol: &str) -> bool {
    protocol.starts_with("v4.") || protocol.starts_with("v5.")
}

/// Whether the protocol has a resize stream (v3 and later on SPDY).
pub fn spdy_supports_resize(protocol: &str) -> bool {
    !matches!(protocol, "channel.k8s.io" | "v2.channel.k8s.io")
}

/// What to run.
#[derive(Debug, Clone)]
pub enum Command {
    Exec(Vec<String>),
    Attach,
}

/// Run `command` with the session's stdio. If the client disconnects first, the runtime's
/// future is dropped, which stops the process.
pub async fn run(
    runtime: &dyn StreamRuntime,
    container_id: &str,
    command: Command,
    tty: bool,
    session: Session,
    json: bool,
) {
    let Session {
        io,
        disconnected,
        finish,
    } = session;
    let work = async {
        match &command {
            Command::Exec(cmd) => runtime.exec(container_id, cmd, tty, io).await,
            Command::Attach => runtime.attach(container_id, tty, io).await.map(|()| 0),
        }
    };
    tokio::select! {
        result = work => {
            let status = match result {
                Ok(0) => Status::success(),
                Ok(code) => {
                    let cmd: &[String] = match &command {
                        Command::Exec(c) => c,
                        Command::Attach => &[],
                    };
                    Status::exit_code(code, cmd)
                }
                Err(e) => {
                    tracing::warn!(container = container_id, error = %e, "streaming command failed");
                    Status::internal(&format!("error executing command in container: {e}"))
                }
            };
            finish(status.encode(json)).await;
        }
        () = disconnected => {
            tracing::info!(container = container_id, "streaming client disconnected; stopping the command");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_the_clients_order() {
        let c = vec![
            "v4.channel.k8s.io".to_string(),
            "v5.channel.k8s.io".to_string(),
        ];
        assert_eq!(negotiate(&c, SPDY_PROTOCOLS), Some("v4.channel.k8s.io"));
        let c = vec!["v9.x, channel.k8s.io".to_string()];
        assert_eq!(negotiate(&c, SPDY_PROTOCOLS), Some("channel.k8s.io"));
        assert_eq!(negotiate(&["nope".to_string()], SPDY_PROTOCOLS), None);
        assert!(status_is_json("v4.base64.channel.k8s.io"));
        assert!(!status_is_json("channel.k8s.io"));
        assert!(!spdy_supports_resize("v2.channel.k8s.io"));
    }
}
