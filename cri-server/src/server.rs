//! The server: unix socket listener, service wiring, graceful shutdown.

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use k8s_cri::v1::image_service_server::ImageServiceServer;
use k8s_cri::v1::runtime_service_server::RuntimeServiceServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crate::config::Config;
use crate::grpc::image::ImageServiceImpl;
use crate::grpc::runtime::RuntimeServiceImpl;
use crate::image::{ImageManager, ManagerConfig, Platform, RegistryConfig};

/// Server start-up and serving errors.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The socket could not be prepared or bound.
    #[error("listen on {path}: {source}")]
    Listen {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The image store could not be opened.
    #[error("open image store: {0}")]
    Images(#[from] crate::image::Error),
    /// The runtime state could not be opened.
    #[error("open runtime state: {0}")]
    Runtime(#[from] crate::container::RuntimeError),
    /// The streaming server could not start.
    #[error("streaming server: {0}")]
    Stream(#[from] crate::stream::server::StreamServerError),
    /// The configured streaming address is not an IP address and port.
    #[error("stream_address {0:?}: not an IP address")]
    StreamAddress(String),
    /// The gRPC server failed.
    #[error("serve: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Opens the image manager described by `config`.
pub fn image_manager(config: &Config) -> Result<ImageManager, ServerError> {
    Ok(ImageManager::open(ManagerConfig {
        root: config.root_dir.clone(),
        registry: RegistryConfig {
            config_path: Some(config.registry.config_path.clone()),
            auth_file: config.registry.auth_config.clone(),
        },
        platform: Platform::host(),
        pinned: vec![config.sandbox_image.clone()],
    })?)
}

/// Opens the runtime (sandboxes, containers, CNI) described by `config`.
pub fn runtime(
    config: &Config,
    images: ImageManager,
) -> Result<std::sync::Arc<crate::container::Runtime>, ServerError> {
    let cni = crate::network::CniManager::new(crate::network::CniConfig {
        conf_dir: config.cni.conf_dir.clone(),
        bin_dirs: config.cni.bin_dirs.clone(),
        cache_dir: config.root_dir.join("cni"),
        conf_template: config.cni.conf_template.clone(),
        ..Default::default()
    });
    let monitor = config
        .monitor_path
        .clone()
        .unwrap_or_else(|| crate::container::runtime::beside_exe("cri-monitor"));
    Ok(crate::container::Runtime::open(
        config.clone(),
        images,
        std::sync::Arc::new(cni),
        monitor,
    )?)
}

/// Serves the CRI services on `config.listen` until `shutdown` completes, then removes the socket.
pub async fn serve(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let images = image_manager(config)?;
    let runtime = runtime(config, images.clone())?;
    let _cni_watch = runtime
        .cni
        .watch(crate::network::watch::DEFAULT_WATCH_INTERVAL);
    let _exit_watch = runtime.watch_exits();
    let stream_ip: std::net::IpAddr = config
        .stream_address
        .parse()
        .map_err(|_| ServerError::StreamAddress(config.stream_address.clone()))?;
    let stream = std::sync::Arc::new(
        crate::stream::StreamServer::start(
            crate::stream::StreamConfig::new(std::net::SocketAddr::new(
                stream_ip,
                config.stream_port,
            )),
            std::sync::Arc::new(crate::container::stream::CriStreamRuntime::new(
                runtime.clone(),
            )),
        )
        .await?,
    );
    let path = config.listen.clone();
    let listen_err = |source| ServerError::Listen {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(listen_err)?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(listen_err(e)),
    }
    let listener = UnixListener::bind(&path).map_err(listen_err)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).map_err(listen_err)?;
    tracing::info!(socket = %path.display(), root = %config.root_dir.display(), "cri-server listening");
    let result = tonic::transport::Server::builder()
        .add_service(ImageServiceServer::new(ImageServiceImpl::new(images)))
        .add_service(RuntimeServiceServer::new(RuntimeServiceImpl::with_stream(
            runtime, stream,
        )))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;
    let _ = std::fs::remove_file(&path);
    tracing::info!("cri-server stopped");
    Ok(result?)
}
