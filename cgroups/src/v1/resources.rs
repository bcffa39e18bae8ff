//! Applying OCI `linux.resources` through the v1 controllers, in the orders the kernel needs
//! (cfs period/quota, memory limit vs memsw limit, cpuset before tasks).

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxNetwork, LinuxResources};

use super::V1Manager;
use crate::devices::{DevicePolicy, rules_from_oci};
use crate::error::CgroupError;
use crate::fs;
use crate::stats::hugepage_size_name;

/// Applies every resource that is set; controllers of unset resources are not touched.
pub(super) fn set(m: &V1Manager, r: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(cpu) = r.cpu() {
        set_cpu(m, cpu)?;
    }
    if let Some(mem) = r.memory() {
        set_memory(m, mem)?;
    }
    if let Some(pids) = r.pids() {
        let dir = m.require("pids", "pids.limit")?;
        let v = if pids.limit() <= 0 {
            "max".to_string()
        } else {
            pids.limit().to_string()
        };
        fs::write(dir, "pids.max", v)?;
    }
    if let Some(limits) = r.hugepage_limits() {
        set_hugetlb(m, limits)?;
    }
    if let Some(bio) = r.block_io() {
        set_blkio(m, bio)?;
    }
    if let Some(net) = r.network() {
        set_network(m, net)?;
    }
    if let Some(rdma) = r.rdma()
        && !rdma.is_empty()
    {
        let dir = m.require("rdma", "rdma")?;
        for (dev, lim) in rdma {
            let mut v = dev.clone();
            if let Some(h) = lim.hca_handles() {
                v.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = lim.hca_objects() {
                v.push_str(&format!(" hca_object={o}"));
            }
            fs::write(dir, "rdma.max", v)?;
        }
    }
    if let Some(devices) = r.devices() {
        let dir = m.require("devices", "devices")?;
        let policy = DevicePolicy::from_rules(&rules_from_oci(devices)?);
        let list_path = dir.join("devices.list");
        let current =
            DevicePolicy::from_v1_list(&fs::read_path(&list_path)?).map_err(|reason| {
                CgroupError::Parse {
                    path: list_path.clone(),
                    content: String::new(),
                    reason,
                }
            })?;
        for (file, value) in policy.v1_transition(current.as_ref()) {
            fs::write(dir, file, value)?;
        }
    }
    if let Some(unified) = r.unified()
        && !unified.is_empty()
    {
        let Some(dir) = m.unified_dir() else {
            return Err(CgroupError::invalid(
                "unified",
                "cgroup v2 keys cannot be applied on a cgroup v1 host",
            ));
        };
        crate::v2::write_unified(dir, unified)?;
    }
    Ok(())
}

fn set_cpu(m: &V1Manager, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    let wants_cpu = cpu.shares().is_some()
        || cpu.quota().is_some()
        || cpu.period().is_some()
        || cpu.burst().is_some()
        || cpu.realtime_period().is_some()
        || cpu.realtime_runtime().is_some()
        || cpu.idle().is_some();
    if wants_cpu {
        let dir = m.require("cpu", "cpu")?;
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            fs::write(dir, "cpu.shares", shares.to_string())?;
            let got = fs::read_u64(dir, "cpu.shares")?;
            if got != shares {
                return Err(CgroupError::invalid(
                    "cpu.shares",
                    format!("the kernel set {got} instead of {shares} (allowed range 2-262144)"),
                ));
            }
        }
        set_cfs(dir, cpu.quota(), cpu.period())?;
        if let Some(burst) = cpu.burst() {
            fs::write(dir, "cpu.cfs_burst_us", burst.to_string())?;
        }
        // The realtime period must be set before a runtime that would not fit the old one.
        if let Some(p) = cpu.realtime_period().filter(|p| *p != 0) {
            fs::write(dir, "cpu.rt_period_us", p.to_string())?;
        }
        if let Some(rt) = cpu.realtime_runtime().filter(|r| *r != 0) {
            fs::write(dir, "cpu.rt_runtime_us", rt.to_string())?;
        }
        if let Some(idle) = cpu.idle() {
            fs::write(dir, "cpu.idle", idle.to_string())?;
        }
    }
    let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
    let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
    if cpus.is_some() || mems.is_some() {
        let dir = m.require("cpuset", "cpu.cpus/cpu.mems")?;
        if let Some(c) = cpus {
            fs::write(dir, "cpuset.cpus", c)?;
        }
        if let Some(mm) = mems {
            fs::write(dir, "cpuset.mems", mm)?;
        }
    }
    Ok(())
}

/// Writes the CFS period and quota like runc: period first; if the kernel refuses it (EINVAL
/// because old quota / new period exceeds the parent's limit) and a quota is coming, write the
/// quota and then retry the period.
fn set_cfs(dir: &Path, quota: Option<i64>, period: Option<u64>) -> Result<(), CgroupError> {
    let quota = quota.filter(|q| *q != 0);
    let mut pending_period = None;
    if let Some(p) = period.filter(|p| *p != 0)
        && let Err(e) = fs::write(dir, "cpu.cfs_period_us", p.to_string())
    {
        if e.errno() != Some(libc::EINVAL) || quota.is_none() {
            return Err(e);
        }
        pending_period = Some(p);
    }
    if let Some(q) = quota {
        fs::write(dir, "cpu.cfs_quota_us", q.to_string())?;
        if let Some(p) = pending_period {
            fs::write(dir, "cpu.cfs_period_us", p.to_string())?;
        }
    }
    Ok(())
}

fn set_memory(m: &V1Manager, mem: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = mem.limit().filter(|l| *l != 0);
    let mut swap = mem.swap().filter(|s| *s != 0);
    let anything = limit.is_some()
        || swap.is_some()
        || mem.reservation().is_some()
        || mem.kernel().is_some()
        || mem.kernel_tcp().is_some()
        || mem.swappiness().is_some()
        || mem.disable_oom_killer().is_some();
    if !anything {
        return Ok(());
    }
    let dir = m.require("memory", "memory")?;
    let has_memsw = dir.join("memory.memsw.limit_in_bytes").exists();
    // Unlimited memory with unset swap means both unlimited.
    if limit == Some(-1) && swap.is_none() && has_memsw {
        swap = Some(-1);
    }
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let current = fs::read_u64(dir, "memory.limit_in_bytes")?;
            // memsw must stay >= limit at every step: raise memsw first when growing.
            if s == -1 || current < s as u64 {
                set_swap(dir, s, has_memsw)?;
                set_limit(dir, l)?;
            } else {
                set_limit(dir, l)?;
                set_swap(dir, s, has_memsw)?;
            }
        }
        (Some(l), None) => set_limit(dir, l)?,
        (None, Some(s)) => set_swap(dir, s, has_memsw)?,
        (None, None) => {}
    }
    if let Some(res) = mem.reservation().filter(|r| *r != 0) {
        fs::write(dir, "memory.soft_limit_in_bytes", res.to_string())?;
    }
    if mem.kernel().is_some() {
        tracing::warn!("linux.resources.memory.kernel is deprecated and ignored");
    }
    if let Some(tcp) = mem.kernel_tcp().filter(|t| *t != 0) {
        if dir.join("memory.kmem.tcp.limit_in_bytes").exists() {
            fs::write(dir, "memory.kmem.tcp.limit_in_bytes", tcp.to_string())?;
        } else {
            tracing::warn!("memory.kernelTCP is not supported by this kernel; ignored");
        }
    }
    if let Some(sw) = mem.swappiness() {
        if sw > 100 {
            return Err(CgroupError::invalid(
                "memory.swappiness",
                format!("{sw} is outside 0-100"),
            ));
        }
        fs::write(dir, "memory.swappiness", sw.to_string())?;
    }
    if let Some(disable) = mem.disable_oom_killer() {
        fs::write(dir, "memory.oom_control", if disable { "1" } else { "0" })?;
    }
    Ok(())
}

fn set_limit(dir: &Path, limit: i64) -> Result<(), CgroupError> {
    fs::write(dir, "memory.limit_in_bytes", limit.to_string()).map_err(|e| {
        if e.errno() == Some(libc::EBUSY) {
            let usage = fs::read_u64(dir, "memory.usage_in_bytes").unwrap_or(0);
            let peak = fs::read_u64(dir, "memory.max_usage_in_bytes").unwrap_or(0);
            CgroupError::invalid(
                "memory.limit",
                format!("{e} (current usage {usage} bytes, peak usage {peak} bytes)"),
            )
        } else {
            e
        }
    })
}

fn set_swap(dir: &Path, swap: i64, has_memsw: bool) -> Result<(), CgroupError> {
    if !has_memsw {
        return Err(CgroupError::invalid(
            "memory.swap",
            "swap accounting is disabled on this host (no memory.memsw.limit_in_bytes)",
        ));
    }
    fs::write(dir, "memory.memsw.limit_in_bytes", swap.to_string())
}

fn set_hugetlb(
    m: &V1Manager,
    limits: &[oci_spec::runtime::LinuxHugepageLimit],
) -> Result<(), CgroupError> {
    if limits.is_empty() {
        return Ok(());
    }
    for l in limits {
        validate_page_size(l.page_size())?;
    }
    if let Some(dir) = m.dir("hugetlb") {
        for l in limits {
            fs::write(
                dir,
                &format!("hugetlb.{}.limit_in_bytes", l.page_size()),
                l.limit().to_string(),
            )?;
        }
        return Ok(());
    }
    // Hybrid hosts may have hugetlb only on the cgroup2 side.
    if let (Some(mount), Some(dir)) = (m.unified_mount(), m.unified_dir()) {
        let available = fs::read_opt(mount, "cgroup.controllers")?.unwrap_or_default();
        if available.split_whitespace().any(|c| c == "hugetlb") {
            fs::create_dir_all(dir)?;
            crate::v2::enable_controllers(mount, dir, &["hugetlb".to_string()])?;
            for l in limits {
                let v = crate::convert::v2_limit(l.limit());
                fs::write(dir, &format!("hugetlb.{}.max", l.page_size()), v)?;
            }
            return Ok(());
        }
    }
    Err(CgroupError::ControllerMissing {
        controller: "hugetlb".into(),
        needed_for: "hugepageLimits".into(),
    })
}

/// Rejects page sizes that are not of the kernel's `<n><unit>` form (e.g. `2MB`) so they cannot
/// name other files.
pub(crate) fn validate_page_size(size: &str) -> Result<(), CgroupError> {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    let ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && ["B", "KB", "MB", "GB", "TB"].contains(&unit);
    if ok {
        return Ok(());
    }
    let known = crate::stats::hugepage_sizes();
    Err(CgroupError::invalid(
        "hugepageLimits.pageSize",
        format!(
            "{size:?} is not a huge page size (this host has {known:?}, e.g. {})",
            hugepage_size_name(2 << 20)
        ),
    ))
}

fn set_blkio(m: &V1Manager, bio: &LinuxBlockIo) -> Result<(), CgroupError> {
    let has_any = bio.weight().is_some()
        || bio.leaf_weight().is_some()
        || bio.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || bio
            .throttle_read_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || bio
            .throttle_write_bps_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || bio
            .throttle_read_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty())
        || bio
            .throttle_write_iops_device()
            .as_ref()
            .is_some_and(|v| !v.is_empty());
    if !has_any {
        return Ok(());
    }
    let dir = m.require("blkio", "blockIO")?;
    // CFQ exposes blkio.weight, BFQ blkio.bfq.weight.
    let weight_file =
        |plain: &'static str, bfq: &'static str| -> Result<&'static str, CgroupError> {
            if dir.join(plain).exists() {
                Ok(plain)
            } else if dir.join(bfq).exists() {
                Ok(bfq)
            } else {
                Err(CgroupError::invalid(
                    "blockIO.weight",
                    format!(
                        "no {plain} or {bfq} in {} (no proportional-weight I/O scheduler)",
                        dir.display()
                    ),
                ))
            }
        };
    if let Some(w) = bio.weight().filter(|w| *w != 0) {
        fs::write(
            dir,
            weight_file("blkio.weight", "blkio.bfq.weight")?,
            w.to_string(),
        )?;
    }
    if let Some(w) = bio.leaf_weight().filter(|w| *w != 0) {
        fs::write(dir, "blkio.leaf_weight", w.to_string())?;
    }
    for wd in bio.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            let file = weight_file("blkio.weight_device", "blkio.bfq.weight_device")?;
            fs::write(dir, file, format!("{}:{} {w}", wd.major(), wd.minor()))?;
        }
        if let Some(w) = wd.leaf_weight() {
            fs::write(
                dir,
                "blkio.leaf_weight_device",
                format!("{}:{} {w}", wd.major(), wd.minor()),
            )?;
        }
    }
    let throttles = [
        (
            bio.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            bio.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            bio.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            bio.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ];
    for (list, file) in throttles {
        for t in list.iter().flatten() {
            fs::write(
                dir,
                file,
                format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}

/// net_cls/net_prio are optional v1 controllers (often not mounted): without them the settings
/// are skipped with a warning, like on v2.
fn set_network(m: &V1Manager, net: &LinuxNetwork) -> Result<(), CgroupError> {
    if let Some(id) = net.class_id() {
        match m.dir("net_cls") {
            Some(dir) => fs::write(dir, "net_cls.classid", id.to_string())?,
            None => tracing::warn!("network.classID ignored: net_cls is not mounted"),
        }
    }
    if let Some(prios) = net.priorities().as_ref().filter(|p| !p.is_empty()) {
        match m.dir("net_prio") {
            Some(dir) => {
                for p in prios {
                    fs::write(
                        dir,
                        "net_prio.ifpriomap",
                        format!("{} {}", p.name(), p.priority()),
                    )?;
                }
            }
            None => tracing::warn!("network.priorities ignored: net_prio is not mounted"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes() {
        for ok in ["2MB", "1GB", "64KB"] {
            validate_page_size(ok).unwrap();
        }
        for bad in ["", "2", "MB", "2MB/../x", "../2MB", "2mb"] {
            assert!(validate_page_size(bad).is_err(), "{bad}");
        }
    }
}
