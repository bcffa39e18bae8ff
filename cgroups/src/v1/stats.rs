//! Reading resource usage from the v1 controllers (cpuacct, cpu, memory, pids, hugetlb, blkio).

use std::path::Path;

use super::V1Manager;
use crate::error::CgroupError;
use crate::fs;
use crate::stats::{self as st, BlkioStats, CpuStats, HugetlbStats, MemoryStats, PidsStats, Stats};

/// Clock ticks per second for cpuacct.stat (USER_HZ is 100 on every Linux ABI).
const USER_HZ: u64 = 100;

pub(super) fn read(m: &V1Manager) -> Result<Stats, CgroupError> {
    let mut s = Stats::default();
    if let Some(dir) = m.dir("cpuacct") {
        read_cpuacct(dir, &mut s.cpu)?;
    }
    if let Some(dir) = m.dir("cpu") {
        let stat = fs::read_flat_keyed(dir, "cpu.stat")?;
        s.cpu.throttling.periods = stat.get("nr_periods").copied().unwrap_or(0);
        s.cpu.throttling.throttled_periods = stat.get("nr_throttled").copied().unwrap_or(0);
        s.cpu.throttling.throttled_time_ns = stat.get("throttled_time").copied().unwrap_or(0);
    }
    if let Some(dir) = m.dir("memory") {
        s.memory = read_memory(dir)?;
    }
    if let Some(dir) = m.dir("pids") {
        s.pids = PidsStats {
            current: fs::read_u64_opt(dir, "pids.current")?.unwrap_or(0),
            limit: fs::read_u64_opt(dir, "pids.max")?.and_then(st::limit),
        };
    }
    if let Some(dir) = m.dir("hugetlb") {
        for size in st::hugepage_sizes() {
            let f = |suffix: &str| format!("hugetlb.{size}.{suffix}");
            let Some(usage) = fs::read_u64_opt(dir, &f("usage_in_bytes"))? else {
                continue;
            };
            s.hugetlb.insert(
                size.clone(),
                HugetlbStats {
                    usage,
                    max_usage: fs::read_u64_opt(dir, &f("max_usage_in_bytes"))?.unwrap_or(0),
                    failcnt: fs::read_u64_opt(dir, &f("failcnt"))?.unwrap_or(0),
                    limit: fs::read_u64_opt(dir, &f("limit_in_bytes"))?.and_then(st::limit),
                },
            );
        }
    } else if let Some(dir) = m.unified_dir() {
        // Hybrid hosts may account hugetlb on the cgroup2 side.
        s.hugetlb = crate::v2::read_hugetlb(dir)?;
    }
    if let Some(dir) = m.dir("blkio") {
        s.blkio = read_blkio(dir)?;
    }
    Ok(s)
}

fn read_cpuacct(dir: &Path, cpu: &mut CpuStats) -> Result<(), CgroupError> {
    cpu.usage_total_ns = fs::read_u64(dir, "cpuacct.usage")?;
    if let Some(pc) = fs::read_opt(dir, "cpuacct.usage_percpu")? {
        let path = dir.join("cpuacct.usage_percpu");
        cpu.per_cpu_ns = pc
            .split_whitespace()
            .map(|v| fs::parse_u64(&path, v))
            .collect::<Result<_, _>>()?;
    }
    match (
        fs::read_u64_opt(dir, "cpuacct.usage_user")?,
        fs::read_u64_opt(dir, "cpuacct.usage_sys")?,
    ) {
        (Some(u), Some(k)) => {
            cpu.usage_user_ns = u;
            cpu.usage_system_ns = k;
        }
        _ => {
            // Older kernels: clock ticks in cpuacct.stat.
            let stat = fs::read_flat_keyed(dir, "cpuacct.stat")?;
            let ns = |ticks: u64| ticks.saturating_mul(1_000_000_000 / USER_HZ);
            cpu.usage_user_ns = ns(stat.get("user").copied().unwrap_or(0));
            cpu.usage_system_ns = ns(stat.get("system").copied().unwrap_or(0));
        }
    }
    Ok(())
}

fn read_memory(dir: &Path) -> Result<MemoryStats, CgroupError> {
    let raw = fs::read_flat_keyed(dir, "memory.stat")?;
    let get = |k: &str| raw.get(k).copied().unwrap_or(0);
    let usage = fs::read_u64(dir, "memory.usage_in_bytes")?;
    let inactive_file = get("total_inactive_file");
    let limit = fs::read_u64(dir, "memory.limit_in_bytes")?;
    let memsw_usage = fs::read_u64_opt(dir, "memory.memsw.usage_in_bytes")?;
    let memsw_limit = fs::read_u64_opt(dir, "memory.memsw.limit_in_bytes")?;
    let oom = fs::read_flat_keyed(dir, "memory.oom_control")?;
    Ok(MemoryStats {
        usage,
        max_usage: fs::read_u64_opt(dir, "memory.max_usage_in_bytes")?.unwrap_or(0),
        limit: st::limit(limit),
        working_set: usage.saturating_sub(inactive_file),
        rss: get("total_rss"),
        cache: get("total_cache"),
        mapped_file: get("total_mapped_file"),
        inactive_file,
        swap: memsw_usage.map_or(0, |m| m.saturating_sub(usage)),
        swap_limit: memsw_limit
            .and_then(st::limit)
            .map(|m| m.saturating_sub(limit)),
        page_faults: get("total_pgfault"),
        major_page_faults: get("total_pgmajfault"),
        // With memsw limited the memsw counter usually trips first.
        failcnt: fs::read_u64_opt(dir, "memory.failcnt")?
            .unwrap_or(0)
            .max(fs::read_u64_opt(dir, "memory.memsw.failcnt")?.unwrap_or(0)),
        oom_events: 0,
        oom_kill: oom.get("oom_kill").copied().unwrap_or(0),
        raw,
    })
}

/// Parses blkio's `maj:min Op value` lines (the trailing `Total` line is skipped).
pub(crate) fn parse_blkio(
    path: &Path,
    text: &str,
    out: &mut BlkioStats,
    bytes: bool,
) -> Result<(), CgroupError> {
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 3 {
            continue; // "Total N"
        }
        let Some((maj, min)) = st::parse_dev(f[0]) else {
            continue;
        };
        let v = fs::parse_u64(path, f[2])?;
        let e = out.entry(maj, min);
        match (f[1], bytes) {
            ("Read", true) => e.read_bytes = v,
            ("Write", true) => e.write_bytes = v,
            ("Read", false) => e.read_ops = v,
            ("Write", false) => e.write_ops = v,
            _ => {}
        }
    }
    Ok(())
}

fn read_blkio(dir: &Path) -> Result<BlkioStats, CgroupError> {
    let mut out = BlkioStats::default();
    // CFQ/BFQ accounting when available, else the throttle layer's (always present).
    for (bytes_file, ops_file) in [
        (
            "blkio.io_service_bytes_recursive",
            "blkio.io_serviced_recursive",
        ),
        (
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.bfq.io_serviced_recursive",
        ),
        (
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_serviced_recursive",
        ),
    ] {
        let Some(b) = fs::read_opt(dir, bytes_file)? else {
            continue;
        };
        let o = fs::read_opt(dir, ops_file)?.unwrap_or_default();
        parse_blkio(&dir.join(bytes_file), &b, &mut out, true)?;
        parse_blkio(&dir.join(ops_file), &o, &mut out, false)?;
        if !out.devices.is_empty() {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_lines() {
        let text = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\nTotal 12288\n";
        let mut s = BlkioStats::default();
        parse_blkio(Path::new("/b"), text, &mut s, true).unwrap();
        parse_blkio(Path::new("/b"), "8:0 Read 1\n8:0 Write 2\n", &mut s, false).unwrap();
        assert_eq!(s.devices.len(), 1);
        let d = &s.devices[0];
        assert_eq!(
            (
                d.major,
                d.minor,
                d.read_bytes,
                d.write_bytes,
                d.read_ops,
                d.write_ops
            ),
            (8, 0, 4096, 8192, 1, 2)
        );
    }
}
