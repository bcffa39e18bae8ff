//! The image manager: pulls (deduplicated, parallel, skipping present blobs and snapshots),
//! lookups, removal, filesystem usage and garbage collection over the content store, the image
//! metadata store and the snapshotter.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::RwLock;

use super::auth::AuthConfig;
use super::content::{ContentStore, Expected, FsContentStore};
use super::digest::Digest;
use super::error::{Error, Result};
use super::locks::KeyedLocks;
use super::manifest::{self, ImageConfig, Parsed, Platform};
use super::metadata::{FileImageStore, ImageRecord, ImageStore, LayerRecord};
use super::reference;
use super::registry::{Registries, RegistryConfig, Source};
use super::snapshot::{OverlaySnapshotter, RootfsMount, Snapshotter, du};
use super::unpack::apply_layer;

/// Largest manifest or config we accept.
pub const MAX_JSON: u64 = 16 << 20;

/// How to set up an [`ImageManager`].
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Root of all image state (content, metadata, snapshots).
    pub root: PathBuf,
    /// Registry hosts and credentials.
    pub registry: RegistryConfig,
    /// Platform to select from indexes.
    pub platform: Platform,
    /// Image names never garbage-collected or reported unpinned (the sandbox image).
    pub pinned: Vec<String>,
}

/// An image as the CRI sees it.
#[derive(Debug, Clone)]
pub struct ImageView {
    pub record: ImageRecord,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub pinned: bool,
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: usize,
    pub snapshots: usize,
}

pub(super) struct Inner {
    pub(super) content: Arc<dyn ContentStore>,
    pub(super) images: Arc<dyn ImageStore>,
    pub(super) snapshots: Arc<dyn Snapshotter>,
    registries: Registries,
    pub(super) platform: Platform,
    pinned: Vec<String>,
    root: PathBuf,
    pull_locks: KeyedLocks,
    blob_locks: KeyedLocks,
    pub(super) chain_locks: KeyedLocks,
    /// Pulls and imports hold it shared; garbage collection exclusively.
    pub(super) gc_lock: RwLock<()>,
    /// The same across processes (`flock` on `<root>/gc.lock`), e.g. a CLI import.
    pub(super) gc_flock: PathBuf,
    fetched: AtomicU64,
}

/// Images: pull, look up, remove, import/export, garbage-collect.
#[derive(Clone)]
pub struct ImageManager {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for ImageManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageManager")
            .field("root", &self.inner.root)
            .finish()
    }
}

impl Inner {
    /// Shared cross-process GC lock (blocking).
    pub(super) fn gc_shared_blocking(&self) -> Result<super::flock::FileLock> {
        super::flock::lock(&self.gc_flock, false)
    }

    /// Shared cross-process GC lock, waited for off the async workers.
    async fn gc_shared(self: &Arc<Self>) -> Result<super::flock::FileLock> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.gc_shared_blocking())
            .await
            .map_err(|e| Error::Internal(format!("gc lock: {e}")))?
    }

    /// Blocking lock of a chain ID (for blocking threads such as imports).
    pub(super) fn chain_locks_blocking(&self, chain: &Digest) -> super::locks::KeyGuard<'_> {
        self.chain_locks.blocking_lock(chain.as_str())
    }
}

impl ImageManager {
    /// Opens the stores under `config.root`, cleaning up what a crash left half-done.
    pub fn open(config: ManagerConfig) -> Result<Self> {
        let content = FsContentStore::open(&config.root.join("content"))?;
        let images = FileImageStore::open(&config.root.join("metadata"))?;
        let snapshots = OverlaySnapshotter::open(&config.root.join("overlay"))?;
        let pinned = config
            .pinned
            .iter()
            .filter_map(|p| reference::normalize(p).ok())
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                content: Arc::new(content),
                images: Arc::new(images),
                snapshots: Arc::new(snapshots),
                registries: Registries::new(config.registry),
                platform: config.platform,
                pinned,
                gc_flock: config.root.join("gc.lock"),
                root: config.root,
                pull_locks: KeyedLocks::default(),
                blob_locks: KeyedLocks::default(),
                chain_locks: KeyedLocks::default(),
                gc_lock: RwLock::new(()),

                fetched: AtomicU64::new(0),
            }),
        })
    }

    /// Root directory of the image state.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Creates the writable layer of `container_id` on top of `image` (ID, name or digest
    /// reference). While it exists, the image's snapshots survive garbage collection.
    pub async fn prepare_rootfs(&self, image: &str, container_id: &str) -> Result<RootfsMount> {
        let _gc = self.inner.gc_lock.read().await;
        let _xgc = self.inner.gc_shared().await?;
        let view = self.resolve(image)?;
        self.inner
            .snapshots
            .prepare_rootfs(&view.record.chain_ids(), container_id)
    }

    /// Deletes a container's writable layer (the caller has unmounted it).
    pub fn remove_rootfs(&self, container_id: &str) -> Result<()> {
        self.inner.snapshots.remove_rootfs(container_id)
    }

    /// The snapshotter (container rootfs for the runtime service).
    pub fn snapshotter(&self) -> Arc<dyn Snapshotter> {
        self.inner.snapshots.clone()
    }

    /// The content store.
    pub fn content(&self) -> Arc<dyn ContentStore> {
        self.inner.content.clone()
    }

    /// Bytes received from registries since start.
    pub fn bytes_fetched(&self) -> u64 {
        self.inner.fetched.load(Ordering::Relaxed)
    }

    /// Pulls `image` (tag or digest reference) and unpacks its layers; returns the image.
    /// Concurrent pulls of the same reference run once; present blobs and snapshots are reused.
    #[tracing::instrument(skip(self, auth), fields(image = image))]
    pub async fn pull(&self, image: &str, auth: Option<&AuthConfig>) -> Result<ImageRecord> {
        let r = reference::parse(image)?;
        let name = r.whole();
        let _dedup = self.inner.pull_locks.lock(&name).await;
        let _gc = self.inner.gc_lock.read().await;
        let _xgc = self.inner.gc_shared().await?;
        let (src, top, top_digest) = self.inner.registries.resolve(&r, auth).await?;
        let what = format!("manifest of {name}");
        self.put_small(&top, &top_digest, &what)?;
        let (mdigest, mbytes) = match manifest::parse(&top, "", &what)? {
            Parsed::Manifest(_) => (top_digest.clone(), top),
            Parsed::Index(idx) => {
                let d = idx.select(&self.inner.platform, &name)?.digest.clone();
                let bytes = match self.inner.content.size(&d) {
                    Some(_) => self.inner.content.read(&d, MAX_JSON)?,
                    None => {
                        let b = src.manifest(&d).await?;
                        self.put_small(&b, &d, &what)?;
                        b
                    }
                };
                (d, bytes)
            }
        };
        let Parsed::Manifest(m) = manifest::parse(&mbytes, "", &what)? else {
            return Err(Error::InvalidArgument(format!(
                "{what}: index {mdigest} points at another index"
            )));
        };
        let fetched = Arc::new(AtomicU64::new(0));
        self.fetch_blob(
            &fetched,
            &src,
            &m.config.digest,
            m.config.size,
            &m.config.media_type,
            &format!("config of {name}"),
        )
        .await?;
        let record = self.record(&mdigest, &mbytes, &m, &name)?;
        let mut tasks = tokio::task::JoinSet::new();
        for (layer, chain) in record.layers.iter().zip(record.chain_ids()) {
            let (me, src, layer, ctx, fetched) = (
                self.clone(),
                src.clone(),
                layer.clone(),
                format!("layer {} of {name}", layer.digest),
                fetched.clone(),
            );
            tasks.spawn(async move {
                me.fetch_blob(
                    &fetched,
                    &src,
                    &layer.digest,
                    layer.size,
                    &layer.media_type,
                    &ctx,
                )
                .await?;
                me.unpack(layer, chain, ctx).await
            });
        }
        // Wait for every layer even after a failure: no unpack may outlive the pull (and its
        // hold on the GC lock).
        let mut first_err = None;
        while let Some(res) = tasks.join_next().await {
            let res = res
                .map_err(|e| Error::Internal(format!("pull {name}: {e}")))
                .and_then(|r| r);
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let mut names = vec![(reference::digest_name(&r, &top_digest), top_digest.clone())];
        if let Some(tag) = reference::tag_name(&r) {
            names.push((tag, top_digest.clone()));
        }
        self.inner.images.put(record.clone(), &names)?;
        let fetched = fetched.load(Ordering::Relaxed);
        tracing::info!(image = %name, id = %record.id, fetched_bytes = fetched, "pulled");
        Ok(record)
    }

    fn put_small(&self, data: &[u8], digest: &Digest, what: &str) -> Result<()> {
        if self.inner.content.size(digest).is_none() {
            self.inner.content.put(data, Some(digest), what)?;
        }
        Ok(())
    }

    async fn fetch_blob(
        &self,
        fetched: &AtomicU64,
        src: &Source,
        digest: &Digest,
        size: u64,
        media_type: &str,
        ctx: &str,
    ) -> Result<()> {
        let _g = self.inner.blob_locks.lock(digest.as_str()).await;
        if self.inner.content.size(digest).is_some() {
            return Ok(());
        }
        let sink = self.inner.content.ingest(Expected {
            digest: Some(digest.clone()),
            size: Some(size),
            context: ctx.to_owned(),
        })?;
        src.blob(
            digest,
            size,
            media_type,
            sink,
            &[&self.inner.fetched, fetched],
        )
        .await?;
        Ok(())
    }

    /// Builds the image record for a manifest whose config is in the content store.
    pub(super) fn record(
        &self,
        mdigest: &Digest,
        mbytes: &[u8],
        m: &manifest::Manifest,
        name: &str,
    ) -> Result<ImageRecord> {
        let cbytes = self.inner.content.read(&m.config.digest, MAX_JSON)?;
        let cfg = ImageConfig::parse(
            &cbytes,
            m.layers.len(),
            &format!("config {} of {name}", m.config.digest),
        )?;
        let layers = m
            .layers
            .iter()
            .zip(&cfg.rootfs.diff_ids)
            .map(|(l, d)| LayerRecord {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                diff_id: d.clone(),
            })
            .collect();
        Ok(ImageRecord {
            id: m.config.digest.clone(),
            manifest: mdigest.clone(),
            manifest_media_type: if m.media_type.is_empty() {
                manifest::OCI_MANIFEST.into()
            } else {
                m.media_type.clone()
            },
            manifest_size: mbytes.len() as u64,
            config_size: cbytes.len() as u64,
            layers,
            user: cfg.user(),
        })
    }

    /// Unpacks a layer blob (present in the content store) into its chain snapshot, once.
    pub(super) async fn unpack(
        &self,
        layer: LayerRecord,
        chain: Digest,
        ctx: String,
    ) -> Result<()> {
        let _g = self.inner.chain_locks.lock(chain.as_str()).await;
        if self.inner.snapshots.exists(&chain) {
            return Ok(());
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.unpack_blocking(&layer, &chain, &ctx))
            .await
            .map_err(|e| Error::Internal(format!("unpack: {e}")))?
    }

    /// Unpacks on the current (blocking) thread; the caller holds the chain lock or is alone.
    pub(super) fn unpack_blocking(
        &self,
        layer: &LayerRecord,
        chain: &Digest,
        ctx: &str,
    ) -> Result<()> {
        let content = self.inner.content.clone();
        self.inner.snapshots.create(chain, &mut |dir| {
            let blob = content.open(&layer.digest)?;
            let applied = apply_layer(dir, ctx, blob)?;
            if applied.diff_id != layer.diff_id {
                return Err(Error::DigestMismatch {
                    context: format!("{ctx}: uncompressed content (diff ID)"),
                    expected: layer.diff_id.to_string(),
                    actual: applied.diff_id.to_string(),
                });
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Looks an image up by ID (`sha256:...` or its hex), name or digest reference.
    pub fn resolve(&self, spec: &str) -> Result<ImageView> {
        let spec = spec.trim();
        let id = Digest::parse(spec)
            .ok()
            .or_else(|| Digest::parse(&format!("sha256:{spec}")).ok());
        if let Some(id) = id
            && let Some(v) = self.list().into_iter().find(|v| v.record.id == id)
        {
            return Ok(v);
        }
        // A unique prefix of an ID, as `crictl images` prints them (at least 12 hex digits).
        let hex = spec.strip_prefix("sha256:").unwrap_or(spec);
        if (12..64).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found: Vec<ImageView> = self
                .list()
                .into_iter()
                .filter(|v| v.record.id.hex().starts_with(hex))
                .collect();
            match found.len() {
                1 => return Ok(found.remove(0)),
                0 => {}
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "image ID prefix {spec:?} is ambiguous"
                    )));
                }
            }
        }
        let name =
            reference::normalize(spec).map_err(|_| Error::NotFound(format!("image {spec:?}")))?;
        let (_, rec) = self
            .inner
            .images
            .by_name(&name)
            .ok_or_else(|| Error::NotFound(format!("image {spec:?}")))?;
        self.list()
            .into_iter()
            .find(|v| v.record.id == rec.id)
            .ok_or_else(|| Error::NotFound(format!("image {spec:?}")))
    }

    /// All images.
    pub fn list(&self) -> Vec<ImageView> {
        self.inner
            .images
            .list()
            .into_iter()
            .map(|(record, names)| {
                let mut repo_tags = Vec::new();
                let mut repo_digests = Vec::new();
                for (n, target) in &names {
                    if reference::is_digest_name(n) {
                        repo_digests.push(n.clone());
                    } else {
                        repo_tags.push(n.clone());
                        let repo = n.rsplit_once(':').map_or(n.as_str(), |(r, _)| r);
                        repo_digests.push(format!("{repo}@{}", target.target));
                    }
                }
                repo_digests.sort();
                repo_digests.dedup();
                let pinned = names.iter().any(|(n, _)| self.inner.pinned.contains(n));
                ImageView {
                    record,
                    repo_tags,
                    repo_digests,
                    pinned,
                }
            })
            .collect()
    }

    /// Removes an image and all its names (idempotent: Ok(false) if it was unknown), then
    /// garbage-collects its content.
    pub async fn remove(&self, spec: &str) -> Result<bool> {
        let view = match self.resolve(spec) {
            Ok(v) => v,
            Err(Error::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        self.inner.images.remove_image(&view.record.id)?;
        let report = self.gc().await?;
        tracing::info!(image = spec, id = %view.record.id, blobs = report.blobs, snapshots = report.snapshots, "removed image");
        Ok(true)
    }

    /// Deletes blobs and snapshots no image or container uses. Waits for running pulls.
    pub async fn gc(&self) -> Result<GcReport> {
        let _w = self.inner.gc_lock.write().await;
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.gc_locked())
            .await
            .map_err(|e| Error::Internal(format!("gc: {e}")))?
    }

    fn gc_locked(&self) -> Result<GcReport> {
        let _xgc = super::flock::lock(&self.inner.gc_flock, true)?;
        let mut blobs = std::collections::HashSet::new();
        let mut chains: std::collections::HashSet<Digest> =
            self.inner.snapshots.rootfs_chains()?.into_iter().collect();
        for (img, names) in self.inner.images.list() {
            blobs.insert(img.manifest.clone());
            blobs.insert(img.id.clone());
            blobs.extend(img.layers.iter().map(|l| l.digest.clone()));
            blobs.extend(names.into_iter().map(|(_, n)| n.target));
            chains.extend(img.chain_ids());
        }
        let mut report = GcReport::default();
        for d in self.inner.content.list()? {
            if !blobs.contains(&d) && self.inner.content.delete(&d)? {
                report.blobs += 1;
            }
        }
        for c in self.inner.snapshots.list()? {
            if !chains.contains(&c) {
                self.inner.snapshots.remove(&c)?;
                report.snapshots += 1;
            }
        }
        Ok(report)
    }

    /// Bytes and inodes used by the image store, and the directory it lives in.
    pub fn usage(&self) -> Result<(u64, u64, PathBuf)> {
        let (mut bytes, mut inodes) = self.inner.snapshots.usage()?;
        let mut acc = (0, 0);
        du(
            &self.inner.root.join("content"),
            &mut acc,
            &mut Default::default(),
        )?;
        bytes += acc.0;
        inodes += acc.1;
        Ok((bytes, inodes, self.inner.root.clone()))
    }

    /// The image config JSON of an image.
    pub fn config_json(&self, id: &Digest) -> Result<serde_json::Value> {
        let b = self.inner.content.read(id, MAX_JSON)?;
        serde_json::from_slice(&b).map_err(Error::json(format!("config {id}")))
    }
}
