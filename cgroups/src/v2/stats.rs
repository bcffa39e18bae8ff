//! Reading resource usage from a cgroup v2 directory (cpu.stat, memory.*, pids.*, hugetlb.*,
//! io.stat).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::CgroupError;
use crate::fs;
use crate::stats::{self as st, BlkioStats, HugetlbStats, MemoryStats, PidsStats, Stats};

pub(super) fn read(dir: &Path) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    let cpu = fs::read_flat_keyed(dir, "cpu.stat")?;
    let us = |k: &str| cpu.get(k).copied().unwrap_or(0).saturating_mul(1000);
    s.cpu.usage_total_ns = us("usage_usec");
    s.cpu.usage_user_ns = us("user_usec");
    s.cpu.usage_system_ns = us("system_usec");
    s.cpu.throttling.periods = cpu.get("nr_periods").copied().unwrap_or(0);
    s.cpu.throttling.throttled_periods = cpu.get("nr_throttled").copied().unwrap_or(0);
    s.cpu.throttling.throttled_time_ns = us("throttled_usec");
    if dir.join("memory.current").exists() {
        s.memory = read_memory(dir)?;
    }
    if dir.join("pids.current").exists() {
        s.pids = PidsStats {
            current: fs::read_u64(dir, "pids.current")?,
            limit: fs::read_u64_opt(dir, "pids.max")?.and_then(st::limit),
        };
    }
    s.hugetlb = read_hugetlb(dir)?;
    if let Some(text) = fs::read_opt(dir, "io.stat")? {
        s.blkio = parse_io_stat(&dir.join("io.stat"), &text)?;
    }
    Ok(s)
}

fn read_memory(dir: &Path) -> Result<MemoryStats, CgroupError> {
    let raw = fs::read_flat_keyed(dir, "memory.stat")?;
    let get = |k: &str| raw.get(k).copied().unwrap_or(0);
    let usage = fs::read_u64(dir, "memory.current")?;
    let events = fs::read_flat_keyed(dir, "memory.events")?;
    let ev = |k: &str| events.get(k).copied().unwrap_or(0);
    let inactive_file = get("inactive_file");
    Ok(MemoryStats {
        usage,
        max_usage: fs::read_u64_opt(dir, "memory.peak")?.unwrap_or(0),
        limit: fs::read_u64_opt(dir, "memory.max")?.and_then(st::limit),
        working_set: usage.saturating_sub(inactive_file),
        rss: get("anon"),
        cache: get("file"),
        mapped_file: get("file_mapped"),
        inactive_file,
        swap: fs::read_u64_opt(dir, "memory.swap.current")?.unwrap_or(0),
        swap_limit: fs::read_u64_opt(dir, "memory.swap.max")?.and_then(st::limit),
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        failcnt: ev("max"),
        oom_events: ev("oom"),
        oom_kill: ev("oom_kill"),
        raw,
    })
}

/// Huge page usage per size from `hugetlb.<size>.*` files (empty without the controller).
pub(crate) fn read_hugetlb(dir: &Path) -> Result<BTreeMap<String, HugetlbStats>, CgroupError> {
    let mut out = BTreeMap::new();
    for size in st::hugepage_sizes() {
        let Some(usage) = fs::read_u64_opt(dir, &format!("hugetlb.{size}.current"))? else {
            continue;
        };
        let events = fs::read_flat_keyed(dir, &format!("hugetlb.{size}.events"))?;
        out.insert(
            size.clone(),
            HugetlbStats {
                usage,
                max_usage: 0,
                failcnt: events.get("max").copied().unwrap_or(0),
                limit: fs::read_u64_opt(dir, &format!("hugetlb.{size}.max"))?.and_then(st::limit),
            },
        );
    }
    Ok(out)
}

/// Parses io.stat (`8:0 rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`).
pub(crate) fn parse_io_stat(path: &Path, text: &str) -> Result<BlkioStats, CgroupError> {
    let mut out = BlkioStats::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (dev, kv) = fs::parse_nested_line(path, line)?;
        let Some((maj, min)) = st::parse_dev(&dev) else {
            continue;
        };
        let e = out.entry(maj, min);
        let g = |k: &str| kv.get(k).copied().unwrap_or(0);
        e.read_bytes = g("rbytes");
        e.write_bytes = g("wbytes");
        e.read_ops = g("rios");
        e.write_ops = g("wios");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_stat() {
        let s = parse_io_stat(
            Path::new("/io.stat"),
            "8:0 rbytes=4096 wbytes=512 rios=2 wios=1 dbytes=0 dios=0\n253:1 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n",
        )
        .unwrap();
        assert_eq!(s.devices.len(), 2);
        assert_eq!(s.devices[0].read_bytes, 4096);
        assert_eq!(s.devices[1].write_ops, 4);
        assert_eq!((s.devices[1].major, s.devices[1].minor), (253, 1));
    }
}
