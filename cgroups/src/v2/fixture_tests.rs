//! v2 resource conversion and stats parsing against a directory of fixture control files (this
//! development host is hybrid, so the pure-v2 file formats are exercised here; the real cgroup2
//! behaviour that exists on hybrid hosts — join, freeze, device filter — is in tests/).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResourcesBuilder, LinuxThrottleDeviceBuilder,
};

use super::V2Manager;
use crate::CgroupManager;

const FILES: &[&str] = &[
    "cpu.weight",
    "cpu.max",
    "cpu.idle",
    "cpuset.cpus",
    "cpuset.mems",
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "pids.max",
    "hugetlb.2MB.max",
    "io.weight",
    "io.max",
];

fn fixture() -> (tempfile::TempDir, V2Manager) {
    let tmp = tempfile::tempdir().unwrap();
    let m = V2Manager::with_mount(tmp.path(), Path::new("/kina/c1"));
    fs::create_dir_all(m.dir()).unwrap();
    for f in FILES {
        fs::write(m.dir().join(f), "").unwrap();
    }
    (tmp, m)
}

fn get(m: &V2Manager, f: &str) -> String {
    fs::read_to_string(m.dir().join(f)).unwrap()
}

#[test]
fn resources_are_converted_like_runc() {
    let (_tmp, m) = fixture();
    let r = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .shares(1024u64)
                .quota(50_000i64)
                .period(100_000u64)
                .idle(1i64)
                .cpus("0-1")
                .mems("0")
                .build()
                .unwrap(),
        )
        .memory(
            LinuxMemoryBuilder::default()
                .limit(100i64 << 20)
                .swap(300i64 << 20)
                .reservation(50i64 << 20)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(0i64).build().unwrap())
        .hugepage_limits(vec![
            LinuxHugepageLimitBuilder::default()
                .page_size("2MB")
                .limit(-1i64)
                .build()
                .unwrap(),
        ])
        .block_io(
            LinuxBlockIoBuilder::default()
                .weight(500u16)
                .throttle_write_bps_device(vec![
                    LinuxThrottleDeviceBuilder::default()
                        .major(8i64)
                        .minor(0i64)
                        .rate(1024u64)
                        .build()
                        .unwrap(),
                ])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    m.set(&r).unwrap();
    assert_eq!(get(&m, "cpu.weight"), "39");
    assert_eq!(get(&m, "cpu.max"), "50000 100000");
    assert_eq!(get(&m, "cpu.idle"), "1");
    assert_eq!(get(&m, "cpuset.cpus"), "0-1");
    assert_eq!(get(&m, "memory.max"), (100u64 << 20).to_string());
    assert_eq!(get(&m, "memory.swap.max"), (200u64 << 20).to_string());
    assert_eq!(get(&m, "memory.low"), (50u64 << 20).to_string());
    assert_eq!(get(&m, "pids.max"), "max");
    assert_eq!(get(&m, "hugetlb.2MB.max"), "max");
    assert_eq!(get(&m, "io.weight"), "default 4950");
    assert_eq!(get(&m, "io.max"), "8:0 wbps=1024");
}

#[test]
fn quota_without_period_and_unlimited_memory() {
    let (_tmp, m) = fixture();
    let r = LinuxResourcesBuilder::default()
        .cpu(LinuxCpuBuilder::default().quota(-1i64).build().unwrap())
        .memory(LinuxMemoryBuilder::default().limit(-1i64).build().unwrap())
        .build()
        .unwrap();
    m.set(&r).unwrap();
    assert_eq!(get(&m, "cpu.max"), "max");
    assert_eq!(get(&m, "memory.max"), "max");
    assert_eq!(get(&m, "memory.swap.max"), "max");
}

#[test]
fn invalid_requests_name_the_field() {
    let (_tmp, m) = fixture();
    let swap_only = LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .swap(1i64 << 30)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = m.set(&swap_only).unwrap_err().to_string();
    assert!(e.contains("memory.swap"), "{e}");
    let rt = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .realtime_runtime(1000i64)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = m.set(&rt).unwrap_err().to_string();
    assert!(e.contains("realtime"), "{e}");
    let mut unified = HashMap::new();
    unified.insert("../../cgroup.procs".to_string(), "1".to_string());
    let r = LinuxResourcesBuilder::default()
        .unified(unified)
        .build()
        .unwrap();
    assert!(m.set(&r).is_err());
    let mut unified = HashMap::new();
    unified.insert("memory.high".to_string(), "1G".to_string());
    let r = LinuxResourcesBuilder::default()
        .unified(unified)
        .build()
        .unwrap();
    let e = m.set(&r).unwrap_err().to_string();
    assert!(
        e.contains("memory.high") && e.contains("memory controller"),
        "{e}"
    );
    // Nothing was half-applied by the rejected swap request.
    assert_eq!(get(&m, "memory.max"), "");
}

#[test]
fn stats_are_parsed_from_v2_files() {
    let (_tmp, m) = fixture();
    let files = [
        (
            "cpu.stat",
            "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 30\n",
        ),
        ("memory.current", "10485760\n"),
        ("memory.max", "max\n"),
        ("memory.peak", "20971520\n"),
        (
            "memory.stat",
            "anon 4096\nfile 8192\nfile_mapped 1024\ninactive_file 2097152\npgfault 77\npgmajfault 3\n",
        ),
        (
            "memory.events",
            "low 0\nhigh 0\nmax 5\noom 2\noom_kill 1\noom_group_kill 0\n",
        ),
        ("memory.swap.current", "0\n"),
        ("memory.swap.max", "max\n"),
        ("pids.current", "3\n"),
        ("pids.max", "max\n"),
        (
            "io.stat",
            "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        ),
    ];
    let sizes = crate::stats::hugepage_sizes();
    for size in &sizes {
        fs::write(m.dir().join(format!("hugetlb.{size}.current")), "2097152\n").unwrap();
        fs::write(m.dir().join(format!("hugetlb.{size}.max")), "4194304\n").unwrap();
        fs::write(m.dir().join(format!("hugetlb.{size}.events")), "max 1\n").unwrap();
    }
    for (f, c) in files {
        fs::write(m.dir().join(f), c).unwrap();
    }
    let s = m.stats().unwrap();
    assert_eq!(s.cpu.usage_total_ns, 2_000_000);
    assert_eq!(s.cpu.usage_user_ns, 1_500_000);
    assert_eq!(s.cpu.usage_system_ns, 500_000);
    assert_eq!(s.cpu.throttling.throttled_periods, 4);
    assert_eq!(s.cpu.throttling.throttled_time_ns, 30_000);
    assert_eq!(s.memory.usage, 10 << 20);
    assert_eq!(s.memory.max_usage, 20 << 20);
    assert_eq!(s.memory.limit, None);
    assert_eq!(s.memory.working_set, (10 << 20) - (2 << 20));
    assert_eq!((s.memory.rss, s.memory.cache), (4096, 8192));
    assert_eq!((s.memory.page_faults, s.memory.major_page_faults), (77, 3));
    assert_eq!(
        (s.memory.oom_events, s.memory.oom_kill, s.memory.failcnt),
        (2, 1, 5)
    );
    assert_eq!((s.pids.current, s.pids.limit), (3, None));
    assert_eq!(s.blkio.devices.len(), 1);
    assert_eq!(s.blkio.devices[0].write_bytes, 8192);
    assert_eq!(s.hugetlb.len(), sizes.len());
    for h in s.hugetlb.values() {
        assert_eq!(
            (h.usage, h.limit, h.failcnt),
            (2_097_152, Some(4_194_304), 1)
        );
    }
}
