//! Applying OCI `linux.resources` to a cgroup v2 directory, converting v1-style values the way
//! runc does (shares → cpu.weight, memory+swap → memory.swap.max, blkio weight → io.weight).

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::V2Manager;
use crate::convert::{blkio_weight_to_io_weight, shares_to_weight, swap_to_v2, v2_limit};
use crate::devices::rules_from_oci;
use crate::error::CgroupError;
use crate::fs;

/// Applies every resource that is set.
pub(super) fn set(m: &V2Manager, r: &LinuxResources) -> Result<(), CgroupError> {
    let dir = m.dir();
    if let Some(cpu) = r.cpu() {
        set_cpu(m, cpu)?;
    }
    if let Some(mem) = r.memory() {
        set_memory(m, mem)?;
    }
    if let Some(pids) = r.pids() {
        fs::write(
            dir,
            "pids.max",
            v2_limit(if pids.limit() <= 0 { -1 } else { pids.limit() }),
        )?;
    }
    for l in r.hugepage_limits().iter().flatten() {
        crate::v1::validate_page_size(l.page_size())?;
        fs::write(
            dir,
            &format!("hugetlb.{}.max", l.page_size()),
            v2_limit(l.limit()),
        )?;
    }
    if let Some(bio) = r.block_io() {
        set_io(m, bio)?;
    }
    if let Some(net) = r.network()
        && (net.class_id().is_some() || net.priorities().as_ref().is_some_and(|p| !p.is_empty()))
    {
        tracing::warn!(
            "linux.resources.network (net_cls/net_prio) does not exist on cgroup v2; ignored"
        );
    }
    if let Some(rdma) = r.rdma() {
        for (dev, lim) in rdma {
            let h = lim
                .hca_handles()
                .map_or("max".to_string(), |v| v.to_string());
            let o = lim
                .hca_objects()
                .map_or("max".to_string(), |v| v.to_string());
            fs::write(
                dir,
                "rdma.max",
                format!("{dev} hca_handle={h} hca_object={o}"),
            )?;
        }
    }
    if let Some(devices) = r.devices() {
        super::apply_device_filter(dir, &rules_from_oci(devices)?)?;
    }
    if let Some(unified) = r.unified() {
        super::write_unified(dir, unified)?;
    }
    Ok(())
}

fn set_cpu(m: &V2Manager, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    let dir = m.dir();
    if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
        fs::write(dir, "cpu.weight", shares_to_weight(shares).to_string())?;
    }
    let quota = cpu.quota().filter(|q| *q != 0);
    let period = cpu.period().filter(|p| *p != 0);
    if quota.is_some() || period.is_some() {
        let mut v = match quota {
            Some(q) if q > 0 => q.to_string(),
            _ => "max".to_string(),
        };
        if let Some(p) = period {
            v.push_str(&format!(" {p}"));
        }
        fs::write(dir, "cpu.max", v)?;
    }
    if let Some(burst) = cpu.burst() {
        fs::write(dir, "cpu.max.burst", burst.to_string())?;
    }
    if let Some(idle) = cpu.idle() {
        fs::write(dir, "cpu.idle", idle.to_string())?;
    }
    if cpu.realtime_runtime().is_some_and(|r| r != 0)
        || cpu.realtime_period().is_some_and(|p| p != 0)
    {
        return Err(CgroupError::invalid(
            "cpu.realtimeRuntime",
            "realtime scheduling limits are not supported on cgroup v2",
        ));
    }
    if let Some(c) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.cpus", c)?;
    }
    if let Some(mm) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.mems", mm)?;
    }
    Ok(())
}

fn set_memory(m: &V2Manager, mem: &LinuxMemory) -> Result<(), CgroupError> {
    let dir = m.dir();
    let limit = mem.limit().filter(|l| *l != 0);
    // Swap first when both change: memory.swap.max is independent of memory.max on v2, but
    // validating before writing anything keeps a bad request from half-applying.
    let swap = swap_to_v2(mem.swap(), limit)?;
    if let Some(s) = swap {
        if dir.join("memory.swap.max").exists() {
            fs::write(dir, "memory.swap.max", v2_limit(s))?;
        } else if s != -1 {
            return Err(CgroupError::invalid(
                "memory.swap",
                "swap accounting is not available (no memory.swap.max)",
            ));
        }
    }
    if let Some(l) = limit {
        fs::write(dir, "memory.max", v2_limit(l))?;
    }
    if let Some(res) = mem.reservation().filter(|r| *r != 0) {
        fs::write(dir, "memory.low", v2_limit(res))?;
    }
    if mem.kernel().is_some() || mem.kernel_tcp().is_some() {
        tracing::warn!("memory.kernel/kernelTCP do not exist on cgroup v2; ignored");
    }
    if let Some(sw) = mem.swappiness() {
        if sw > 100 {
            return Err(CgroupError::invalid(
                "memory.swappiness",
                format!("{sw} is outside 0-100"),
            ));
        }
        tracing::warn!("memory.swappiness is not per-cgroup on cgroup v2; ignored");
    }
    if mem.disable_oom_killer() == Some(true) {
        tracing::warn!("memory.disableOOMKiller is not supported on cgroup v2; ignored");
    }
    Ok(())
}

fn set_io(m: &V2Manager, bio: &LinuxBlockIo) -> Result<(), CgroupError> {
    let dir = m.dir();
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(w) = bio.weight().filter(|w| *w != 0) {
        if bfq {
            // BFQ takes the v1 range directly.
            fs::write(dir, "io.bfq.weight", w.to_string())?;
        } else {
            fs::write(
                dir,
                "io.weight",
                format!("default {}", blkio_weight_to_io_weight(w)),
            )?;
        }
    }
    if bio.leaf_weight().is_some() {
        tracing::warn!("blockIO.leafWeight does not exist on cgroup v2; ignored");
    }
    for wd in bio.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            if bfq {
                fs::write(
                    dir,
                    "io.bfq.weight",
                    format!("{}:{} {w}", wd.major(), wd.minor()),
                )?;
            } else {
                let v = format!(
                    "{}:{} {}",
                    wd.major(),
                    wd.minor(),
                    blkio_weight_to_io_weight(w)
                );
                fs::write(dir, "io.weight", v)?;
            }
        }
    }
    let throttles = [
        (bio.throttle_read_bps_device(), "rbps"),
        (bio.throttle_write_bps_device(), "wbps"),
        (bio.throttle_read_iops_device(), "riops"),
        (bio.throttle_write_iops_device(), "wiops"),
    ];
    for (list, key) in throttles {
        for t in list.iter().flatten() {
            let rate = if t.rate() == 0 {
                "max".to_string()
            } else {
                t.rate().to_string()
            };
            fs::write(
                dir,
                "io.max",
                format!("{}:{} {key}={rate}", t.major(), t.minor()),
            )?;
        }
    }
    Ok(())
}
