//! OCI hooks: prestart, createRuntime, createContainer, startContainer, poststart, poststop.
//!
//! Each hook is executed with its own argv/env, the container state JSON on stdin, and an
//! optional timeout after which it is killed. Its combined stdout/stderr is kept (bounded) and
//! quoted in the error when it fails.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Spec};

const MAX_OUTPUT: usize = 4096;

/// The lifecycle points at which hooks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookKind {
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }
}

/// A hook that could not run or failed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook #{index} {path}: {source}")]
    Spawn {
        kind: &'static str,
        index: usize,
        path: String,
        source: std::io::Error,
    },
    #[error("{kind} hook #{index} {path} failed ({status}){output}")]
    Failed {
        kind: &'static str,
        index: usize,
        path: String,
        status: String,
        output: String,
    },
    #[error("{kind} hook #{index} {path} timed out after {secs}s")]
    Timeout {
        kind: &'static str,
        index: usize,
        path: String,
        secs: i64,
    },
}

/// The hooks of one kind in the spec (empty when none).
pub fn hooks_of(spec: &Spec, kind: HookKind) -> &[Hook] {
    let Some(h) = spec.hooks() else { return &[] };
    #[allow(deprecated)] // prestart is deprecated in the spec but still honoured, like runc.
    let list = match kind {
        HookKind::Prestart => h.prestart(),
        HookKind::CreateRuntime => h.create_runtime(),
        HookKind::CreateContainer => h.create_container(),
        HookKind::StartContainer => h.start_container(),
        HookKind::Poststart => h.poststart(),
        HookKind::Poststop => h.poststop(),
    };
    list.as_deref().unwrap_or_default()
}

/// Runs every hook of `kind` in order, stopping at the first failure.
pub fn run(spec: &Spec, kind: HookKind, state: &serde_json::Value) -> Result<(), HookError> {
    let hooks = hooks_of(spec, kind);
    if hooks.is_empty() {
        return Ok(());
    }
    let input = serde_json::to_vec(state).expect("state serializes");
    for (index, hook) in hooks.iter().enumerate() {
        run_one(hook, kind, index, &input)?;
    }
    Ok(())
}

fn run_one(hook: &Hook, kind: HookKind, index: usize, input: &[u8]) -> Result<(), HookError> {
    let path = hook.path().display().to_string();
    let kind_name = kind.name();
    let spawn_err = |source| HookError::Spawn {
        kind: kind_name,
        index,
        path: path.clone(),
        source,
    };
    let args = hook.args().as_deref().unwrap_or_default();
    let mut cmd = Command::new(hook.path());
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    cmd.args(args.iter().skip(1)).env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let (mut reader, writer) = std::io::pipe().map_err(spawn_err)?;
    let writer2 = writer.try_clone().map_err(spawn_err)?;
    cmd.stdin(Stdio::piped()).stdout(writer).stderr(writer2);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    drop(cmd); // closes our copies of the pipe's write end
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may ignore stdin and exit early: EPIPE is not an error.
        let _ = stdin.write_all(input);
    }
    set_nonblocking(&reader);
    let deadline = hook
        .timeout()
        .map(|t| (Instant::now() + Duration::from_secs(t as u64), t));
    let mut output = Vec::new();
    let mut delay = Duration::from_micros(100);
    let status = loop {
        drain(&mut reader, &mut output);
        if let Some(st) = child.try_wait().map_err(spawn_err)? {
            break st;
        }
        if let Some((at, secs)) = deadline
            && Instant::now() >= at
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout {
                kind: kind_name,
                index,
                path,
                secs,
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(5));
    };
    drain(&mut reader, &mut output);
    if status.success() {
        return Ok(());
    }
    let status = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    };
    let text = String::from_utf8_lossy(&output).trim().to_string();
    let output = if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    };
    Err(HookError::Failed {
        kind: kind_name,
        index,
        path,
        status,
        output,
    })
}

fn set_nonblocking(r: &std::io::PipeReader) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(bits) = fcntl(r, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(bits) | OFlag::O_NONBLOCK;
        let _ = fcntl(r, FcntlArg::F_SETFL(flags));
    }
}

fn drain(r: &mut std::io::PipeReader, out: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        let room = MAX_OUTPUT.saturating_sub(out.len());
        out.extend_from_slice(&buf[..n.min(room)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(hooks: serde_json::Value) -> Spec {
        let v = serde_json::json!({"ociVersion": "1.2.0", "hooks": hooks});
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let spec = spec_with(serde_json::json!({"createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", out.display())]}
        ]}));
        run(
            &spec,
            HookKind::CreateRuntime,
            &serde_json::json!({"id": "x"}),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap(), r#"{"id":"x"}"#);
    }

    #[test]
    fn failing_hook_reports_output() {
        let spec = spec_with(serde_json::json!({"poststop": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 4"]}
        ]}));
        let e = run(&spec, HookKind::Poststop, &serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("exit status 4") && e.contains("boom"), "{e}");
    }

    #[test]
    fn timeout_kills_hook() {
        let spec = spec_with(serde_json::json!({"poststart": [
            {"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}
        ]}));
        let t = Instant::now();
        let e = run(&spec, HookKind::Poststart, &serde_json::json!({})).unwrap_err();
        assert!(matches!(e, HookError::Timeout { .. }));
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
