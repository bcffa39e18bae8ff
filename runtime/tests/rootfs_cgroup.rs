//! Real cgroup mounts inside the container, as root: the v1 layout with co-mounted
//! controllers, and the v2 layout (fresh cgroup2, or a bind of the container's own cgroup when
//! the kernel refuses). Each test re-runs itself in fresh namespaces (see `rootfs_support`).

mod rootfs_support;

use std::path::Path;

use kina_runtime::rootfs;
use rootfs_support::{
    Logs, busybox_bundle, child_bundle, mount_opts, mountinfo_line, run_in_child, sh, sh_ok, spec,
};
use serde_json::json;

#[test]
fn comounted_cgroup_controllers_get_symlinks() {
    let Some(bundle) = child_bundle() else {
        let b = busybox_bundle();
        std::fs::create_dir_all(b.path().join("fake-cpu-cpuacct/kina")).unwrap();
        std::fs::write(b.path().join("fake-cpu-cpuacct/kina/cpu.shares"), "1024\n").unwrap();
        run_in_child("comounted_cgroup_controllers_get_symlinks", &[], &b);
        return;
    };
    // A host with cpu and cpuacct co-mounted at /sys/fs/cgroup/cpu,cpuacct, sharing the host's
    // cgroup namespace (bind of the container's own cgroup directory).
    let hier = [rootfs::cgroup::Hierarchy {
        name: "cpu,cpuacct".into(),
        fs_type: "cgroup".into(),
        data: "cpu,cpuacct".into(),
        bind_source: bundle.join("fake-cpu-cpuacct/kina"),
    }];
    let root = bundle.join("rootfs");
    let ctx = rootfs::mounts::MountContext {
        rootfs: &root,
        bundle: &bundle,
        cgroup_ns: false,
        userns_maps: None,
    };
    let flags = nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_RDONLY;
    rootfs::cgroup::mount_hierarchies(&ctx, Path::new("/sys/fs/cgroup"), flags, &hier).unwrap();
    let cg = root.join("sys/fs/cgroup");
    assert_eq!(
        std::fs::read_link(cg.join("cpu")).unwrap(),
        Path::new("cpu,cpuacct")
    );
    assert_eq!(
        std::fs::read_link(cg.join("cpuacct")).unwrap(),
        Path::new("cpu,cpuacct")
    );
    assert_eq!(
        std::fs::read_to_string(cg.join("cpu/cpu.shares")).unwrap(),
        "1024\n"
    );
    // Read-only: neither the tmpfs nor the hierarchy can be written.
    assert!(std::fs::write(cg.join("cpu/cpu.shares"), "2").is_err());
    assert!(std::fs::create_dir(cg.join("new")).is_err());
}

#[test]
fn cgroup_v2_host_gets_cgroup2() {
    let Some(bundle) = child_bundle() else {
        let b = busybox_bundle();
        run_in_child("cgroup_v2_host_gets_cgroup2", &["--cgroup"], &b);
        return;
    };
    use nix::mount::{MsFlags, mount};
    // Make this (private) mount namespace look like a unified-hierarchy host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .unwrap();
    if !rootfs::cgroup::host_is_unified() {
        mount(
            Some("cgroup2"),
            "/sys/fs/cgroup",
            Some("cgroup2"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
    }
    assert!(rootfs::cgroup::host_is_unified());
    let spec = spec(json!({
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ]
    }));
    rootfs::prepare(&spec, &bundle, true).unwrap();
    let root = rootfs::rootfs_path(&spec, &bundle).unwrap();
    rootfs::pivot(&root, false).unwrap();
    rootfs::finalize(&spec).unwrap();
    let cg = mountinfo_line("/sys/fs/cgroup").unwrap();
    assert!(cg.contains(" - cgroup2 "), "{cg}");
    assert!(mount_opts(&cg).contains(&"ro".to_string()), "{cg}");
    sh_ok("test -f /sys/fs/cgroup/cgroup.controllers");
    assert_ne!(sh("mkdir /sys/fs/cgroup/kina").0, 0);
}

#[test]
fn cgroup_v2_without_cgroup_namespace_in_user_namespace_binds_own_cgroup() {
    let Some(bundle) = child_bundle() else {
        let b = busybox_bundle();
        run_in_child(
            "cgroup_v2_without_cgroup_namespace_in_user_namespace_binds_own_cgroup",
            &["--user", "--map-root-user", "--pid", "--fork"],
            &b,
        );
        return;
    };
    let logs = Logs::install();
    use nix::mount::{MsFlags, mount};
    // Look like a unified host: the cgroup2 tree bound over /sys/fs/cgroup (a fresh cgroup2
    // mount is what the kernel refuses here, which is the point of the test).
    if !rootfs::cgroup::host_is_unified() {
        mount(
            Some("/sys/fs/cgroup/unified"),
            "/sys/fs/cgroup",
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
    }
    let spec = spec(json!({
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]}
        ]
    }));
    rootfs::prepare(&spec, &bundle, false).unwrap();
    let root = rootfs::rootfs_path(&spec, &bundle).unwrap();
    rootfs::pivot(&root, false).unwrap();
    rootfs::finalize(&spec).unwrap();
    let cg = mountinfo_line("/sys/fs/cgroup").unwrap();
    assert!(cg.contains(" - cgroup2 "), "{cg}");
    assert!(mount_opts(&cg).contains(&"ro".to_string()), "{cg}");
    sh_ok("test -f /sys/fs/cgroup/cgroup.procs");
    assert!(
        logs.text().contains("cgroup2 mount refused"),
        "{}",
        logs.text()
    );
}
