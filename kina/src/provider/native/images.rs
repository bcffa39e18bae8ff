//! Node images: the content and snapshot store cri-server uses, under `<state>/images`.
//! An image given as a path (an OCI layout directory, an OCI or `docker save` archive) is
//! imported; one given by name must already be there (`kina build node-image` stores what
//! it builds). A node's root filesystem is an overlay of the image's layer snapshots with
//! the node's own upper directory.

use std::path::{Path, PathBuf};

use cri_server::image::{ImageManager, ManagerConfig, Platform, RegistryConfig, RootfsMount};

use super::NativeError;

/// The node image store.
#[derive(Clone)]
pub struct NodeImages {
    manager: ImageManager,
    root: PathBuf,
}

impl NodeImages {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, NativeError> {
        let manager = ImageManager::open(ManagerConfig {
            root: root.to_path_buf(),
            registry: RegistryConfig::default(),
            platform: Platform::host(),
            pinned: Vec::new(),
        })
        .map_err(|error| NativeError::Image {
            image: root.display().to_string(),
            error,
        })?;
        Ok(Self {
            manager,
            root: root.to_path_buf(),
        })
    }

    /// Makes `image` (a name in the store or a path to import) available and returns its
    /// image ID.
    pub fn ensure(&self, image: &str) -> Result<String, NativeError> {
        let path = Path::new(image);
        if image.contains('/') && path.exists() {
            let imported = self
                .manager
                .import_archive_blocking(path)
                .map_err(|error| NativeError::Image {
                    image: image.to_string(),
                    error,
                })?;
            let mut ids: Vec<String> = imported.iter().map(|(_, r)| r.id.to_string()).collect();
            ids.dedup();
            return match ids.as_slice() {
                [id] => Ok(id.clone()),
                _ => Err(NativeError::Image {
                    image: image.to_string(),
                    error: cri_server::image::Error::InvalidArgument(format!(
                        "it holds {} images; a node image must be the only one",
                        ids.len()
                    )),
                }),
            };
        }
        self.resolve(image)
    }

    /// The ID of `image` (name or ID) in the store.
    pub fn resolve(&self, image: &str) -> Result<String, NativeError> {
        match self.manager.resolve(image) {
            Ok(view) => Ok(view.record.id.to_string()),
            Err(cri_server::image::Error::NotFound(_)) => Err(NativeError::ImageNotFound {
                image: image.to_string(),
                store: self.root.clone(),
            }),
            Err(error) => Err(NativeError::Image {
                image: image.to_string(),
                error,
            }),
        }
    }

    /// Imports an image archive or layout into the store; returns the names it held.
    pub fn import(&self, path: &Path) -> Result<Vec<String>, NativeError> {
        let imported = self
            .manager
            .import_archive_blocking(path)
            .map_err(|error| NativeError::Image {
                image: path.display().to_string(),
                error,
            })?;
        Ok(imported.into_iter().flat_map(|(names, _)| names).collect())
    }

    /// Creates the writable layer of `node` over image `id`.
    pub fn prepare_rootfs(&self, id: &str, node: &str) -> Result<RootfsMount, NativeError> {
        let err = |error| NativeError::Image {
            image: id.to_string(),
            error,
        };
        let view = self.manager.resolve(id).map_err(err)?;
        self.manager
            .snapshotter()
            .prepare_rootfs(&view.record.chain_ids(), node)
            .map_err(err)
    }

    /// Deletes the writable layer of `node` (already unmounted); a missing one is fine.
    pub fn remove_rootfs(&self, node: &str) -> Result<(), NativeError> {
        self.manager
            .remove_rootfs(node)
            .map_err(|error| NativeError::Image {
                image: format!("rootfs of node {node}"),
                error,
            })
    }
}
