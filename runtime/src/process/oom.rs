//! `process.oomScoreAdj`: written to /proc/self/oom_score_adj. Lowering it needs
//! CAP_SYS_RESOURCE; when the kernel refuses (kubelet asks for -998/-999 on hosts without it)
//! the current value is kept and a warning logged, instead of failing the container.

use std::path::Path;

use super::ProcessError;

const PATH: &str = "/proc/self/oom_score_adj";

/// Valid range of oom_score_adj.
pub const RANGE: std::ops::RangeInclusive<i32> = -1000..=1000;

/// Reads the current value.
pub fn current() -> Result<i32, ProcessError> {
    let text = std::fs::read_to_string(PATH).map_err(|e| ProcessError::Io {
        op: "read",
        path: PATH.into(),
        source: e,
    })?;
    text.trim().parse().map_err(|_| ProcessError::Invalid {
        field: PATH.into(),
        reason: format!("unexpected content {text:?}"),
    })
}

/// Sets the score; returns the value actually in effect.
pub fn apply(value: i32) -> Result<i32, ProcessError> {
    if !RANGE.contains(&value) {
        return Err(ProcessError::Invalid {
            field: "process.oomScoreAdj".into(),
            reason: format!("{value} is outside -1000..=1000"),
        });
    }
    match std::fs::write(Path::new(PATH), value.to_string()) {
        Ok(()) => Ok(value),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {
            let now = current()?;
            tracing::warn!(
                requested = value,
                kept = now,
                "the kernel refused oom_score_adj {value} (lowering it needs CAP_SYS_RESOURCE); keeping {now}"
            );
            Ok(now)
        }
        Err(e) => Err(ProcessError::Io {
            op: "write",
            path: PATH.into(),
            source: e,
        }),
    }
}
