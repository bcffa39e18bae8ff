//! cri-server: the CRI v1 gRPC server that kubelet and crictl talk to.

pub mod config;
pub mod container;
pub mod events;
pub mod grpc;
pub mod image;
pub mod network;
pub mod oci;
pub mod sandbox;
pub mod server;
pub mod stream;
