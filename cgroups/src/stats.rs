//! Resource usage statistics of a cgroup, in one shape for v1 and v2 (what cri-server's
//! ContainerStats and the kubelet summary API need).

use std::collections::BTreeMap;

/// Everything measured for one cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// CPU time and throttling.
    pub cpu: CpuStats,
    /// Memory usage.
    pub memory: MemoryStats,
    /// Number of tasks.
    pub pids: PidsStats,
    /// Per huge page size (`2MB`, `1GB`).
    pub hugetlb: BTreeMap<String, HugetlbStats>,
    /// Block I/O per device.
    pub blkio: BlkioStats,
}

/// CPU accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Total CPU time consumed, nanoseconds.
    pub usage_total_ns: u64,
    /// User-mode CPU time, nanoseconds.
    pub usage_user_ns: u64,
    /// Kernel-mode CPU time, nanoseconds.
    pub usage_system_ns: u64,
    /// Per-CPU usage, nanoseconds (v1 only; empty on v2).
    pub per_cpu_ns: Vec<u64>,
    /// CFS bandwidth throttling.
    pub throttling: ThrottlingStats,
}

/// CFS bandwidth throttling counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThrottlingStats {
    /// Enforcement periods elapsed.
    pub periods: u64,
    /// Periods in which the group was throttled.
    pub throttled_periods: u64,
    /// Total time throttled, nanoseconds.
    pub throttled_time_ns: u64,
}

/// Memory accounting (bytes unless noted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Current usage (v1 memory.usage_in_bytes, v2 memory.current).
    pub usage: u64,
    /// Peak usage, if the kernel reports it.
    pub max_usage: u64,
    /// Limit; `None` when unlimited.
    pub limit: Option<u64>,
    /// usage - inactive_file (what the kubelet evicts on).
    pub working_set: u64,
    /// Anonymous memory (v1 total_rss, v2 anon).
    pub rss: u64,
    /// Page cache (v1 total_cache, v2 file).
    pub cache: u64,
    /// Mapped file memory.
    pub mapped_file: u64,
    /// Inactive file-backed memory.
    pub inactive_file: u64,
    /// Swap usage (v1: memsw usage - usage; v2 memory.swap.current).
    pub swap: u64,
    /// Swap limit (v2 memory.swap.max; v1 memsw limit - limit); `None` when unlimited/unknown.
    pub swap_limit: Option<u64>,
    /// Page faults (count).
    pub page_faults: u64,
    /// Major page faults (count).
    pub major_page_faults: u64,
    /// Times the limit was hit (v1 failcnt, v2 memory.events max).
    pub failcnt: u64,
    /// OOM events (v2 memory.events oom; v1 under_oom transitions are not counted, 0).
    pub oom_events: u64,
    /// Processes killed by the OOM killer.
    pub oom_kill: u64,
    /// The raw memory.stat content.
    pub raw: BTreeMap<String, u64>,
}

/// Task counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidsStats {
    /// Current number of tasks.
    pub current: u64,
    /// Limit; `None` when unlimited.
    pub limit: Option<u64>,
}

/// Usage of one huge page size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HugetlbStats {
    /// Bytes in use.
    pub usage: u64,
    /// Peak bytes in use (v1 only).
    pub max_usage: u64,
    /// Allocation failures because of the limit.
    pub failcnt: u64,
    /// Limit; `None` when unlimited.
    pub limit: Option<u64>,
}

/// Block I/O per device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioStats {
    /// One entry per device that saw I/O.
    pub devices: Vec<BlkioDeviceStats>,
}

/// Block I/O counters of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioDeviceStats {
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations.
    pub read_ops: u64,
    /// Write operations.
    pub write_ops: u64,
}

impl BlkioStats {
    /// The entry for `major:minor`, created on first use.
    pub(crate) fn entry(&mut self, major: u64, minor: u64) -> &mut BlkioDeviceStats {
        let idx = match self
            .devices
            .iter()
            .position(|d| d.major == major && d.minor == minor)
        {
            Some(i) => i,
            None => {
                self.devices.push(BlkioDeviceStats {
                    major,
                    minor,
                    ..Default::default()
                });
                self.devices.len() - 1
            }
        };
        &mut self.devices[idx]
    }
}

/// Turns a kernel "unlimited" value (v1's page-rounded i64::MAX, v2's max) into `None`.
pub(crate) fn limit(v: u64) -> Option<u64> {
    // v1 reports PAGE_COUNTER_MAX * PAGE_SIZE, e.g. 9223372036854771712.
    if v >= (i64::MAX as u64) - (1 << 20) {
        None
    } else {
        Some(v)
    }
}

/// Parses `maj:min` into numbers.
pub(crate) fn parse_dev(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Huge page sizes supported by the kernel, as cgroup file names use them (`2MB`, `1GB`).
pub fn hugepage_sizes() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(kb) = name
                .strip_prefix("hugepages-")
                .and_then(|s| s.strip_suffix("kB"))
                .and_then(|s| s.parse::<u64>().ok())
            {
                out.push(hugepage_size_name(kb * 1024));
            }
        }
    }
    out.sort();
    out
}

/// 2097152 → "2MB", 1073741824 → "1GB", 65536 → "64KB".
pub fn hugepage_size_name(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes;
    let mut i = 0;
    while v >= 1024 && v.is_multiple_of(1024) && i < UNITS.len() - 1 {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", UNITS[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugepage_names() {
        assert_eq!(hugepage_size_name(2 * 1024 * 1024), "2MB");
        assert_eq!(hugepage_size_name(1024 * 1024 * 1024), "1GB");
        assert_eq!(hugepage_size_name(64 * 1024), "64KB");
    }

    #[test]
    fn unlimited_is_none() {
        assert_eq!(limit(9_223_372_036_854_771_712), None);
        assert_eq!(limit(u64::MAX), None);
        assert_eq!(limit(1 << 30), Some(1 << 30));
    }

    #[test]
    fn dev_numbers() {
        assert_eq!(parse_dev("8:16"), Some((8, 16)));
        assert_eq!(parse_dev("Total"), None);
    }
}
