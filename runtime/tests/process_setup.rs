//! Real process setup, as root: each test re-runs itself in a child process (see
//! `rootfs_support`), applies `process::prepare`, `set_identity_and_caps`, no_new_privs and
//! seccomp like the init process does, then checks with busybox what the container's process
//! would see (/proc/self/status, /proc/self/limits, id, errno messages).

mod rootfs_support;

use kina_runtime::process;
use oci_spec::runtime::Process;
use rootfs_support::{Logs, busybox_bundle, child_bundle, run_in_child, sh, sh_ok, spec};
use serde_json::json;

fn status_field(name: &str) -> String {
    let status = sh_ok("cat /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} missing in {status}"))
        .trim()
        .to_string()
}

fn host_bounding() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let v = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap();
    u64::from_str_radix(v.trim(), 16).unwrap()
}

const CAP_SYS_RESOURCE: u64 = 1 << 24;

fn process_of(v: serde_json::Value) -> (oci_spec::runtime::Spec, Process) {
    let s = spec(v);
    let p = s.process().clone().expect("process");
    (s, p)
}

#[test]
fn capabilities_are_intersected_with_host_bounding() {
    if child_bundle().is_none() {
        run_in_child(
            "capabilities_are_intersected_with_host_bounding",
            &[],
            &busybox_bundle(),
        );
        return;
    }
    let logs = Logs::install();
    let host = host_bounding();
    let caps = [
        "CAP_CHOWN",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_ADMIN",
        "CAP_SYS_RESOURCE",
    ];
    let (s, p) = process_of(json!({"process": {"cwd": "/", "user": {"uid": 0, "gid": 0},
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": [], "ambient": []}}}));
    process::prepare(&p, &s).unwrap();
    process::set_identity_and_caps(&p).unwrap();
    let want = (1u64 | 1 << 10 | 1 << 21 | CAP_SYS_RESOURCE) & host;
    let hex = format!("{want:016x}");
    assert_eq!(status_field("CapBnd"), hex);
    assert_eq!(status_field("CapPrm"), hex);
    assert_eq!(status_field("CapEff"), hex);
    assert_eq!(status_field("CapInh"), "0000000000000000");
    if host & CAP_SYS_RESOURCE == 0 {
        let text = logs.text();
        assert!(text.contains("WARN"), "{text}");
        assert!(
            text.contains("CAP_SYS_RESOURCE") && text.contains("not in the host's bounding set"),
            "{text}"
        );
    }
}

#[test]
fn non_root_user_gets_groups_umask_and_ambient_caps() {
    if child_bundle().is_none() {
        run_in_child(
            "non_root_user_gets_groups_umask_and_ambient_caps",
            &[],
            &busybox_bundle(),
        );
        return;
    }
    let nbs = ["CAP_NET_BIND_SERVICE"];
    let (s, p) = process_of(json!({"process": {"cwd": "/",
        "user": {"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 0o027},
        "capabilities": {"bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"], "effective": nbs,
            "permitted": nbs, "inheritable": nbs, "ambient": nbs}}}));
    process::prepare(&p, &s).unwrap();
    process::set_identity_and_caps(&p).unwrap();
    assert_eq!(status_field("Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field("Gid"), "1001\t1001\t1001\t1001");
    assert_eq!(status_field("Groups"), "10 20");
    assert_eq!(status_field("Umask"), "0027");
    assert_eq!(status_field("CapAmb"), format!("{:016x}", 1u64 << 10));
    assert_eq!(status_field("CapEff"), format!("{:016x}", 1u64 << 10));
    assert_eq!(
        status_field("CapBnd"),
        format!("{:016x}", 1u64 << 10 | 1 << 5)
    );
    // A file created now gets the umask: 0666 & ~0027 = 0640.
    let mode = sh_ok("f=/tmp/kina-umask-$$; touch $f && stat -c %a $f; rm -f $f");
    assert_eq!(mode.trim(), "640");
}

#[test]
fn rlimits_oom_personality_ioprio_and_scheduler() {
    if child_bundle().is_none() {
        run_in_child(
            "rlimits_oom_personality_ioprio_and_scheduler",
            &[],
            &busybox_bundle(),
        );
        return;
    }
    let logs = Logs::install();
    let host_can_raise = host_bounding() & CAP_SYS_RESOURCE != 0;
    let (_, cur_memlock) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK).unwrap();
    let (s, p) = process_of(json!({
        "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "oomScoreAdj": -998,
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
                {"type": "RLIMIT_MEMLOCK", "soft": u64::MAX, "hard": u64::MAX}
            ],
            "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0},
            "scheduler": {"policy": "SCHED_BATCH", "nice": 5},
            "apparmorProfile": "kina-test-profile", "selinuxLabel": "system_u:system_r:container_t:s0"},
        "linux": {"personality": {"domain": "LINUX32"}, "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"}}
    }));
    let before: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    process::prepare(&p, &s).unwrap();
    let limits = sh_ok("cat /proc/self/limits");
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        nofile.split_whitespace().collect::<Vec<_>>()[3..5],
        ["1000", "2000"],
        "{nofile}"
    );
    let memlock = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .unwrap();
    let fields: Vec<&str> = memlock.split_whitespace().collect();
    let oom = sh_ok("cat /proc/self/oom_score_adj");
    let text = logs.text();
    if host_can_raise {
        assert_eq!(fields[3..5], ["unlimited", "unlimited"], "{memlock}");
        assert_eq!(oom.trim(), "-998");
    } else {
        let cur = cur_memlock.to_string();
        assert_eq!(fields[3..5], [cur.as_str(), cur.as_str()], "{memlock}");
        assert!(
            text.contains("RlimitMemlock") && text.contains("clamped"),
            "{text}"
        );
        // Negative oom_score_adj refused by the kernel: kept, with a warning, no failure.
        assert_eq!(oom.trim(), before.to_string());
        assert!(text.contains("oom_score_adj -998"), "{text}");
    }
    assert_eq!(sh_ok("uname -m").trim(), "i686");
    // Neither AppArmor nor SELinux here: the labels are ignored with a warning.
    if !process::lsm::apparmor_enabled() {
        assert!(text.contains("apparmorProfile ignored"), "{text}");
    }
    if !process::lsm::selinux_enabled() {
        assert!(text.contains("selinuxLabel ignored"), "{text}");
    }
    assert_eq!(sh_ok("ionice -p $$").trim(), "idle");
    // NUMA policy: the process's anonymous memory is bound to node 0.
    let numa = sh_ok("cat /proc/self/numa_maps");
    assert!(numa.lines().any(|l| l.contains(" bind:0 ")), "{numa}");
    // /proc/self/stat: field 19 is the nice value, field 41 the policy (3 = SCHED_BATCH).
    let stat = sh_ok("cat /proc/self/stat");
    let after_comm: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    assert_eq!(
        (after_comm[19 - 3], after_comm[41 - 3]),
        ("5", "3"),
        "{stat}"
    );

    // A positive score is applied exactly.
    let (s2, p2) = process_of(
        json!({"process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "oomScoreAdj": 500}}),
    );
    process::prepare(&p2, &s2).unwrap();
    assert_eq!(sh_ok("cat /proc/self/oom_score_adj").trim(), "500");
    // Out-of-range values are a clear error.
    let (s3, p3) = process_of(
        json!({"process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "oomScoreAdj": 1001}}),
    );
    let e = process::prepare(&p3, &s3).unwrap_err().to_string();
    assert!(e.contains("oomScoreAdj"), "{e}");
}

#[test]
fn seccomp_errnos_and_argument_filters() {
    let Some(bundle) = child_bundle() else {
        let b = busybox_bundle();
        std::fs::create_dir_all(b.path().join("work/dir")).unwrap();
        std::fs::write(b.path().join("work/file"), "x").unwrap();
        run_in_child("seccomp_errnos_and_argument_filters", &[], &b);
        return;
    };
    let logs = Logs::install();
    let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["unlinkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "args": [{"index": 2, "value": 512, "valueTwo": 512, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122,
             "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}]},
            {"names": ["fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 122,
             "args": [{"index": 2, "value": 511, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kina_no_such_syscall"], "action": "SCMP_ACT_KILL"}
        ]
    }))
    .unwrap();
    // Validated up front, like `create` does.
    let compiled = process::seccomp::compile(&profile).unwrap();
    assert_eq!(compiled.skipped, ["kina_no_such_syscall"]);
    process::set_no_new_privs().unwrap();
    process::seccomp::load(&profile).unwrap();
    assert_eq!(status_field("NoNewPrivs"), "1");
    assert_eq!(status_field("Seccomp"), "2");
    let w = bundle.join("work");
    let w = w.display();
    // Default errnoRet is EPERM.
    let (code, out) = sh(&format!("mkdir {w}/new"));
    assert_ne!(code, 0);
    assert!(out.contains("Operation not permitted"), "{out}");
    // errnoRet 38 (ENOSYS) on rmdir, whichever syscall busybox uses for it.
    let (code, out) = sh(&format!("rmdir {w}/dir"));
    assert_ne!(code, 0);
    assert!(out.contains("Function not implemented"), "{out}");
    // The unlinkat rule only matches AT_REMOVEDIR: removing a file still works.
    sh_ok(&format!("touch {w}/f && rm {w}/f && test ! -e {w}/f"));
    // Argument filter: only mode 0777 is refused, with the custom errno 122 (EDQUOT).
    sh_ok(&format!("chmod 755 {w}/file"));
    let (code, out) = sh(&format!("chmod 777 {w}/file"));
    assert_ne!(code, 0);
    assert!(out.contains("quota"), "{out}");
    assert!(
        logs.text().contains("kina_no_such_syscall"),
        "{}",
        logs.text()
    );
}

/// Receives the listener fd and process state the runtime sends, then answers one
/// notification with ENOSPC. Returns (state, syscall name).
fn seccomp_agent(listener: std::os::unix::net::UnixListener) -> (serde_json::Value, String) {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::AsRawFd;
    let (stream, _) = listener.accept().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .unwrap();
    let n = msg.bytes;
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(f) => f.first().copied(),
            _ => None,
        })
        .expect("listener fd attached");
    let state: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    let req = libseccomp::ScmpNotifReq::receive(fd).unwrap();
    let name = req.data.syscall.get_name().unwrap_or_default();
    libseccomp::ScmpNotifResp::new_error(
        req.id,
        -libc::ENOSPC,
        libseccomp::ScmpNotifRespFlags::empty(),
    )
    .respond(fd)
    .unwrap();
    (state, name)
}

#[test]
fn seccomp_notify_reaches_the_agent() {
    let Some(bundle) = child_bundle() else {
        run_in_child("seccomp_notify_reaches_the_agent", &[], &busybox_bundle());
        return;
    };
    let sock = bundle.join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // The agent thread exists before the filter is loaded, so it is not filtered itself.
    let agent = std::thread::spawn(move || seccomp_agent(listener));
    let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "kina-test",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    }))
    .unwrap();
    // Without an agent, plain `load` refuses clearly instead of hanging the container.
    assert!(
        process::seccomp::load(&profile)
            .unwrap_err()
            .to_string()
            .contains("SCMP_ACT_NOTIFY")
    );
    process::set_no_new_privs().unwrap();
    let fd = process::seccomp::load_with_listener(&profile)
        .unwrap()
        .expect("listener fd");
    let state =
        json!({"ociVersion": "1.2.0", "id": "c1", "status": "creating", "pid": 1, "bundle": "/b"});
    process::seccomp_agent::send_to_agent(
        &sock,
        std::os::fd::AsFd::as_fd(&fd),
        std::process::id() as i32,
        profile.listener_metadata().as_deref(),
        &state,
    )
    .unwrap();
    let (code, out) = sh("mkdir /tmp/kina-notify-never-created");
    assert_ne!(code, 0);
    assert!(out.contains("No space left on device"), "{out}");
    let (sent, name) = agent.join().unwrap();
    assert!(name == "mkdir" || name == "mkdirat", "{name}");
    assert_eq!(sent["fds"], json!(["seccompFd"]));
    assert_eq!(sent["metadata"], "kina-test");
    assert_eq!(sent["state"]["id"], "c1");
    assert!(!std::path::Path::new("/tmp/kina-notify-never-created").exists());
}

#[test]
fn seccomp_tsync_filters_every_thread() {
    let Some(bundle) = child_bundle() else {
        run_in_child("seccomp_tsync_filters_every_thread", &[], &busybox_bundle());
        return;
    };
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let dir = bundle.join("made-by-other-thread");
    let other = std::thread::spawn(move || {
        go_rx.recv().unwrap();
        std::fs::create_dir(&dir).map_err(|e| e.raw_os_error())
    });
    let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    }))
    .unwrap();
    process::set_no_new_privs().unwrap();
    process::seccomp::load(&profile).unwrap();
    go_tx.send(()).unwrap();
    // The thread existed before the filter was loaded, yet it is filtered too.
    assert_eq!(other.join().unwrap(), Err(Some(libc::ENOSYS)));
}
