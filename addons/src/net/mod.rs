//! `kina-net`: kina's kindnet-like CNI daemon, one per node (DaemonSet, host network).
//!
//! For its own node it writes `/etc/cni/net.d/10-kindnet.conflist` (`ptp` + `host-local` over
//! the node's `spec.podCIDRs` + `portmap`); for every other node it keeps a route to that
//! node's pod CIDRs via its InternalIP; and it masquerades pod traffic leaving the cluster
//! (nftables table `inet kina-net`). Each concern is a module whose decision is a pure
//! function of the [`NodeInfo`] list; [`sync::NetSync`] applies them, [`watch`] feeds it from
//! the Kubernetes API.

pub mod config;
pub mod conflist;
pub mod masq;
pub mod node;
pub mod routes;
pub mod sync;
pub mod watch;

pub use config::NetConfig;
pub use node::NodeInfo;
