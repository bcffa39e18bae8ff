//! ExecSync: the container's process settings with the requested command, run through the
//! runtime's `exec`, output captured, killed when the timeout strikes.

use std::sync::Arc;
use std::time::Duration;

use crate::oci::ExecOutput;

use super::error::{RuntimeError, io};
use super::record::State;
use super::runtime::Runtime;

/// Largest stdout or stderr returned (like the kubelet's 16 MiB cap).
pub const MAX_OUTPUT: usize = 16 << 20;

impl Runtime {
    /// ExecSync.
    pub async fn exec_sync(
        self: &Arc<Self>,
        id: &str,
        cmd: Vec<String>,
        timeout_secs: i64,
    ) -> Result<ExecOutput, RuntimeError> {
        if cmd.is_empty() {
            return Err(RuntimeError::InvalidArgument("cmd: required".into()));
        }
        let c = self.container(id)?;
        if c.state != State::Running {
            return Err(RuntimeError::FailedPrecondition(format!(
                "container {} is not running",
                c.id
            )));
        }
        let cfg = self.container_dir(&c.id).join("config.json");
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&cfg).map_err(io("read", &cfg))?)
                .map_err(|e| RuntimeError::Internal(format!("{}: {e}", cfg.display())))?;
        let mut process = spec["process"].clone();
        process["args"] = serde_json::json!(cmd);
        process["terminal"] = serde_json::json!(false);
        let (_, backend) = self.backend(&c.handler)?;
        let timeout = (timeout_secs > 0).then(|| Duration::from_secs(timeout_secs as u64));
        let mut out = backend.exec(&c.id, &process, timeout).await?;
        out.stdout.truncate(MAX_OUTPUT);
        out.stderr.truncate(MAX_OUTPUT);
        Ok(out)
    }
}
