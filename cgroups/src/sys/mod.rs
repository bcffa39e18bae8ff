//! The crate's only unsafe code: thin wrappers over system calls that std, nix and libc do not
//! wrap safely (the bpf(2) syscall).

#[allow(unsafe_code)]
pub(crate) mod bpf;
