//! Pod networking: CNI (libcni behaviour) and network namespaces.
//!
//! - [`conf`]: network config lists from the conf dir (libcni file rules).
//! - [`exec`]: running one plugin with the `CNI_*` environment.
//! - [`cni`]: [`CniNetwork`] ADD/DEL/CHECK with chaining, rollback and the result cache.
//! - [`result`]: results of every CNI version in one type.
//! - [`cache`]: the on-disk result cache.
//! - [`request`]: what a pod asks for and gets.
//! - [`netns`]: pinned pod network namespaces.
//! - [`gc`]: CNI 1.1 STATUS/GC and removal of stale cached attachments.
//! - [`watch`]: [`CniManager`], NetworkReady tracking of the conf dir, UpdateRuntimeConfig.
//! - [`template`]: containerd-style `conf_template` rendering.

pub mod cache;
pub mod cni;
pub mod conf;
pub mod error;
pub mod exec;
pub mod gc;
pub mod netns;
pub mod request;
pub mod result;
pub mod template;
pub mod watch;

pub use cni::{CniConfig, CniNetwork};
pub use error::{CniError, PluginError};
pub use gc::GcReport;
pub use netns::{NetNs, NetnsError};
pub use request::{
    Bandwidth, DnsConfig, IpRange, PodNetworkRequest, PodNetworkStatus, PortMapping,
};
pub use result::{CniResult, IpConfig};
pub use watch::{CniManager, NetworkState};
