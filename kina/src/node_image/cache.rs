//! The build cache: the debootstrap base is built once per suite, variant, package list and
//! architecture and kept as a finished gzip layer, so repeat builds skip debootstrap and
//! recompression. Entries appear atomically (built in a temp dir, then renamed).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::debootstrap;
use super::error::{NodeImageError, Result};
use super::layer::{LayerInfo, LayerWriter};
use super::recipe::Recipe;

/// Bump when the base layer's contents change for the same recipe (pruning, layer format).
const BASE_FORMAT: u32 = 1;

/// Directories whose contents never go into the base layer: the runtime provides them.
const SKIP_CONTENTS: &[&str] = &["dev", "proc", "sys", "run", "tmp"];

/// Default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/kina/node-image";

/// A cached base layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseLayer {
    /// Path of the gzip blob.
    #[serde(skip)]
    pub blob: PathBuf,
    /// Digests and size.
    pub layer: LayerInfo,
    /// CNI plugins in /usr/lib/cni.
    pub cni_plugins: Vec<String>,
    /// The suite it was built from.
    pub suite: String,
    /// The mirror it was built from.
    pub mirror: String,
}

/// `<suite>-<first 16 hex of sha256(recipe base, arch, format)>`.
pub fn base_key(recipe: &Recipe, arch: &str) -> String {
    let mut packages = recipe.base.packages.clone();
    packages.sort();
    packages.dedup();
    let mut h = Sha256::new();
    for part in [
        format!("format={BASE_FORMAT}"),
        format!("suite={}", recipe.base.suite),
        format!("variant={}", recipe.base.variant),
        format!("components={}", recipe.base.components.join(",")),
        format!("packages={}", packages.join(",")),
        format!("arch={arch}"),
    ] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    format!("{}-{}", recipe.base.suite, &hex::encode(h.finalize())[..16])
}

/// The cache rooted at a directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// A scratch directory inside the cache, removed (with everything in it) on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // debootstrap mounts /proc and /sys inside its target; a failed run can leave them.
        // Never recurse into a mount: detach everything below first.
        for mount in mounts_below(&self.path) {
            if let Err(e) = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!(path = %mount.display(), error = %e, "cannot unmount below a scratch directory");
                return;
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a scratch directory");
        }
    }
}

/// Mount points at or below `dir`, deepest first (from /proc/self/mountinfo).
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.clone().take(3).collect();
            if code.len() == 3
                && let Ok(v) = u8::from_str_radix(&code, 8)
            {
                out.push(v as char);
                chars.nth(2);
                continue;
            }
        }
        out.push(c);
    }
    out
}

impl Cache {
    /// A cache in `root` (created when needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where downloaded Kubernetes releases are kept.
    pub fn downloads(&self) -> PathBuf {
        self.root.join("kubernetes")
    }

    /// A fresh scratch directory inside the cache.
    pub fn scratch(&self, what: &str) -> Result<ScratchDir> {
        let dir = self.root.join("tmp").join(format!(
            "{what}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        fs::create_dir_all(&dir).map_err(NodeImageError::io("create directory", &dir))?;
        Ok(ScratchDir { path: dir })
    }

    fn base_dir(&self, key: &str) -> PathBuf {
        self.root.join("base").join(key)
    }

    fn layer_dir(&self, key: &str) -> PathBuf {
        self.root.join("layers").join(key)
    }

    /// A layer cached under `key` (see [`super::tree::Tree::content_key`]), if intact.
    pub fn cached_layer(&self, key: &str) -> Option<(PathBuf, LayerInfo)> {
        let dir = self.layer_dir(key);
        let info: LayerInfo =
            serde_json::from_slice(&fs::read(dir.join("layer.json")).ok()?).ok()?;
        let blob = dir.join("layer.tar.gz");
        (fs::metadata(&blob).ok()?.len() == info.size).then_some((blob, info))
    }

    /// The layer cached under `key`, written by `write` into a new blob when missing.
    pub fn layer(
        &self,
        key: &str,
        write: impl FnOnce(&Path) -> Result<LayerInfo>,
    ) -> Result<(PathBuf, LayerInfo)> {
        if let Some(hit) = self.cached_layer(key) {
            tracing::info!(key, "using a cached layer");
            // Mark it used, so pruning keeps it.
            let meta = self.layer_dir(key).join("layer.json");
            if let Err(e) = fs::File::options()
                .append(true)
                .open(&meta)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            {
                tracing::debug!(path = %meta.display(), error = %e, "cannot mark a cached layer used");
            }
            return Ok(hit);
        }
        let scratch = self.scratch("layer")?;
        let entry = scratch.path().join("entry");
        fs::create_dir(&entry).map_err(NodeImageError::io("create directory", &entry))?;
        let info = write(&entry.join("layer.tar.gz"))?;
        let json =
            serde_json::to_vec_pretty(&info).map_err(|e| NodeImageError::Oci(e.to_string()))?;
        let meta = entry.join("layer.json");
        fs::write(&meta, json).map_err(NodeImageError::io("write", &meta))?;
        let parent = self.root.join("layers");
        fs::create_dir_all(&parent).map_err(NodeImageError::io("create directory", &parent))?;
        let dest = self.layer_dir(key);
        if let Err(e) = fs::rename(&entry, &dest)
            && self.cached_layer(key).is_none()
        {
            return Err(NodeImageError::io("move into the cache", &dest)(e));
        }
        self.cached_layer(key).ok_or_else(|| {
            NodeImageError::Oci(format!(
                "cached layer {} vanished after it was written",
                dest.display()
            ))
        })
    }

    /// Remove cached layers unused for `max_age` (each build marks what it uses) and scratch
    /// directories of builds that died that long ago; returns how many entries were removed.
    pub fn prune(&self, max_age: std::time::Duration) -> Result<usize> {
        let now = std::time::SystemTime::now();
        let old = |p: &Path| {
            fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > max_age))
        };
        let mut removed = 0;
        for (dir, marker) in [("layers", Some("layer.json")), ("tmp", None)] {
            let dir = self.root.join(dir);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                let stamp = marker.map_or(path.clone(), |m| path.join(m));
                if !old(&stamp) || !mounts_below(&path).is_empty() {
                    continue;
                }
                fs::remove_dir_all(&path).map_err(NodeImageError::io("prune", &path))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The cached base for `recipe`, if it exists and is intact.
    pub fn cached_base(&self, recipe: &Recipe, arch: &str) -> Option<BaseLayer> {
        let dir = self.base_dir(&base_key(recipe, arch));
        let text = fs::read_to_string(dir.join("base.json")).ok()?;
        let mut base: BaseLayer = serde_json::from_str(&text).ok()?;
        base.blob = dir.join("layer.tar.gz");
        let size = fs::metadata(&base.blob).ok()?.len();
        (size == base.layer.size).then_some(base)
    }

    /// The cached base for `recipe`, built with debootstrap from `mirror` when missing.
    pub fn ensure_base(&self, recipe: &Recipe, arch: &str, mirror: &str) -> Result<BaseLayer> {
        if let Some(base) = self.cached_base(recipe, arch) {
            tracing::info!(blob = %base.blob.display(), "using the cached Debian base");
            return Ok(base);
        }
        let key = base_key(recipe, arch);
        let scratch = self.scratch(&key)?;
        let tmp = scratch.path();
        let rootfs = tmp.join("rootfs");
        debootstrap::debootstrap(recipe, arch, mirror, &rootfs, &tmp.join("debootstrap.log"))?;
        debootstrap::prune(&rootfs)?;
        let cni_plugins = debootstrap::cni_plugins(&rootfs)?;
        let entry = tmp.join("entry");
        fs::create_dir(&entry).map_err(NodeImageError::io("create directory", &entry))?;
        let mut writer = LayerWriter::create(&entry.join("layer.tar.gz"))?;
        writer.append_dir(&rootfs, SKIP_CONTENTS)?;
        let layer = writer.finish()?;
        let base = BaseLayer {
            blob: PathBuf::new(),
            layer,
            cni_plugins,
            suite: recipe.base.suite.clone(),
            mirror: mirror.to_owned(),
        };
        let json =
            serde_json::to_vec_pretty(&base).map_err(|e| NodeImageError::Oci(e.to_string()))?;
        let meta = entry.join("base.json");
        fs::write(&meta, json).map_err(NodeImageError::io("write", &meta))?;
        let dest = self.base_dir(&key);
        let parent = self.root.join("base");
        fs::create_dir_all(&parent).map_err(NodeImageError::io("create directory", &parent))?;
        if let Err(e) = fs::rename(&entry, &dest) {
            // Another build finished the same base first: use it.
            if self.cached_base(recipe, arch).is_none() {
                return Err(NodeImageError::io("move into the cache", &dest)(e));
            }
        }
        drop(scratch);
        self.cached_base(recipe, arch).ok_or_else(|| {
            NodeImageError::Oci(format!(
                "cached base {} vanished after it was written",
                dest.display()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_removes_only_stale_entries() {
        let root = std::env::temp_dir().join(format!("kina-prune-{}", std::process::id()));
        let cache = Cache::new(&root);
        let write = |blob: &Path| {
            fs::write(blob, b"layer").unwrap();
            Ok(LayerInfo {
                digest: "sha256:a".into(),
                diff_id: "sha256:b".into(),
                size: 5,
            })
        };
        cache.layer("fresh", write).unwrap();
        cache.layer("stale", write).unwrap();
        let stale = root.join("layers/stale/layer.json");
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400);
        fs::File::options()
            .append(true)
            .open(&stale)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        assert_eq!(
            cache.prune(std::time::Duration::from_secs(86_400)).unwrap(),
            1
        );
        assert!(cache.cached_layer("fresh").is_some() && cache.cached_layer("stale").is_none());
        // Using an entry refreshes it.
        fs::File::options()
            .append(true)
            .open(root.join("layers/fresh/layer.json"))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        cache.layer("fresh", |_| panic!("cached")).unwrap();
        assert_eq!(
            cache.prune(std::time::Duration::from_secs(86_400)).unwrap(),
            0
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo("/a\\040b\\011c"), "/a b\tc");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn scratch_dirs_with_mounts_inside_are_removed_safely() {
        let root = std::env::temp_dir().join(format!("kina-scratch-{}", std::process::id()));
        let cache = Cache::new(&root);
        let scratch = cache.scratch("t").unwrap();
        let proc_dir = scratch.path().join("rootfs/proc");
        fs::create_dir_all(&proc_dir).unwrap();
        nix::mount::mount(
            Some("proc"),
            &proc_dir,
            Some("proc"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        assert_eq!(mounts_below(scratch.path()), vec![proc_dir]);
        let path = scratch.path().to_owned();
        drop(scratch);
        assert!(mounts_below(&path).is_empty());
        assert!(!path.exists());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn key_follows_the_package_set_not_its_order() {
        let r = Recipe::embedded().unwrap();
        let k = base_key(&r, "amd64");
        assert!(
            k.starts_with("bookworm-") && k.len() == "bookworm-".len() + 16,
            "{k}"
        );
        let mut r2 = r.clone();
        r2.base.packages.reverse();
        assert_eq!(base_key(&r2, "amd64"), k);
        r2.base.packages.push("curl".into());
        assert_ne!(base_key(&r2, "amd64"), k);
        assert_ne!(base_key(&r, "arm64"), k);
    }

    #[test]
    fn a_truncated_blob_is_not_a_cache_hit() {
        let root = std::env::temp_dir().join(format!("kina-cache-test-{}", std::process::id()));
        let cache = Cache::new(&root);
        let r = Recipe::embedded().unwrap();
        let dir = cache.base_dir(&base_key(&r, "amd64"));
        fs::create_dir_all(&dir).unwrap();
        let base = BaseLayer {
            blob: PathBuf::new(),
            layer: LayerInfo {
                digest: "sha256:a".into(),
                diff_id: "sha256:b".into(),
                size: 10,
            },
            cni_plugins: vec!["bridge".into()],
            suite: "bookworm".into(),
            mirror: "http://m/debian".into(),
        };
        fs::write(dir.join("base.json"), serde_json::to_vec(&base).unwrap()).unwrap();
        fs::write(dir.join("layer.tar.gz"), [0u8; 5]).unwrap();
        assert!(cache.cached_base(&r, "amd64").is_none());
        fs::write(dir.join("layer.tar.gz"), [0u8; 10]).unwrap();
        let hit = cache.cached_base(&r, "amd64").unwrap();
        assert_eq!(hit.blob, dir.join("layer.tar.gz"));
        fs::remove_dir_all(&root).unwrap();
    }
}
