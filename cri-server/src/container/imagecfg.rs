//! What a container takes from its image: the config (`Entrypoint`, `Cmd`, `Env`, `WorkingDir`,
//! `User`, `StopSignal`) and the rootfs (an overlay of the image's snapshot chain).

use std::path::Path;

use serde_json::Value;

use crate::container::error::RuntimeError;
use crate::image::{ImageManager, ImageView, RootfsMount};

/// The runtime-relevant part of an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub stop_signal: String,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl ImageConfig {
    /// From the image config JSON document.
    pub fn from_json(doc: &Value) -> Self {
        let c = &doc["config"];
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
        Self {
            entrypoint: strings(&c["Entrypoint"]),
            cmd: strings(&c["Cmd"]),
            env: strings(&c["Env"]),
            working_dir: s("WorkingDir"),
            user: s("User"),
            stop_signal: s("StopSignal"),
        }
    }

    /// Resolves `spec` in the store: NotFound names the image.
    pub fn resolve(images: &ImageManager, spec: &str) -> Result<(ImageView, Self), RuntimeError> {
        let view = images.resolve(spec).map_err(|e| match e {
            crate::image::Error::NotFound(_) => {
                RuntimeError::NotFound(format!("image {spec:?} not found"))
            }
            e => e.into(),
        })?;
        let doc = images.config_json(&view.record.id)?;
        Ok((view, Self::from_json(&doc)))
    }

    /// CRI command/args merged with the image's, as the kubelet/Docker define it.
    pub fn args(&self, command: &[String], args: &[String]) -> Vec<String> {
        if !command.is_empty() {
            return command.iter().chain(args).cloned().collect();
        }
        let tail = if args.is_empty() { &self.cmd } else { args };
        self.entrypoint.iter().chain(tail).cloned().collect()
    }
}

/// The stop signal number for a name like `SIGTERM`, `TERM` or `15` (default SIGTERM).
pub fn signal_number(name: &str) -> i32 {
    let n = name.trim();
    if n.is_empty() {
        return 15;
    }
    if let Ok(v) = n.parse::<i32>() {
        return v;
    }
    let up = n.to_ascii_uppercase();
    let up = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(off) = up
        .strip_prefix("RTMIN+")
        .and_then(|x| x.parse::<i32>().ok())
    {
        return 34 + off;
    }
    format!("SIG{up}")
        .parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .unwrap_or(15)
}

/// Prepares and mounts the rootfs of `id` from `view` at `target`.
pub fn mount_rootfs(
    images: &ImageManager,
    view: &ImageView,
    id: &str,
    target: &Path,
) -> Result<RootfsMount, RuntimeError> {
    let chain = view.record.chain_ids();
    let m = images.snapshotter().prepare_rootfs(&chain, id)?;
    std::fs::create_dir_all(target).map_err(crate::container::error::io("create", target))?;
    m.mount(target)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_command_like_kubelet() {
        let c = ImageConfig {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["a".into()],
            ..Default::default()
        };
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(c.args(&[], &[]), s(&["/ep", "a"]));
        assert_eq!(c.args(&[], &s(&["b"])), s(&["/ep", "b"]));
        assert_eq!(c.args(&s(&["/x"]), &[]), s(&["/x"]));
        assert_eq!(c.args(&s(&["/x"]), &s(&["y"])), s(&["/x", "y"]));
    }

    #[test]
    fn signals_by_name() {
        assert_eq!(signal_number(""), 15);
        assert_eq!(signal_number("SIGKILL"), 9);
        assert_eq!(signal_number("quit"), 3);
        assert_eq!(signal_number("SIGRTMIN+3"), 37);
        assert_eq!(signal_number("2"), 2);
    }
}
