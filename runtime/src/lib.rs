//! kina-runtime: a native OCI runtime library with a runc-compatible CLI.
