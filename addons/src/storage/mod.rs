//! `kina-local-path`: a host-path dynamic provisioner for the default StorageClass `standard`
//! (provisioner `rancher.io/local-path`, `WaitForFirstConsumer`), one instance per node.
//!
//! The external-provisioner protocol (sig-storage-lib-external-provisioner): the scheduler
//! picks a node for the first pod using a claim and records it in the claim's
//! `volume.kubernetes.io/selected-node` annotation; kube-controller-manager's PV controller
//! then sets `volume.kubernetes.io/storage-provisioner` to the class's provisioner and waits.
//! The instance on the selected node creates a directory under the storage root and a
//! PersistentVolume (hostPath, node affinity, `claimRef` to the claim, annotation
//! `pv.kubernetes.io/provisioned-by`); the PV controller binds the two. When a claim is
//! deleted its PV becomes `Released`; with reclaim policy `Delete` the instance of that node
//! removes the directory, then the PV. Decisions are pure ([`claim`], [`pv`]); [`volume_dir`]
//! touches the disk, [`controller`] the API.

pub mod claim;
pub mod controller;
pub mod naming;
pub mod pv;
pub mod volume_dir;

/// The provisioner name kind's StorageClass `standard` uses.
pub const PROVISIONER: &str = "rancher.io/local-path";
/// Where volumes live on each node.
pub const DEFAULT_STORAGE_DIR: &str = "/var/local-path-provisioner";
/// Set by the scheduler on claims of `WaitForFirstConsumer` classes.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Set by the PV controller: which provisioner is to provision the claim.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The deprecated spelling the PV controller still sets too.
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// Names the provisioner of a PV; the PV controller leaves its deletion to that provisioner.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The node label PV node affinity selects on.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
