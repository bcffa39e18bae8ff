//! Pod sandboxes: the record ([`record`]), per-pod files ([`files`]), RunPodSandbox ([`run`]),
//! Stop/RemovePodSandbox ([`stop`]) and status/list views ([`status`]).

pub mod files;
pub mod record;
pub mod run;
pub mod status;
pub mod stop;

pub use record::SandboxRecord;

use k8s_cri::v1 as cri;
use prost::Message;

impl SandboxRecord {
    /// The CRI config this sandbox was created with.
    pub fn decode_config(&self) -> cri::PodSandboxConfig {
        cri::PodSandboxConfig::decode(self.config.as_slice()).unwrap_or_default()
    }
}
