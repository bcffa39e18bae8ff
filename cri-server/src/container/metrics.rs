//! ListMetricDescriptors and ListPodSandboxMetrics: cAdvisor-named metrics computed from the
//! same cgroup and network figures as the stats RPCs (see [`super::stats`]). The CRI carries
//! integer values, so second counters are whole seconds (as CRI-O reports them).

use k8s_cri::v1 as cri;

use super::runtime::{Runtime, now_ns};

const NS_PER_SEC: u64 = 1_000_000_000;

/// Name, help, label keys and whether it is a counter.
const DESCRIPTORS: &[(&str, &str, &[&str], bool)] = &[
    (
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        &["container", "pod", "namespace"],
        true,
    ),
    (
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        &["container", "pod", "namespace"],
        false,
    ),
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        &["container", "pod", "namespace"],
        false,
    ),
    (
        "container_memory_rss",
        "Size of RSS in bytes.",
        &["container", "pod", "namespace"],
        false,
    ),
    (
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures (page faults).",
        &["container", "pod", "namespace", "failure_type"],
        true,
    ),
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received.",
        &["pod", "namespace", "interface"],
        true,
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted.",
        &["pod", "namespace", "interface"],
        true,
    ),
    (
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving.",
        &["pod", "namespace", "interface"],
        true,
    ),
    (
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting.",
        &["pod", "namespace", "interface"],
        true,
    ),
    (
        "container_processes",
        "Number of processes running inside the container.",
        &["container", "pod", "namespace"],
        false,
    ),
];

/// ListMetricDescriptors.
pub fn descriptors() -> Vec<cri::MetricDescriptor> {
    DESCRIPTORS
        .iter()
        .map(|(name, help, keys, _)| cri::MetricDescriptor {
            name: (*name).to_owned(),
            help: (*help).to_owned(),
            label_keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        })
        .collect()
}

fn metric(name: &str, ts: i64, labels: &[&str], value: Option<u64>) -> Option<cri::Metric> {
    let counter = DESCRIPTORS
        .iter()
        .find(|d| d.0 == name)
        .is_some_and(|d| d.3);
    Some(cri::Metric {
        name: name.to_owned(),
        timestamp: ts,
        metric_type: if counter {
            cri::MetricType::Counter
        } else {
            cri::MetricType::Gauge
        } as i32,
        label_values: labels.iter().map(|l| (*l).to_owned()).collect(),
        value: Some(cri::UInt64Value { value: value? }),
    })
}

fn uv(v: &Option<cri::UInt64Value>) -> Option<u64> {
    v.as_ref().map(|v| v.value)
}

/// CPU and memory metrics of one cgroup, labelled `container, pod, namespace`.
fn usage_metrics(
    ts: i64,
    labels: &[&str],
    cpu: Option<&cri::CpuUsage>,
    mem: Option<&cri::MemoryUsage>,
) -> Vec<cri::Metric> {
    let mut out = Vec::new();
    if let Some(c) = cpu {
        out.extend(metric(
            "container_cpu_usage_seconds_total",
            ts,
            labels,
            uv(&c.usage_core_nano_seconds).map(|n| n / NS_PER_SEC),
        ));
    }
    if let Some(m) = mem {
        out.extend(metric(
            "container_memory_working_set_bytes",
            ts,
            labels,
            uv(&m.working_set_bytes),
        ));
        out.extend(metric(
            "container_memory_usage_bytes",
            ts,
            labels,
            uv(&m.usage_bytes),
        ));
        out.extend(metric("container_memory_rss", ts, labels, uv(&m.rss_bytes)));
        let mut with = |kind: &str, v| {
            let mut l: Vec<&str> = labels.to_vec();
            l.push(kind);
            out.extend(metric("container_memory_failures_total", ts, &l, v));
        };
        with("pgfault", uv(&m.page_faults));
        with("pgmajfault", uv(&m.major_page_faults));
    }
    out
}

impl Runtime {
    /// ListPodSandboxMetrics for every ready pod.
    pub fn pod_sandbox_metrics(&self) -> Vec<cri::PodSandboxMetrics> {
        self.sandboxes
            .list()
            .into_iter()
            .filter(|s| s.ready)
            .map(|s| {
                let st = self.pod_stats_of(&s);
                let ts = now_ns();
                let meta = s.decode_config().metadata.unwrap_or_default();
                let (pod, ns) = (meta.name.as_str(), meta.namespace.as_str());
                let linux = st.linux.unwrap_or_default();
                let mut metrics = usage_metrics(
                    ts,
                    &["", pod, ns],
                    linux.cpu.as_ref(),
                    linux.memory.as_ref(),
                );
                if let Some(p) = &linux.process {
                    metrics.extend(metric(
                        "container_processes",
                        ts,
                        &["", pod, ns],
                        uv(&p.process_count),
                    ));
                }
                for i in linux.network.iter().flat_map(|n| n.interfaces.iter()) {
                    let l = [pod, ns, i.name.as_str()];
                    for (name, v) in [
                        ("container_network_receive_bytes_total", &i.rx_bytes),
                        ("container_network_transmit_bytes_total", &i.tx_bytes),
                        ("container_network_receive_errors_total", &i.rx_errors),
                        ("container_network_transmit_errors_total", &i.tx_errors),
                    ] {
                        metrics.extend(metric(name, ts, &l, uv(v)));
                    }
                }
                let container_metrics = linux
                    .containers
                    .iter()
                    .map(|c| {
                        let a = c.attributes.clone().unwrap_or_default();
                        let name = a.metadata.map(|m| m.name).unwrap_or_default();
                        cri::ContainerMetrics {
                            container_id: a.id,
                            metrics: usage_metrics(
                                ts,
                                &[name.as_str(), pod, ns],
                                c.cpu.as_ref(),
                                c.memory.as_ref(),
                            ),
                        }
                    })
                    .collect();
                cri::PodSandboxMetrics {
                    pod_sandbox_id: s.id.clone(),
                    metrics,
                    container_metrics,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_are_whole_seconds_and_failures_carry_their_type() {
        let cpu = cri::CpuUsage {
            timestamp: 1,
            usage_core_nano_seconds: Some(cri::UInt64Value {
                value: 2_500_000_000,
            }),
            usage_nano_cores: None,
        };
        let mem = cri::MemoryUsage {
            page_faults: Some(cri::UInt64Value { value: 7 }),
            ..Default::default()
        };
        let m = usage_metrics(1, &["c", "p", "n"], Some(&cpu), Some(&mem));
        let cpu_m = m
            .iter()
            .find(|m| m.name == "container_cpu_usage_seconds_total")
            .unwrap();
        assert_eq!(cpu_m.value, Some(cri::UInt64Value { value: 2 }));
        assert_eq!(cpu_m.metric_type, cri::MetricType::Counter as i32);
        let f = m
            .iter()
            .find(|m| m.name == "container_memory_failures_total")
            .unwrap();
        assert_eq!(f.label_values, ["c", "p", "n", "pgfault"]);
        assert_eq!(f.value, Some(cri::UInt64Value { value: 7 }));
        // Absent figures produce no sample rather than a zero.
        assert!(!m.iter().any(|m| m.name == "container_memory_rss"));
        for d in descriptors() {
            assert!(d.name.starts_with("container_"), "{}", d.name);
        }
    }
}
