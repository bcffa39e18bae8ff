//! Persisted image metadata: which names point at which image, and what each image is made
//! of. Stored as one JSON document replaced atomically (write, fsync, rename), so a crash
//! leaves either the old or the new state.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::digest::{Digest, chain_ids};
use super::error::{Error, Result};

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the (compressed) blob.
    pub digest: Digest,
    /// Media type from the manifest.
    pub media_type: String,
    /// Blob size.
    pub size: u64,
    /// Digest of the uncompressed tar (from the image config).
    pub diff_id: Digest,
}

/// A stored image; its ID is its config digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Config digest = image ID.
    pub id: Digest,
    /// The platform manifest.
    pub manifest: Digest,
    /// Media type of the manifest.
    pub manifest_media_type: String,
    /// Size of the manifest blob.
    pub manifest_size: u64,
    /// Size of the config blob.
    pub config_size: u64,
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// `config.User` of the image config.
    pub user: String,
}

impl ImageRecord {
    /// Chain IDs of the layers, bottom first.
    pub fn chain_ids(&self) -> Vec<Digest> {
        chain_ids(
            &self
                .layers
                .iter()
                .map(|l| l.diff_id.clone())
                .collect::<Vec<_>>(),
        )
    }

    /// Bytes of content this image references (manifest, config, layer blobs).
    pub fn size(&self) -> u64 {
        self.manifest_size + self.config_size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

/// What a name points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRecord {
    /// The image.
    pub id: Digest,
    /// The digest the name resolved to in the registry (index or manifest): used for RepoDigests.
    pub target: Digest,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Document {
    images: BTreeMap<Digest, ImageRecord>,
    names: BTreeMap<String, NameRecord>,
}

/// Image metadata lookups and updates.
pub trait ImageStore: Send + Sync {
    /// The image a name points at.
    fn by_name(&self, name: &str) -> Option<(NameRecord, ImageRecord)>;
    /// An image by ID.
    fn by_id(&self, id: &Digest) -> Option<ImageRecord>;
    /// All images with their names.
    fn list(&self) -> Vec<(ImageRecord, Vec<(String, NameRecord)>)>;
    /// Stores `image` and points `names` at it (moving names away from other images).
    fn put(&self, image: ImageRecord, names: &[(String, Digest)]) -> Result<()>;
    /// Removes a name; images left without a name are removed too. Returns removed image IDs.
    fn remove_name(&self, name: &str) -> Result<Vec<Digest>>;
    /// Removes an image and all its names.
    fn remove_image(&self, id: &Digest) -> Result<bool>;
}

/// [`ImageStore`] in a JSON file replaced atomically.
#[derive(Debug)]
pub struct FileImageStore {
    path: PathBuf,
    lock: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    doc: Document,
    /// (device, inode) of the images.json `doc` was read from: every save renames a new file
    /// into place, so a different inode means another process (e.g. an import) changed it.
    seen: Option<(u64, u64)>,
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl FileImageStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        let store = Self {
            path: dir.join("images.json"),
            lock: dir.join("lock"),
            state: Mutex::new(State::default()),
        };
        store.refresh(&mut store.state.lock().unwrap_or_else(|p| p.into_inner()))?;
        Ok(store)
    }

    /// Re-reads images.json if another process replaced it.
    fn refresh(&self, st: &mut State) -> Result<()> {
        let id = file_id(&self.path);
        if id == st.seen && id.is_some() {
            return Ok(());
        }
        st.doc = match fs::read(&self.path) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(Error::json(self.path.display().to_string()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Document::default(),
            Err(e) => {
                return Err(Error::Io {
                    op: "read",
                    path: self.path.clone(),
                    source: e,
                });
            }
        };
        st.seen = id;
        Ok(())
    }

    /// The current document for reading (refreshed if changed; on a read error the last good
    /// state is kept and the error logged).
    fn read<T>(&self, f: impl FnOnce(&Document) -> T) -> T {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = self.refresh(&mut st) {
            tracing::error!(error = %e, "reloading image metadata failed; serving the last good state");
        }
        f(&st.doc)
    }

    fn save(&self, doc: &Document) -> Result<()> {
        let tmp = self
            .path
            .with_extension(format!("json.{}.tmp", std::process::id()));
        let data = serde_json::to_vec_pretty(doc).map_err(Error::json("image metadata"))?;
        let mut f = File::create(&tmp).map_err(Error::io("create", &tmp))?;
        f.write_all(&data).map_err(Error::io("write", &tmp))?;
        f.sync_all().map_err(Error::io("fsync", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(Error::io("rename", &self.path))?;
        if let Some(dir) = self.path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Read-modify-write under an exclusive cross-process lock.
    fn update<T>(&self, f: impl FnOnce(&mut Document) -> T) -> Result<T> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let _flock = super::flock::lock(&self.lock, true)?;
        self.refresh(&mut st)?;
        let mut next = Document {
            images: st.doc.images.clone(),
            names: st.doc.names.clone(),
        };
        let out = f(&mut next);
        self.save(&next)?;
        st.doc = next;
        st.seen = file_id(&self.path);
        Ok(out)
    }
}

fn prune(doc: &mut Document) -> Vec<Digest> {
    let used: std::collections::BTreeSet<&Digest> = doc.names.values().map(|n| &n.id).collect();
    let gone: Vec<Digest> = doc
        .images
        .keys()
        .filter(|id| !used.contains(id))
        .cloned()
        .collect();
    for id in &gone {
        doc.images.remove(id);
    }
    gone
}

impl ImageStore for FileImageStore {
    fn by_name(&self, name: &str) -> Option<(NameRecord, ImageRecord)> {
        self.read(|doc| {
            let n = doc.names.get(name)?;
            Some((n.clone(), doc.images.get(&n.id)?.clone()))
        })
    }

    fn by_id(&self, id: &Digest) -> Option<ImageRecord> {
        self.read(|doc| doc.images.get(id).cloned())
    }

    fn list(&self) -> Vec<(ImageRecord, Vec<(String, NameRecord)>)> {
        self.read(|doc| {
            doc.images
                .values()
                .map(|img| {
                    let names = doc
                        .names
                        .iter()
                        .filter(|(_, n)| n.id == img.id)
                        .map(|(k, n)| (k.clone(), n.clone()))
                        .collect();
                    (img.clone(), names)
                })
                .collect()
        })
    }

    fn put(&self, image: ImageRecord, names: &[(String, Digest)]) -> Result<()> {
        self.update(|doc| {
            for (name, target) in names {
                doc.names.insert(
                    name.clone(),
                    NameRecord {
                        id: image.id.clone(),
                        target: target.clone(),
                    },
                );
            }
            doc.images.insert(image.id.clone(), image);
            prune(doc);
        })
    }

    fn remove_name(&self, name: &str) -> Result<Vec<Digest>> {
        self.update(|doc| {
            doc.names.remove(name);
            prune(doc)
        })
    }

    fn remove_image(&self, id: &Digest) -> Result<bool> {
        self.update(|doc| {
            doc.names.retain(|_, n| n.id != *id);
            doc.images.remove(id).is_some()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(n: u8) -> ImageRecord {
        ImageRecord {
            id: Digest::of(&[n]),
            manifest: Digest::of(&[n, 1]),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            manifest_size: 10,
            config_size: 5,
            layers: vec![],
            user: String::new(),
        }
    }

    #[test]
    fn names_move_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileImageStore::open(dir.path()).unwrap();
        let (a, b) = (image(1), image(2));
        store
            .put(a.clone(), &[("x:1".into(), a.manifest.clone())])
            .unwrap();
        store
            .put(
                b.clone(),
                &[
                    ("x:1".into(), b.manifest.clone()),
                    ("y:1".into(), b.manifest.clone()),
                ],
            )
            .unwrap();
        // x:1 moved to b, so a has no name left and is gone.
        assert!(store.by_id(&a.id).is_none());
        let reopened = FileImageStore::open(dir.path()).unwrap();
        assert_eq!(reopened.by_name("y:1").unwrap().1, b);
        assert_eq!(reopened.remove_name("x:1").unwrap(), Vec::<Digest>::new());
        // A second handle (another process) sees changes made through the first.
        store
            .put(a.clone(), &[("z:1".into(), a.manifest.clone())])
            .unwrap();
        assert_eq!(reopened.by_name("z:1").unwrap().1, a);
        assert_eq!(reopened.remove_name("z:1").unwrap(), vec![a.id.clone()]);
        assert!(store.by_name("z:1").is_none());
        assert_eq!(reopened.remove_name("y:1").unwrap(), vec![b.id.clone()]);
        assert!(reopened.list().is_empty());
    }
}
