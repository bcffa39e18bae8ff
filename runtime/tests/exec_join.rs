//! `exec` into a running container, and containers joining another's namespaces by path
//! (how pods share a sandbox's network and uts namespaces).

mod common;

use common::{Bundle, Rt};

#[test]
fn exec_sees_the_containers_hostname_and_pid_namespace() {
    let rt = Rt::ours();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = rt.id("exec");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    let out = rt.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid,args",
    ]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("kina-test"));
    assert_eq!(lines.next().map(str::trim), Some("sleep 1000"));
    let ps: Vec<&str> = lines.collect();
    assert!(
        ps.iter()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("sleep 1000")),
        "{ps:?}"
    );
    // Exit codes propagate; env, cwd and user flags apply.
    let o = rt.run(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(o.status.code(), Some(5));
    let out = rt.ok(&[
        "exec",
        "-e",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "-u",
        "1000:1001",
        &id,
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["bar", "/tmp", "1000", "1001"]
    );
    // A missing binary fails exec with a clear error.
    let err = rt.fails(&["exec", &id, "no-such-binary"]);
    assert!(err.contains("no-such-binary") && err.contains(&id), "{err}");
}

#[test]
fn exec_detached_with_pid_file_and_process_json() {
    let rt = Rt::ours();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = rt.id("execd");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    let pidfile = b.path().join("exec.pid");
    rt.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "999",
    ]);
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmd, "sleep\0999\0");
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(
        pids.contains(&pid),
        "exec'd process not in the container cgroup: {pids:?}"
    );
    let proc_json = b.path().join("process.json");
    std::fs::write(
        &proc_json,
        r#"{"args": ["sh", "-c", "echo from-json $X"], "env": ["PATH=/bin", "X=1"], "cwd": "/", "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    assert_eq!(
        rt.ok(&["exec", "-p", proc_json.to_str().unwrap(), &id])
            .trim(),
        "from-json 1"
    );
    std::fs::write(
        &proc_json,
        r#"{"args": ["sh"], "cwd": "relative", "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    assert!(
        rt.fails(&["exec", "-p", proc_json.to_str().unwrap(), &id])
            .contains("process.cwd")
    );
}

#[test]
fn exec_into_stopped_container_fails() {
    let rt = Rt::ours();
    let b = Bundle::new(&["true"]);
    let id = rt.id("exec-stopped");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    rt.wait_status(&id, "stopped");
    let err = rt.fails(&["exec", &id, "true"]);
    assert!(err.contains(&id) && err.contains("stopped"), "{err}");
}

#[test]
fn join_another_containers_net_and_uts_namespaces_by_path() {
    let rt = Rt::ours();
    let mut sandbox = Bundle::new(&["sleep", "1000"]);
    sandbox.edit(|c| c["hostname"] = "sandbox-host".into());
    let sid = rt.id("sandbox");
    rt.ok(&["run", "-d", "-b", sandbox.path().to_str().unwrap(), &sid]);
    let spid = rt.state(&sid)["pid"].as_i64().unwrap();
    let net = format!("/proc/{spid}/ns/net");
    let uts = format!("/proc/{spid}/ns/uts");
    let mut member = Bundle::new(&[
        "sh",
        "-c",
        "hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/pid",
    ]);
    member.edit(|c| {
        c.as_object_mut().unwrap().remove("hostname");
        c["linux"]["namespaces"] = serde_json::json!([
            {"type": "pid"}, {"type": "mount"}, {"type": "ipc"},
            {"type": "network", "path": net}, {"type": "uts", "path": uts}
        ]);
    });
    let mid = rt.id("member");
    let out = rt.ok(&["run", "-b", member.path().to_str().unwrap(), &mid]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "sandbox-host");
    assert_eq!(
        lines[1],
        std::fs::read_link(&net).unwrap().to_str().unwrap()
    );
    assert_ne!(
        lines[2],
        std::fs::read_link(format!("/proc/{spid}/ns/pid"))
            .unwrap()
            .to_str()
            .unwrap()
    );
}
