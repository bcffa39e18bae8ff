//! The crate's error type: every variant names the cgroup file or directory involved and,
//! for writes, the value that was written.

use std::io;
use std::path::PathBuf;

/// Errors returned by every fallible operation in this crate.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Writing a value to a cgroup control file failed.
    #[error("write {value} to {}: {}", path.display(), errno_text(source))]
    Write {
        /// The control file.
        path: PathBuf,
        /// The value that was written.
        value: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// Reading a cgroup control file (or /proc file) failed.
    #[error("read {}: {}", path.display(), errno_text(source))]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A control file held content we could not parse.
    #[error("parse {}: unexpected content {content:?}: {reason}", path.display())]
    Parse {
        /// The file that was parsed.
        path: PathBuf,
        /// The offending content (one line or value).
        content: String,
        /// What was expected.
        reason: String,
    },
    /// Creating a cgroup directory failed.
    #[error("create cgroup directory {}: {}", path.display(), errno_text(source))]
    Create {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Removing a cgroup directory failed (after retries on EBUSY).
    #[error("remove cgroup directory {}: {}", path.display(), errno_text(source))]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// linux.cgroupsPath (or a container id used to derive it) is not acceptable.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A resource in linux.resources is invalid or cannot be applied on this host.
    #[error("invalid resource {field}: {reason}")]
    InvalidResource {
        /// The OCI field, e.g. `memory.swap`.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// No usable cgroup filesystem is mounted.
    #[error("no cgroup filesystem found in {}", path.display())]
    NoCgroupMount {
        /// The mountinfo file that was examined.
        path: PathBuf,
    },
    /// A controller needed for a requested resource is not available.
    #[error("cgroup controller {controller} is not available (needed for {needed_for})")]
    ControllerMissing {
        /// Controller name, e.g. `hugetlb`.
        controller: String,
        /// The resource that needs it.
        needed_for: String,
    },
    /// An operation did not complete in time (e.g. freezing).
    #[error("timed out after {waited_ms} ms waiting for {what} in {}", path.display())]
    Timeout {
        /// What was awaited.
        what: String,
        /// The cgroup directory.
        path: PathBuf,
        /// How long we waited.
        waited_ms: u64,
    },
    /// A bpf(2) operation failed.
    #[error("bpf {op} on {}: {}{}", path.display(), errno_text(source), verifier_log(log))]
    Bpf {
        /// The bpf command, e.g. `BPF_PROG_LOAD`.
        op: &'static str,
        /// The cgroup directory (or the program description for loads).
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: io::Error,
        /// The verifier log, if one was produced.
        log: String,
    },
}

fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        // "Invalid argument" instead of "Invalid argument (os error 22)".
        Some(code) => {
            let full = io::Error::from_raw_os_error(code).to_string();
            match full.rfind(" (os error") {
                Some(idx) => full[..idx].to_string(),
                None => full,
            }
        }
        None => e.to_string(),
    }
}

fn verifier_log(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("; verifier log: {}", log.trim())
    }
}

impl CgroupError {
    /// The OS error number behind this error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Write { source, .. }
            | Self::Read { source, .. }
            | Self::Create { source, .. }
            | Self::Remove { source, .. }
            | Self::Bpf { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidResource {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_error_names_file_and_value() {
        let e = CgroupError::Write {
            path: "/sys/fs/cgroup/cpu/kina/x/cpu.cfs_quota_us".into(),
            value: "100".into(),
            source: io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert_eq!(
            e.to_string(),
            "write 100 to /sys/fs/cgroup/cpu/kina/x/cpu.cfs_quota_us: Invalid argument"
        );
        assert_eq!(e.errno(), Some(libc::EINVAL));
    }
}
