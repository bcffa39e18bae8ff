//! The API client both add-ons use: in-cluster service-account credentials (token, CA,
//! `KUBERNETES_SERVICE_HOST`/`_PORT`), optionally pointed at an explicit `host:port` instead
//! of the `kubernetes` Service (reachable before kube-proxy runs).

use kube::Client;

/// The client could not be configured; says which input was wrong.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("in-cluster config (is this running in a pod with a service account?): {0}")]
    InCluster(#[from] kube::config::InClusterError),
    #[error("API server endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("build the API client: {0}")]
    Build(#[from] kube::Error),
}

/// A client from the pod's service account; `endpoint` overrides the server's `host:port`.
pub fn in_cluster(endpoint: Option<&str>) -> Result<Client, ClientError> {
    let mut config = kube::Config::incluster()?;
    if let Some(ep) = endpoint {
        config.cluster_url =
            format!("https://{ep}")
                .parse()
                .map_err(|e| ClientError::Endpoint {
                    endpoint: ep.to_owned(),
                    reason: format!("{e}"),
                })?;
    }
    Ok(Client::try_from(config)?)
}
