//! The persisted pod sandbox record.

use serde::{Deserialize, Serialize};

use crate::container::store::Record;

/// One pod sandbox, as persisted under the root dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    /// `<name>_<namespace>_<uid>_<attempt>`.
    pub name: String,
    /// The CRI `PodSandboxConfig`, protobuf-encoded.
    #[serde(with = "crate::container::b64")]
    pub config: Vec<u8>,
    pub handler: String,
    /// Ready (pause running, network set up) or not.
    pub ready: bool,
    pub created_at: i64,
    /// Pinned network namespace (empty for host network).
    pub netns: String,
    /// Pod IPs, primary first.
    pub ips: Vec<String>,
    pub pid: i32,
    pub monitor_pid: i32,
    /// Whether the network was attached (and must be detached).
    pub network_attached: bool,
}

impl Record for SandboxRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
}
