//! Connect to a TCP port from inside a network namespace. The socket is created on a
//! short-lived std thread that enters the namespace (setns affects only that thread), so no
//! tokio worker ever changes namespace; the connected socket keeps its namespace.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};

/// Connect to `port` on the loopback address of the namespace at `netns` (IPv4, then IPv6).
pub async fn connect_in_netns(netns: &Path, port: u16) -> io::Result<tokio::net::TcpStream> {
    let netns: PathBuf = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns-connect".into())
        .spawn(move || {
            let _ = tx.send(connect_blocking(&netns, port));
        })?;
    let std = rx
        .await
        .map_err(|_| io::Error::other("netns connect thread died"))??;
    std.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(std)
}

fn connect_blocking(netns: &Path, port: u16) -> io::Result<TcpStream> {
    let ns = File::open(netns)
        .map_err(|e| io::Error::new(e.kind(), format!("open netns {}: {e}", netns.display())))?;
    setns(&ns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| io::Error::other(format!("setns({}): {e}", netns.display())))?;
    let timeout = Duration::from_secs(10);
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match TcpStream::connect_timeout(&v4, timeout) {
        Ok(s) => Ok(s),
        Err(e4) => {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            TcpStream::connect_timeout(&v6, timeout).map_err(|_| e4)
        }
    }
}
