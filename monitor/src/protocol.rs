//! Wire formats between cri-server and cri-monitor: the start verdict, the exit file, the attach
//! socket's stream bytes, the ctl fifo's lines, and the names of the files in `--socket-dir`.
//! See README.md for the protocols these belong to.

use serde::{Deserialize, Serialize};

/// The attach socket in `--socket-dir` (`SOCK_SEQPACKET`).
pub const ATTACH_SOCKET: &str = "attach";
/// The control FIFO in `--socket-dir`.
pub const CTL_FIFO: &str = "ctl";
/// The console socket in `--socket-dir` (only while a `--tty` container is being created).
pub const CONSOLE_SOCKET: &str = "console.sock";
/// First byte of an attach packet carrying stdout (also a tty's output).
pub const ATTACH_STDOUT: u8 = 2;
/// First byte of an attach packet carrying stderr.
pub const ATTACH_STDERR: u8 = 3;
/// The ctl fifo line that reopens the log file.
pub const CTL_REOPEN_LOG: &str = "2 0 0\n";

/// The ctl fifo line that resizes the tty.
pub fn ctl_resize(cols: u16, rows: u16) -> String {
    format!("1 {cols} {rows}\n")
}

/// The one JSON line the caller reads on the sync channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SyncMessage {
    Started { pid: i32, monitor_pid: i32 },
    Failed { error: String },
}

/// How the container init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// The exit file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit code, or 128 + signal number.
    pub exit_code: i32,
    /// The signal that killed the init, if one did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signal: Option<i32>,
    /// When the monitor reaped the init (RFC 3339, nanoseconds).
    pub exited_at: String,
    /// Whether the memory cgroup saw an OOM kill; absent if it could not be told.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub oom_killed: Option<bool>,
}

impl ExitRecord {
    pub fn new(exit: Exit, exited_at: String, oom_killed: Option<bool>) -> Self {
        let (exit_code, signal) = match exit {
            Exit::Code(c) => (c, None),
            Exit::Signal(s) => (128 + s, Some(s)),
        };
        Self {
            exit_code,
            signal,
            exited_at,
            oom_killed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_message_wire_format() {
        let ok = SyncMessage::Started {
            pid: 42,
            monitor_pid: 7,
        };
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"pid":42,"monitor_pid":7}"#
        );
        let err = SyncMessage::Failed {
            error: "runc create c1: \"boom\"".into(),
        };
        let s = serde_json::to_string(&err).unwrap();
        assert_eq!(s, r#"{"error":"runc create c1: \"boom\""}"#);
        assert_eq!(serde_json::from_str::<SyncMessage>(&s).unwrap(), err);
        assert_eq!(
            serde_json::from_str::<SyncMessage>(r#"{"pid":1,"monitor_pid":2}"#).unwrap(),
            SyncMessage::Started {
                pid: 1,
                monitor_pid: 2
            }
        );
    }

    #[test]
    fn exit_record_json_and_signal_mapping() {
        let r = ExitRecord::new(Exit::Code(3), "t".into(), None);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"exit_code":3,"exited_at":"t"}"#
        );
        let r = ExitRecord::new(Exit::Signal(9), "t".into(), Some(false));
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"exit_code":137,"signal":9,"exited_at":"t","oom_killed":false}"#
        );
    }

    #[test]
    fn ctl_lines() {
        assert_eq!(ctl_resize(80, 24), "1 80 24\n");
        assert_eq!(CTL_REOPEN_LOG, "2 0 0\n");
    }
}
