//! Real cgroups on this host: create, join, set resources and read them back from the files,
//! list processes, freeze/thaw, stats, destroy and error messages.

mod common;

use std::time::Duration;

use common::{TestCgroup, existing_dirs, layout, read};
use kina_cgroups::{CgroupManager, FreezerState, Layout};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
};

const MIB: i64 = 1024 * 1024;

#[test]
fn resources_are_written_and_read_back() {
    let mut t = TestCgroup::new("res");
    let p = t.spawn("sleep 30");
    t.mgr.apply(p.pid).unwrap();
    let r = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64 * MIB)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512u64)
                .quota(50_000i64)
                .period(100_000u64)
                .cpus("0")
                .mems("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(32i64).build().unwrap())
        .build()
        .unwrap();
    let path = t.path.clone();
    if layout() != Layout::V2 {
        // A new v1 cpuset cgroup starts with empty cpus/mems: apply copied the parents' down.
        let root_cpus = read("cpuset", std::path::Path::new("/"), "cpuset.effective_cpus");
        assert_eq!(read("cpuset", &t.root, "cpuset.cpus"), root_cpus);
        assert_eq!(read("cpuset", &path, "cpuset.cpus"), root_cpus);
        assert!(!read("cpuset", &path, "cpuset.mems").is_empty());
    }
    t.mgr.set(&r).unwrap();
    match layout() {
        Layout::V1 | Layout::Hybrid => {
            assert_eq!(
                read("memory", &path, "memory.limit_in_bytes"),
                (64 * MIB).to_string()
            );
            assert_eq!(read("cpu", &path, "cpu.shares"), "512");
            assert_eq!(read("cpu", &path, "cpu.cfs_quota_us"), "50000");
            assert_eq!(read("cpu", &path, "cpu.cfs_period_us"), "100000");
            assert_eq!(read("cpuset", &path, "cpuset.cpus"), "0");
            assert_eq!(read("cpuset", &path, "cpuset.mems"), "0");
        }
        Layout::V2 => {
            assert_eq!(read("memory", &path, "memory.max"), (64 * MIB).to_string());
            assert_eq!(read("cpu", &path, "cpu.weight"), "20");
            assert_eq!(read("cpu", &path, "cpu.max"), "50000 100000");
            assert_eq!(read("cpuset", &path, "cpuset.cpus"), "0");
        }
    }
    assert_eq!(read("pids", &path, "pids.max"), "32");
    assert_eq!(t.mgr.pids().unwrap(), vec![p.pid]);
    // The child is really in the cgroup.
    let own = std::fs::read_to_string(format!("/proc/{}/cgroup", p.pid)).unwrap();
    assert!(own.contains(path.to_str().unwrap()), "{own}");
    // A process in the hybrid layout also joins the cgroup2 tree.
    if layout() == Layout::Hybrid {
        assert!(own.contains(&format!("0::{}", path.display())), "{own}");
    }
    // manager_for_pid finds the same cgroup.
    let m = kina_cgroups::manager_for_pid(p.pid).unwrap();
    assert_eq!(m.path(), path.as_path());
    assert_eq!(m.pids().unwrap(), vec![p.pid]);
}

#[test]
fn pids_are_listed_recursively() {
    let mut t = TestCgroup::new("pids");
    let a = t.spawn("sleep 30");
    let b = t.spawn("sleep 30");
    t.mgr.apply(a.pid).unwrap();
    let sub = kina_cgroups::manager(&t.path.join("sub")).unwrap();
    sub.apply(b.pid).unwrap();
    let mut want = vec![a.pid, b.pid];
    want.sort();
    assert_eq!(t.mgr.pids().unwrap(), want);
    assert_eq!(sub.pids().unwrap(), vec![b.pid]);
}

#[test]
fn memory_and_swap_limits_change_in_both_directions() {
    let mut t = TestCgroup::new("swap");
    let p = t.spawn("sleep 30");
    t.mgr.apply(p.pid).unwrap();
    let mem = |limit: i64, swap: i64| {
        LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(limit)
                    .swap(swap)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let path = t.path.clone();
    let check = |limit: i64, swap: i64| match layout() {
        Layout::V2 => {
            assert_eq!(read("memory", &path, "memory.max"), limit.to_string());
            assert_eq!(
                read("memory", &path, "memory.swap.max"),
                (swap - limit).to_string()
            );
        }
        _ => {
            assert_eq!(
                read("memory", &path, "memory.limit_in_bytes"),
                limit.to_string()
            );
            assert_eq!(
                read("memory", &path, "memory.memsw.limit_in_bytes"),
                swap.to_string()
            );
        }
    };
    t.mgr.set(&mem(64 * MIB, 128 * MIB)).unwrap();
    check(64 * MIB, 128 * MIB);
    // Lowering: memory first, then memsw.
    t.mgr.set(&mem(32 * MIB, 48 * MIB)).unwrap();
    check(32 * MIB, 48 * MIB);
    // Raising above the old memsw: memsw first.
    t.mgr.set(&mem(256 * MIB, 512 * MIB)).unwrap();
    check(256 * MIB, 512 * MIB);
    // Swap below memory is refused with the field named.
    let err = t
        .mgr
        .set(&mem(256 * MIB, 128 * MIB))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("memsw") || err.contains("memory.swap"),
        "{err}"
    );
}

#[test]
fn freeze_stops_the_processes_and_thaw_resumes_them() {
    // Declared before the cgroup guard so it is removed after the guard killed the writer.
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestCgroup::new("freeze");
    let counter = dir.path().join("counter");
    let p = t.spawn(&format!(
        "i=0; while :; do i=$((i+1)); echo $i > {}; done",
        counter.display()
    ));
    t.mgr.apply(p.pid).unwrap();
    t.go(&p);
    let read_counter = || -> u64 {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_until(|| read_counter() > 10);
    assert_eq!(t.mgr.state().unwrap(), FreezerState::Thawed);
    t.mgr.freeze().unwrap();
    assert_eq!(t.mgr.state().unwrap(), FreezerState::Frozen);
    let before = read_counter();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read_counter(), before, "a frozen process made progress");
    // Frozen tasks sleep in the freezer ('D' on v1 with older kernels, 'S' on newer ones).
    assert_ne!(common::proc_state(p.pid), 'R');
    t.mgr.thaw().unwrap();
    assert_eq!(t.mgr.state().unwrap(), FreezerState::Thawed);
    wait_until(|| read_counter() > before + 10);
}

#[test]
fn stats_report_cpu_and_memory_use() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestCgroup::new("stats");
    // Page cache (a 16 MiB file) and CPU (a busy loop).
    let p = t.spawn(&format!(
        "head -c 16777216 /dev/zero > {}/blob; while :; do :; done",
        dir.path().display()
    ));
    t.mgr.apply(p.pid).unwrap();
    t.go(&p);
    // Until `head` has written the whole file and exited, only the shell's loop is left.
    wait_until(|| {
        let s = t.mgr.stats().unwrap();
        s.cpu.usage_total_ns > 50_000_000 && s.memory.usage > 8 * 1024 * 1024 && s.pids.current == 1
    });
    let s = t.mgr.stats().unwrap();
    assert!(
        s.cpu.usage_user_ns + s.cpu.usage_system_ns > 0,
        "{:?}",
        s.cpu
    );
    if layout() != Layout::V2 {
        assert_eq!(s.cpu.per_cpu_ns.len(), num_cpus());
        assert!(s.cpu.per_cpu_ns.iter().sum::<u64>() > 0);
    }
    assert!(s.memory.cache >= 8 * 1024 * 1024, "{:?}", s.memory);
    assert!(s.memory.working_set <= s.memory.usage);
    assert!(s.memory.page_faults > 0);
    assert_eq!(s.memory.limit, None);
    assert_eq!(s.pids.current, 1);
}

#[test]
fn destroy_removes_every_directory() {
    let mut t = TestCgroup::new("destroy");
    let p = t.spawn("sleep 30");
    t.mgr.apply(p.pid).unwrap();
    assert!(t.mgr.exists());
    let dirs = existing_dirs(&t.path);
    assert!(dirs.len() >= 2, "created in every hierarchy: {dirs:?}");
    // A cgroup with a live process cannot go: the error names the directory.
    let err = t.mgr.destroy().unwrap_err().to_string();
    assert!(err.contains(t.path.to_str().unwrap()), "{err}");
    // Move the child out (kill it) and destroy for real, including the sub-tree.
    kina_cgroups::manager(&t.path.join("a/b"))
        .unwrap()
        .apply(p.pid)
        .unwrap();
    kill_and_wait(p.pid);
    t.mgr.destroy().unwrap();
    assert!(!t.mgr.exists());
    assert_eq!(existing_dirs(&t.path), Vec::<std::path::PathBuf>::new());
    // Destroying again is fine.
    t.mgr.destroy().unwrap();
}

#[test]
fn errors_name_the_file_and_value() {
    let mut t = TestCgroup::new("err");
    let p = t.spawn("sleep 30");
    t.mgr.apply(p.pid).unwrap();
    let r = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .quota(500i64)
                .period(100_000u64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = t.mgr.set(&r).unwrap_err().to_string();
    match layout() {
        Layout::V2 => assert!(
            err.contains("cpu.max") && err.contains("500 100000"),
            "{err}"
        ),
        _ => assert!(
            err.starts_with("write 500 to ")
                && err.ends_with("/ctr/cpu.cfs_quota_us: Invalid argument"),
            "{err}"
        ),
    }
}

#[test]
fn join_of_a_missing_process_fails_with_the_file() {
    let t = TestCgroup::new("nopid");
    let err = t.mgr.apply(999_999_999).unwrap_err().to_string();
    assert!(
        err.contains("999999999") && err.contains("cgroup.procs"),
        "{err}"
    );
    assert!(t.mgr.apply(0).is_err());
}

fn kill_and_wait(pid: i32) {
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status();
    wait_until(|| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true)
    });
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(
            std::fs::read_to_string("/sys/devices/system/cpu/possible")
                .ok()
                .and_then(|s| {
                    s.trim()
                        .rsplit('-')
                        .next()
                        .and_then(|n| n.parse::<usize>().ok())
                })
                .map_or(1, |n| n + 1),
        )
}

fn wait_until(mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The v2 manager's freezer, process listing, CPU stats and removal on the cgroup2 tree that a
/// hybrid host also has (the directory is created by the v1 manager's join, so no controller
/// is enabled on the host's unified root).
#[test]
fn v2_manager_works_on_the_hybrid_unified_tree() {
    if layout() != Layout::Hybrid {
        return; // pure v2 hosts run every other test through the v2 manager
    }
    let dir = tempfile::tempdir().unwrap();
    let mut t = TestCgroup::new("v2on");
    let counter = dir.path().join("counter");
    let p = t.spawn(&format!(
        "i=0; while :; do i=$((i+1)); echo $i > {}; done",
        counter.display()
    ));
    t.mgr.apply(p.pid).unwrap();
    let hs = kina_cgroups::hierarchies().unwrap();
    let unified = hs.iter().find(|h| h.version == 2).unwrap();
    let m = kina_cgroups::v2::V2Manager::with_mount(&unified.mount_point, &t.path);
    assert!(m.exists());
    assert_eq!(m.pids().unwrap(), vec![p.pid]);
    t.go(&p);
    let read_counter = || -> u64 {
        std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_until(|| read_counter() > 10);
    m.freeze().unwrap();
    assert_eq!(m.state().unwrap(), FreezerState::Frozen);
    let before = read_counter();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read_counter(), before, "a frozen process made progress");
    m.thaw().unwrap();
    assert_eq!(m.state().unwrap(), FreezerState::Thawed);
    wait_until(|| read_counter() > before + 10);
    wait_until(|| m.stats().unwrap().cpu.usage_total_ns > 10_000_000);
    let s = m.stats().unwrap();
    assert!(s.cpu.usage_user_ns + s.cpu.usage_system_ns > 0);
    // Removal with a live process fails naming the directory; the guard cleans up.
    let err = m.destroy().unwrap_err().to_string();
    assert!(err.contains(m.dir().to_str().unwrap()), "{err}");
}
