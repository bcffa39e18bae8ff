//! Container lifecycle through the CLI: run, create/start/state, kill, pause/resume, delete,
//! list/ps/update/features — checked by what a user sees.

mod common;

use std::time::Duration;

use common::{Bundle, Rt, cgroup_exists};

#[test]
fn run_prints_hostname_and_propagates_exit_code() {
    let rt = Rt::ours();
    let b = Bundle::new(&["sh", "-c", "hostname; exit 3"]);
    let id = rt.id("run-exit");
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "kina-test");
    // A foreground run deletes the container afterwards.
    assert!(rt.ok(&["list", "-q"]).trim().is_empty());
    assert!(!cgroup_exists(&id));
}

#[test]
fn run_of_killed_process_exits_128_plus_signal() {
    let rt = Rt::ours();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = rt.id("run-kill");
    let mut fg = rt
        .command(&["run", "-b", b.path().to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if rt.run(&["state", &id]).status.success() && rt.status(&id) == "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    rt.ok(&["kill", &id, "KILL"]);
    assert_eq!(fg.wait().unwrap().code(), Some(137));
    assert!(!cgroup_exists(&id));
}

#[test]
fn create_start_state_stop_delete() {
    let rt = Rt::ours();
    let b = Bundle::new(&["sh", "-c", "echo started > /tmp/mark; sleep 0.3"]);
    let id = rt.id("lifecycle");
    let pidfile = b.path().join("pid");
    rt.ok(&[
        "create",
        "-b",
        b.path().to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // Nothing ran yet.
    assert!(!b.rootfs().join("tmp/mark").exists());
    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
    rt.wait_status(&id, "stopped");
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("tmp/mark")).unwrap(),
        "started\n"
    );
    assert!(cgroup_exists(&id));
    // start twice is an error naming the container.
    assert!(rt.fails(&["start", &id]).contains(&id));
    rt.ok(&["delete", &id]);
    assert!(rt.fails(&["state", &id]).contains(&id));
    assert!(!cgroup_exists(&id));
    assert!(!rt.root.path().join(&id).exists());
}

#[test]
fn kill_by_name_and_number() {
    let rt = Rt::ours();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.05; done",
    ]);
    for (n, sig) in ["TERM", "SIGKILL", "9", "sigterm"].iter().enumerate() {
        let id = rt.id(&format!("kill{n}"));
        rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
        assert_eq!(rt.status(&id), "running");
        rt.ok(&["kill", &id, sig]);
        rt.wait_status(&id, "stopped");
        // Signalling a stopped container is an error.
        assert!(rt.fails(&["kill", &id, "KILL"]).contains(&id));
        rt.ok(&["delete", &id]);
    }
    let id = rt.id("kill-bad");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    assert!(rt.fails(&["kill", &id, "SIGNOPE"]).contains("SIGNOPE"));
    rt.ok(&["kill", "--all", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
}

#[test]
fn pause_stops_progress_and_resume_continues() {
    let rt = Rt::ours();
    let b = Bundle::new(&[
        "sh",
        "-c",
        "while true; do echo x >> /tmp/ticks; sleep 0.02; done",
    ]);
    let id = rt.id("pause");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    let ticks = || {
        std::fs::read_to_string(b.rootfs().join("tmp/ticks"))
            .map(|s| s.len())
            .unwrap_or(0)
    };
    std::thread::sleep(Duration::from_millis(150));
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    let frozen = ticks();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ticks(), frozen, "a paused container made progress");
    // delete without --force refuses a paused container.
    assert!(rt.fails(&["delete", &id]).contains(&id));
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    std::thread::sleep(Duration::from_millis(300));
    assert!(ticks() > frozen);
    assert!(rt.fails(&["resume", &id]).contains("running"));
}

#[test]
fn delete_force_kills_and_cleans_up() {
    let rt = Rt::ours();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = rt.id("force");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    let pid = rt.state(&id)["pid"].as_i64().unwrap();
    let err = rt.fails(&["delete", &id]);
    assert!(err.contains(&id) && err.contains("--force"), "{err}");
    rt.ok(&["delete", "--force", &id]);
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z"))
        .unwrap_or(false);
    assert!(!alive, "init {pid} survived delete --force");
    assert!(!cgroup_exists(&id));
    assert!(rt.ok(&["list", "-q"]).trim().is_empty());
    // Deleting what is gone: error, but --force succeeds.
    assert!(rt.fails(&["delete", &id]).contains(&id));
    rt.ok(&["delete", "-f", &id]);
}

#[test]
fn list_state_and_ps_json() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.edit(|c| c["annotations"] = serde_json::json!({"org.example/key": "v"}));
    let id = rt.id("list");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    let st = rt.state(&id);
    for key in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
        "annotations",
    ] {
        assert!(st.get(key).is_some(), "state lacks {key}: {st}");
    }
    assert_eq!(st["annotations"]["org.example/key"], "v");
    assert_eq!(
        st["bundle"],
        b.path().canonicalize().unwrap().to_str().unwrap()
    );
    let list: serde_json::Value =
        serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "running");
    let table = rt.ok(&["list"]);
    let mut lines = table.lines();
    let header: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    let row: Vec<_> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!((row[0], row[2], row[5]), (id.as_str(), "running", "root"));
    let pids: Vec<i64> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids, vec![st["pid"].as_i64().unwrap()]);
    let table = rt.ok(&["ps", &id]);
    assert!(
        table.lines().nth(1).unwrap().contains("sleep 1000"),
        "{table}"
    );
}

#[test]
fn update_changes_cgroup_limits() {
    let rt = Rt::ours();
    let b = Bundle::new(&["sleep", "1000"]);
    let id = rt.id("update");
    rt.ok(&["run", "-d", "-b", b.path().to_str().unwrap(), &id]);
    rt.ok(&["update", "--pids-limit", "42", "--memory", "64m", &id]);
    let pids_max = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/{id}/pids.max"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/{id}/pids.max")))
        .unwrap();
    assert_eq!(pids_max.trim(), "42");
    let mem = std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{id}/memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/{id}/memory.max")))
        .unwrap();
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    let file = b.path().join("res.json");
    std::fs::write(&file, r#"{"pids": {"limit": 7}}"#).unwrap();
    rt.ok(&["update", "--resources", file.to_str().unwrap(), &id]);
    let pids_max = std::fs::read_to_string(format!("/sys/fs/cgroup/pids/{id}/pids.max"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/{id}/pids.max")))
        .unwrap();
    assert_eq!(pids_max.trim(), "7");
    std::fs::write(&file, r#"{"pids": {"limit": "lots"}}"#).unwrap();
    assert!(
        rt.fails(&["update", "-r", file.to_str().unwrap(), &id])
            .contains("pids.limit")
    );
}

#[test]
fn features_json() {
    let rt = Rt::ours();
    let f: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    let hooks = f["hooks"].as_array().unwrap();
    assert!(hooks.iter().any(|h| h == "createRuntime"));
    let ns = f["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n == "time") && ns.iter().any(|n| n == "user"));
    assert_eq!(f["linux"]["cgroup"]["v1"], true);
    assert!(
        f["linux"]["seccomp"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "SCMP_ACT_ERRNO")
    );
}

#[test]
fn log_file_gets_json_error_naming_container() {
    let rt = Rt::ours();
    let log = rt.root.path().join("log.json");
    let o = rt.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "start",
        "no-such-ctr",
    ]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no-such-ctr"));
    let line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("no-such-ctr"));
}

#[test]
fn systemd_cgroup_paths() {
    let rt = Rt::ours();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let id = rt.id("systemd");
    rt.ok(&[
        "--systemd-cgroup",
        "run",
        "-d",
        "-b",
        b.path().to_str().unwrap(),
        &id,
    ]);
    let scope = format!("system.slice/kina-{id}.scope");
    assert!(cgroup_exists(&scope), "no cgroup {scope}");
    rt.ok(&["delete", "-f", &id]);
    assert!(!cgroup_exists(&scope));
    b.edit(|c| c["linux"]["cgroupsPath"] = "/plain/path".into());
    let id = rt.id("systemd-bad");
    let err = rt.fails(&[
        "--systemd-cgroup",
        "create",
        "-b",
        b.path().to_str().unwrap(),
        &id,
    ]);
    assert!(err.contains("cgroupsPath") && err.contains(&id), "{err}");
}

/// An exec that fails after `start` (the program's interpreter is missing: a dynamically linked
/// binary in a scratch image, or a `#!` script) is named on the container's stderr, where a CRI
/// log shows it, instead of a silent exit 1.
#[test]
fn exec_failure_after_start_is_written_to_the_container_stderr() {
    let rt = Rt::ours();
    let b = Bundle::new(&["/needs-interp"]);
    let prog = b.rootfs().join("needs-interp");
    std::fs::write(&prog, "#!/no/such/interpreter\n").unwrap();
    std::fs::set_permissions(&prog, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let id = rt.id("exec-enoent");
    let o = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("execve /needs-interp") && stderr.contains("No such file or directory"),
        "stderr: {stderr}"
    );
    assert!(rt.ok(&["list", "-q"]).trim().is_empty());
    assert!(!cgroup_exists(&id));
}
