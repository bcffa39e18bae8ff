//! Attaching the device filter to a cgroup v2 directory: load the program generated from the
//! rules, attach it with BPF_F_ALLOW_MULTI, then detach the programs it replaces (so there is
//! never a moment without a filter).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use crate::devices::ebpf::Program;
use crate::devices::{DevicePolicy, DeviceRule};
use crate::error::CgroupError;
use crate::sys::bpf;

fn open_dir(dir: &Path) -> Result<File, CgroupError> {
    File::open(dir).map_err(|source| CgroupError::Read {
        path: dir.to_path_buf(),
        source,
    })
}

fn bpf_err(op: &'static str, dir: &Path, source: std::io::Error) -> CgroupError {
    CgroupError::Bpf {
        op,
        path: dir.to_path_buf(),
        source,
        log: String::new(),
    }
}

/// Ids of the device programs attached directly to cgroup directory `dir`.
pub fn attached_device_programs(dir: &Path) -> Result<Vec<u32>, CgroupError> {
    let d = open_dir(dir)?;
    bpf::query_device_progs(d.as_fd()).map_err(|e| bpf_err("BPF_PROG_QUERY", dir, e))
}

/// Restricts device access of cgroup directory `dir` to `rules` (applied on top of deny-all),
/// replacing any device program attached before.
pub fn apply_device_filter(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    let program = Program::from_policy(&DevicePolicy::from_rules(rules))?;
    let prog = program.load()?;
    let d = open_dir(dir)?;
    let old_ids =
        bpf::query_device_progs(d.as_fd()).map_err(|e| bpf_err("BPF_PROG_QUERY", dir, e))?;
    let mut old = Vec::new();
    for id in old_ids {
        match bpf::prog_fd_by_id(id) {
            Ok(fd) => old.push(fd),
            // Detached and freed meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(bpf_err("BPF_PROG_GET_FD_BY_ID", dir, e)),
        }
    }
    bpf::attach_device_prog(d.as_fd(), prog.as_fd(), bpf::BPF_F_ALLOW_MULTI)
        .map_err(|e| bpf_err("BPF_PROG_ATTACH", dir, e))?;
    for fd in old {
        if let Err(e) = bpf::detach_device_prog(d.as_fd(), fd.as_fd())
            && e.raw_os_error() != Some(libc::ENOENT)
        {
            return Err(bpf_err("BPF_PROG_DETACH", dir, e));
        }
    }
    tracing::debug!(dir = %dir.display(), insns = program.insns.len(), "device filter attached");
    // The cgroup keeps the program alive; our fd can go.
    Ok(())
}
