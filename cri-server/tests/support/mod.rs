//! Shared test support for the image tests: a real local registry and locally built images.
#![allow(dead_code)]

pub mod images;
pub mod registry;
pub mod server;

use std::path::{Path, PathBuf};

use cri_server::image::{ImageManager, ManagerConfig, Platform, RegistryConfig};

/// An image manager rooted in `root` with hosts.toml files in `certs_d`.
pub fn manager(root: &Path, certs_d: &Path, auth_file: Option<PathBuf>) -> ImageManager {
    ImageManager::open(ManagerConfig {
        root: root.to_owned(),
        registry: RegistryConfig {
            config_path: Some(certs_d.to_owned()),
            auth_file,
        },
        platform: Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        },
        pinned: vec!["registry.k8s.io/pause:3.10".into()],
    })
    .unwrap()
}
