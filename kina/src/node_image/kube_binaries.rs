//! The Kubernetes binaries of a node: taken from a directory (`--kube-bin-dir`) or downloaded
//! for a release version from the official release URL (`--kube-version`), each file checked
//! against its published `.sha256` before it is used.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::{NodeImageError, Result};

/// Where official release binaries are downloaded from.
pub const DEFAULT_RELEASE_URL: &str = "https://dl.k8s.io/release";

/// Binaries every node runs, installed in /usr/bin.
pub const NODE_BINARIES: &[&str] = &["kubeadm", "kubelet", "kubectl"];

/// Control-plane and proxy binaries, installed in /kina/bin for the component images.
pub const SERVER_BINARIES: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
];

/// Where the binaries come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeSource {
    /// A directory holding all of [`NODE_BINARIES`] and [`SERVER_BINARIES`].
    Dir(PathBuf),
    /// A release version such as `v1.36.2`, downloaded below `base_url`.
    Release {
        /// The version.
        version: String,
        /// Release base URL, e.g. [`DEFAULT_RELEASE_URL`].
        base_url: String,
    },
}

/// A directory holding verified Kubernetes binaries and the version they report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeBinaries {
    /// The directory.
    pub dir: PathBuf,
    /// e.g. `v1.36.2`.
    pub version: String,
}

impl KubeBinaries {
    /// Path of binary `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// All binaries a node image needs.
pub fn all_binaries() -> impl Iterator<Item = &'static str> {
    NODE_BINARIES.iter().chain(SERVER_BINARIES).copied()
}

/// Resolve `source` to verified binaries; downloads land in `download_dir/<version>/`.
pub fn resolve(source: &KubeSource, download_dir: &Path) -> Result<KubeBinaries> {
    match source {
        KubeSource::Dir(dir) => from_dir(dir),
        KubeSource::Release { version, base_url } => {
            check_version(version)?;
            let dir = download_dir.join(version);
            download_release(base_url, version, host_arch()?, &dir)?;
            let found = from_dir(&dir)?;
            if &found.version != version {
                return Err(NodeImageError::input(
                    format!("--kube-version {version}"),
                    format!("the downloaded kubeadm reports version {}", found.version),
                ));
            }
            Ok(found)
        }
    }
}

/// Check that `dir` holds every binary, executable, and ask kubeadm for the version.
pub fn from_dir(dir: &Path) -> Result<KubeBinaries> {
    let what = || format!("--kube-bin-dir {}", dir.display());
    if !dir.is_dir() {
        return Err(NodeImageError::input(what(), "is not a directory"));
    }
    let missing: Vec<&str> = all_binaries()
        .filter(|b| !is_executable_file(&dir.join(b)))
        .collect();
    if !missing.is_empty() {
        return Err(NodeImageError::input(
            what(),
            format!("missing or not executable: {}", missing.join(", ")),
        ));
    }
    let version = kubeadm_version(&dir.join("kubeadm"))?;
    Ok(KubeBinaries {
        dir: dir.to_owned(),
        version,
    })
}

fn is_executable_file(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `kubeadm version -o short`, e.g. `v1.36.2`.
fn kubeadm_version(kubeadm: &Path) -> Result<String> {
    let command = format!("{} version -o short", kubeadm.display());
    let out = Command::new(kubeadm)
        .args(["version", "-o", "short"])
        .output()
        .map_err(NodeImageError::io("run", kubeadm))?;
    if !out.status.success() {
        return Err(NodeImageError::Command {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    check_version(&version).map_err(|_| NodeImageError::Command {
        command,
        status: out.status.to_string(),
        stderr: format!("unexpected version output {version:?}"),
    })?;
    Ok(version)
}

/// `vMAJOR.MINOR.PATCH` with an optional `-suffix` (`v1.36.0-rc.1`).
pub fn check_version(v: &str) -> Result<()> {
    let bad = || {
        NodeImageError::input(
            format!("--kube-version {v}"),
            "expected a release version like v1.36.2",
        )
    };
    let rest = v.strip_prefix('v').ok_or_else(bad)?;
    let (core, suffix) = rest.split_once('-').unwrap_or((rest, ""));
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    if !suffix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.')
    {
        return Err(bad());
    }
    Ok(())
}

/// The release architecture name of this host.
pub fn host_arch() -> Result<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("amd64"),
        "aarch64" => Ok("arm64"),
        "powerpc64" => Ok("ppc64le"),
        "s390x" => Ok("s390x"),
        other => Err(NodeImageError::input(
            "host architecture",
            format!("{other} has no Kubernetes release binaries"),
        )),
    }
}

/// Download every binary of `version` into `dir`, verifying each against its `.sha256`.
/// A binary already in `dir` whose digest matches is kept.
pub fn download_release(base_url: &str, version: &str, arch: &str, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(NodeImageError::io("create directory", dir))?;
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(30 * 60))
        .build()
        .map_err(|e| NodeImageError::Download {
            url: base_url.to_owned(),
            message: format!("HTTP client: {e}"),
        })?;
    for name in all_binaries() {
        let url = format!(
            "{}/{version}/bin/linux/{arch}/{name}",
            base_url.trim_end_matches('/')
        );
        download_verified(&client, &url, &dir.join(name))?;
    }
    Ok(())
}

/// Fetch `url` to `dest` (mode 0755) after checking it against `url.sha256`.
pub fn download_verified(client: &reqwest::blocking::Client, url: &str, dest: &Path) -> Result<()> {
    let sum_url = format!("{url}.sha256");
    let text = fetch(client, &sum_url)?
        .text()
        .map_err(|e| download_err(&sum_url, e))?;
    let expected = parse_sha256(&text).ok_or_else(|| NodeImageError::Download {
        url: sum_url.clone(),
        message: format!(
            "not a sha256 checksum: {:?}",
            text.chars().take(80).collect::<String>()
        ),
    })?;
    if dest.is_file() && file_sha256(dest)? == expected {
        tracing::debug!(path = %dest.display(), "already downloaded");
        return Ok(());
    }
    let partial = dest.with_extension("partial");
    let result = (|| {
        let mut response = fetch(client, url)?;
        let mut file = File::create(&partial).map_err(NodeImageError::io("create", &partial))?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = response
                .read(&mut buf)
                .map_err(|e| NodeImageError::Download {
                    url: url.to_owned(),
                    message: format!("reading the body: {e}"),
                })?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(NodeImageError::io("write", &partial))?;
        }
        let actual = hex::encode(hash.finalize());
        if actual != expected {
            return Err(NodeImageError::Checksum {
                url: url.to_owned(),
                expected: expected.clone(),
                actual,
            });
        }
        file.set_permissions(fs::Permissions::from_mode(0o755))
            .map_err(NodeImageError::io("chmod", &partial))?;
        file.sync_all()
            .map_err(NodeImageError::io("sync", &partial))?;
        fs::rename(&partial, dest).map_err(NodeImageError::io("rename into place", dest))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

fn fetch(client: &reqwest::blocking::Client, url: &str) -> Result<reqwest::blocking::Response> {
    let response = client.get(url).send().map_err(|e| download_err(url, e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(NodeImageError::Download {
            url: url.to_owned(),
            message: format!("HTTP {status}"),
        });
    }
    Ok(response)
}

fn download_err(url: &str, e: reqwest::Error) -> NodeImageError {
    // reqwest's Display omits the cause ("error sending request"); keep the chain.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    NodeImageError::Download {
        url: url.to_owned(),
        message,
    }
}

/// The digest of a `.sha256` file: 64 hex digits, optionally followed by a file name.
pub fn parse_sha256(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?;
    (first.len() == 64 && first.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| first.to_ascii_lowercase())
}

/// Hex sha256 of a file.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(NodeImageError::io("open", path))?;
    let mut hash = Sha256::new();
    io::copy(&mut f, &mut hash).map_err(NodeImageError::io("read", path))?;
    Ok(hex::encode(hash.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for good in ["v1.36.2", "v1.36.0-rc.1", "v10.0.11"] {
            check_version(good).unwrap();
        }
        for bad in ["1.36.2", "v1.36", "v1.36.x", "v1..2", "v1.36.2/../../x", ""] {
            let e = check_version(bad).unwrap_err();
            assert!(e.to_string().contains("--kube-version"), "{e}");
        }
    }

    #[test]
    fn checksum_files() {
        let d = "2e5fbcd051a7b4c5cca6c43293e65eb35a9803be735f332cc2b0bd7ce7e6ed75";
        assert_eq!(parse_sha256(d).as_deref(), Some(d));
        assert_eq!(
            parse_sha256(&format!("{}  kubeadm\n", d.to_uppercase())).as_deref(),
            Some(d)
        );
        assert_eq!(parse_sha256("<html>not found</html>"), None);
        assert_eq!(parse_sha256(&d[1..]), None);
        assert_eq!(parse_sha256(""), None);
    }

    #[test]
    fn a_dir_missing_binaries_names_them() {
        let dir = std::env::temp_dir().join(format!("kina-kube-bins-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("kubeadm"), "#!/bin/sh\necho v1.2.3\n").unwrap();
        fs::set_permissions(dir.join("kubeadm"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("kubelet"), "x").unwrap(); // not executable
        let e = from_dir(&dir).unwrap_err().to_string();
        fs::remove_dir_all(&dir).unwrap();
        assert!(
            e.contains("kubelet") && e.contains("kube-apiserver") && !e.contains("kubeadm,"),
            "{e}"
        );
        let e = from_dir(Path::new("/nonexistent/kube"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/kube") && e.contains("not a directory"),
            "{e}"
        );
    }
}
