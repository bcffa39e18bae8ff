//! PodSandboxStatus and ListPodSandbox views of sandbox records.

use k8s_cri::v1 as cri;

use crate::container::runtime::Runtime;

use super::SandboxRecord;
use super::run::ns_options;

/// Whether `labels` has every `selector` pair.
pub fn labels_match(
    labels: &std::collections::HashMap<String, String>,
    selector: &std::collections::HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

impl SandboxRecord {
    /// The CRI state value.
    pub fn cri_state(&self) -> i32 {
        if self.ready { 0 } else { 1 }
    }

    /// PodSandboxStatus.
    pub fn status(&self) -> cri::PodSandboxStatus {
        let c = self.decode_config();
        let mut ips = self.ips.iter();
        cri::PodSandboxStatus {
            id: self.id.clone(),
            metadata: c.metadata.clone(),
            state: self.cri_state(),
            created_at: self.created_at,
            network: Some(cri::PodSandboxNetworkStatus {
                ip: ips.next().cloned().unwrap_or_default(),
                additional_ips: ips.map(|ip| cri::PodIp { ip: ip.clone() }).collect(),
            }),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: Some(ns_options(&c)),
                }),
            }),
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
            runtime_handler: self.handler.clone(),
        }
    }

    /// ListPodSandbox entry.
    pub fn summary(&self) -> cri::PodSandbox {
        let c = self.decode_config();
        cri::PodSandbox {
            id: self.id.clone(),
            metadata: c.metadata,
            state: self.cri_state(),
            created_at: self.created_at,
            labels: c.labels,
            annotations: c.annotations,
            runtime_handler: self.handler.clone(),
        }
    }
}

impl Runtime {
    /// ListPodSandbox with the CRI filter.
    pub fn list_sandboxes(&self, f: Option<&cri::PodSandboxFilter>) -> Vec<cri::PodSandbox> {
        let mut out: Vec<cri::PodSandbox> = self
            .sandboxes
            .list()
            .into_iter()
            .filter(|s| match f {
                None => true,
                Some(f) => {
                    (f.id.is_empty() || s.id.starts_with(&f.id))
                        && f.state.as_ref().is_none_or(|st| st.state == s.cri_state())
                }
            })
            .map(|s| s.summary())
            .filter(|s| f.is_none_or(|f| labels_match(&s.labels, &f.label_selector)))
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        out
    }
}
