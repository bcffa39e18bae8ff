//! HTTP side of the streaming endpoints: SPDY/3.1 and WebSocket upgrade handshakes with
//! protocol negotiation (`X-Stream-Protocol-Version`, `Sec-WebSocket-Protocol`), and the
//! `port` query parameters of WebSocket port forwarding.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::remotecommand;

pub(crate) type Resp = Response<Full<Bytes>>;

pub(crate) fn plain(code: StatusCode, msg: impl Into<String>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(msg.into())));
    *r.status_mut() = code;
    r
}

pub(crate) fn header_has(
    req: &Request<Incoming>,
    name: hyper::header::HeaderName,
    token: &str,
) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(token))
}

pub(crate) fn header_values(req: &Request<Incoming>, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect()
}

pub(crate) fn is_websocket(req: &Request<Incoming>) -> bool {
    header_has(req, CONNECTION, "upgrade") && header_has(req, UPGRADE, "websocket")
}

/// Answer a WebSocket handshake choosing from `supported` (client order wins).
pub(crate) fn ws_accept(
    req: &Request<Incoming>,
    supported: &[&'static str],
) -> Result<(Resp, &'static str), Box<Resp>> {
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY) else {
        return Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "missing Sec-WebSocket-Key\n",
        )));
    };
    let offered = header_values(req, "sec-websocket-protocol");
    let protocol = if offered.is_empty() {
        ""
    } else {
        match remotecommand::negotiate(&offered, supported) {
            Some(p) => p,
            None => {
                return Err(Box::new(plain(
                    StatusCode::FORBIDDEN,
                    format!(
                        "requested protocol(s) are not supported: {offered:?}; supports {supported:?}\n"
                    ),
                )));
            }
        }
    };
    let mut r = plain(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    if !protocol.is_empty() {
        h.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
    }
    Ok((r, protocol))
}

/// Answer an SPDY/3.1 upgrade after negotiating `X-Stream-Protocol-Version`.
pub(crate) fn spdy_accept(
    req: &Request<Incoming>,
    supported: &[&'static str],
    default: &'static str,
) -> Result<(Resp, &'static str), Box<Resp>> {
    if !header_has(req, CONNECTION, "upgrade") || !header_has(req, UPGRADE, "spdy/3.1") {
        return Err(Box::new(plain(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request\n",
        )));
    }
    let offered = header_values(req, remotecommand::PROTOCOL_HEADER);
    let protocol = if offered.is_empty() {
        default
    } else {
        match remotecommand::negotiate(&offered, supported) {
            Some(p) => p,
            None => {
                let mut r = plain(
                    StatusCode::FORBIDDEN,
                    format!(
                        "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {supported:?}\n"
                    ),
                );
                if let Ok(v) = HeaderValue::from_str(&supported.join(", ")) {
                    r.headers_mut()
                        .insert("X-Accepted-Stream-Protocol-Versions", v);
                }
                return Err(Box::new(r));
            }
        }
    };
    let mut r = plain(StatusCode::SWITCHING_PROTOCOLS, "");
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        remotecommand::PROTOCOL_HEADER,
        HeaderValue::from_static(protocol),
    );
    Ok((r, protocol))
}

pub(crate) fn query_ports(req: &Request<Incoming>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for pair in req.uri().query().unwrap_or_default().split('&') {
        if let Some(v) = pair.strip_prefix("port=") {
            match v.parse::<u16>() {
                Ok(p) if p > 0 => ports.push(p),
                _ => return Err(format!("invalid port {v:?}")),
            }
        }
    }
    if ports.is_empty() {
        return Err("at least one port must be specified".into());
    }
    if ports.len() > 127 {
        return Err("at most 127 ports can be forwarded in one session".into());
    }
    Ok(ports)
}
