//! The attach socket: stdin relay and output copy, across several attaches.

mod common;

use common::*;
use cri_monitor::protocol::{ATTACH_SOCKET, ATTACH_STDERR, ATTACH_STDOUT, ctl_resize};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, connect, recv, send, socket,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

fn attach(path: &Path) -> OwnedFd {
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    connect(fd.as_raw_fd(), &UnixAddr::new(path).unwrap()).unwrap();
    // Bound every receive so a broken monitor fails the test instead of hanging it.
    let tv = nix::sys::time::TimeVal::new(30, 0);
    nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::ReceiveTimeout, &tv).unwrap();
    fd
}

/// Receives packets until the accumulated stdout payload contains `want`.
fn recv_until(fd: &OwnedFd, want: &str) -> String {
    let mut got = String::new();
    let mut buf = [0u8; 65536];
    while !got.contains(want) {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).expect("attach output");
        assert!(n > 0, "attach socket closed before {want:?}; got {got:?}");
        assert_eq!(buf[0], ATTACH_STDOUT, "stdout packets start with 2");
        got.push_str(&String::from_utf8_lossy(&buf[1..n]));
    }
    got
}

#[test]
fn attach_relays_stdin_and_copies_output() {
    let script = "echo ready; read a; echo got:$a; read b; echo got:$b; echo bye >&2";
    let mut c = Monitored::new("attach", Bundle::new(&["sh", "-c", script], false));
    c.stdin = true;
    let s = c.start_monitor().unwrap();
    let sock = c.socket_dir().join(ATTACH_SOCKET);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o027,
        0,
        "attach socket open to group/other: {mode:o}"
    );
    let first = attach(&sock);
    c.start();
    recv_until(&first, "ready");
    send(first.as_raw_fd(), b"hello\n", MsgFlags::empty()).unwrap();
    assert!(recv_until(&first, "got:hello").contains("got:hello"));
    // Detaching does not close the container's stdin: a second client continues.
    drop(first);
    let second = attach(&sock);
    send(second.as_raw_fd(), b"again\n", MsgFlags::empty()).unwrap();
    recv_until(&second, "got:again");
    // stderr arrives tagged 3, then the connection closes after exit.
    let mut buf = [0u8; 1024];
    let n = recv(second.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
    assert_eq!(buf[0], ATTACH_STDERR);
    assert_eq!(&buf[1..n], b"bye\n");
    assert_eq!(c.wait_exit(s.monitor_pid)["exit_code"], 0);
    let n = recv(second.as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
    assert_eq!(n, 0, "clients are disconnected after the container exits");
    assert_eq!(
        lines_of(&c.log(), "stdout"),
        ["ready", "got:hello", "got:again"]
    );
    assert_eq!(lines_of(&c.log(), "stderr"), ["bye"]);
}

#[test]
fn tty_attach_input_goes_through_the_pty() {
    let mut c = Monitored::new(
        "ttyattach",
        Bundle::new(&["sh", "-c", "read a; echo got:$a"], true),
    );
    c.tty = true;
    c.stdin = true;
    let s = c.start_monitor().unwrap();
    let cl = attach(&c.socket_dir().join(ATTACH_SOCKET));
    // A resize request through the ctl fifo is accepted on a tty container.
    std::fs::write(c.socket_dir().join("ctl"), ctl_resize(100, 40)).unwrap();
    c.start();
    send(cl.as_raw_fd(), b"typed\n", MsgFlags::empty()).unwrap();
    recv_until(&cl, "got:typed");
    assert_eq!(c.wait_exit(s.monitor_pid)["exit_code"], 0);
    let out: Vec<String> = lines_of(&c.log(), "stdout");
    assert!(
        out.iter().any(|l| l.trim_end_matches('\r') == "got:typed"),
        "{out:?}"
    );
}

#[test]
fn stdin_once_closes_stdin_when_the_attach_session_ends() {
    let mut c = Monitored::new("once", Bundle::new(&["sh", "-c", "cat; echo done"], false));
    c.stdin = true;
    let s = {
        // Same as start_monitor, plus --stdin-once.
        let out = c.command().arg("--stdin-once").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["monitor_pid"].as_i64().unwrap() as i32
    };
    let cl = attach(&c.socket_dir().join(ATTACH_SOCKET));
    c.start();
    send(cl.as_raw_fd(), b"abc\n", MsgFlags::empty()).unwrap();
    recv_until(&cl, "abc");
    drop(cl);
    // cat sees EOF, so the container finishes by itself.
    assert_eq!(c.wait_exit(s)["exit_code"], 0);
    assert_eq!(lines_of(&c.log(), "stdout"), ["abc", "done"]);
}

#[test]
fn without_stdin_once_stdin_stays_open_after_detach() {
    let mut c = Monitored::new("keep", Bundle::new(&["sh", "-c", "cat; echo done"], false));
    c.stdin = true;
    let s = c.start_monitor().unwrap();
    let cl = attach(&c.socket_dir().join(ATTACH_SOCKET));
    c.start();
    send(cl.as_raw_fd(), b"abc\n", MsgFlags::empty()).unwrap();
    recv_until(&cl, "abc");
    drop(cl);
    // Still running: cat waits for more input from a later attach.
    c.wait_log("abc", |l| !l.is_empty());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        alive(s.pid),
        "stdin was closed although --stdin-once was not given"
    );
    c.kill("KILL");
    assert_eq!(c.wait_exit(s.monitor_pid)["signal"], 9);
}
