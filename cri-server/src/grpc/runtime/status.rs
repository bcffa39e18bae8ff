//! Version, Status, RuntimeConfig, UpdateRuntimeConfig.

use std::sync::Arc;

use k8s_cri::v1 as cri;
use tonic::{Response, Status};

use crate::config::CgroupDriver;
use crate::container::Runtime;

use super::R;

/// The CRI API version served.
pub const CRI_VERSION: &str = "v1";

#[tracing::instrument(name = "Version", skip_all)]
pub fn version(_req: cri::VersionRequest) -> R<cri::VersionResponse> {
    Ok(Response::new(cri::VersionResponse {
        version: "0.1.0".into(),
        runtime_name: "cri-server".into(),
        runtime_version: env!("CARGO_PKG_VERSION").into(),
        runtime_api_version: CRI_VERSION.into(),
    }))
}

#[tracing::instrument(name = "Status", skip_all)]
pub fn status(rt: &Arc<Runtime>, req: cri::StatusRequest) -> R<cri::StatusResponse> {
    let net = rt.cni.network_ready();
    let conditions = vec![
        cri::RuntimeCondition {
            r#type: "RuntimeReady".into(),
            status: true,
            reason: String::new(),
            message: String::new(),
        },
        cri::RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: net.is_ok(),
            reason: if net.is_ok() {
                String::new()
            } else {
                "NetworkPluginNotReady".into()
            },
            message: net
                .err()
                .map(|m| format!("Network plugin returns error: {m}"))
                .unwrap_or_default(),
        },
    ];
    let mut info = std::collections::HashMap::new();
    if req.verbose {
        info.insert(
            "config".to_owned(),
            serde_json::to_string(&rt.config).unwrap_or_default(),
        );
    }
    Ok(Response::new(cri::StatusResponse {
        status: Some(cri::RuntimeStatus { conditions }),
        info,
        runtime_handlers: runtime_handlers(rt),
        features: Some(cri::RuntimeFeatures {
            supplemental_groups_policy: false,
        }),
    }))
}

/// Every configured handler, and the default one again under the empty name: the kubelet looks
/// up `""` for pods without a RuntimeClass (as containerd reports it).
fn runtime_handlers(rt: &Runtime) -> Vec<cri::RuntimeHandler> {
    let default = rt.config.default_runtime_handler.as_str();
    let names = rt.handler_names();
    let with_default = names.iter().any(|n| n == default).then(String::new);
    names
        .into_iter()
        .chain(with_default)
        .map(|name| cri::RuntimeHandler {
            name,
            features: Some(cri::RuntimeHandlerFeatures {
                recursive_read_only_mounts: false,
                user_namespaces: false,
            }),
        })
        .collect()
}

#[tracing::instrument(name = "RuntimeConfig", skip_all)]
pub fn runtime_config(
    rt: &Arc<Runtime>,
    _req: cri::RuntimeConfigRequest,
) -> R<cri::RuntimeConfigResponse> {
    let driver = match rt.config.cgroup_driver {
        CgroupDriver::Systemd => cri::CgroupDriver::Systemd,
        CgroupDriver::Cgroupfs => cri::CgroupDriver::Cgroupfs,
    };
    Ok(Response::new(cri::RuntimeConfigResponse {
        linux: Some(cri::LinuxRuntimeConfiguration {
            cgroup_driver: driver as i32,
        }),
    }))
}

#[tracing::instrument(name = "UpdateRuntimeConfig", skip_all)]
pub fn update_runtime_config(
    rt: &Arc<Runtime>,
    req: cri::UpdateRuntimeConfigRequest,
) -> R<cri::UpdateRuntimeConfigResponse> {
    let cidr = req
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    let mut cidrs = Vec::new();
    for c in cidr.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        cidrs.push(c.parse().map_err(|e| {
            Status::invalid_argument(format!(
                "runtime_config.network_config.pod_cidr: {c:?}: {e}"
            ))
        })?);
    }
    rt.cni
        .update_runtime_config(&cidrs)
        .map_err(crate::container::RuntimeError::from)?;
    Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
}
