//! Snapshots keyed by chain ID: each holds one unpacked layer diff (overlayfs upper layout),
//! created in a scratch directory and renamed into place when complete. A container's rootfs is
//! an overlay of its image's chain (top first) plus its own upper/work directories.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::digest::Digest;
use super::error::{Error, Result};

/// What a container's rootfs mount is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsMount {
    /// Read-only layers, topmost first (overlayfs `lowerdir` order).
    pub lowerdirs: Vec<PathBuf>,
    /// The container's writable layer.
    pub upperdir: PathBuf,
    /// overlayfs work directory (same filesystem as `upperdir`).
    pub workdir: PathBuf,
}

impl RootfsMount {
    /// overlayfs mount options.
    pub fn options(&self) -> String {
        let lower: Vec<String> = self
            .lowerdirs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upperdir.display(),
            self.workdir.display()
        )
    }

    /// Mounts the rootfs on `target`.
    pub fn mount(&self, target: &Path) -> Result<()> {
        let options = self.options();
        // The kernel takes at most one page of mount data.
        if options.len() >= 4096 {
            return Err(Error::InvalidArgument(format!(
                "rootfs for {}: {} layers exceed the overlayfs mount option limit ({} bytes)",
                target.display(),
                self.lowerdirs.len(),
                options.len()
            )));
        }
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|source| Error::Mount {
            op: "mount overlay on",
            target: target.to_owned(),
            source,
        })
    }

    /// Unmounts `target` (detaching if busy).
    pub fn unmount(target: &Path) -> Result<()> {
        umount2(target, MntFlags::MNT_DETACH).map_err(|source| Error::Mount {
            op: "unmount",
            target: target.to_owned(),
            source,
        })
    }
}

/// Chain-ID snapshots and container rootfs directories.
pub trait Snapshotter: Send + Sync {
    /// Whether the snapshot for `chain` is committed.
    fn exists(&self, chain: &Digest) -> bool;
    /// Creates the snapshot for `chain` by running `fill` on an empty scratch directory and
    /// committing it atomically. Returns false (without calling `fill`) if it already exists.
    fn create(&self, chain: &Digest, fill: &mut dyn FnMut(&Path) -> Result<()>) -> Result<bool>;
    /// The directory of a committed snapshot.
    fn path(&self, chain: &Digest) -> PathBuf;
    /// All committed snapshots.
    fn list(&self) -> Result<Vec<Digest>>;
    /// Deletes a snapshot.
    fn remove(&self, chain: &Digest) -> Result<()>;
    /// Creates the writable layer of `container_id` over `chain` (bottom first).
    fn prepare_rootfs(&self, chain: &[Digest], container_id: &str) -> Result<RootfsMount>;
    /// Deletes a container's writable layer.
    fn remove_rootfs(&self, container_id: &str) -> Result<()>;
    /// Chains used by existing container rootfs (garbage-collection roots).
    fn rootfs_chains(&self) -> Result<Vec<Digest>>;
    /// Bytes and inodes used by snapshots and container layers.
    fn usage(&self) -> Result<(u64, u64)>;
}

/// [`Snapshotter`] on a local filesystem that supports overlayfs uppers.
#[derive(Debug)]
pub struct OverlaySnapshotter {
    root: PathBuf,
    committed: PathBuf,
    scratch: PathBuf,
    containers: PathBuf,
}

static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

impl OverlaySnapshotter {
    /// Opens (creating) the snapshotter at `root`, discarding scratch dirs of crashed processes.
    pub fn open(root: &Path) -> Result<Self> {
        let s = Self {
            root: root.to_owned(),
            committed: root.join("snapshots"),
            scratch: root.join("scratch"),
            containers: root.join("containers"),
        };
        for d in [&s.committed, &s.scratch, &s.containers] {
            fs::create_dir_all(d).map_err(Error::io("create", d))?;
        }
        super::flock::clean_abandoned(&s.scratch)?;
        Ok(s)
    }

    /// The snapshotter root (for filesystem identification).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn container_dir(&self, id: &str) -> Result<PathBuf> {
        if id.is_empty() || id.contains('/') || id.starts_with('.') {
            return Err(Error::InvalidArgument(format!("container id {id:?}")));
        }
        Ok(self.containers.join(id))
    }
}

impl Snapshotter for OverlaySnapshotter {
    fn exists(&self, chain: &Digest) -> bool {
        self.path(chain).is_dir()
    }

    fn create(&self, chain: &Digest, fill: &mut dyn FnMut(&Path) -> Result<()>) -> Result<bool> {
        if self.exists(chain) {
            return Ok(false);
        }
        let seq = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .scratch
            .join(format!("{}-{seq}-{}", std::process::id(), chain.hex()));
        fs::create_dir(&tmp).map_err(Error::io("create", &tmp))?;
        let dst = self.path(chain);
        let res = fill(&tmp).and_then(|()| match fs::rename(&tmp, &dst) {
            Ok(()) => Ok(true),
            // Another process committed the same chain meanwhile: theirs is as good as ours.
            Err(_) if dst.is_dir() => Ok(false),
            Err(e) => Err(Error::Io {
                op: "commit snapshot",
                path: dst.clone(),
                source: e,
            }),
        });
        if !matches!(res, Ok(true)) {
            let _ = fs::remove_dir_all(&tmp);
        }
        res
    }

    fn path(&self, chain: &Digest) -> PathBuf {
        self.committed.join(chain.hex())
    }

    fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.committed).map_err(Error::io("list", &self.committed))? {
            let e = e.map_err(Error::io("list", &self.committed))?;
            if let Ok(d) = Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy())) {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn remove(&self, chain: &Digest) -> Result<()> {
        // Rename first so a crash mid-delete never leaves a partial snapshot under its name.
        let src = self.path(chain);
        let seq = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .scratch
            .join(format!("{}-{seq}-rm-{}", std::process::id(), chain.hex()));
        match fs::rename(&src, &tmp) {
            Ok(()) => fs::remove_dir_all(&tmp).map_err(Error::io("remove", &tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                op: "remove",
                path: src,
                source: e,
            }),
        }
    }

    fn prepare_rootfs(&self, chain: &[Digest], container_id: &str) -> Result<RootfsMount> {
        if chain.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "container {container_id}: image has no layers"
            )));
        }
        let mut lowerdirs = Vec::with_capacity(chain.len());
        for c in chain.iter().rev() {
            if !self.exists(c) {
                return Err(Error::NotFound(format!(
                    "snapshot {c} for container {container_id}"
                )));
            }
            lowerdirs.push(self.path(c));
        }
        let dir = self.container_dir(container_id)?;
        let (upperdir, workdir) = (dir.join("upper"), dir.join("work"));
        for d in [&upperdir, &workdir] {
            fs::create_dir_all(d).map_err(Error::io("create", d))?;
        }
        let chain_file = dir.join("chain.json");
        let data = serde_json::to_vec(chain).map_err(Error::json("chain"))?;
        fs::write(&chain_file, data).map_err(Error::io("write", &chain_file))?;
        Ok(RootfsMount {
            lowerdirs,
            upperdir,
            workdir,
        })
    }

    fn remove_rootfs(&self, container_id: &str) -> Result<()> {
        let dir = self.container_dir(container_id)?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                op: "remove",
                path: dir,
                source: e,
            }),
        }
    }

    fn rootfs_chains(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.containers).map_err(Error::io("list", &self.containers))? {
            let p = e
                .map_err(Error::io("list", &self.containers))?
                .path()
                .join("chain.json");
            if let Ok(b) = fs::read(&p) {
                let chain: Vec<Digest> =
                    serde_json::from_slice(&b).map_err(Error::json(p.display().to_string()))?;
                out.extend(chain);
            }
        }
        Ok(out)
    }

    fn usage(&self) -> Result<(u64, u64)> {
        let mut acc = (0, 0);
        let mut seen = std::collections::HashSet::new();
        for d in [&self.committed, &self.containers] {
            du(d, &mut acc, &mut seen)?;
        }
        Ok(acc)
    }
}

/// Adds bytes (allocated blocks) and inodes under `p` to `acc`, counting hardlinks once.
pub fn du(
    p: &Path,
    acc: &mut (u64, u64),
    seen: &mut std::collections::HashSet<(u64, u64)>,
) -> Result<()> {
    let md = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::Io {
                op: "stat",
                path: p.to_owned(),
                source: e,
            });
        }
    };
    if seen.insert((md.dev(), md.ino())) {
        acc.0 += md.blocks() * 512;
        acc.1 += 1;
    }
    if md.is_dir() {
        for e in fs::read_dir(p).map_err(Error::io("list", p))? {
            du(&e.map_err(Error::io("list", p))?.path(), acc, seen)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_overlay_options_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let s = OverlaySnapshotter::open(dir.path()).unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        for c in [&a, &b] {
            assert!(s.create(c, &mut |_| Ok(())).unwrap());
            assert!(!s.create(c, &mut |_| panic!("already exists")).unwrap());
        }
        let r = s.prepare_rootfs(&[a.clone(), b.clone()], "c1").unwrap();
        assert!(r.options().starts_with(&format!(
            "lowerdir={}:{}",
            s.path(&b).display(),
            s.path(&a).display()
        )));
        assert_eq!(s.rootfs_chains().unwrap(), vec![a.clone(), b.clone()]);
        assert!(matches!(
            s.prepare_rootfs(std::slice::from_ref(&a), "../x"),
            Err(Error::InvalidArgument(_))
        ));
        let many = RootfsMount {
            lowerdirs: vec![s.path(&a); 60],
            ..r
        };
        let err = many.mount(dir.path()).unwrap_err();
        assert!(err.to_string().contains("60 layers"), "{err}");
        // A failed fill leaves nothing behind.
        let c = Digest::of(b"c");
        assert!(
            s.create(&c, &mut |_| Err(Error::Internal("boom".into())))
                .is_err()
        );
        assert!(!s.exists(&c));
        assert_eq!(
            std::fs::read_dir(dir.path().join("scratch"))
                .unwrap()
                .count(),
            0
        );
    }
}
