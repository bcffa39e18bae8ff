//! Named, persistent pod network namespaces, made the way `ip netns add` and CRI-O's pinns
//! do: a dedicated short-lived thread unshares `CLONE_NEWNET`, brings `lo` up, bind-mounts
//! `/proc/thread-self/ns/net` onto a file under the netns dir and exits. No tokio worker
//! thread ever changes namespace. Removal (umount + unlink) is idempotent.

use std::fs::File;
use std::path::{Path, PathBuf};

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkFlags, LinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

/// The default netns dir (as `ip netns`).
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";

/// Errors of netns handling, naming the netns path and the step.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("netns {path}: {op}: {source}")]
    Sys {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("netns name {0:?} must be 1-200 characters of [A-Za-z0-9_.-]")]
    InvalidName(String),
    #[error("netns {0}: already exists")]
    Exists(PathBuf),
    #[error("netns {0}: the helper thread panicked")]
    HelperPanicked(PathBuf),
}

fn sys<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> NetnsError + 'a {
    move |source| NetnsError::Sys {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn errno<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(Errno) -> NetnsError + 'a {
    move |e| sys(path, op)(std::io::Error::from(e))
}

/// A pinned network namespace, identified by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNs {
    path: PathBuf,
}

impl NetNs {
    /// Creates `<dir>/<name>`: a new network namespace with `lo` up, pinned by a bind
    /// mount. Blocking (spawns and joins a thread); call it from `spawn_blocking` in async
    /// code. On failure nothing is left behind.
    pub fn create(dir: &Path, name: &str) -> Result<Self, NetnsError> {
        let valid = !name.is_empty()
            && name.len() <= 200
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(NetnsError::InvalidName(name.to_string()));
        }
        std::fs::create_dir_all(dir).map_err(sys(dir, "create netns dir"))?;
        let path = dir.join(name);
        match File::options().write(true).create_new(true).open(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(NetnsError::Exists(path));
            }
            Err(e) => return Err(sys(&path, "create mount point")(e)),
        }
        let target = path.clone();
        let pinned = std::thread::Builder::new()
            .name("netns-pin".into())
            .spawn(move || pin_new_netns(&target))
            .map_err(sys(&path, "spawn helper thread"))
            .and_then(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(NetnsError::HelperPanicked(path.clone())))
            });
        let ns = Self { path };
        if let Err(e) = pinned {
            if let Err(cleanup) = ns.remove() {
                tracing::warn!(error = %cleanup, "cleanup after failed netns creation failed");
            }
            return Err(e);
        }
        Ok(ns)
    }

    /// A netns known by path (e.g. after a restart).
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the namespace (for `setns`).
    pub fn open(&self) -> Result<File, NetnsError> {
        File::open(&self.path).map_err(sys(&self.path, "open"))
    }

    /// Unmounts and removes the pin. Idempotent: a missing or unmounted file is fine.
    pub fn remove(&self) -> Result<(), NetnsError> {
        remove_path(&self.path)
    }
}

/// Unmounts and unlinks a netns pin; idempotent.
pub fn remove_path(path: &Path) -> Result<(), NetnsError> {
    // Lazy unmount: a process still holding the namespace keeps it alive, the pin goes.
    loop {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue, // stacked pins: unmount until the file is bare
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => break,
            Err(e) => return Err(errno(path, "umount")(e)),
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(sys(path, "unlink")(e)),
        _ => Ok(()),
    }
}

/// Runs on the dedicated helper thread, which is discarded afterwards.
fn pin_new_netns(target: &Path) -> Result<(), NetnsError> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(errno(target, "unshare(CLONE_NEWNET)"))?;
    set_loopback_up().map_err(sys(target, "bring lo up"))?;
    mount(
        Some("/proc/thread-self/ns/net"),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(errno(target, "bind-mount /proc/thread-self/ns/net"))
}

/// `ip link set lo up` in the calling thread's netns (lo is ifindex 1 in every netns).
fn set_loopback_up() -> std::io::Result<()> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut link = LinkMessage::default();
    link.header.index = 1;
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    let mut msg = NetlinkMessage::from(RouteNetlinkMessage::SetLink(link));
    msg.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    msg.header.sequence_number = 1;
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut rbuf = vec![0u8; 8192];
    loop {
        let n = socket.recv(&mut &mut rbuf[..], 0)?;
        let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[..n])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        if reply.header.sequence_number != 1 {
            continue;
        }
        return match reply.payload {
            NetlinkPayload::Error(e) => match e.code {
                None => Ok(()),
                Some(code) => Err(std::io::Error::from_raw_os_error(-code.get())),
            },
            other => Err(std::io::Error::other(format!(
                "unexpected netlink reply {other:?}"
            ))),
        };
    }
}
