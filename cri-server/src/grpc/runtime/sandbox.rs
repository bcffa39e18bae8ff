//! Pod sandbox RPCs: RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus,
//! ListPodSandbox.

use std::sync::Arc;

use k8s_cri::v1 as cri;
use tonic::{Response, Status};

use crate::container::Runtime;

use super::R;

#[tracing::instrument(name = "RunPodSandbox", skip_all, fields(pod = req.config.as_ref().and_then(|c| c.metadata.as_ref()).map(|m| format!("{}/{}", m.namespace, m.name)).unwrap_or_default()))]
pub async fn run(
    rt: &Arc<Runtime>,
    req: cri::RunPodSandboxRequest,
) -> R<cri::RunPodSandboxResponse> {
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("config: required"))?;
    let rt = rt.clone();
    let id =
        super::detached(async move { rt.run_sandbox(config, &req.runtime_handler).await }).await?;
    Ok(Response::new(cri::RunPodSandboxResponse {
        pod_sandbox_id: id,
    }))
}

fn need_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("pod_sandbox_id: required"));
    }
    Ok(())
}

#[tracing::instrument(name = "StopPodSandbox", skip_all, fields(id = %req.pod_sandbox_id))]
pub async fn stop(
    rt: &Arc<Runtime>,
    req: cri::StopPodSandboxRequest,
) -> R<cri::StopPodSandboxResponse> {
    need_id(&req.pod_sandbox_id)?;
    let rt = rt.clone();
    super::detached(async move { rt.stop_sandbox(&req.pod_sandbox_id).await }).await?;
    Ok(Response::new(cri::StopPodSandboxResponse {}))
}

#[tracing::instrument(name = "RemovePodSandbox", skip_all, fields(id = %req.pod_sandbox_id))]
pub async fn remove(
    rt: &Arc<Runtime>,
    req: cri::RemovePodSandboxRequest,
) -> R<cri::RemovePodSandboxResponse> {
    need_id(&req.pod_sandbox_id)?;
    let rt = rt.clone();
    super::detached(async move { rt.remove_sandbox(&req.pod_sandbox_id).await }).await?;
    Ok(Response::new(cri::RemovePodSandboxResponse {}))
}

#[tracing::instrument(name = "PodSandboxStatus", skip_all, fields(id = %req.pod_sandbox_id))]
pub fn status(
    rt: &Arc<Runtime>,
    req: cri::PodSandboxStatusRequest,
) -> R<cri::PodSandboxStatusResponse> {
    need_id(&req.pod_sandbox_id)?;
    let s = rt
        .sandboxes
        .get(&req.pod_sandbox_id)
        .map_err(crate::container::RuntimeError::from)?;
    rt.refresh_sandbox(&s);
    let s = rt
        .sandboxes
        .get(&s.id)
        .map_err(crate::container::RuntimeError::from)?;
    let containers_statuses = if req.verbose {
        rt.containers
            .list()
            .into_iter()
            .filter(|c| c.sandbox_id == s.id)
            .map(|c| c.status())
            .collect()
    } else {
        Vec::new()
    };
    let mut info = std::collections::HashMap::new();
    if req.verbose {
        info.insert(
            "info".to_owned(),
            serde_json::json!({"pid": s.pid, "netns": s.netns, "runtimeHandler": s.handler})
                .to_string(),
        );
    }
    Ok(Response::new(cri::PodSandboxStatusResponse {
        status: Some(s.status()),
        info,
        containers_statuses,
        timestamp: crate::container::runtime::now_ns(),
    }))
}

#[tracing::instrument(name = "ListPodSandbox", skip_all)]
pub fn list(rt: &Arc<Runtime>, req: cri::ListPodSandboxRequest) -> R<cri::ListPodSandboxResponse> {
    Ok(Response::new(cri::ListPodSandboxResponse {
        items: rt.list_sandboxes(req.filter.as_ref()),
    }))
}
