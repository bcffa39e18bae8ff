//! cri-monitor against a real runtime (runc, or KINA_TEST_RUNTIME) and busybox containers.

mod common;

use common::*;
use cri_monitor::protocol::{CTL_FIFO, CTL_REOPEN_LOG, ExitRecord};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn logs_stdout_and_stderr_and_records_the_exit_code() {
    let c = Monitored::new(
        "basic",
        Bundle::new(&["sh", "-c", "echo out; echo err >&2; exit 3"], false),
    );
    let s = c.start_monitor().unwrap();
    assert!(alive(s.monitor_pid), "monitor runs after the verdict");
    assert_eq!(
        std::fs::read_to_string(c.pid_file()).unwrap().trim(),
        s.pid.to_string()
    );
    c.start();
    let exit: ExitRecord = serde_json::from_value(c.wait_exit(s.monitor_pid)).unwrap();
    assert_eq!(exit.exit_code, 3, "{exit:?}");
    assert_eq!(exit.signal, None, "{exit:?}");
    check_timestamp(&exit.exited_at);

    let log = c.log();
    assert_eq!(lines_of(&log, "stdout"), ["out"]);
    assert_eq!(lines_of(&log, "stderr"), ["err"]);
    assert!(log.iter().all(|e| e.tag == "F"), "{log:?}");
    // The monitor cleaned up what it created in the socket dir.
    assert!(!c.socket_dir().join("attach").exists());
    assert!(!c.socket_dir().join("ctl").exists());
}

#[test]
fn long_line_without_newline_is_split_into_partial_chunks() {
    let c = Monitored::new(
        "long",
        Bundle::new(&["sh", "-c", "head -c 40960 /dev/zero | tr '\\0' a"], false),
    );
    let s = c.start_monitor().unwrap();
    c.start();
    assert_eq!(c.wait_exit(s.monitor_pid)["exit_code"], 0);
    let log = c.log();
    let tags: Vec<&str> = log.iter().map(|e| e.tag.as_str()).collect();
    assert_eq!(
        tags,
        ["P", "P", "F"],
        "{:?}",
        log.iter().map(|e| e.content.len()).collect::<Vec<_>>()
    );
    assert!(log.iter().all(|e| e.content.len() <= 16 * 1024));
    let all: String = log.iter().map(|e| e.content.as_str()).collect();
    assert_eq!(all, "a".repeat(40960));
}

#[test]
fn sigkill_is_recorded_as_signal_9() {
    let c = Monitored::new("kill", Bundle::new(&["sleep", "1000"], false));
    let s = c.start_monitor().unwrap();
    c.start();
    c.kill("KILL");
    let exit = c.wait_exit(s.monitor_pid);
    assert_eq!(exit["exit_code"], 137, "{exit}");
    assert_eq!(exit["signal"], 9, "{exit}");
    assert_eq!(exit["oom_killed"], false, "{exit}");
}

#[test]
fn create_failure_is_reported_as_an_error_verdict() {
    let c = Monitored::new("fail", Bundle::new(&["/does-not-exist"], false));
    let (out, v) = c.start_monitor().unwrap_err();
    assert_eq!(out.status.code(), Some(1));
    let err = v["error"].as_str().unwrap();
    assert!(err.contains(&c.id), "{err}");
    assert!(err.contains("does-not-exist"), "{err}");
    assert!(!c.exit_file().exists());
}

#[test]
fn reopens_the_log_on_sigusr1_and_on_the_ctl_fifo() {
    let script = "echo one; while [ ! -e /go1 ]; do sleep 0.02; done; echo two; \
                  while [ ! -e /go2 ]; do sleep 0.02; done; echo three";
    let c = Monitored::new("reopen", Bundle::new(&["sh", "-c", script], false));
    let s = c.start_monitor().unwrap();
    c.start();
    c.wait_log("one", |l| l.len() == 1);
    // kubelet-style rotation: rename, then ask for a reopen.
    let rotated1 = c.log_path().with_extension("log.1");
    std::fs::rename(c.log_path(), &rotated1).unwrap();
    let st = Command::new("kill")
        .args(["-USR1", &s.monitor_pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    wait_for("the reopened log", || c.log_path().exists().then_some(()));
    std::fs::write(c.bundle.rootfs().join("go1"), "").unwrap();
    c.wait_log("two", |l| l.len() == 1);

    let rotated2 = c.log_path().with_extension("log.2");
    std::fs::rename(c.log_path(), &rotated2).unwrap();
    std::fs::write(c.socket_dir().join(CTL_FIFO), CTL_REOPEN_LOG).unwrap();
    wait_for("the reopened log", || c.log_path().exists().then_some(()));
    std::fs::write(c.bundle.rootfs().join("go2"), "").unwrap();
    assert_eq!(c.wait_exit(s.monitor_pid)["exit_code"], 0);

    assert_eq!(lines_of(&parse_log(&rotated1), "stdout"), ["one"]);
    assert_eq!(lines_of(&parse_log(&rotated2), "stdout"), ["two"]);
    assert_eq!(lines_of(&c.log(), "stdout"), ["three"]);
}

#[test]
fn keeps_logging_after_its_parent_is_killed() {
    let script = "echo before; while [ ! -e /go ]; do sleep 0.02; done; echo after";
    let c = Monitored::new("orphan", Bundle::new(&["sh", "-c", script], false));
    // A parent (standing in for cri-server) that starts the monitor with a sync fd, then lives on.
    let mut cmd = c.command();
    let monitor_cmd: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let _ = &mut cmd;
    let mut parent = Command::new("sh")
        .arg("-c")
        .arg(r#""$@" --sync-fd 3 3>&1 >/dev/null; echo "status $?"; exec sleep 1000"#)
        .arg("sh")
        .args(&monitor_cmd)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(parent.stdout.take().unwrap());
    let mut verdict = String::new();
    out.read_line(&mut verdict).unwrap();
    let v: serde_json::Value = serde_json::from_str(verdict.trim()).unwrap();
    let monitor_pid = v["monitor_pid"].as_i64().unwrap() as i32;
    let mut status = String::new();
    out.read_line(&mut status).unwrap();
    assert_eq!(status.trim(), "status 0");

    c.start();
    c.wait_log("before", |l| !l.is_empty());
    parent.kill().unwrap();
    parent.wait().unwrap();
    drop(out);
    assert!(alive(monitor_pid), "monitor died with its parent");
    std::fs::write(c.bundle.rootfs().join("go"), "").unwrap();
    assert_eq!(c.wait_exit(monitor_pid)["exit_code"], 0);
    assert_eq!(lines_of(&c.log(), "stdout"), ["before", "after"]);
}

#[test]
fn sigterm_to_the_monitor_does_not_stop_the_container() {
    // As PID 1 of its namespace the init only dies of signals it handles.
    let script = "trap 'exit 7' TERM; while true; do sleep 0.05; done";
    let c = Monitored::new("term", Bundle::new(&["sh", "-c", script], false));
    let s = c.start_monitor().unwrap();
    c.start();
    let st = Command::new("kill")
        .args(["-TERM", &s.monitor_pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // Give a wrongly-behaving monitor the chance to die or take the container with it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(alive(s.monitor_pid), "monitor exited on SIGTERM");
    assert!(alive(s.pid), "container died on the monitor's SIGTERM");
    c.kill("TERM");
    let exit = c.wait_exit(s.monitor_pid);
    assert_eq!(exit["exit_code"], 7, "{exit}");
}

#[test]
fn tty_output_arrives_through_the_pty() {
    let mut c = Monitored::new(
        "tty",
        Bundle::new(&["sh", "-c", "tty; echo hello-tty; exit 4"], true),
    );
    c.tty = true;
    let s = c.start_monitor().unwrap();
    c.start();
    assert_eq!(c.wait_exit(s.monitor_pid)["exit_code"], 4);
    let out: Vec<String> = lines_of(&c.log(), "stdout")
        .into_iter()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    assert!(out[0].starts_with("/dev/pts/"), "not a pty: {out:?}");
    assert_eq!(out[1], "hello-tty");
    assert!(lines_of(&c.log(), "stderr").is_empty());
    assert!(!c.socket_dir().join("console.sock").exists());
}

#[test]
fn reports_monitor_rss_while_a_container_runs() {
    let c = Monitored::new("rss", Bundle::new(&["sleep", "1000"], false));
    let s = c.start_monitor().unwrap();
    c.start();
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.monitor_pid)).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .to_string();
    println!("cri-monitor VmRSS while a container runs (debug build): {rss}");
    let kb: u64 = rss.trim_end_matches("kB").trim().parse().unwrap();
    assert!(kb > 0);
    c.kill("KILL");
    assert_eq!(c.wait_exit(s.monitor_pid)["signal"], 9);
}

#[test]
fn oom_kill_is_detected_through_the_memory_cgroup() {
    let script = "a=aaaaaaaaaaaaaaaa; while true; do a=$a$a; done";
    let bundle = Bundle::with(&["sh", "-c", script], false, |cfg| {
        cfg["linux"]["resources"]["memory"] = serde_json::json!({ "limit": 32 * 1024 * 1024 });
    });
    let c = Monitored::new("oom", bundle);
    let s = c.start_monitor().unwrap();
    c.start();
    let exit = c.wait_exit(s.monitor_pid);
    assert_eq!(exit["oom_killed"], true, "{exit}");
    assert_eq!(exit["signal"], 9, "{exit}");
}

#[test]
fn does_not_keep_descriptors_leaked_by_the_caller() {
    let c = Monitored::new("fds", Bundle::new(&["sleep", "1000"], false));
    let marker = c.state.path().join("leaked-marker");
    std::fs::write(&marker, "").unwrap();
    let cmd = c.command();
    let monitor_cmd: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    // The shell leaks fd 7 (the marker) and fd 8 (its stdout pipe) into the monitor. Only the
    // verdict line is read (not up to EOF), so a monitor that keeps fd 8 fails below, not hangs.
    let mut fg = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 7<"$0" 8>&1; exec "$@""#)
        .arg(&marker)
        .args(&monitor_cmd)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut verdict = String::new();
    BufReader::new(fg.stdout.take().unwrap())
        .read_line(&mut verdict)
        .unwrap();
    assert!(fg.wait().unwrap().success());
    let v: serde_json::Value = serde_json::from_str(verdict.trim()).unwrap();
    let monitor_pid = v["monitor_pid"].as_i64().unwrap();
    for fd in std::fs::read_dir(format!("/proc/{monitor_pid}/fd")).unwrap() {
        let target = std::fs::read_link(fd.unwrap().path()).unwrap_or_default();
        assert_ne!(target, marker, "the monitor kept a descriptor it inherited");
    }
    c.start();
    c.kill("KILL");
    c.wait_exit(monitor_pid as i32);
}
