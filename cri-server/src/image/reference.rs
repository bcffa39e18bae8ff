//! Image references: parsing and normalising user input (`busybox` →
//! `docker.io/library/busybox:latest`) the way containerd and kubelet do.

use oci_client::Reference;

use super::digest::Digest;
use super::error::{Error, Result};

/// Parses a user-supplied image reference, defaulting registry and tag.
pub fn parse(s: &str) -> Result<Reference> {
    let r = Reference::try_from(s.trim())
        .map_err(|e| Error::InvalidArgument(format!("image reference {s:?}: {e}")))?;
    if r.repository().chars().any(|c| c.is_ascii_uppercase()) {
        return Err(Error::InvalidArgument(format!(
            "image reference {s:?}: repository names must be lowercase"
        )));
    }
    Ok(r)
}

/// The canonical `registry/repo:tag` or `registry/repo@digest` string of a reference.
pub fn normalize(s: &str) -> Result<String> {
    Ok(parse(s)?.whole())
}

/// `registry/repo` of a reference.
pub fn repo_name(r: &Reference) -> String {
    format!("{}/{}", r.registry(), r.repository())
}

/// The `registry/repo:tag` name to record for a pulled reference (None for digest-only refs).
pub fn tag_name(r: &Reference) -> Option<String> {
    r.tag().map(|t| format!("{}:{t}", repo_name(r)))
}

/// The `registry/repo@digest` name for a reference's repository and `digest`.
pub fn digest_name(r: &Reference, digest: &Digest) -> String {
    format!("{}@{digest}", repo_name(r))
}

/// True for names of the `repo@sha256:...` form.
pub fn is_digest_name(name: &str) -> bool {
    name.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(
            normalize("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            normalize("registry.k8s.io/pause:3.10").unwrap(),
            "registry.k8s.io/pause:3.10"
        );
        assert_eq!(
            normalize("127.0.0.1:5000/a/b:v1").unwrap(),
            "127.0.0.1:5000/a/b:v1"
        );
        assert!(normalize("UPPER/case").is_err());
        assert!(normalize("").is_err());
    }
}
