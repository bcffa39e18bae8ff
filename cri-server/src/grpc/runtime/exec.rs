//! ExecSync, the streaming RPCs (Exec/Attach/PortForward: validate, then a streaming URL) and
//! GetContainerEvents.

use std::pin::Pin;
use std::sync::Arc;

use k8s_cri::v1 as cri;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Response, Status};

use crate::container::{Runtime, State};
use crate::stream::StreamServer;

use super::R;

#[tracing::instrument(name = "ExecSync", skip_all, fields(id = %req.container_id))]
pub async fn exec_sync(rt: &Arc<Runtime>, req: cri::ExecSyncRequest) -> R<cri::ExecSyncResponse> {
    if req.container_id.is_empty() {
        return Err(Status::invalid_argument("container_id: required"));
    }
    let out = rt
        .exec_sync(&req.container_id, req.cmd, req.timeout)
        .await?;
    if out.timed_out {
        return Err(Status::deadline_exceeded(format!(
            "command timed out after {}s and was killed",
            req.timeout
        )));
    }
    Ok(Response::new(cri::ExecSyncResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: out.exit_code,
    }))
}

/// The GetContainerEvents stream.
pub type EventStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<cri::ContainerEventResponse, Status>> + Send>>;

#[tracing::instrument(name = "GetContainerEvents", skip_all)]
pub fn events(rt: &Arc<Runtime>, _req: cri::GetEventsRequest) -> R<EventStream> {
    let mut rx = rt.events.subscribe();
    let (tx, out) = tokio::sync::mpsc::channel(256);
    let rt = rt.clone();
    tokio::spawn(async move {
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "event subscriber lagged");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let mut msg = ev.to_cri();
            if let Ok(c) = rt.containers.get(&ev.container_id) {
                if let Ok(s) = rt.sandboxes.get(&c.sandbox_id) {
                    msg.pod_sandbox_status = Some(s.status());
                }
                msg.containers_statuses = vec![c.status()];
            }
            if tx.send(Ok(msg)).await.is_err() {
                return;
            }
        }
    });
    Ok(Response::new(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(out),
    )))
}

/// The container must exist and run to stream into it.
fn running(rt: &Runtime, id: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("container_id: required"));
    }
    let c = rt.container(id)?;
    if c.state != State::Running {
        return Err(Status::failed_precondition(format!(
            "container {} is not running (state {:?})",
            c.id, c.state
        )));
    }
    Ok(())
}

#[tracing::instrument(name = "Exec", skip_all, fields(id = %req.container_id))]
pub fn exec(rt: &Runtime, stream: &StreamServer, req: cri::ExecRequest) -> R<cri::ExecResponse> {
    running(rt, &req.container_id)?;
    Ok(Response::new(cri::ExecResponse {
        url: stream.get_exec_url(&req)?,
    }))
}

#[tracing::instrument(name = "Attach", skip_all, fields(id = %req.container_id))]
pub fn attach(
    rt: &Runtime,
    stream: &StreamServer,
    req: cri::AttachRequest,
) -> R<cri::AttachResponse> {
    running(rt, &req.container_id)?;
    Ok(Response::new(cri::AttachResponse {
        url: stream.get_attach_url(&req)?,
    }))
}

#[tracing::instrument(name = "PortForward", skip_all, fields(id = %req.pod_sandbox_id))]
pub fn port_forward(
    rt: &Runtime,
    stream: &StreamServer,
    req: cri::PortForwardRequest,
) -> R<cri::PortForwardResponse> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument("pod_sandbox_id: required"));
    }
    let s = rt
        .sandboxes
        .get(&req.pod_sandbox_id)
        .map_err(crate::container::RuntimeError::from)?;
    if !s.ready {
        return Err(Status::failed_precondition(format!(
            "pod sandbox {} is not ready",
            s.id
        )));
    }
    Ok(Response::new(cri::PortForwardResponse {
        url: stream.get_portforward_url(&req)?,
    }))
}
