//! Syscalls for setting up the container environment: mounts, pivot_root, capabilities, seccomp, personality, ioprio.
