//! Cgroup management for kina-runtime: cgroups v1 (incl. hybrid) and v2, detected at run time.
