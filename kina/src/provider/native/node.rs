//! One node container of the native provider: exec through kina-runtime, addresses from
//! the cluster record, image loading into the node's cri-server, log collection.

use std::path::{Path, PathBuf};

use super::NativeError;
use super::logs;
use super::runtime::RuntimeCli;
use crate::provider::{ExecOutput, Node, NodeNetwork, ProviderError, Role};
use crate::state::NodeRecord;

/// Where archives are staged inside the node (its /var is a host directory).
const STAGING: &str = "var/cache/kina-load";

/// A node of the native provider.
#[derive(Debug, Clone)]
pub struct NativeNode {
    cluster: String,
    record: NodeRecord,
    runtime: RuntimeCli,
    dir: PathBuf,
}

impl NativeNode {
    /// The node `record` of `cluster`, with its bundle in `dir`.
    pub fn new(cluster: &str, record: NodeRecord, runtime: RuntimeCli, dir: PathBuf) -> Self {
        Self {
            cluster: cluster.to_string(),
            record,
            runtime,
            dir,
        }
    }

    /// The cluster the node belongs to.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The node's bundle directory on the host.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn run_checked(&self, argv: &[&str]) -> Result<ExecOutput, NativeError> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let out = self.runtime.exec(&self.record.name, &argv, None)?;
        if out.status != 0 {
            return Err(NativeError::Runtime {
                node: self.record.name.clone(),
                what: format!("exec {}", argv.join(" ")),
                output: format!(
                    "exit status {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(out)
    }
}

impl Node for NativeNode {
    fn name(&self) -> &str {
        &self.record.name
    }

    fn role(&self) -> Role {
        self.record.role
    }

    fn exec(&self, argv: &[String], stdin: Option<&[u8]>) -> Result<ExecOutput, ProviderError> {
        Ok(self.runtime.exec(&self.record.name, argv, stdin)?)
    }

    fn exec_interactive(
        &self,
        argv: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<i32, ProviderError> {
        Ok(self
            .runtime
            .exec_interactive(&self.record.name, argv, tty, stdin)?)
    }

    fn network(&self) -> Result<NodeNetwork, ProviderError> {
        Ok(NodeNetwork {
            ipv4: self.record.ipv4,
            ipv6: self.record.ipv6,
        })
    }

    fn load_image_archive(&self, archive: &Path) -> Result<(), ProviderError> {
        // Stage the archive on the node's /var (a hard link when the file is on the same
        // filesystem, else a copy) and let the node's cri-server import it.
        let staging = self.dir.join(STAGING);
        std::fs::create_dir_all(&staging).map_err(|e| NativeError::io("create", &staging, e))?;
        let file = format!("{}-{}.tar", std::process::id(), rand_suffix());
        let staged = staging.join(&file);
        if std::fs::hard_link(archive, &staged).is_err() {
            std::fs::copy(archive, &staged).map_err(|e| NativeError::io("copy", archive, e))?;
        }
        let inside = format!("/{STAGING}/{file}");
        let result = self.run_checked(&[
            "cri-server",
            "--config",
            "/etc/cri-server/config.toml",
            "images",
            "import",
            &inside,
        ]);
        let _ = std::fs::remove_file(&staged);
        result.map_err(|e| match e {
            NativeError::Runtime { node, output, .. } => NativeError::Runtime {
                node,
                what: format!("importing {} into cri-server", archive.display()),
                output,
            },
            e => e,
        })?;
        Ok(())
    }

    fn collect_logs(&self, dir: &Path) -> Result<(), ProviderError> {
        Ok(logs::collect(self, &self.runtime, dir)?)
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
