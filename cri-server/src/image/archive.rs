//! Import of OCI image-layout tars and `docker save` tars (with their tags), and export of an
//! image to an OCI image-layout tar.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use super::content::Expected;
use super::digest::Digest;
use super::error::{Error, Result};
use super::manager::{ImageManager, MAX_JSON};
use super::manifest::{self, Descriptor, Manifest, Parsed};
use super::metadata::ImageRecord;
use super::reference;
use super::unpack::{Compression, detect};

const NAME_ANNOTATION: &str = "io.containerd.image.name";
const REF_ANNOTATION: &str = "org.opencontainers.image.ref.name";

fn arch_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Archive {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

#[derive(serde::Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

impl ImageManager {
    /// Imports every image of an OCI layout or `docker save` tar; returns (names, image).
    pub async fn import_archive(&self, path: &Path) -> Result<Vec<(Vec<String>, ImageRecord)>> {
        let (me, path) = (self.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || me.import_archive_blocking(&path))
            .await
            .map_err(|e| Error::Internal(format!("import: {e}")))?
    }

    /// Writes `spec` (ID or name) as an OCI image-layout tar to the file `dest`.
    pub async fn export_archive(&self, spec: &str, dest: &Path) -> Result<()> {
        let (me, spec, dest) = (self.clone(), spec.to_owned(), dest.to_owned());
        tokio::task::spawn_blocking(move || {
            let f = File::create(&dest).map_err(Error::io("create", &dest))?;
            let mut w = std::io::BufWriter::new(f);
            me.export_archive_blocking(&spec, &mut w)?;
            let f = w.into_inner().map_err(|e| Error::Io {
                op: "write",
                path: dest.clone(),
                source: e.into_error(),
            })?;
            f.sync_all().map_err(Error::io("fsync", &dest))
        })
        .await
        .map_err(|e| Error::Internal(format!("export: {e}")))?
    }

    /// [`Self::import_archive`] on the calling thread: never call it from async code.
    /// A directory is taken as an OCI image layout (see [`Self::import_layout_blocking`]).
    pub fn import_archive_blocking(&self, path: &Path) -> Result<Vec<(Vec<String>, ImageRecord)>> {
        if path.is_dir() {
            return self.import_layout_blocking(path);
        }
        let _gc = self.inner.gc_lock.blocking_read();
        let _xgc = self.inner.gc_shared_blocking()?;
        let content = self.inner.content.clone();
        let f = File::open(path).map_err(Error::io("open", path))?;
        let mut ar = tar::Archive::new(BufReader::with_capacity(1 << 20, f));
        let mut small: HashMap<String, Vec<u8>> = HashMap::new();
        let mut by_path: HashMap<String, Digest> = HashMap::new();
        for entry in ar.entries().map_err(|e| arch_err(path, e.to_string()))? {
            let mut entry = entry.map_err(|e| arch_err(path, e.to_string()))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let p = entry.path().map_err(|e| arch_err(path, e.to_string()))?;
            let name = p.to_string_lossy().trim_start_matches("./").to_owned();
            let size = entry.size();
            let expected = name
                .strip_prefix("blobs/sha256/")
                .map(|h| Digest::parse(&format!("sha256:{h}")))
                .transpose()?;
            if expected.is_none()
                && (name.ends_with(".json") || name == "oci-layout" || name == "repositories")
                && size <= MAX_JSON
            {
                let mut b = Vec::with_capacity(size as usize);
                entry
                    .read_to_end(&mut b)
                    .map_err(|e| arch_err(path, format!("{name}: {e}")))?;
                small.insert(name, b);
                continue;
            }
            if let Some(d) = &expected
                && content.size(d) == Some(size)
            {
                by_path.insert(name, d.clone());
                continue;
            }
            let mut w = content.ingest(Expected {
                digest: expected,
                size: Some(size),
                context: format!("{}: {name}", path.display()),
            })?;
            std::io::copy(&mut entry, &mut w)
                .map_err(|e| arch_err(path, format!("{name}: {e}")))?;
            let (d, _) = w.commit()?;
            by_path.insert(name, d);
        }
        // Small JSON files may be blobs too (configs, manifests).
        for (name, bytes) in &small {
            let d = content.put(bytes, None, &format!("{}: {name}", path.display()))?;
            by_path.insert(name.clone(), d);
        }
        if let Some(m) = small.get("manifest.json") {
            self.import_docker(path, m, &by_path)
        } else if let Some(idx) = small.get("index.json") {
            self.import_oci(path, idx)
        } else {
            Err(arch_err(
                path,
                "neither index.json (OCI layout) nor manifest.json (docker save) found",
            ))
        }
    }

    /// Imports every image of an OCI image-layout directory (`oci-layout`, `index.json`,
    /// `blobs/sha256/…`), verifying each blob against its file name, on the calling thread.
    pub fn import_layout_blocking(&self, dir: &Path) -> Result<Vec<(Vec<String>, ImageRecord)>> {
        let _gc = self.inner.gc_lock.blocking_read();
        let _xgc = self.inner.gc_shared_blocking()?;
        let content = self.inner.content.clone();
        let index_path = dir.join("index.json");
        if !dir.join("oci-layout").is_file() || !index_path.is_file() {
            return Err(arch_err(
                dir,
                "not an OCI image layout (oci-layout or index.json missing)",
            ));
        }
        let blobs = dir.join("blobs/sha256");
        let entries = std::fs::read_dir(&blobs).map_err(Error::io("read", &blobs))?;
        for entry in entries {
            let entry = entry.map_err(Error::io("read", &blobs))?;
            let file = entry.path();
            let meta = std::fs::symlink_metadata(&file).map_err(Error::io("stat", &file))?;
            if !meta.is_file() {
                return Err(arch_err(
                    dir,
                    format!("{} is not a regular file", file.display()),
                ));
            }
            let name = entry.file_name();
            let digest = Digest::parse(&format!("sha256:{}", name.to_string_lossy()))
                .map_err(|e| arch_err(dir, format!("{}: {e}", file.display())))?;
            if content.size(&digest) == Some(meta.len()) {
                continue;
            }
            let mut w = content.ingest(Expected {
                digest: Some(digest),
                size: Some(meta.len()),
                context: format!("{}", file.display()),
            })?;
            let mut f = File::open(&file).map_err(Error::io("open", &file))?;
            std::io::copy(&mut f, &mut w).map_err(Error::io("read", &file))?;
            w.commit()?;
        }
        let meta = std::fs::metadata(&index_path).map_err(Error::io("stat", &index_path))?;
        if meta.len() > MAX_JSON {
            return Err(arch_err(dir, "index.json is too large"));
        }
        let idx = std::fs::read(&index_path).map_err(Error::io("read", &index_path))?;
        self.import_oci(dir, &idx)
    }

    fn import_docker(
        &self,
        path: &Path,
        m: &[u8],
        by_path: &HashMap<String, Digest>,
    ) -> Result<Vec<(Vec<String>, ImageRecord)>> {
        let entries: Vec<DockerEntry> =
            serde_json::from_slice(m).map_err(|e| arch_err(path, format!("manifest.json: {e}")))?;
        let content = self.inner.content.clone();
        let mut out = Vec::new();
        for e in entries {
            let find = |p: &str| {
                by_path
                    .get(p)
                    .cloned()
                    .ok_or_else(|| arch_err(path, format!("manifest.json names missing file {p}")))
            };
            let config = find(&e.config)?;
            let mut layers = Vec::new();
            for l in &e.layers {
                let d = find(l)?;
                let mut head = [0u8; 4];
                let n = content
                    .open(&d)?
                    .read(&mut head)
                    .map_err(Error::io("read", path))?;
                let media_type = match detect(&head[..n]) {
                    Compression::Gzip => manifest::DOCKER_LAYER_GZIP,
                    Compression::None => manifest::DOCKER_LAYER,
                    Compression::Zstd => manifest::OCI_LAYER_ZSTD,
                };
                let size = content.size(&d).unwrap_or(0);
                layers.push(Descriptor {
                    media_type: media_type.into(),
                    digest: d,
                    size,
                    platform: None,
                    annotations: None,
                });
            }
            let man = Manifest {
                schema_version: 2,
                media_type: manifest::DOCKER_MANIFEST.into(),
                config: Descriptor {
                    media_type: manifest::DOCKER_CONFIG.into(),
                    size: content.size(&config).unwrap_or(0),
                    digest: config,
                    platform: None,
                    annotations: None,
                },
                layers,
            };
            let bytes = serde_json::to_vec(&man).map_err(Error::json("generated manifest"))?;
            let mdigest = content.put(&bytes, None, "generated manifest")?;
            let tags = e.repo_tags.unwrap_or_default();
            if tags.is_empty() {
                return Err(arch_err(
                    path,
                    format!("image {} has no RepoTags", man.config.digest),
                ));
            }
            let names: Vec<String> = tags
                .iter()
                .map(|t| reference::normalize(t))
                .collect::<Result<_>>()?;
            out.push(self.finish_import(path, &mdigest, &bytes, &man, &mdigest, names)?);
        }
        Ok(out)
    }

    fn import_oci(&self, path: &Path, idx: &[u8]) -> Result<Vec<(Vec<String>, ImageRecord)>> {
        let Parsed::Index(index) = manifest::parse(idx, manifest::OCI_INDEX, "index.json")? else {
            return Err(arch_err(path, "index.json is not an image index"));
        };
        let content = self.inner.content.clone();
        let mut out = Vec::new();
        for desc in &index.manifests {
            let ann = desc.annotations.clone().unwrap_or_default();
            // `ref.name` may be a bare tag ("v1"); only a full name ("repo:tag") will do.
            let full_ref = ann
                .get(REF_ANNOTATION)
                .filter(|r| r.contains(':') || r.contains('/'));
            let name = ann
                .get(NAME_ANNOTATION)
                .or(full_ref)
                .ok_or_else(|| {
                    arch_err(
                        path,
                        format!(
                            "manifest {} has no image name (annotation {NAME_ANNOTATION} or a full {REF_ANNOTATION})",
                            desc.digest
                        ),
                    )
                })?;
            let name = reference::normalize(name).map_err(|e| {
                arch_err(
                    path,
                    format!("manifest {}: name {name:?}: {e}", desc.digest),
                )
            })?;
            let mut mdigest = desc.digest.clone();
            let mut mbytes = content.read(&mdigest, MAX_JSON)?;
            if let Parsed::Index(inner) = manifest::parse(&mbytes, &desc.media_type, "manifest")? {
                mdigest = inner.select(&self.inner.platform, &name)?.digest.clone();
                mbytes = content.read(&mdigest, MAX_JSON)?;
            }
            let Parsed::Manifest(m) = manifest::parse(&mbytes, "", "manifest")? else {
                return Err(arch_err(path, format!("{mdigest}: nested index")));
            };
            out.push(self.finish_import(path, &mdigest, &mbytes, &m, &desc.digest, vec![name])?);
        }
        Ok(out)
    }

    fn finish_import(
        &self,
        path: &Path,
        mdigest: &Digest,
        mbytes: &[u8],
        m: &Manifest,
        target: &Digest,
        names: Vec<String>,
    ) -> Result<(Vec<String>, ImageRecord)> {
        for l in &m.layers {
            if self.inner.content.size(&l.digest).is_none() {
                return Err(arch_err(
                    path,
                    format!("layer {} is missing from the archive", l.digest),
                ));
            }
        }
        let record = self.record(mdigest, mbytes, m, &names[0])?;
        for (layer, chain) in record.layers.iter().zip(record.chain_ids()) {
            let _g = self.inner.chain_locks_blocking(&chain);
            if !self.inner.snapshots.exists(&chain) {
                self.unpack_blocking(
                    layer,
                    &chain,
                    &format!("layer {} of {}", layer.digest, names[0]),
                )?;
            }
        }
        let mut all = Vec::new();
        for n in &names {
            all.push((n.clone(), target.clone()));
            let r = reference::parse(n)?;
            all.push((reference::digest_name(&r, target), target.clone()));
        }
        self.inner.images.put(record.clone(), &all)?;
        Ok((names, record))
    }

    /// [`Self::export_archive`] to any writer, on the calling thread (never from async code).
    pub fn export_archive_blocking(&self, spec: &str, out: impl Write) -> Result<()> {
        let view = self.resolve(spec)?;
        let rec = &view.record;
        let content = self.inner.content.clone();
        let mut b = tar::Builder::new(out);
        let werr = |e: std::io::Error| Error::Internal(format!("export {spec}: {e}"));
        let add =
            |b: &mut tar::Builder<_>, name: &str, size: u64, r: &mut dyn Read| -> Result<()> {
                let mut h = tar::Header::new_ustar();
                h.set_size(size);
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, name, r).map_err(werr)
            };
        add(
            &mut b,
            "oci-layout",
            30,
            &mut &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
        )?;
        let mut blobs = vec![rec.manifest.clone(), rec.id.clone()];
        blobs.extend(rec.layers.iter().map(|l| l.digest.clone()));
        for d in &blobs {
            let size = content
                .size(d)
                .ok_or_else(|| Error::NotFound(format!("blob {d} of image {spec}")))?;
            add(
                &mut b,
                &format!("blobs/sha256/{}", d.hex()),
                size,
                &mut content.open(d)?,
            )?;
        }
        let manifests: Vec<serde_json::Value> = std::iter::once(view.repo_tags.first().cloned())
            .chain(view.repo_tags.iter().skip(1).cloned().map(Some))
            .map(|name| {
                let mut ann = serde_json::Map::new();
                if let Some(n) = &name {
                    ann.insert(NAME_ANNOTATION.into(), n.clone().into());
                    if let Some((_, tag)) = n.rsplit_once(':') {
                        ann.insert(REF_ANNOTATION.into(), tag.into());
                    }
                }
                serde_json::json!({
                    "mediaType": rec.manifest_media_type,
                    "digest": rec.manifest.to_string(),
                    "size": rec.manifest_size,
                    "annotations": ann,
                })
            })
            .collect();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_INDEX,
            "manifests": manifests,
        }))
        .map_err(Error::json("index.json"))?;
        add(&mut b, "index.json", index.len() as u64, &mut &index[..])?;
        b.into_inner().map_err(werr)?.flush().map_err(werr)
    }
}
