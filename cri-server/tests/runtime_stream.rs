//! Exec, attach and port-forward through the real streaming server, driven by the real crictl:
//! exit codes and stdin of `crictl exec`, a TTY exec under `script`, attaching to a TTY
//! container, forwarding a port of a pod with its own network namespace, and clear errors for
//! stopped containers.

mod runtime_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use runtime_support::net::BridgeNet;
use runtime_support::server::{Options, Server};

fn crictl_path() -> PathBuf {
    std::env::var_os("CRICTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bin/crictl"))
}

/// The crictl command line against `srv`, as a shell-quoted string (for `script -c`).
fn crictl_line(srv: &Server, args: &[&str]) -> String {
    let ep = format!("unix://{}", srv.socket.display());
    let mut line = format!(
        "{} --runtime-endpoint {ep} --image-endpoint {ep} --timeout 60s",
        crictl_path().display()
    );
    for a in args {
        line.push_str(&format!(" '{}'", a.replace('\'', r"'\''")));
    }
    line
}

fn ok(srv: &Server, args: &[&str]) -> String {
    let out = srv.crictl(args);
    assert!(
        out.status.success(),
        "crictl {args:?}: {}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        srv.log()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `sh -c line` with `input` on stdin.
fn sh_with_input(line: &str, input: &[u8]) -> Output {
    let mut c = Command::new("sh")
        .args(["-c", line])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input).unwrap();
    c.wait_with_output().unwrap()
}

fn write_json(dir: &Path, name: &str, v: serde_json::Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, v.to_string()).unwrap();
    p.display().to_string()
}

/// A pod (host network unless `own_netns`) and a started busybox container running `script`.
fn pod_and_container(
    srv: &Server,
    dir: &Path,
    name: &str,
    own_netns: bool,
    ctr: serde_json::Value,
) -> (String, String) {
    let network = if own_netns { 0 } else { 2 };
    let pod_json = write_json(
        dir,
        &format!("{name}-pod.json"),
        serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid"), "attempt": 1},
            "log_directory": dir.join("logs"),
            "linux": {
                "cgroup_parent": format!("{}/{name}", runtime_support::server::cgroup_root(dir)),
                "security_context": {"namespace_options": {"network": network}},
            },
        }),
    );
    let ctr_json = write_json(dir, &format!("{name}-ctr.json"), ctr);
    let pod = ok(srv, &["runp", &pod_json]).trim().to_owned();
    let c = ok(srv, &["create", &pod, &ctr_json, &pod_json])
        .trim()
        .to_owned();
    ok(srv, &["start", &c]);
    (pod, c)
}

fn busybox(name: &str, cmd: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": name},
        "image": {"image": runtime_support::images::BUSYBOX},
        "command": cmd,
        "log_path": format!("{name}.log"),
    })
}

fn teardown(srv: &Server, pod: &str, dir: &Path) {
    ok(srv, &["stopp", pod]);
    ok(srv, &["rmp", pod]);
    assert!(runtime_support::mounts_with(&dir.display().to_string()).is_empty());
}

fn exec_streams(handler: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: handler.into(),
            cni_conf_dir: tmp.path().join("no-cni"),
        },
    );
    let (pod, ctr) = pod_and_container(
        &srv,
        tmp.path(),
        "execs",
        false,
        busybox("app", &["sleep", "1000"]),
    );
    // Output and the exit code come back.
    let out = srv.crictl(&["exec", &ctr, "sh", "-c", "echo hi; echo oops >&2; exit 3"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n", "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("oops"), "{out:?}");
    // crictl itself exits 1 and names the command's status.
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("command terminated with exit code 3"),
        "{out:?}\n{}",
        srv.log()
    );
    // Stdin reaches the process, its EOF ends it.
    let out = sh_with_input(
        &crictl_line(&srv, &["exec", "-i", &ctr, "cat"]),
        b"data\nmore data\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "data\nmore data\n");
    // A terminal: the shell runs on a tty and its output comes back through it.
    let line = crictl_line(
        &srv,
        &[
            "exec",
            "-it",
            &ctr,
            "sh",
            "-c",
            "test -t 0 && echo $((6*7))",
        ],
    );
    let out = sh_with_input(&format!("script -qec \"{line}\" /dev/null"), b"");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("42"),
        "{out:?}\n{}",
        srv.log()
    );
    // The client's terminal size reaches the process's terminal.
    let line = crictl_line(
        &srv,
        &["exec", "-it", &ctr, "sh", "-c", "sleep 1; stty size"],
    );
    let out = sh_with_input(
        &format!("script -qec \"stty cols 123 rows 45; {line}\" /dev/null"),
        b"",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("45 123"),
        "{out:?}\n{}",
        srv.log()
    );
    // No exec'd process is left behind.
    let procs = ok(&srv, &["exec", "-s", &ctr, "ps", "-o", "args"]);
    assert!(!procs.contains("cat") && !procs.contains("6*7"), "{procs}");
    // A stopped container refuses exec with its id in the message.
    ok(&srv, &["stop", "-t", "1", &ctr]);
    let out = srv.crictl(&["exec", &ctr, "true"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not running") && err.contains(&ctr), "{err}");
    let out = srv.crictl(&["exec", "no-such-container", "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-container"),
        "{out:?}"
    );
    ok(&srv, &["rm", &ctr]);
    teardown(&srv, &pod, tmp.path());
}

#[test]
fn crictl_exec_on_kina_runtime() {
    exec_streams("kina");
}

#[test]
fn crictl_exec_on_runc_handler() {
    exec_streams("runc");
}

#[test]
fn crictl_attach_to_a_tty_container() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: "kina".into(),
            cni_conf_dir: tmp.path().join("no-cni"),
        },
    );
    let mut ctr = busybox("shell", &["sh"]);
    ctr["tty"] = true.into();
    ctr["stdin"] = true.into();
    let (pod, ctr) = pod_and_container(&srv, tmp.path(), "attach", false, ctr);
    let line = crictl_line(&srv, &["attach", "-i", "-t", &ctr]);
    let out = sh_with_input(
        &format!(
            "(sleep 1; echo 'echo $((6*7))'; echo 'stty size'; sleep 1; echo exit) | script -qec \"stty cols 101 rows 33; {line}\" /dev/null"
        ),
        b"",
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("42"),
        "{out:?}\n{}",
        srv.log()
    );
    // The attached terminal's size reached the container's terminal (through the monitor).
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("33 101"),
        "{out:?}"
    );
    // `exit` ended the shell: the container exited.
    assert!(runtime_support::wait_until(10, || {
        ok(&srv, &["inspect", &ctr]).contains("CONTAINER_EXITED")
    }));
    let out = srv.crictl(&["attach", &ctr]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not running"),
        "{out:?}"
    );
    ok(&srv, &["rm", &ctr]);
    teardown(&srv, &pod, tmp.path());
}

#[test]
fn crictl_port_forward_reaches_a_pod_port() {
    let tmp = tempfile::tempdir().unwrap();
    let net = BridgeNet::new(tmp.path(), 21);
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: "kina".into(),
            cni_conf_dir: net.conf_dir.clone(),
        },
    );
    let (pod, ctr) = pod_and_container(
        &srv,
        tmp.path(),
        "pf",
        true,
        busybox(
            "srv",
            &[
                "sh",
                "-c",
                "while true; do nc -l -p 8080 -e echo pf-reply; done",
            ],
        ),
    );
    // The server (and its streaming listener) live in the test's "host" namespace.
    let local = 20000 + std::process::id() % 20000;
    let mut pf = Command::new("ip")
        .args(["netns", "exec", &net.netns, "sh", "-c"])
        .arg(format!(
            "exec {}",
            crictl_line(&srv, &["port-forward", &pod, &format!("{local}:8080")])
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reply = String::new();
    let got = runtime_support::wait_until(20, || {
        let out = Command::new("ip")
            .args(["netns", "exec", &net.netns, "busybox", "nc", "127.0.0.1"])
            .arg(local.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        reply = String::from_utf8_lossy(&out.stdout).into_owned();
        reply.contains("pf-reply")
    });
    let _ = pf.kill();
    let pf_out = pf.wait_with_output().unwrap();
    assert!(
        got,
        "reply {reply:?}; port-forward: {pf_out:?}\n{}",
        srv.log()
    );
    ok(&srv, &["stop", "-t", "1", &ctr]);
    ok(&srv, &["rm", &ctr]);
    teardown(&srv, &pod, tmp.path());
}
