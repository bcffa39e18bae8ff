//! ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats and
//! ListPodSandboxMetrics: the figures
//! are read on a blocking thread (cgroup files, a walk of each writable layer).

use std::sync::Arc;

use k8s_cri::v1 as cri;
use tonic::{Response, Status};

use crate::container::{Runtime, RuntimeError};

use super::R;

async fn blocking<T: Send + 'static>(
    rt: &Arc<Runtime>,
    f: impl FnOnce(&Runtime) -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, Status> {
    let rt = rt.clone();
    tokio::task::spawn_blocking(move || f(&rt))
        .await
        .map_err(|e| Status::internal(format!("stats task failed: {e}")))?
        .map_err(Status::from)
}

#[tracing::instrument(name = "ContainerStats", skip_all, fields(id = %req.container_id))]
pub async fn container(
    rt: &Arc<Runtime>,
    req: cri::ContainerStatsRequest,
) -> R<cri::ContainerStatsResponse> {
    if req.container_id.is_empty() {
        return Err(Status::invalid_argument("container_id: required"));
    }
    let id = req.container_id;
    let stats = blocking(rt, move |rt| rt.container_stats(&id)).await?;
    Ok(Response::new(cri::ContainerStatsResponse {
        stats: Some(stats),
    }))
}

#[tracing::instrument(name = "ListContainerStats", skip_all)]
pub async fn list_containers(
    rt: &Arc<Runtime>,
    req: cri::ListContainerStatsRequest,
) -> R<cri::ListContainerStatsResponse> {
    let stats = blocking(rt, move |rt| {
        Ok(rt.list_container_stats(req.filter.as_ref()))
    })
    .await?;
    Ok(Response::new(cri::ListContainerStatsResponse { stats }))
}

#[tracing::instrument(name = "PodSandboxStats", skip_all, fields(id = %req.pod_sandbox_id))]
pub async fn pod(
    rt: &Arc<Runtime>,
    req: cri::PodSandboxStatsRequest,
) -> R<cri::PodSandboxStatsResponse> {
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument("pod_sandbox_id: required"));
    }
    let id = req.pod_sandbox_id;
    let stats = blocking(rt, move |rt| rt.pod_sandbox_stats(&id)).await?;
    Ok(Response::new(cri::PodSandboxStatsResponse {
        stats: Some(stats),
    }))
}

#[tracing::instrument(name = "ListPodSandboxStats", skip_all)]
pub async fn list_pods(
    rt: &Arc<Runtime>,
    req: cri::ListPodSandboxStatsRequest,
) -> R<cri::ListPodSandboxStatsResponse> {
    let stats = blocking(rt, move |rt| {
        Ok(rt.list_pod_sandbox_stats(req.filter.as_ref()))
    })
    .await?;
    Ok(Response::new(cri::ListPodSandboxStatsResponse { stats }))
}

#[tracing::instrument(name = "ListPodSandboxMetrics", skip_all)]
pub async fn pod_metrics(rt: &Arc<Runtime>) -> R<cri::ListPodSandboxMetricsResponse> {
    let pod_metrics = blocking(rt, |rt| Ok(rt.pod_sandbox_metrics())).await?;
    Ok(Response::new(cri::ListPodSandboxMetricsResponse {
        pod_metrics,
    }))
}
