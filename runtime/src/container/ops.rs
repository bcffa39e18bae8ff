//! `run` (create + start [+ wait + delete]), `pause`/`resume`, `update` and `ps`.

use oci_spec::runtime::LinuxResources;

use super::create::{CreateOptions, ForegroundCtx};
use super::foreground::{Foreground, exit_code};
use super::{ContainerError, Ctx, ErrorKind, Runtime, cgroup, err, sys};
use crate::state::Status;

impl Runtime {
    /// `run`: detached → create + start; foreground → also wait (forwarding signals, relaying
    /// the pty) and delete; returns the exit code (128+signal when killed).
    pub fn run(&self, opts: &CreateOptions, detach: bool) -> Result<i32, ContainerError> {
        let id = opts.id.as_str();
        if detach {
            self.create(opts)?;
            if let Err(e) = self.start(id) {
                let _ = self.delete(id, true);
                return Err(e);
            }
            return Ok(0);
        }
        let fg = Foreground::begin().map_err(sys("block signals")).ctx(id)?;
        let created = self.create_with(
            opts,
            Some(&ForegroundCtx {
                sigmask: fg.old_mask,
                proxy_tty: true,
            }),
        )?;
        if let Err(e) = self.start(id) {
            let _ = self.delete(id, true);
            return Err(e);
        }
        let status = fg.wait(created.state.pid, created.pty_master);
        drop(fg);
        self.destroy(&created.state)?;
        Ok(exit_code(status))
    }

    /// `pause`: freeze every process of a running container.
    pub fn pause(&self, id: &str) -> Result<(), ContainerError> {
        let l = self.load(id)?;
        if l.status != Status::Running {
            return Err(err(
                id,
                ErrorKind::WrongState {
                    action: "pause",
                    status: l.status,
                },
            ));
        }
        cgroup(&l.state).ctx(id)?.freeze().ctx(id)
    }

    /// `resume`: thaw a paused container.
    pub fn resume(&self, id: &str) -> Result<(), ContainerError> {
        let l = self.load(id)?;
        if l.status != Status::Paused {
            return Err(err(
                id,
                ErrorKind::WrongState {
                    action: "resume",
                    status: l.status,
                },
            ));
        }
        cgroup(&l.state).ctx(id)?.thaw().ctx(id)
    }

    /// `ps`: pids of every process in the container's cgroup.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>, ContainerError> {
        let l = self.load(id)?;
        if l.status == Status::Stopped {
            return Ok(Vec::new());
        }
        let mut pids = cgroup(&l.state).ctx(id)?.pids().ctx(id)?;
        pids.sort_unstable();
        Ok(pids)
    }

    /// `update`: apply new resource limits and remember them (merged into the saved config).
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<(), ContainerError> {
        let l = self.load(id)?;
        if matches!(l.status, Status::Stopped | Status::Creating) {
            return Err(err(
                id,
                ErrorKind::WrongState {
                    action: "update",
                    status: l.status,
                },
            ));
        }
        cgroup(&l.state).ctx(id)?.set(resources).ctx(id)?;
        let mut st = l.state;
        let mut spec = serde_json::to_value(&st.spec).expect("spec serializes");
        let new = serde_json::to_value(resources).expect("resources serialize");
        merge(&mut spec["linux"]["resources"], new);
        st.spec = serde_json::from_value(spec)
            .map_err(|e| err(id, ErrorKind::Invalid(format!("merged resources: {e}"))))?;
        self.store.save(&st).ctx(id)
    }
}

/// JSON merge: objects merge recursively, other values (not null) replace.
fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (_, serde_json::Value::Null) => {}
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_unset_fields() {
        let mut a = serde_json::json!({"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 5}});
        merge(
            &mut a,
            serde_json::json!({"memory": {"limit": 10}, "cpu": {"shares": 3}}),
        );
        assert_eq!(
            a,
            serde_json::json!({"memory": {"limit": 10, "swap": 2}, "pids": {"limit": 5}, "cpu": {"shares": 3}})
        );
    }
}
