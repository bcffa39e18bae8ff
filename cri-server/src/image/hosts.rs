//! Registry hosts in containerd's `hosts.toml` format:
//! `<config_path>/<registry>/hosts.toml` (or `_default/hosts.toml`) with a `server` and
//! `[host."URL"]` entries carrying `capabilities`, `skip_verify` and `ca`. Hosts are tried in
//! file order, then `server`.

use std::path::{Path, PathBuf};

use super::error::{Error, Result};

/// One endpoint to contact for a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegistryHost {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    /// May be asked for blobs / manifests by digest.
    pub pull: bool,
    /// May resolve tags to digests.
    pub resolve: bool,
    /// Skip TLS verification.
    pub skip_verify: bool,
    /// Extra CA certificates (PEM files) to trust.
    pub ca: Vec<PathBuf>,
}

impl RegistryHost {
    /// `scheme://authority`, for messages.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }
}

fn default_server(registry: &str) -> String {
    match registry {
        "docker.io" => "https://registry-1.docker.io".into(),
        r if is_localhost(r) => format!("http://{r}"),
        r => format!("https://{r}"),
    }
}

fn is_localhost(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            registry
        }
    });
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// The hosts to contact for `registry`, reading `<config_path>/<registry>/hosts.toml`
/// (or `<config_path>/_default/hosts.toml`) when present.
pub fn hosts_for(config_path: Option<&Path>, registry: &str) -> Result<Vec<RegistryHost>> {
    if let Some(dir) = config_path {
        // containerd escapes ':' in directory names as-is; both `host:port` and `host_port_` exist
        // in the wild, the former is the documented one.
        for candidate in [
            dir.join(registry).join("hosts.toml"),
            dir.join("_default").join("hosts.toml"),
        ] {
            match std::fs::read_to_string(&candidate) {
                Ok(text) => return parse(&candidate, &text, registry),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::Io {
                        op: "read",
                        path: candidate,
                        source: e,
                    });
                }
            }
        }
    }
    Ok(vec![endpoint(
        Path::new("<default>"),
        &default_server(registry),
        None,
    )?])
}

fn cfg_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::RegistryConfig {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn endpoint(path: &Path, url: &str, table: Option<&toml::Table>) -> Result<RegistryHost> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s @ ("http" | "https"), rest)) => (s.to_owned(), rest),
        Some((s, _)) => {
            return Err(cfg_err(
                path,
                format!("host {url:?}: unsupported scheme {s:?}"),
            ));
        }
        None => ("https".to_owned(), url),
    };
    let (authority, urlpath) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return Err(cfg_err(path, format!("host {url:?}: missing host name")));
    }
    let urlpath = urlpath.trim_end_matches('/');
    if !urlpath.is_empty() && urlpath != "v2" {
        return Err(cfg_err(
            path,
            format!("host {url:?}: path prefixes other than /v2 are not supported"),
        ));
    }
    let mut host = RegistryHost {
        scheme,
        authority: authority.to_owned(),
        pull: true,
        resolve: true,
        skip_verify: false,
        ca: Vec::new(),
    };
    let Some(t) = table else { return Ok(host) };
    for (key, value) in t {
        let field = |what: &str| cfg_err(path, format!("host {url:?}: `{key}` must be {what}"));
        match key.as_str() {
            "capabilities" => {
                let caps = value
                    .as_array()
                    .ok_or_else(|| field("an array of strings"))?;
                host.pull = false;
                host.resolve = false;
                for c in caps {
                    match c.as_str().ok_or_else(|| field("an array of strings"))? {
                        "pull" => host.pull = true,
                        "resolve" => host.resolve = true,
                        "push" => {}
                        other => {
                            return Err(cfg_err(
                                path,
                                format!("host {url:?}: unknown capability {other:?}"),
                            ));
                        }
                    }
                }
            }
            "skip_verify" => {
                host.skip_verify = value.as_bool().ok_or_else(|| field("a boolean"))?
            }
            "ca" => {
                let list = match value {
                    toml::Value::String(s) => vec![s.clone()],
                    toml::Value::Array(a) => a
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| field("a path or an array of paths"))
                        })
                        .collect::<Result<_>>()?,
                    _ => return Err(field("a path or an array of paths")),
                };
                host.ca = list
                    .into_iter()
                    .map(|p| {
                        let p = PathBuf::from(p);
                        // Relative CA paths are relative to the hosts.toml directory (containerd).
                        if p.is_relative() {
                            path.parent().map_or(p.clone(), |d| d.join(&p))
                        } else {
                            p
                        }
                    })
                    .collect();
            }
            "server" | "host" => {}
            "client" | "header" | "override_path" | "dial_timeout" => {
                tracing::warn!(path = %path.display(), host = url, key, "hosts.toml key not supported, ignored");
            }
            other => {
                return Err(cfg_err(
                    path,
                    format!("host {url:?}: unknown key `{other}`"),
                ));
            }
        }
    }
    Ok(host)
}

/// Parses a hosts.toml for `registry`.
pub fn parse(path: &Path, text: &str, registry: &str) -> Result<Vec<RegistryHost>> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| cfg_err(path, e.to_string()))?;
    let mut out = Vec::new();
    if let Some(hosts) = doc.get("host") {
        let hosts = hosts
            .as_table()
            .ok_or_else(|| cfg_err(path, "`host` must be a table of [host.\"URL\"]"))?;
        for (url, t) in hosts {
            let t = t
                .as_table()
                .ok_or_else(|| cfg_err(path, format!("host {url:?} must be a table")))?;
            out.push(endpoint(path, url, Some(t))?);
        }
    }
    let server = match doc.get("server") {
        Some(v) => v
            .as_str()
            .ok_or_else(|| cfg_err(path, "`server` must be a string"))?
            .to_owned(),
        // As in containerd, the upstream registry is always the last resort.
        None => default_server(registry),
    };
    let mut top = doc.clone();
    top.remove("host");
    top.remove("server");
    out.push(endpoint(path, &server, Some(&top))?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mirrors_in_order_then_server() {
        let text = r#"
server = "https://registry.k8s.io"
[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
[host."https://127.0.0.1:5443/v2"]
  capabilities = ["pull"]
  skip_verify = true
  ca = "ca.pem"
"#;
        let p = Path::new("/etc/cri-server/certs.d/registry.k8s.io/hosts.toml");
        let hosts = parse(p, text, "registry.k8s.io").unwrap();
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[0].url(), "http://127.0.0.1:5000");
        assert!(hosts[0].resolve && hosts[0].pull);
        assert_eq!(hosts[1].authority, "127.0.0.1:5443");
        assert!(!hosts[1].resolve && hosts[1].skip_verify);
        assert_eq!(
            hosts[1].ca,
            vec![PathBuf::from(
                "/etc/cri-server/certs.d/registry.k8s.io/ca.pem"
            )]
        );
        assert_eq!(hosts[2].url(), "https://registry.k8s.io");
    }

    #[test]
    fn bad_config_names_the_key() {
        let p = Path::new("/x/hosts.toml");
        let err = parse(p, "[host.\"http://a\"]\nskip_verify = \"yes\"\n", "r").unwrap_err();
        assert!(err.to_string().contains("skip_verify"), "{err}");
        let err = parse(p, "[host.\"http://a\"]\ncapabilitys = []\n", "r").unwrap_err();
        assert!(err.to_string().contains("capabilitys"), "{err}");
    }

    #[test]
    fn defaults_without_config() {
        assert_eq!(
            hosts_for(None, "docker.io").unwrap()[0].url(),
            "https://registry-1.docker.io"
        );
        assert_eq!(
            hosts_for(None, "localhost:5000").unwrap()[0].url(),
            "http://localhost:5000"
        );
    }
}
