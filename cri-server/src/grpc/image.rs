//! The CRI ImageService: ListImages, ImageStatus, PullImage, RemoveImage, ImageFsInfo.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_server::ImageService;
use tonic::{Request, Response, Status};

use crate::image::{AuthConfig, Error, ImageManager, ImageView};

/// ImageService backed by an [`ImageManager`].
#[derive(Debug, Clone)]
pub struct ImageServiceImpl {
    images: ImageManager,
}

impl ImageServiceImpl {
    /// Serves `images`.
    pub fn new(images: ImageManager) -> Self {
        Self { images }
    }
}

fn spec_image(spec: Option<&cri::ImageSpec>) -> Result<&str, Status> {
    match spec.map(|s| s.image.trim()) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(Status::invalid_argument("image.image: must name an image")),
    }
}

/// `User` of an image config → (uid, username) as containerd reports them.
fn user_fields(user: &str) -> (Option<cri::Int64Value>, String) {
    let u = user.split(':').next().unwrap_or("");
    if u.is_empty() {
        return (None, String::new());
    }
    match u.parse::<i64>() {
        Ok(uid) => (Some(cri::Int64Value { value: uid }), String::new()),
        Err(_) => (None, u.to_owned()),
    }
}

fn to_cri(v: &ImageView) -> cri::Image {
    let (uid, username) = user_fields(&v.record.user);
    cri::Image {
        id: v.record.id.to_string(),
        repo_tags: v.repo_tags.clone(),
        repo_digests: v.repo_digests.clone(),
        size: v.record.size(),
        uid,
        username,
        spec: Some(cri::ImageSpec {
            image: v.record.id.to_string(),
            ..Default::default()
        }),
        pinned: v.pinned,
    }
}

/// `registry/repo` for a filter naming a repository without tag or digest.
fn repo_filter(f: &str) -> Option<String> {
    let last = f.rsplit('/').next().unwrap_or(f);
    if f.contains('@') || last.contains(':') {
        return None;
    }
    let r = crate::image::reference::parse(f).ok()?;
    Some(crate::image::reference::repo_name(&r))
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[tonic::async_trait]
impl ImageService for ImageServiceImpl {
    #[tracing::instrument(skip_all, fields(rpc = "ListImages"))]
    async fn list_images(
        &self,
        req: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        let filter = req
            .into_inner()
            .filter
            .and_then(|f| f.image)
            .map(|s| s.image)
            .filter(|s| !s.is_empty());
        let images = match filter {
            Some(f) => match self.images.resolve(&f) {
                Ok(v) => vec![to_cri(&v)],
                // A bare repository (no tag or digest) lists every tag of it, as crictl expects.
                Err(Error::NotFound(_)) => match repo_filter(&f) {
                    Some(repo) => self
                        .images
                        .list()
                        .iter()
                        .filter(|v| {
                            v.repo_tags
                                .iter()
                                .any(|t| t.strip_prefix(&repo).is_some_and(|r| r.starts_with(':')))
                        })
                        .map(to_cri)
                        .collect(),
                    None => vec![],
                },
                Err(e) => return Err(e.into()),
            },
            None => self.images.list().iter().map(to_cri).collect(),
        };
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ImageStatus"))]
    async fn image_status(
        &self,
        req: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let req = req.into_inner();
        let spec = spec_image(req.image.as_ref())?;
        let view = match self.images.resolve(spec) {
            Ok(v) => v,
            // CRI: an unknown image is a nil image, not an error.
            Err(Error::NotFound(_)) => {
                return Ok(Response::new(cri::ImageStatusResponse::default()));
            }
            Err(e) => return Err(e.into()),
        };
        let mut info = HashMap::new();
        if req.verbose {
            let config = self.images.config_json(&view.record.id)?;
            let chain = view.record.chain_ids();
            let doc = serde_json::json!({
                "chainID": chain.last().map(|c| c.to_string()),
                "manifest": view.record.manifest.to_string(),
                "layers": view.record.layers,
                "imageSpec": config,
            });
            info.insert("info".to_owned(), doc.to_string());
        }
        Ok(Response::new(cri::ImageStatusResponse {
            image: Some(to_cri(&view)),
            info,
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "PullImage", image))]
    async fn pull_image(
        &self,
        req: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        let req = req.into_inner();
        let spec = spec_image(req.image.as_ref())?.to_owned();
        tracing::Span::current().record("image", spec.as_str());
        let auth = req.auth.map(|a| AuthConfig {
            username: a.username,
            password: a.password,
            auth: a.auth,
            identity_token: a.identity_token,
            registry_token: a.registry_token,
        });
        let record = self.images.pull(&spec, auth.as_ref()).await?;
        Ok(Response::new(cri::PullImageResponse {
            image_ref: record.id.to_string(),
        }))
    }

    #[tracing::instrument(skip_all, fields(rpc = "RemoveImage"))]
    async fn remove_image(
        &self,
        req: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        let req = req.into_inner();
        let spec = spec_image(req.image.as_ref())?;
        // Idempotent per CRI: removing an absent image succeeds.
        self.images.remove(spec).await?;
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    #[tracing::instrument(skip_all, fields(rpc = "ImageFsInfo"))]
    async fn image_fs_info(
        &self,
        _req: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        let images = self.images.clone();
        let (bytes, inodes, root) = tokio::task::spawn_blocking(move || images.usage())
            .await
            .map_err(|e| Status::internal(format!("image fs usage: {e}")))??;
        let usage = cri::FilesystemUsage {
            timestamp: now_nanos(),
            fs_id: Some(cri::FilesystemIdentifier {
                mountpoint: root.display().to_string(),
            }),
            used_bytes: Some(cri::UInt64Value { value: bytes }),
            inodes_used: Some(cri::UInt64Value { value: inodes }),
        };
        Ok(Response::new(cri::ImageFsInfoResponse {
            image_filesystems: vec![usage.clone()],
            container_filesystems: vec![usage],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_filters() {
        assert_eq!(
            repo_filter("busybox").as_deref(),
            Some("docker.io/library/busybox")
        );
        assert_eq!(
            repo_filter("127.0.0.1:5000/a/b").as_deref(),
            Some("127.0.0.1:5000/a/b")
        );
        assert_eq!(repo_filter("busybox:1"), None);
    }

    #[test]
    fn user_fields_follow_containerd() {
        assert_eq!(user_fields(""), (None, String::new()));
        assert_eq!(
            user_fields("1000:1000"),
            (Some(cri::Int64Value { value: 1000 }), String::new())
        );
        assert_eq!(user_fields("nobody"), (None, "nobody".to_owned()));
    }
}
