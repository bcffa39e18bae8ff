//! Images: content store, image metadata, chain-ID snapshots, safe layer unpacking, registry
//! pulls (hosts.toml mirrors, auth, TLS) and import/export of image archives.
//!
//! The seams are traits — [`ContentStore`], [`ImageStore`], [`Snapshotter`] — tied together by
//! [`ImageManager`], which the CRI ImageService (and later the RuntimeService) use.

pub mod archive;
pub mod auth;
pub mod content;
pub mod digest;
mod error;
pub mod flock;
pub mod hosts;
mod locks;
pub mod manager;
pub mod manifest;
pub mod metadata;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod unpack;

pub use auth::AuthConfig;
pub use content::{ContentStore, FsContentStore};
pub use digest::Digest;
pub use error::{Error, Result};
pub use manager::{GcReport, ImageManager, ImageView, ManagerConfig};
pub use manifest::Platform;
pub use metadata::{ImageRecord, ImageStore};
pub use registry::RegistryConfig;
pub use snapshot::{RootfsMount, Snapshotter};
