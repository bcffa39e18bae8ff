//! kina's cluster add-ons, the logic behind two daemons kina deploys into every cluster:
//!
//! - [`net`]: `kina-net`, a kindnet-like CNI daemon — writes the node's CNI config from its pod
//!   CIDRs, routes other nodes' pod CIDRs via their InternalIPs and masquerades pod traffic that
//!   leaves the cluster.
//! - [`storage`]: `kina-local-path`, a host-path dynamic provisioner serving the default
//!   StorageClass `standard` (provisioner `rancher.io/local-path`).
//!
//! Both keep the Kubernetes API side thin: the decisions (what config, which routes, which PV)
//! are pure functions of the watched objects, unit-tested here and exercised for real under
//! `tests/`.

pub mod kube_client;
pub mod logging;
pub mod net;
pub mod storage;
