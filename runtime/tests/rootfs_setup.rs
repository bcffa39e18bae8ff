//! Real rootfs setup, as root: each test builds a busybox bundle, then re-runs itself in a
//! child process with fresh namespaces (see `rootfs_support`), where it calls
//! `rootfs::prepare`, `rootfs::pivot` and `rootfs::finalize` like the init process does and
//! checks from inside what a container user would notice.

mod rootfs_support;

use std::path::Path;

use kina_runtime::rootfs;
use rootfs_support::{
    Logs, busybox_bundle, child_bundle, mount_opts, mountinfo_line, run_in_child, sh, sh_ok, spec,
};
use serde_json::json;

fn full_spec(bundle: &Path) -> oci_spec::runtime::Spec {
    spec(json!({
        "process": {"cwd": "/work/dir", "user": {"uid": 0, "gid": 0}, "args": ["sh"]},
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=1m"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "noexec", "size=4m"]},
            {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro", "nosuid"]},
            {"destination": "/etc/hostfile", "type": "bind", "source": bundle.join("hostfile"), "options": ["bind", "ro"]},
            {"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]},
            {"destination": "/unbind", "type": "tmpfs", "source": "tmpfs", "options": ["runbindable"]},
            {"destination": "/var/run/link", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
        ],
        "linux": {
            "namespaces": [{"type": "mount"}, {"type": "ipc"}, {"type": "uts"}],
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o660, "uid": 0, "gid": 0}],
            "sysctl": {"kernel.shmmax": "123456789"},
            "maskedPaths": ["/proc/kcore", "/proc/timer_list", "/proc/acpi", "/proc/does-not-exist"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    }))
}

#[test]
fn full_rootfs_as_a_user_sees_it() {
    let Some(bundle) = child_bundle() else {
        let b = busybox_bundle();
        std::fs::create_dir_all(b.path().join("data")).unwrap();
        std::fs::write(b.path().join("data/hello"), "from the host\n").unwrap();
        std::fs::write(b.path().join("hostfile"), "host file\n").unwrap();
        std::fs::create_dir_all(b.rootfs().join("var")).unwrap();
        std::os::unix::fs::symlink("/run", b.rootfs().join("var/run")).unwrap();
        run_in_child("full_rootfs_as_a_user_sees_it", &["--ipc", "--uts"], &b);
        // The host's view is untouched: the symlinked destination did not escape.
        assert!(!Path::new("/run/link").exists());
        return;
    };
    let spec = full_spec(&bundle);
    rootfs::sysctl::validate(&spec).unwrap();
    rootfs::prepare(&spec, &bundle, false).unwrap();
    let root = rootfs::rootfs_path(&spec, &bundle).unwrap();
    rootfs::pivot(&root, false).unwrap();
    rootfs::finalize(&spec).unwrap();

    // Bind mounts: read-only (remounted), contents from the host, relative source = bundle.
    let data = mountinfo_line("/data").expect("/data mounted");
    assert!(mount_opts(&data).contains(&"ro".to_string()), "{data}");
    assert!(mount_opts(&data).contains(&"nosuid".to_string()), "{data}");
    assert_eq!(sh_ok("cat /data/hello"), "from the host\n");
    let (code, out) = sh("touch /data/new");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Read-only"), "{out}");
    assert_eq!(sh_ok("cat /etc/hostfile"), "host file\n");
    assert_ne!(sh("echo x >> /etc/hostfile").0, 0);

    // Root is read-only, tmpfs mounts are writable with their size and flags.
    let (code, out) = sh("touch /newfile");
    assert_ne!(code, 0);
    assert!(out.contains("Read-only"), "{out}");
    sh_ok("touch /tmp/ok");
    assert_eq!(sh_ok("stat -f -c '%b %S' /tmp").trim(), "1024 4096");
    assert_eq!(sh_ok("stat -f -c '%b %S' /dev/shm").trim(), "256 4096");
    sh_ok("cp /bin/busybox /tmp/bb");
    let (code, out) = sh("/tmp/bb true");
    assert_ne!(code, 0, "noexec /tmp must refuse exec: {out}");
    let tmp = mountinfo_line("/tmp").unwrap();
    assert!(mount_opts(&tmp).contains(&"noexec".to_string()), "{tmp}");

    // Propagation options.
    assert!(mountinfo_line("/shared").unwrap().contains(" shared:"));
    assert!(mountinfo_line("/unbind").unwrap().contains(" unbindable"));
    // A destination through an absolute symlink lands inside the rootfs.
    assert!(mountinfo_line("/run/link").is_some());

    // /dev: default nodes, spec devices, links.
    assert_eq!(
        sh_ok("stat -c '%t:%T %a %F' /dev/null").trim(),
        "1:3 666 character special file"
    );
    assert_eq!(sh_ok("stat -c '%t:%T %a' /dev/urandom").trim(), "1:9 666");
    assert_eq!(sh_ok("stat -c '%t:%T %a' /dev/fuse").trim(), "a:e5 660");
    assert_eq!(sh_ok("readlink /dev/ptmx").trim(), "pts/ptmx");
    assert_eq!(sh_ok("readlink /dev/fd").trim(), "/proc/self/fd");
    assert_eq!(sh_ok("readlink /dev/stderr").trim(), "/proc/self/fd/2");
    sh_ok("test -c /dev/pts/ptmx && test -d /dev/shm && echo hi > /dev/null");
    assert!(
        mountinfo_line("/dev/mqueue")
            .unwrap()
            .contains(" - mqueue ")
    );

    // sysfs and the v1 cgroup layout, read-only.
    let sys = mountinfo_line("/sys").unwrap();
    assert!(mount_opts(&sys).contains(&"ro".to_string()), "{sys}");
    let cg = mountinfo_line("/sys/fs/cgroup").unwrap();
    if !rootfs::cgroup::host_is_unified() {
        assert!(cg.contains(" - tmpfs "), "{cg}");
        assert!(mount_opts(&cg).contains(&"ro".to_string()), "{cg}");
        let mem = mountinfo_line("/sys/fs/cgroup/memory").expect("memory hierarchy");
        assert!(mem.contains(" - cgroup "), "{mem}");
        assert!(mount_opts(&mem).contains(&"ro".to_string()), "{mem}");
        sh_ok("test -d /sys/fs/cgroup/cpu && test -d /sys/fs/cgroup/systemd");
    } else {
        assert!(cg.contains(" - cgroup2 "), "{cg}");
    }

    // maskedPaths and readonlyPaths; the sysctl was set before /proc/sys became read-only.
    assert_eq!(sh_ok("wc -c < /proc/timer_list").trim(), "0");
    assert_eq!(sh_ok("cat /proc/timer_list"), "");
    assert_eq!(sh_ok("ls -A /proc/acpi | wc -l").trim(), "0");
    assert_ne!(sh("touch /proc/acpi/x").0, 0);
    assert_eq!(sh_ok("cat /proc/sys/kernel/shmmax").trim(), "123456789");
    let (code, out) = sh("echo 5 > /proc/sys/kernel/shmmax");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("Read-only"), "{out}");

    // The working directory exists.
    sh_ok("test -d /work/dir");
}

#[test]
fn symlink_escape_destination_is_rejected() {
    let Some(bundle) = child_bundle() else {
        let b = busybox_bundle();
        std::os::unix::fs::symlink("../../../../../../../../../tmp", b.rootfs().join("evil"))
            .unwrap();
        run_in_child("symlink_escape_destination_is_rejected", &[], &b);
        assert!(
            !Path::new("/tmp/kina-escaped").exists(),
            "a mount target was created on the host"
        );
        return;
    };
    let spec = spec(json!({
        "mounts": [{"destination": "/evil/kina-escaped", "type": "tmpfs", "source": "tmpfs"}]
    }));
    let err = rootfs::prepare(&spec, &bundle, false).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err.root_cause(), rootfs::RootfsError::Escape { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("mounts[0]") && msg.contains("/evil/kina-escaped"),
        "{msg}"
    );
    assert!(msg.contains("escapes the container rootfs"), "{msg}");
    assert!(!Path::new("/tmp/kina-escaped").exists());

    // Other bad input is reported with the mount it belongs to.
    let missing = bundle.join("no-such-dir");
    let spec = spec_with_mounts(json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/data", "type": "bind", "source": missing, "options": ["rbind"]}
    ]));
    let msg = rootfs::prepare(&spec, &bundle, false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("mounts[1] (/data)") && msg.contains("no-such-dir"),
        "{msg}"
    );
    let spec = spec_with_mounts(json!([
        {"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["size=notanumber"]}
    ]));
    let msg = rootfs::prepare(&spec, &bundle, false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("mounts[0] (/x)") && msg.contains("size=notanumber"),
        "{msg}"
    );

    // A sysctl that is not namespaced would change the host: refused, nothing written. (The
    // value is the current one, so even a regression here could not alter the host.)
    let current = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap();
    let spec = rootfs_support::spec(json!({"linux": {
        "namespaces": [{"type": "mount"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}],
        "sysctl": {"vm.overcommit_memory": current.trim()}
    }}));
    let msg = rootfs::finalize(&spec).unwrap_err().to_string();
    assert!(
        msg.contains("vm.overcommit_memory") && msg.contains("not namespaced"),
        "{msg}"
    );
}

fn spec_with_mounts(mounts: serde_json::Value) -> oci_spec::runtime::Spec {
    spec(json!({ "mounts": mounts }))
}

#[test]
fn no_pivot_moves_and_chroots() {
    let Some(bundle) = child_bundle() else {
        let b = busybox_bundle();
        run_in_child("no_pivot_moves_and_chroots", &[], &b);
        return;
    };
    let spec = spec(json!({
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]
    }));
    rootfs::prepare(&spec, &bundle, false).unwrap();
    let root = rootfs::rootfs_path(&spec, &bundle).unwrap();
    rootfs::pivot(&root, true).unwrap();
    rootfs::finalize(&spec).unwrap();
    sh_ok("test -x /bin/busybox && test -d /proc/self");
    // The host tree is gone from view.
    assert!(!Path::new("/work").exists());
    assert!(!Path::new(&root).exists());
}

#[test]
fn tmpcopyup_recursive_readonly_and_cgroup_namespace() {
    let Some(bundle) = child_bundle() else {
        let b = busybox_bundle();
        std::fs::create_dir_all(b.path().join("vol/sub")).unwrap();
        std::fs::create_dir_all(b.rootfs().join("etc/conf.d")).unwrap();
        std::fs::write(b.rootfs().join("etc/conf.d/a.conf"), "a=1\n").unwrap();
        std::os::unix::fs::symlink("conf.d/a.conf", b.rootfs().join("etc/a.link")).unwrap();
        run_in_child(
            "tmpcopyup_recursive_readonly_and_cgroup_namespace",
            &["--cgroup"],
            &b,
        );
        return;
    };
    let logs = Logs::install();
    // A submount inside the bind source (only in this child's mount namespace).
    let sub = bundle.join("vol/sub");
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let spec = spec(json!({
        "root": {"path": "rootfs", "readonly": true},
        "linux": {"rootfsPropagation": "rshared"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=755"]},
            {"destination": "/vol", "type": "bind", "source": "vol", "options": ["rbind", "rro"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev"]}
        ]
    }));
    rootfs::prepare(&spec, &bundle, true).unwrap();
    let root = rootfs::rootfs_path(&spec, &bundle).unwrap();
    rootfs::pivot(&root, false).unwrap();
    rootfs::finalize(&spec).unwrap();

    // rootfsPropagation "rshared": the container's root is a shared mount (its own peer group).
    let root_line = mountinfo_line("/").unwrap();
    assert!(root_line.contains(" shared:"), "{root_line}");
    // tmpcopyup: the image's /etc content is there, on a writable tmpfs.
    assert_eq!(sh_ok("cat /etc/conf.d/a.conf"), "a=1\n");
    assert_eq!(sh_ok("readlink /etc/a.link").trim(), "conf.d/a.conf");
    sh_ok("echo b=2 > /etc/conf.d/b.conf");
    assert!(mountinfo_line("/etc").unwrap().contains(" - tmpfs "));
    // rro: the submount of the bind source is read-only as well.
    let (code, out) = sh("touch /vol/x; touch /vol/sub/x");
    assert_ne!(code, 0);
    assert_eq!(out.matches("Read-only").count(), 2, "{out}");
    // Own cgroup namespace: fresh hierarchies rooted at the namespace root.
    if !rootfs::cgroup::host_is_unified() {
        let cpu = mountinfo_line("/sys/fs/cgroup/cpu").expect("cpu hierarchy");
        assert!(cpu.contains(" - cgroup "), "{cpu}");
        assert_eq!(cpu.split(' ').nth(3), Some("/"), "{cpu}");
        sh_ok("test -f /sys/fs/cgroup/memory/memory.limit_in_bytes");
    }
    assert!(!logs.text().contains("ERROR"));
}

#[test]
fn user_namespace_falls_back_to_bind_mounts() {
    let Some(bundle) = child_bundle() else {
        let b = busybox_bundle();
        std::fs::create_dir_all(b.path().join("data")).unwrap();
        std::fs::write(b.path().join("data/hello"), "hi\n").unwrap();
        // Root of a user namespace: mknod is refused, sysfs (no network namespace of its own)
        // cannot be mounted, and the host mounts' flags are locked.
        run_in_child(
            "user_namespace_falls_back_to_bind_mounts",
            &["--user", "--map-root-user", "--pid", "--fork", "--ipc"],
            &b,
        );
        return;
    };
    let logs = Logs::install();
    let spec = spec(json!({
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro"]}
        ],
        "linux": {
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}],
            "maskedPaths": ["/proc/timer_list"],
            "readonlyPaths": ["/proc/sys"]
        }
    }));
    rootfs::prepare(&spec, &bundle, false).unwrap();
    let root = rootfs::rootfs_path(&spec, &bundle).unwrap();
    rootfs::pivot(&root, false).unwrap();
    rootfs::finalize(&spec).unwrap();

    // Devices are the host's nodes, bind-mounted.
    assert_eq!(
        sh_ok("stat -c '%t:%T %F' /dev/null").trim(),
        "1:3 character special file"
    );
    assert_eq!(sh_ok("stat -c '%t:%T' /dev/fuse").trim(), "a:e5");
    assert!(
        mountinfo_line("/dev/null").is_some(),
        "/dev/null must be a bind mount"
    );
    sh_ok("echo discard > /dev/null");
    // sysfs fell back to a read-only rbind of the host's /sys.
    sh_ok("test -d /sys/kernel");
    assert_ne!(sh("touch /sys/kina").0, 0);
    // The read-only bind was remounted keeping the flags locked by the user namespace.
    assert_eq!(sh_ok("cat /data/hello"), "hi\n");
    assert_ne!(sh("touch /data/x").0, 0);
    assert_ne!(sh("touch /x").0, 0);
    assert_eq!(sh_ok("cat /proc/timer_list"), "");
    assert!(
        mountinfo_line("/dev/mqueue")
            .unwrap()
            .contains(" - mqueue ")
    );
    assert!(
        logs.text().contains("mknod not permitted"),
        "{}",
        logs.text()
    );
}

#[test]
fn idmapped_bind_mount_shifts_ownership() {
    let Some(bundle) = child_bundle() else {
        let b = busybox_bundle();
        let vol = b.path().join("vol");
        std::fs::create_dir_all(vol.join("sub")).unwrap();
        std::fs::write(vol.join("owned-by-0"), "x").unwrap();
        std::os::unix::fs::chown(vol.join("sub"), Some(5), Some(6)).unwrap();
        run_in_child("idmapped_bind_mount_shifts_ownership", &[], &b);
        return;
    };
    let maps = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let spec = spec(json!({
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/vol", "type": "bind", "source": "vol", "options": ["rbind", "ridmap"],
             "uidMappings": maps, "gidMappings": maps},
            {"destination": "/plain", "type": "bind", "source": "vol", "options": ["rbind"]}
        ]
    }));
    rootfs::prepare(&spec, &bundle, false).unwrap();
    let root = rootfs::rootfs_path(&spec, &bundle).unwrap();
    rootfs::pivot(&root, false).unwrap();
    rootfs::finalize(&spec).unwrap();
    // On disk the files belong to 0 and 5:6; through the idmapped mount they appear shifted
    // by 100000, while the plain bind of the same directory is unchanged.
    assert_eq!(
        sh_ok("stat -c '%u:%g' /vol/owned-by-0").trim(),
        "100000:100000"
    );
    assert_eq!(sh_ok("stat -c '%u:%g' /vol/sub").trim(), "100005:100006");
    assert_eq!(sh_ok("stat -c '%u:%g' /plain/owned-by-0").trim(), "0:0");
    assert_eq!(sh_ok("cat /vol/owned-by-0"), "x");
}
