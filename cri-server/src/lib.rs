//! cri-server: the CRI v1 gRPC server.
