//! gRPC services: one file per group of RPCs, translating CRI <-> domain types.
