//! The JSON documents of an image: OCI and docker schema2 manifests, indexes / manifest
//! lists (with platform selection) and image configs. Parsed leniently (unknown fields
//! ignored) but validated where it matters (digests, layer/diff-id counts).

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::error::{Error, Result};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Manifest media types we accept from registries.
pub const ACCEPTED: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// A content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// An OS/architecture pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine in GOARCH terms (linux/amd64 on x86_64).
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
        }
    }

    fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

/// Either a single-platform manifest or an index.
#[derive(Debug)]
pub enum Parsed {
    Manifest(Manifest),
    Index(Index),
}

/// An image manifest (OCI or docker schema2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An image index or manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

impl Index {
    /// The manifest for `platform`.
    pub fn select(&self, platform: &Platform, what: &str) -> Result<&Descriptor> {
        self.manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| platform.matches(p)))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "{what}: no manifest for platform {}/{} in index (has: {})",
                    platform.os,
                    platform.architecture,
                    self.manifests
                        .iter()
                        .filter_map(|m| m
                            .platform
                            .as_ref()
                            .map(|p| format!("{}/{}", p.os, p.architecture)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

/// Parses a manifest or index, using `media_type` (from the registry) or the document's own.
pub fn parse(bytes: &[u8], media_type: &str, what: &str) -> Result<Parsed> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(Error::json(what))?;
    let own = v
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or(media_type);
    let is_index =
        own == OCI_INDEX || own == DOCKER_LIST || (own.is_empty() && v.get("manifests").is_some());
    if is_index {
        Ok(Parsed::Index(
            serde_json::from_value(v).map_err(Error::json(what))?,
        ))
    } else if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
        Err(Error::InvalidArgument(format!(
            "{what}: docker schema1 manifests are not supported"
        )))
    } else {
        Ok(Parsed::Manifest(
            serde_json::from_value(v).map_err(Error::json(what))?,
        ))
    }
}

/// The parts of an image config we use.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<RunConfig>,
    pub rootfs: RootFs,
}

/// `config.config`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunConfig {
    #[serde(rename = "User", default)]
    pub user: Option<String>,
}

/// `config.rootfs`.
#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

impl ImageConfig {
    /// Parses a config and checks it matches `layers` of its manifest.
    pub fn parse(bytes: &[u8], layers: usize, what: &str) -> Result<Self> {
        let c: ImageConfig = serde_json::from_slice(bytes).map_err(Error::json(what))?;
        if c.rootfs.diff_ids.len() != layers {
            return Err(Error::InvalidArgument(format!(
                "{what}: {} diff_ids for {layers} layers",
                c.rootfs.diff_ids.len()
            )));
        }
        Ok(c)
    }

    /// `config.User`.
    pub fn user(&self) -> String {
        self.config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_platform_from_index() {
        let d = Digest::of(b"x");
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
              {{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1,"platform":{{"architecture":"arm64","os":"linux"}}}},
              {{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":2,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        let Parsed::Index(idx) = parse(json.as_bytes(), "", "t").unwrap() else {
            panic!("not an index")
        };
        let amd = Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        };
        assert_eq!(idx.select(&amd, "t").unwrap().size, 2);
        let s390 = Platform {
            architecture: "s390x".into(),
            os: "linux".into(),
            variant: None,
        };
        assert!(matches!(idx.select(&s390, "t"), Err(Error::NotFound(_))));
    }
}
