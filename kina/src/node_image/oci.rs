//! Writing the node image as an OCI image layout (a directory, or an `oci-archive` tar of one):
//! layer blobs, the image config (systemd as PID 1, `container=docker`, SIGRTMIN+3), the
//! manifest and `index.json`, whose entry carries the tag as `org.opencontainers.image.ref.name`
//! and the full reference as `io.containerd.image.name`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageIndex,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
};
use sha2::{Digest, Sha256};

use super::error::{NodeImageError, Result};
use super::layer::LayerInfo;

/// Annotation holding the tag in `index.json` (skopeo `oci:DIR:TAG`, umoci `--image DIR:TAG`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation holding the full image reference (what containerd's import names the image).
pub const IMAGE_NAME: &str = "io.containerd.image.name";

/// `NAME[:TAG]` split and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Repository name, e.g. `kina/node`.
    pub name: String,
    /// Tag, `latest` when omitted.
    pub tag: String,
}

impl ImageRef {
    /// Parse `--image`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |m: &str| NodeImageError::input(format!("--image {s}"), m.to_owned());
        let (name, tag) = match s.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, t),
            _ => (s, "latest"),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/:".contains(&b))
            || name.starts_with(['/', '.', '-'])
            || name.ends_with('/')
        {
            return Err(bad(
                "the name must be lowercase letters, digits, '.', '_', '-' and '/'",
            ));
        }
        if tag.is_empty()
            || tag.len() > 128
            || tag.starts_with(['.', '-'])
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(bad(
                "the tag must be 1-128 letters, digits, '.', '_' or '-'",
            ));
        }
        Ok(ImageRef {
            name: name.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// A layer blob on disk and its digests.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// The gzip file.
    pub path: PathBuf,
    /// Its digests and size.
    pub info: LayerInfo,
    /// What made it (image history).
    pub created_by: String,
}

/// What goes into the image besides its layers.
#[derive(Debug, Clone)]
pub struct ImageMeta {
    /// The reference.
    pub reference: ImageRef,
    /// Release architecture (amd64, arm64…).
    pub arch: String,
    /// Config labels.
    pub labels: HashMap<String, String>,
    /// RFC 3339 creation time.
    pub created: String,
    /// What the container runs.
    pub entrypoint: Vec<String>,
    /// Environment besides PATH.
    pub env: Vec<String>,
    /// Signal that stops the container, if not SIGTERM.
    pub stop_signal: Option<String>,
}

/// The written image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenImage {
    /// `sha256:…` of the manifest: the image's digest.
    pub manifest_digest: String,
    /// Size of the manifest.
    pub manifest_size: u64,
    /// Total bytes of config and layers.
    pub blobs_size: u64,
}

fn oci_err(what: &str) -> impl Fn(oci_spec::OciSpecError) -> NodeImageError + '_ {
    move |e| NodeImageError::Oci(format!("{what}: {e}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn digest(d: &str) -> Result<oci_spec::image::Digest> {
    d.parse().map_err(oci_err("digest"))
}

/// JSON with sorted keys, so the same image gives the same digests.
fn canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    let v = serde_json::to_value(value).map_err(|e| NodeImageError::Oci(e.to_string()))?;
    serde_json::to_vec(&sort_keys(v)).map_err(|e| NodeImageError::Oci(e.to_string()))
}

fn sort_keys(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// Write a blob into `layout/blobs/sha256/` and return its digest and size.
fn put_blob(layout: &Path, bytes: &[u8]) -> Result<(String, u64)> {
    let hex = sha256_hex(bytes);
    let path = layout.join("blobs/sha256").join(&hex);
    fs::write(&path, bytes).map_err(NodeImageError::io("write blob", &path))?;
    Ok((format!("sha256:{hex}"), bytes.len() as u64))
}

/// Hardlink (same filesystem) or copy a layer blob into the layout.
fn link_blob(layout: &Path, layer: &LayerBlob) -> Result<()> {
    let hex = layer.info.digest.strip_prefix("sha256:").ok_or_else(|| {
        NodeImageError::Oci(format!("layer digest {} is not sha256", layer.info.digest))
    })?;
    let dest = layout.join("blobs/sha256").join(hex);
    if fs::metadata(&dest).is_ok_and(|m| m.len() == layer.info.size) {
        return Ok(());
    }
    let _ = fs::remove_file(&dest);
    if fs::hard_link(&layer.path, &dest).is_err() {
        fs::copy(&layer.path, &dest).map_err(NodeImageError::io("copy blob", &dest))?;
    }
    Ok(())
}

/// Write the image into the OCI layout `layout` (created, or updated: an entry with the same
/// tag is replaced, others are kept).
pub fn write_layout(layout: &Path, meta: &ImageMeta, layers: &[LayerBlob]) -> Result<WrittenImage> {
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(NodeImageError::io("create directory", &blobs))?;
    for l in layers {
        link_blob(layout, l)?;
    }
    let mut env =
        vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned()];
    env.extend(meta.env.iter().cloned());
    let mut config = ConfigBuilder::default()
        .entrypoint(meta.entrypoint.clone())
        .env(env)
        .labels(meta.labels.clone());
    if let Some(signal) = &meta.stop_signal {
        config = config.stop_signal(signal.clone());
    }
    let config = config.build().map_err(oci_err("image config"))?;
    let history = layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(meta.created.clone())
                .created_by(l.created_by.clone())
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(oci_err("image history"))?;
    let image_config = ImageConfigurationBuilder::default()
        .created(meta.created.clone())
        .architecture(Arch::from(meta.arch.as_str()))
        .os(Os::Linux)
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(
                    layers
                        .iter()
                        .map(|l| l.info.diff_id.clone())
                        .collect::<Vec<_>>(),
                )
                .build()
                .map_err(oci_err("rootfs"))?,
        )
        .history(history)
        .build()
        .map_err(oci_err("image configuration"))?;
    let (config_digest, config_size) = put_blob(layout, &canonical_json(&image_config)?)?;
    let layer_descriptors = layers
        .iter()
        .map(|l| {
            Ok(Descriptor::new(
                MediaType::ImageLayerGzip,
                l.info.size,
                digest(&l.info.digest)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_size,
            digest(&config_digest)?,
        ))
        .layers(layer_descriptors)
        .build()
        .map_err(oci_err("manifest"))?;
    let (manifest_digest, manifest_size) = put_blob(layout, &canonical_json(&manifest)?)?;

    let mut entry = Descriptor::new(
        MediaType::ImageManifest,
        manifest_size,
        digest(&manifest_digest)?,
    );
    entry.set_annotations(Some(HashMap::from([
        (REF_NAME.to_owned(), meta.reference.tag.clone()),
        (IMAGE_NAME.to_owned(), meta.reference.to_string()),
    ])));
    entry.set_platform(Some(
        PlatformBuilder::default()
            .architecture(Arch::from(meta.arch.as_str()))
            .os(Os::Linux)
            .build()
            .map_err(oci_err("platform"))?,
    ));
    let mut manifests = read_index(layout)?
        .map(|i| i.manifests().clone())
        .unwrap_or_default();
    manifests.retain(|d| {
        d.annotations().as_ref().and_then(|a| a.get(REF_NAME)) != Some(&meta.reference.tag)
    });
    manifests.push(entry);
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(oci_err("index"))?;
    write_atomic(
        &layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    write_atomic(&layout.join("index.json"), &canonical_json(&index)?)?;
    Ok(WrittenImage {
        manifest_digest,
        manifest_size,
        blobs_size: config_size + layers.iter().map(|l| l.info.size).sum::<u64>(),
    })
}

fn read_index(layout: &Path) -> Result<Option<ImageIndex>> {
    let path = layout.join("index.json");
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| NodeImageError::Oci(format!("{}: not an OCI index: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeImageError::io("read", path)(e)),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(NodeImageError::io("create", &tmp))?;
    f.write_all(bytes)
        .map_err(NodeImageError::io("write", &tmp))?;
    f.sync_all().map_err(NodeImageError::io("sync", &tmp))?;
    fs::rename(&tmp, path).map_err(NodeImageError::io("rename into place", path))
}

/// Pack the layout directory `layout` into the tar `archive` (an `oci-archive`).
pub fn write_archive(layout: &Path, archive: &Path) -> Result<()> {
    let tmp = archive.with_extension("tar.partial");
    let result = (|| {
        let file = File::create(&tmp).map_err(NodeImageError::io("create", &tmp))?;
        let mut tar = tar::Builder::new(io::BufWriter::new(file));
        tar.follow_symlinks(false);
        // Same layout, same archive bytes: no host mtimes or owners.
        tar.mode(tar::HeaderMode::Deterministic);
        let err = NodeImageError::io("write archive", tmp.clone());
        for name in ["oci-layout", "index.json"] {
            tar.append_path_with_name(layout.join(name), name)
                .map_err(NodeImageError::io("write archive", &tmp))?;
        }
        tar.append_dir_all("blobs", layout.join("blobs"))
            .map_err(err)?;
        let w = tar
            .into_inner()
            .map_err(NodeImageError::io("write archive", &tmp))?;
        let f = w
            .into_inner()
            .map_err(|e| NodeImageError::io("write archive", &tmp)(e.into_error()))?;
        f.sync_all().map_err(NodeImageError::io("sync", &tmp))?;
        fs::rename(&tmp, archive).map_err(NodeImageError::io("rename into place", archive))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(ImageRef::parse("kina/node:v1.36.2").unwrap().tag, "v1.36.2");
        assert_eq!(
            ImageRef::parse("kina/node").unwrap().to_string(),
            "kina/node:latest"
        );
        let r = ImageRef::parse("localhost:5000/kina/node").unwrap();
        assert_eq!(
            (r.name.as_str(), r.tag.as_str()),
            ("localhost:5000/kina/node", "latest")
        );
        for bad in [
            "",
            "Kina/Node:x",
            "kina/node:",
            "kina/node:bad tag",
            "kina/node:-x",
            "/x",
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert!(e.to_string().contains("--image"), "{bad}: {e}");
        }
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let v = serde_json::json!({"b": {"z": 1, "a": 2}, "a": [ {"y": 1, "x": 2} ]});
        assert_eq!(
            String::from_utf8(canonical_json(&v).unwrap()).unwrap(),
            r#"{"a":[{"x":2,"y":1}],"b":{"a":2,"z":1}}"#
        );
    }
}
