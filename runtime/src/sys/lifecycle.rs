//! Syscalls for the container lifecycle: fork/clone, setns, subreaper, pdeath signal, pty, SCM_RIGHTS.
