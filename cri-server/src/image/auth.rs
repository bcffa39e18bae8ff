//! Registry credentials: from a CRI `AuthConfig` or from a docker `config.json`.

use std::path::Path;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::error::{Error, Result};

/// Credentials as a CRI `AuthConfig` carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `user:password`.
    #[serde(default)]
    pub auth: String,
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

impl AuthConfig {
    /// The oci-client credentials these stand for (None when empty).
    pub fn to_registry_auth(&self, what: &str) -> Result<Option<RegistryAuth>> {
        if !self.registry_token.is_empty() {
            return Ok(Some(RegistryAuth::Bearer(self.registry_token.clone())));
        }
        if !self.username.is_empty() {
            return Ok(Some(RegistryAuth::Basic(
                self.username.clone(),
                self.password.clone(),
            )));
        }
        if !self.auth.is_empty() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(self.auth.trim())
                .map_err(|e| Error::InvalidArgument(format!("{what}: auth is not base64: {e}")))?;
            let s = String::from_utf8(raw)
                .map_err(|_| Error::InvalidArgument(format!("{what}: auth is not UTF-8")))?;
            let (u, p) = s.split_once(':').ok_or_else(|| {
                Error::InvalidArgument(format!("{what}: auth is not user:password"))
            })?;
            return Ok(Some(RegistryAuth::Basic(u.to_owned(), p.to_owned())));
        }
        if !self.identity_token.is_empty() {
            tracing::warn!(
                what,
                "identity tokens are not supported; pulling anonymously"
            );
        }
        Ok(None)
    }
}

#[derive(Debug, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthConfig>,
}

fn key_host(key: &str) -> &str {
    let k = key.split_once("://").map_or(key, |(_, r)| r);
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        other => other,
    }
}

/// Credentials for `hosts` (tried in order: the endpoint, then the registry name) from a
/// docker `config.json`. A missing file means no credentials.
pub fn from_docker_config(path: &Path, hosts: &[&str]) -> Result<Option<RegistryAuth>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                op: "read",
                path: path.to_owned(),
                source: e,
            });
        }
    };
    let cfg: DockerConfig = serde_json::from_slice(&text).map_err(|e| Error::RegistryConfig {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    for want in hosts {
        let want = key_host(want);
        if let Some((key, a)) = cfg.auths.iter().find(|(k, _)| key_host(k) == want) {
            return a.to_registry_auth(&format!("{} auths[{key:?}]", path.display()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_auth_and_matches_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"127.0.0.1:5000":{"username":"a","password":"b"}}}"#,
        )
        .unwrap();
        assert!(
            matches!(from_docker_config(&p, &["docker.io"]).unwrap(), Some(RegistryAuth::Basic(u, pw)) if u == "u" && pw == "p")
        );
        assert!(
            matches!(from_docker_config(&p, &["x", "127.0.0.1:5000"]).unwrap(), Some(RegistryAuth::Basic(u, _)) if u == "a")
        );
        assert!(from_docker_config(&p, &["quay.io"]).unwrap().is_none());
        assert!(
            from_docker_config(&dir.path().join("none"), &["quay.io"])
                .unwrap()
                .is_none()
        );
        std::fs::write(&p, "{").unwrap();
        assert!(
            from_docker_config(&p, &["x"])
                .unwrap_err()
                .to_string()
                .contains("config.json")
        );
    }
}
