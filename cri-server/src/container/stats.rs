//! ContainerStats, ListContainerStats, PodSandboxStats and ListPodSandboxStats from the
//! container and pod cgroups (kina-cgroups, v1 or v2 detected at run time), the containers'
//! writable layers and the pod network namespace's interface counters.
//!
//! `usage_nano_cores` is the CPU time used since the previous sample of the same cgroup
//! divided by the wall time in between, as cAdvisor and containerd compute it; the first
//! sample reports none.

use std::collections::HashSet;
use std::path::PathBuf;

use k8s_cri::v1 as cri;
use kina_cgroups::Stats;

use crate::sandbox::SandboxRecord;
use crate::sandbox::status::labels_match;

use super::error::RuntimeError;
use super::record::{ContainerRecord, State};
use super::runtime::{Runtime, now_ns, process_alive};

fn u64v(value: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value })
}

/// Cgroup stats of the cgroup(s) process `pid` is in, or of the parent of those (the pod).
pub fn cgroup_stats(pid: i32, parent: bool) -> Option<Stats> {
    if pid <= 0 || !process_alive(pid) {
        return None;
    }
    let m = kina_cgroups::manager_for_pid(pid)
        .map_err(|e| tracing::debug!(pid, error = %e, "cgroup of process"))
        .ok()?;
    let r = if parent {
        let p = m.path().parent()?.to_path_buf();
        kina_cgroups::manager(&p).and_then(|m| m.stats())
    } else {
        m.stats()
    };
    r.map_err(|e| tracing::debug!(pid, error = %e, "cgroup stats"))
        .ok()
}

/// Interface counters of the network namespace of `pid` (`/proc/<pid>/net/dev`, which shows
/// the namespace of that process without entering it).
pub fn net_dev(pid: i32) -> Vec<cri::NetworkInterfaceUsage> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    parse_net_dev(&text)
}

fn parse_net_dev(text: &str) -> Vec<cri::NetworkInterfaceUsage> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if f.len() < 16 || name.trim() == "lo" {
                return None;
            }
            Some(cri::NetworkInterfaceUsage {
                name: name.trim().to_owned(),
                rx_bytes: u64v(f[0]),
                rx_errors: u64v(f[2]),
                tx_bytes: u64v(f[8]),
                tx_errors: u64v(f[10]),
            })
        })
        .collect()
}

impl Runtime {
    /// CPU usage with the rate since the previous sample under `key`.
    fn cpu_usage(&self, key: &str, ts: i64, s: &Stats) -> cri::CpuUsage {
        let total = s.cpu.usage_total_ns;
        let prev = self
            .cpu_samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), (ts, total));
        let nano_cores = prev.and_then(|(pts, ptotal)| {
            let dt = u64::try_from(ts - pts).ok().filter(|&d| d > 0)?;
            let used = total.checked_sub(ptotal)?;
            Some((u128::from(used) * 1_000_000_000 / u128::from(dt)) as u64)
        });
        cri::CpuUsage {
            timestamp: ts,
            usage_core_nano_seconds: u64v(total),
            usage_nano_cores: nano_cores.and_then(u64v),
        }
    }

    fn memory_usage(ts: i64, s: &Stats) -> cri::MemoryUsage {
        let m = &s.memory;
        cri::MemoryUsage {
            timestamp: ts,
            working_set_bytes: u64v(m.working_set),
            available_bytes: m
                .limit
                .filter(|&l| l < i64::MAX as u64 / 2)
                .and_then(|l| u64v(l.saturating_sub(m.working_set))),
            usage_bytes: u64v(m.usage),
            rss_bytes: u64v(m.rss),
            page_faults: u64v(m.page_faults),
            major_page_faults: u64v(m.major_page_faults),
        }
    }

    /// The overlay upper dir holding the container's writes.
    fn upper_dir(&self, id: &str) -> PathBuf {
        self.config
            .root_dir
            .join("overlay/containers")
            .join(id)
            .join("upper")
    }

    /// Stats of one container (cgroup figures only while it runs).
    pub fn stats_of(&self, c: &ContainerRecord) -> cri::ContainerStats {
        let cfg = c.decode_config();
        let ts = now_ns();
        let mut out = cri::ContainerStats {
            attributes: Some(cri::ContainerAttributes {
                id: c.id.clone(),
                metadata: cfg.metadata.clone(),
                labels: cfg.labels.clone(),
                annotations: cfg.annotations.clone(),
            }),
            ..Default::default()
        };
        if c.state == State::Running
            && let Some(s) = cgroup_stats(c.pid, false)
        {
            out.cpu = Some(self.cpu_usage(&c.id, ts, &s));
            out.memory = Some(Self::memory_usage(ts, &s));
        }
        let upper = self.upper_dir(&c.id);
        let mut acc = (0, 0);
        if let Err(e) = crate::image::snapshot::du(&upper, &mut acc, &mut HashSet::new()) {
            tracing::debug!(id = %c.id, error = %e, "writable layer usage");
        }
        out.writable_layer = Some(cri::FilesystemUsage {
            timestamp: ts,
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: self.config.root_dir.join("overlay").display().to_string(),
            }),
            used_bytes: u64v(acc.0),
            inodes_used: u64v(acc.1),
        });
        out
    }

    /// ContainerStats.
    pub fn container_stats(&self, id: &str) -> Result<cri::ContainerStats, RuntimeError> {
        let c = self.container(id)?;
        Ok(self.stats_of(&c))
    }

    /// ListContainerStats with the CRI filter (id, pod sandbox id, labels).
    pub fn list_container_stats(
        &self,
        f: Option<&cri::ContainerStatsFilter>,
    ) -> Vec<cri::ContainerStats> {
        self.containers
            .list()
            .into_iter()
            .map(|c| self.refresh_container(&c).unwrap_or(c))
            .filter(|c| f.is_none_or(|f| f.id.is_empty() || c.id.starts_with(&f.id)))
            .filter(|c| {
                f.is_none_or(|f| {
                    f.pod_sandbox_id.is_empty() || c.sandbox_id.starts_with(&f.pod_sandbox_id)
                })
            })
            .filter(|c| {
                f.is_none_or(|f| labels_match(&c.decode_config().labels, &f.label_selector))
            })
            .map(|c| self.stats_of(&c))
            .collect()
    }

    /// Stats of one pod: its cgroup (the parent of the pause container's), its network
    /// namespace and its containers.
    pub fn pod_stats_of(&self, s: &SandboxRecord) -> cri::PodSandboxStats {
        let cfg = s.decode_config();
        let ts = now_ns();
        let mut linux = cri::LinuxPodSandboxStats::default();
        if s.ready
            && let Some(st) = cgroup_stats(s.pid, true)
        {
            linux.cpu = Some(self.cpu_usage(&format!("pod:{}", s.id), ts, &st));
            linux.memory = Some(Self::memory_usage(ts, &st));
            linux.process = Some(cri::ProcessUsage {
                timestamp: ts,
                process_count: u64v(st.pids.current),
            });
        }
        if s.ready && s.pid > 0 {
            let ifaces = net_dev(s.pid);
            linux.network = Some(cri::NetworkUsage {
                timestamp: ts,
                default_interface: ifaces
                    .iter()
                    .find(|i| i.name == "eth0")
                    .or_else(|| ifaces.first())
                    .cloned(),
                interfaces: ifaces,
            });
        }
        linux.containers = self
            .containers
            .list()
            .into_iter()
            .filter(|c| c.sandbox_id == s.id)
            .map(|c| self.stats_of(&self.refresh_container(&c).unwrap_or(c)))
            .collect();
        cri::PodSandboxStats {
            attributes: Some(cri::PodSandboxAttributes {
                id: s.id.clone(),
                metadata: cfg.metadata.clone(),
                labels: cfg.labels.clone(),
                annotations: cfg.annotations.clone(),
            }),
            linux: Some(linux),
            ..Default::default()
        }
    }

    /// PodSandboxStats.
    pub fn pod_sandbox_stats(&self, id: &str) -> Result<cri::PodSandboxStats, RuntimeError> {
        let s = self.sandboxes.get(id)?;
        Ok(self.pod_stats_of(&s))
    }

    /// ListPodSandboxStats with the CRI filter (id, labels).
    pub fn list_pod_sandbox_stats(
        &self,
        f: Option<&cri::PodSandboxStatsFilter>,
    ) -> Vec<cri::PodSandboxStats> {
        self.sandboxes
            .list()
            .into_iter()
            .filter(|s| f.is_none_or(|f| f.id.is_empty() || s.id.starts_with(&f.id)))
            .filter(|s| {
                f.is_none_or(|f| labels_match(&s.decode_config().labels, &f.label_selector))
            })
            .map(|s| self.pod_stats_of(&s))
            .collect()
    }

    /// Forgets the CPU samples of removed containers and sandboxes.
    pub fn forget_cpu_sample(&self, id: &str) {
        let mut m = self.cpu_samples.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(id);
        m.remove(&format!("pod:{id}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_net_dev_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
eth0:    2048      10    1    0    0     0          0         0      4096      20    2    0    0     0       0          0\n";
        let v = parse_net_dev(text);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "eth0");
        assert_eq!(v[0].rx_bytes, u64v(2048));
        assert_eq!(v[0].rx_errors, u64v(1));
        assert_eq!(v[0].tx_bytes, u64v(4096));
        assert_eq!(v[0].tx_errors, u64v(2));
    }
}
