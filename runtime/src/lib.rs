//! kina-runtime: a native OCI runtime (runtime-spec 1.2) as a library, with a runc-compatible CLI.
//!
//! The crate is synchronous by design: it forks, so it must never run inside a tokio runtime.
//! Callers such as cri-server drive it as a binary, the way containerd drives runc.
//! All raw syscalls (`unsafe`) live in [`sys`]; everything else is safe Rust.
#![deny(unsafe_code)]

pub mod cli;
pub mod console;
pub mod container;
pub mod hooks;
pub mod init;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod spec;
pub mod state;
#[allow(unsafe_code)]
pub mod sys;
