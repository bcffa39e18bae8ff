//! Talking to registries through `oci-client`: endpoint selection from hosts.toml (mirrors
//! first, then the server), credentials, and mapping registry failures onto [`Error`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest as _, Sha256};
use tokio_stream::StreamExt;

use super::auth::{AuthConfig, from_docker_config};
use super::content::Ingest;
use super::digest::Digest;
use super::error::{Error, Result};
use super::hosts::{RegistryHost, hosts_for};
use super::manifest::ACCEPTED;

/// Where registries are configured.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Directory of `<registry>/hosts.toml` files.
    pub config_path: Option<PathBuf>,
    /// docker `config.json` with credentials.
    pub auth_file: Option<PathBuf>,
}

/// Creates and caches clients per endpoint and credentials.
pub struct Registries {
    config: RegistryConfig,
    clients: Mutex<HashMap<String, Client>>,
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries")
            .field("config", &self.config)
            .finish()
    }
}

/// A registry endpoint chosen for one pull.
#[derive(Clone)]
pub struct Source {
    client: Client,
    reference: Reference,
    auth: RegistryAuth,
    /// The endpoint.
    pub host: RegistryHost,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("host", &self.host)
            .field("reference", &self.reference)
            .finish()
    }
}

fn map_err(url: &str, e: OciDistributionError) -> Error {
    use OciDistributionError as E;
    match e {
        E::RequestError(re) => {
            let at = re.url().map_or_else(|| url.to_owned(), |u| u.to_string());
            if re.is_connect() || re.is_timeout() || re.is_request() {
                Error::Unavailable {
                    url: at,
                    reason: error_chain(&re),
                }
            } else {
                Error::Registry {
                    url: at,
                    reason: error_chain(&re),
                }
            }
        }
        E::ImageManifestNotFoundError(m) => Error::NotFound(format!("{url}: {m}")),
        E::RegistryError { envelope, url } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let reason = envelope.to_string();
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                Error::NotFound(format!("{url}: {reason}"))
            } else if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                Error::Unauthenticated { url, reason }
            } else {
                Error::Registry { url, reason }
            }
        }
        E::UnauthorizedError { url } => Error::Unauthenticated {
            url,
            reason: "credentials rejected".into(),
        },
        E::AuthenticationFailure(m) => Error::Unauthenticated {
            url: url.to_owned(),
            reason: m,
        },
        E::ServerError {
            code: 404,
            url,
            message,
        } => Error::NotFound(format!("{url}: {message}")),
        E::ServerError {
            code: 401 | 403,
            url,
            message,
        } => Error::Unauthenticated {
            url,
            reason: message,
        },
        E::ServerError { code, url, message } if code >= 500 => Error::Unavailable {
            url,
            reason: format!("HTTP {code}: {message}"),
        },
        E::DigestError(d) => Error::DigestMismatch {
            context: url.to_owned(),
            expected: String::new(),
            actual: d.to_string(),
        },
        other => Error::Registry {
            url: url.to_owned(),
            reason: other.to_string(),
        },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

impl Registries {
    /// Registries configured by `config`.
    pub fn new(config: RegistryConfig) -> Self {
        Self {
            config,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, host: &RegistryHost, auth: &RegistryAuth) -> Result<Client> {
        let cred = match auth {
            RegistryAuth::Anonymous => String::new(),
            RegistryAuth::Basic(u, p) => hex::encode(Sha256::digest(format!("b:{u}:{p}"))),
            RegistryAuth::Bearer(t) => hex::encode(Sha256::digest(format!("t:{t}"))),
        };
        let key = format!("{host:?}|{cred}");
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let mut certs = Vec::new();
        for ca in &host.ca {
            let data = std::fs::read(ca).map_err(Error::io("read CA", ca))?;
            certs.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            protocol: if host.scheme == "http" {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: host.skip_verify,
            extra_root_certificates: certs,
            platform_resolver: None,
            max_concurrent_download: 8,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("cri-server/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        let c = Client::new(config);
        clients.insert(key, c.clone());
        Ok(c)
    }

    fn auth_for(
        &self,
        host: &RegistryHost,
        registry: &str,
        cri: Option<&AuthConfig>,
    ) -> Result<RegistryAuth> {
        if let Some(a) = cri
            && let Some(auth) = a.to_registry_auth("PullImage auth")?
        {
            return Ok(auth);
        }
        if let Some(file) = &self.config.auth_file
            && let Some(auth) = from_docker_config(file, &[&host.authority, registry])?
        {
            return Ok(auth);
        }
        Ok(RegistryAuth::Anonymous)
    }

    /// Resolves `reference` to its top-level manifest (or index) on the first endpoint that
    /// answers. Returns the endpoint and the verified manifest bytes with their digest.
    pub async fn resolve(
        &self,
        reference: &Reference,
        cri: Option<&AuthConfig>,
    ) -> Result<(Source, Vec<u8>, Digest)> {
        let registry = reference.registry().to_owned();
        let hosts = hosts_for(self.config.config_path.as_deref(), &registry)?;
        let by_digest = reference.digest().is_some();
        let mut last: Option<Error> = None;
        for host in hosts
            .into_iter()
            .filter(|h| if by_digest { h.pull } else { h.resolve })
        {
            let auth = self.auth_for(&host, &registry, cri)?;
            let client = self.client(&host, &auth)?;
            let mut r = reference.clone();
            if host.authority != reference.resolve_registry() {
                r.set_mirror_registry(host.authority.clone());
            }
            let src = Source {
                client,
                reference: r,
                auth,
                host,
            };
            match src.manifest_raw(&src.reference).await {
                Ok((bytes, digest)) => return Ok((src, bytes, digest)),
                Err(
                    e @ (Error::Unauthenticated { .. }
                    | Error::InvalidArgument(_)
                    | Error::DigestMismatch { .. }),
                ) => {
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(host = %src.host.url(), image = %reference, error = %e, "registry host failed, trying next");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::InvalidArgument(format!(
                "no registry host with the needed capability for {reference}"
            ))
        }))
    }
}

impl Source {
    fn url(&self) -> String {
        format!("{}/v2/{}", self.host.url(), self.reference.repository())
    }

    async fn manifest_raw(&self, r: &Reference) -> Result<(Vec<u8>, Digest)> {
        let url = self.url();
        let (bytes, _) = self
            .client
            .pull_manifest_raw(r, &self.auth, ACCEPTED)
            .await
            .map_err(|e| map_err(&url, e))?;
        let digest = Digest::of(&bytes);
        if let Some(want) = r.digest()
            && want != digest.as_str()
        {
            return Err(Error::DigestMismatch {
                context: format!("manifest {r} from {url}"),
                expected: want.to_owned(),
                actual: digest.to_string(),
            });
        }
        Ok((bytes.to_vec(), digest))
    }

    /// Fetches the manifest `digest` from the same repository (verified).
    pub async fn manifest(&self, digest: &Digest) -> Result<Vec<u8>> {
        let r = self.reference.clone_with_digest(digest.to_string());
        Ok(self.manifest_raw(&r).await?.0)
    }

    /// Streams the blob `digest` into `sink` (which verifies and commits it).
    /// Every counter in `fetched` is increased by the bytes received.
    pub async fn blob(
        &self,
        digest: &Digest,
        size: u64,
        media_type: &str,
        mut sink: Box<dyn Ingest>,
        fetched: &[&std::sync::atomic::AtomicU64],
    ) -> Result<(Digest, u64)> {
        let url = format!("{}/blobs/{digest}", self.url());
        let desc = OciDescriptor {
            media_type: media_type.to_owned(),
            digest: digest.to_string(),
            size: size as i64,
            ..Default::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(&self.reference, &desc)
            .await
            .map_err(|e| map_err(&url, e))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                match e.get_ref().and_then(|i| i.downcast_ref::<DigestError>()) {
                    Some(d) => Error::DigestMismatch {
                        context: format!("blob from {url}"),
                        expected: digest.to_string(),
                        actual: d.to_string(),
                    },
                    None => Error::Unavailable {
                        url: url.clone(),
                        reason: error_chain(&e),
                    },
                }
            })?;
            for c in fetched {
                c.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            std::io::Write::write_all(&mut sink, &chunk).map_err(|e| Error::Registry {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        }
        tokio::task::spawn_blocking(move || sink.commit())
            .await
            .map_err(|e| Error::Internal(format!("commit {digest}: {e}")))?
    }
}
