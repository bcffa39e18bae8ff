//! kina: a kind-compatible local Kubernetes cluster tool whose nodes run on kina's native runtime.

pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod kubeadm;
pub mod kubeconfig;
pub mod network;
pub mod node_image;
pub mod provider;
pub mod state;
pub mod status;
