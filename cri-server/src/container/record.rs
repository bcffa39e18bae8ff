//! The persisted container record.

use serde::{Deserialize, Serialize};

use super::store::Record;

/// Lifecycle state (CRI `ContainerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Exited,
    Unknown,
}

impl State {
    /// The CRI enum value.
    pub fn cri(self) -> i32 {
        match self {
            State::Created => 0,
            State::Running => 1,
            State::Exited => 2,
            State::Unknown => 3,
        }
    }
}

/// One container, as persisted under the root dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    /// `<container>_<pod>_<namespace>_<uid>_<attempt>`.
    pub name: String,
    /// The CRI `ContainerConfig`, protobuf-encoded.
    #[serde(with = "crate::container::b64")]
    pub config: Vec<u8>,
    /// Image as requested, its resolved ID and a digest reference.
    pub image: String,
    pub image_id: String,
    pub image_ref: String,
    pub handler: String,
    pub state: State,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    pub pid: i32,
    pub monitor_pid: i32,
    /// The CRI log path (empty: none requested).
    pub log_path: String,
    pub stop_signal: i32,
    /// The user the process runs as (uid, gid, supplemental gids).
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl Record for ContainerRecord {
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
}
