//! Executing one CNI plugin: finding its binary in the bin dirs, the `CNI_*` environment,
//! the config on stdin, and turning its exit status and output into a result or a
//! [`CniError`] that names the network and the plugin.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::error::{CniError, PluginError};

/// The CNI verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Add,
    Del,
    Check,
    Status,
    Gc,
}

impl Verb {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Add => "ADD",
            Verb::Del => "DEL",
            Verb::Check => "CHECK",
            Verb::Status => "STATUS",
            Verb::Gc => "GC",
        }
    }
}

/// Where a plugin runs and for whom (the per-attachment `CNI_*` variables).
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    /// `CNI_NETNS`; empty when the netns is gone (allowed for DEL).
    pub netns: &'a str,
    pub ifname: &'a str,
    pub cni_args: &'a str,
    pub bin_dirs: &'a [PathBuf],
    pub timeout: Duration,
}

/// How much of a crashed plugin's stderr goes into the error.
const STDERR_TAIL: usize = 2048;

/// The plugin binary for `plugin_type`: the first executable file of that name in `dirs`.
pub fn find_plugin(dirs: &[PathBuf], plugin_type: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dirs.iter().map(|d| d.join(plugin_type)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// `CNI_PATH` / the dirs for messages.
pub fn join_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    match s.char_indices().rev().nth(STDERR_TAIL) {
        Some((i, _)) => format!("...{}", &s[i..]),
        None => s.to_string(),
    }
}

/// Runs `plugin_type` with `verb` and `config` on stdin; returns its stdout on success.
pub async fn run(
    inv: &Invocation<'_>,
    verb: Verb,
    plugin_type: &str,
    config: &Value,
) -> Result<Vec<u8>, CniError> {
    let plugin = plugin_type.to_string();
    let network = inv.network.to_string();
    let path = find_plugin(inv.bin_dirs, plugin_type).ok_or_else(|| CniError::PluginNotFound {
        network: network.clone(),
        plugin: plugin.clone(),
        dirs: join_dirs(inv.bin_dirs),
    })?;
    let exec_err = |path: &Path, source| CniError::Exec {
        network: network.clone(),
        plugin: plugin.clone(),
        path: path.to_path_buf(),
        source,
    };
    let stdin = serde_json::to_vec(config).expect("plugin config serializes");
    tracing::debug!(network = %network, plugin = %plugin, verb = verb.as_str(),
        container = inv.container_id, "running CNI plugin");
    let mut child = Command::new(&path)
        .env("CNI_COMMAND", verb.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_ARGS", inv.cni_args)
        .env("CNI_PATH", join_dirs(inv.bin_dirs))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| exec_err(&path, e))?;
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let io = async {
        // A plugin that exits without reading stdin gives EPIPE; its exit status says more.
        let _ = pipe.write_all(&stdin).await;
        drop(pipe);
        child.wait_with_output().await
    };
    let output = match tokio::time::timeout(inv.timeout, io).await {
        Ok(out) => out.map_err(|e| exec_err(&path, e))?,
        Err(_) => {
            return Err(CniError::Timeout {
                network,
                plugin,
                command: verb.as_str(),
                timeout: inv.timeout,
            });
        }
    };
    if output.status.success() {
        return Ok(output.stdout);
    }
    match PluginError::parse(&output.stdout) {
        Some(error) => Err(CniError::Plugin {
            network,
            plugin,
            command: verb.as_str(),
            error,
        }),
        None => {
            let mut stderr = tail(&output.stderr);
            if stderr.is_empty() {
                stderr = tail(&output.stdout);
            }
            Err(CniError::PluginCrashed {
                network,
                plugin,
                command: verb.as_str(),
                status: output.status.to_string(),
                stderr,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn inv(dirs: &[PathBuf]) -> Invocation<'_> {
        Invocation {
            network: "net1",
            container_id: "cid1",
            netns: "/run/netns/x",
            ifname: "eth0",
            cni_args: "IgnoreUnknown=1;K8S_POD_NAME=p",
            bin_dirs: dirs,
            timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn passes_environment_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "echoenv",
            r#"read -r conf; printf '{"cmd":"%s","cid":"%s","ns":"%s","if":"%s","args":"%s","path":"%s","conf":%s}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" "$conf""#,
        );
        let dirs = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        let out = run(&inv(&dirs), Verb::Add, "echoenv", &json!({"a": 1}))
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["cmd"], "ADD");
        assert_eq!(v["cid"], "cid1");
        assert_eq!(v["ns"], "/run/netns/x");
        assert_eq!(v["if"], "eth0");
        assert_eq!(v["args"], "IgnoreUnknown=1;K8S_POD_NAME=p");
        assert_eq!(v["path"], format!("/nonexistent:{}", dir.path().display()));
        assert_eq!(v["conf"], json!({"a": 1}));
    }

    #[tokio::test]
    async fn failures_are_parsed_and_name_the_plugin() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "fails",
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"busy","details":"lock held"}'; exit 1"#,
        );
        script(dir.path(), "crashes", "echo 'panic: boom' >&2; exit 2");
        script(dir.path(), "hangs", "exec sleep 30");
        let dirs = vec![dir.path().to_path_buf()];
        let err = run(&inv(&dirs), Verb::Del, "fails", &json!({}))
            .await
            .unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(
            err.to_string(),
            "network net1: plugin fails failed on DEL: busy: lock held (code 11: try again later)"
        );
        let err = run(&inv(&dirs), Verb::Add, "crashes", &json!({}))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CniError::PluginCrashed { stderr, .. } if stderr == "panic: boom"),
            "{err}"
        );
        let err = run(&inv(&dirs), Verb::Add, "missing", &json!({}))
            .await
            .unwrap_err();
        assert!(
            err.is_not_found() && err.to_string().contains("\"missing\""),
            "{err}"
        );
        let mut i = inv(&dirs);
        i.timeout = Duration::from_millis(300);
        let err = run(&i, Verb::Add, "hangs", &json!({})).await.unwrap_err();
        assert!(matches!(err, CniError::Timeout { .. }), "{err}");
    }
}
