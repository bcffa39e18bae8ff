//! The CRI RuntimeService: one `impl` delegating each RPC to its group's file —
//! [`sandbox`], [`container`], [`status`] (Version/Status/RuntimeConfig/UpdateRuntimeConfig),
//! [`exec`] (ExecSync, events, Exec/Attach/PortForward URLs), [`stats`] (container and pod stats) — and the mapping of runtime errors to codes.

mod container;
mod exec;
mod sandbox;
mod stats;
mod status;

use std::sync::Arc;

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::RuntimeService;
use tonic::{Code, Request, Response, Status};

use crate::container::{Runtime, RuntimeError};
use crate::stream::StreamServer;

/// RuntimeService backed by a [`Runtime`].
#[derive(Clone)]
pub struct RuntimeServiceImpl {
    rt: Arc<Runtime>,
    stream: Option<Arc<StreamServer>>,
}

impl std::fmt::Debug for RuntimeServiceImpl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeServiceImpl")
            .field("rt", &self.rt)
            .field("stream", &self.stream.as_ref().map(|s| s.local_addr()))
            .finish()
    }
}

impl RuntimeServiceImpl {
    /// Without a streaming server, Exec/Attach/PortForward answer Unavailable.
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt, stream: None }
    }

    /// With the streaming server that serves the URLs Exec/Attach/PortForward return.
    pub fn with_stream(rt: Arc<Runtime>, stream: Arc<StreamServer>) -> Self {
        Self {
            rt,
            stream: Some(stream),
        }
    }

    fn stream(&self) -> Result<&StreamServer, Status> {
        self.stream
            .as_deref()
            .ok_or_else(|| Status::unavailable("the streaming server is not running"))
    }
}

impl From<RuntimeError> for Status {
    fn from(e: RuntimeError) -> Status {
        let code = match &e {
            RuntimeError::InvalidArgument(_) => Code::InvalidArgument,
            RuntimeError::NotFound(_) => Code::NotFound,
            RuntimeError::AlreadyExists(_) => Code::AlreadyExists,
            RuntimeError::FailedPrecondition(_) => Code::FailedPrecondition,
            RuntimeError::Oci(crate::oci::OciError::InvalidSpec(_)) => Code::InvalidArgument,
            RuntimeError::Oci(crate::oci::OciError::NotFound { .. }) => Code::NotFound,
            RuntimeError::Image(crate::image::Error::NotFound(_)) => Code::NotFound,
            RuntimeError::Image(crate::image::Error::InvalidArgument(_)) => Code::InvalidArgument,
            RuntimeError::Cni(c) if c.to_string().contains("not ready") => Code::FailedPrecondition,
            _ => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

type R<T> = Result<Response<T>, Status>;

/// Runs a state-changing operation in its own task: a client that gives up (deadline, cancel)
/// drops the RPC future, which must not abort a half-done setup or teardown and leak what it
/// created so far; the operation completes (or cleans up) either way.
async fn detached<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T, RuntimeError>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(tracing::Instrument::in_current_span(f))
        .await
        .map_err(|e| Status::internal(format!("operation task failed: {e}")))?
        .map_err(Status::from)
}

#[tonic::async_trait]
impl RuntimeService for RuntimeServiceImpl {
    async fn version(&self, r: Request<cri::VersionRequest>) -> R<cri::VersionResponse> {
        status::version(r.into_inner())
    }
    async fn run_pod_sandbox(
        &self,
        r: Request<cri::RunPodSandboxRequest>,
    ) -> R<cri::RunPodSandboxResponse> {
        sandbox::run(&self.rt, r.into_inner()).await
    }
    async fn stop_pod_sandbox(
        &self,
        r: Request<cri::StopPodSandboxRequest>,
    ) -> R<cri::StopPodSandboxResponse> {
        sandbox::stop(&self.rt, r.into_inner()).await
    }
    async fn remove_pod_sandbox(
        &self,
        r: Request<cri::RemovePodSandboxRequest>,
    ) -> R<cri::RemovePodSandboxResponse> {
        sandbox::remove(&self.rt, r.into_inner()).await
    }
    async fn pod_sandbox_status(
        &self,
        r: Request<cri::PodSandboxStatusRequest>,
    ) -> R<cri::PodSandboxStatusResponse> {
        sandbox::status(&self.rt, r.into_inner())
    }
    async fn list_pod_sandbox(
        &self,
        r: Request<cri::ListPodSandboxRequest>,
    ) -> R<cri::ListPodSandboxResponse> {
        sandbox::list(&self.rt, r.into_inner())
    }
    async fn create_container(
        &self,
        r: Request<cri::CreateContainerRequest>,
    ) -> R<cri::CreateContainerResponse> {
        container::create(&self.rt, r.into_inner()).await
    }
    async fn start_container(
        &self,
        r: Request<cri::StartContainerRequest>,
    ) -> R<cri::StartContainerResponse> {
        container::start(&self.rt, r.into_inner()).await
    }
    async fn stop_container(
        &self,
        r: Request<cri::StopContainerRequest>,
    ) -> R<cri::StopContainerResponse> {
        container::stop(&self.rt, r.into_inner()).await
    }
    async fn remove_container(
        &self,
        r: Request<cri::RemoveContainerRequest>,
    ) -> R<cri::RemoveContainerResponse> {
        container::remove(&self.rt, r.into_inner()).await
    }
    async fn list_containers(
        &self,
        r: Request<cri::ListContainersRequest>,
    ) -> R<cri::ListContainersResponse> {
        container::list(&self.rt, r.into_inner())
    }
    async fn container_status(
        &self,
        r: Request<cri::ContainerStatusRequest>,
    ) -> R<cri::ContainerStatusResponse> {
        container::status(&self.rt, r.into_inner())
    }
    async fn update_container_resources(
        &self,
        r: Request<cri::UpdateContainerResourcesRequest>,
    ) -> R<cri::UpdateContainerResourcesResponse> {
        container::update(&self.rt, r.into_inner()).await
    }
    async fn reopen_container_log(
        &self,
        r: Request<cri::ReopenContainerLogRequest>,
    ) -> R<cri::ReopenContainerLogResponse> {
        container::reopen_log(&self.rt, r.into_inner())
    }
    async fn exec_sync(&self, r: Request<cri::ExecSyncRequest>) -> R<cri::ExecSyncResponse> {
        exec::exec_sync(&self.rt, r.into_inner()).await
    }
    async fn exec(&self, r: Request<cri::ExecRequest>) -> R<cri::ExecResponse> {
        exec::exec(&self.rt, self.stream()?, r.into_inner())
    }
    async fn attach(&self, r: Request<cri::AttachRequest>) -> R<cri::AttachResponse> {
        exec::attach(&self.rt, self.stream()?, r.into_inner())
    }
    async fn port_forward(
        &self,
        r: Request<cri::PortForwardRequest>,
    ) -> R<cri::PortForwardResponse> {
        exec::port_forward(&self.rt, self.stream()?, r.into_inner())
    }
    async fn container_stats(
        &self,
        r: Request<cri::ContainerStatsRequest>,
    ) -> R<cri::ContainerStatsResponse> {
        stats::container(&self.rt, r.into_inner()).await
    }
    async fn list_container_stats(
        &self,
        r: Request<cri::ListContainerStatsRequest>,
    ) -> R<cri::ListContainerStatsResponse> {
        stats::list_containers(&self.rt, r.into_inner()).await
    }
    async fn pod_sandbox_stats(
        &self,
        r: Request<cri::PodSandboxStatsRequest>,
    ) -> R<cri::PodSandboxStatsResponse> {
        stats::pod(&self.rt, r.into_inner()).await
    }
    async fn list_pod_sandbox_stats(
        &self,
        r: Request<cri::ListPodSandboxStatsRequest>,
    ) -> R<cri::ListPodSandboxStatsResponse> {
        stats::list_pods(&self.rt, r.into_inner()).await
    }
    async fn update_runtime_config(
        &self,
        r: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> R<cri::UpdateRuntimeConfigResponse> {
        status::update_runtime_config(&self.rt, r.into_inner())
    }
    async fn status(&self, r: Request<cri::StatusRequest>) -> R<cri::StatusResponse> {
        status::status(&self.rt, r.into_inner())
    }
    async fn checkpoint_container(
        &self,
        _r: Request<cri::CheckpointContainerRequest>,
    ) -> R<cri::CheckpointContainerResponse> {
        Err(Status::unimplemented(
            "CheckpointContainer is not supported",
        ))
    }
    type GetContainerEventsStream = exec::EventStream;
    async fn get_container_events(
        &self,
        r: Request<cri::GetEventsRequest>,
    ) -> R<Self::GetContainerEventsStream> {
        exec::events(&self.rt, r.into_inner())
    }
    async fn list_metric_descriptors(
        &self,
        _r: Request<cri::ListMetricDescriptorsRequest>,
    ) -> R<cri::ListMetricDescriptorsResponse> {
        Ok(Response::new(cri::ListMetricDescriptorsResponse {
            descriptors: crate::container::metrics::descriptors(),
        }))
    }
    async fn list_pod_sandbox_metrics(
        &self,
        _r: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> R<cri::ListPodSandboxMetricsResponse> {
        stats::pod_metrics(&self.rt).await
    }
    async fn runtime_config(
        &self,
        r: Request<cri::RuntimeConfigRequest>,
    ) -> R<cri::RuntimeConfigResponse> {
        status::runtime_config(&self.rt, r.into_inner())
    }
}
