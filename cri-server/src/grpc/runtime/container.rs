//! Container RPCs: Create/Start/Stop/RemoveContainer, ContainerStatus, ListContainers,
//! UpdateContainerResources, ReopenContainerLog.

use std::sync::Arc;

use k8s_cri::v1 as cri;
use tonic::{Response, Status};

use crate::container::Runtime;

use super::R;

fn need_id(id: &str) -> Result<(), Status> {
    if id.is_empty() {
        return Err(Status::invalid_argument("container_id: required"));
    }
    Ok(())
}

#[tracing::instrument(name = "CreateContainer", skip_all, fields(sandbox = %req.pod_sandbox_id))]
pub async fn create(
    rt: &Arc<Runtime>,
    req: cri::CreateContainerRequest,
) -> R<cri::CreateContainerResponse> {
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("config: required"))?;
    let rt = rt.clone();
    let id = super::detached(async move {
        rt.create_container(&req.pod_sandbox_id, config, req.sandbox_config)
            .await
    })
    .await?;
    Ok(Response::new(cri::CreateContainerResponse {
        container_id: id,
    }))
}

#[tracing::instrument(name = "StartContainer", skip_all, fields(id = %req.container_id))]
pub async fn start(
    rt: &Arc<Runtime>,
    req: cri::StartContainerRequest,
) -> R<cri::StartContainerResponse> {
    need_id(&req.container_id)?;
    let rt = rt.clone();
    super::detached(async move { rt.start_container(&req.container_id).await }).await?;
    Ok(Response::new(cri::StartContainerResponse {}))
}

#[tracing::instrument(name = "StopContainer", skip_all, fields(id = %req.container_id))]
pub async fn stop(
    rt: &Arc<Runtime>,
    req: cri::StopContainerRequest,
) -> R<cri::StopContainerResponse> {
    need_id(&req.container_id)?;
    let rt = rt.clone();
    super::detached(async move { rt.stop_container(&req.container_id, req.timeout).await }).await?;
    Ok(Response::new(cri::StopContainerResponse {}))
}

#[tracing::instrument(name = "RemoveContainer", skip_all, fields(id = %req.container_id))]
pub async fn remove(
    rt: &Arc<Runtime>,
    req: cri::RemoveContainerRequest,
) -> R<cri::RemoveContainerResponse> {
    need_id(&req.container_id)?;
    let rt = rt.clone();
    super::detached(async move { rt.remove_container(&req.container_id).await }).await?;
    Ok(Response::new(cri::RemoveContainerResponse {}))
}

#[tracing::instrument(name = "ContainerStatus", skip_all, fields(id = %req.container_id))]
pub fn status(
    rt: &Arc<Runtime>,
    req: cri::ContainerStatusRequest,
) -> R<cri::ContainerStatusResponse> {
    need_id(&req.container_id)?;
    let c = rt.container(&req.container_id)?;
    let mut info = std::collections::HashMap::new();
    if req.verbose {
        info.insert(
            "info".to_owned(),
            serde_json::json!({"pid": c.pid, "sandboxID": c.sandbox_id, "runtimeHandler": c.handler}).to_string(),
        );
    }
    Ok(Response::new(cri::ContainerStatusResponse {
        status: Some(c.status()),
        info,
    }))
}

#[tracing::instrument(name = "ListContainers", skip_all)]
pub fn list(rt: &Arc<Runtime>, req: cri::ListContainersRequest) -> R<cri::ListContainersResponse> {
    Ok(Response::new(cri::ListContainersResponse {
        containers: rt.list_containers(req.filter.as_ref()),
    }))
}

#[tracing::instrument(name = "UpdateContainerResources", skip_all, fields(id = %req.container_id))]
pub async fn update(
    rt: &Arc<Runtime>,
    req: cri::UpdateContainerResourcesRequest,
) -> R<cri::UpdateContainerResourcesResponse> {
    need_id(&req.container_id)?;
    rt.update_resources(&req.container_id, req.linux).await?;
    Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
}

#[tracing::instrument(name = "ReopenContainerLog", skip_all, fields(id = %req.container_id))]
pub fn reopen_log(
    rt: &Arc<Runtime>,
    req: cri::ReopenContainerLogRequest,
) -> R<cri::ReopenContainerLogResponse> {
    need_id(&req.container_id)?;
    rt.reopen_log(&req.container_id)?;
    Ok(Response::new(cri::ReopenContainerLogResponse {}))
}
