//! etcd for the control plane. kubeadm wants an etcd image, and no release registry is
//! reachable, so it comes from a binary the user names or from Debian's `etcd-server` package
//! (trixie has 3.5.x), fetched with apt into a private state directory in the build cache: apt
//! verifies the signed archive index and the package checksum. The image is tagged with the
//! real version (`3.5.16-0`), which the cluster's kubeadm config names in `etcd.local.imageTag`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache::Cache;
use super::error::{NodeImageError, Result};

/// Debian suite `etcd-server` comes from by default.
pub const DEFAULT_SUITE: &str = "trixie";

/// Where etcd comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdSource {
    /// No etcd image.
    None,
    /// An etcd binary on disk.
    Binary(PathBuf),
    /// Debian's etcd-server package from this suite.
    Debian(String),
}

impl EtcdSource {
    /// `none`, `debian:SUITE` or a path to an etcd binary.
    pub fn parse(s: &str) -> Result<Self> {
        if s == "none" {
            return Ok(EtcdSource::None);
        }
        if let Some(suite) = s.strip_prefix("debian:") {
            check_suite(suite)?;
            return Ok(EtcdSource::Debian(suite.to_owned()));
        }
        Ok(EtcdSource::Binary(PathBuf::from(s)))
    }
}

impl Default for EtcdSource {
    fn default() -> Self {
        EtcdSource::Debian(DEFAULT_SUITE.to_owned())
    }
}

fn check_suite(suite: &str) -> Result<()> {
    if suite.is_empty()
        || !suite
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(NodeImageError::input(
            format!("--etcd debian:{suite}"),
            "not a Debian suite name",
        ));
    }
    Ok(())
}

/// The etcd binary for `source` (None for [`EtcdSource::None`]).
pub fn resolve(source: &EtcdSource, cache: &Cache, mirror: &str) -> Result<Option<PathBuf>> {
    match source {
        EtcdSource::None => Ok(None),
        EtcdSource::Binary(p) => super::rootfs::check_executable("--etcd", p).map(Some),
        EtcdSource::Debian(suite) => from_debian(cache, mirror, suite).map(Some),
    }
}

fn apt_options(dir: &Path) -> Vec<String> {
    let d = dir.display();
    vec![
        format!("-oDir::Etc::SourceList={d}/sources.list"),
        "-oDir::Etc::SourceParts=/nonexistent".into(),
        format!("-oDir::Etc::Preferences={d}/preferences"),
        "-oDir::Etc::PreferencesParts=/nonexistent".into(),
        format!("-oDir::State::Lists={d}/lists"),
        format!("-oDir::Cache={d}/cache"),
        format!("-oDir::State::Status={d}/status"),
        format!(
            "-oAPT::Architecture={}",
            super::kube_binaries::host_arch().unwrap_or("amd64")
        ),
        "-oAPT::Sandbox::User=root".into(),
        "-oAcquire::Retries=2".into(),
    ]
}

fn run(cmd: &mut Command) -> Result<()> {
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| NodeImageError::Command {
        command: command.clone(),
        status: "not started".into(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
        return Err(NodeImageError::Command {
            command,
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(())
}

/// Fetch and unpack Debian's etcd-server from `suite`; returns the etcd binary.
pub fn from_debian(cache: &Cache, mirror: &str, suite: &str) -> Result<PathBuf> {
    check_suite(suite)?;
    let dir = cache.root().join(format!("apt-{suite}"));
    for sub in ["lists/partial", "cache/archives/partial", "debs"] {
        let p = dir.join(sub);
        fs::create_dir_all(&p).map_err(NodeImageError::io("create directory", &p))?;
    }
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        fs::write(&p, text).map_err(NodeImageError::io("write", &p))
    };
    write(
        "sources.list",
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} {suite} main\n"
        ),
    )?;
    write("preferences", String::new())?;
    write("status", String::new())?;
    let opts = apt_options(&dir);
    run(Command::new("apt-get").args(&opts).args(["-q", "update"]))?;
    let debs = dir.join("debs");
    for e in fs::read_dir(&debs)
        .map_err(NodeImageError::io("read directory", &debs))?
        .flatten()
    {
        let _ = fs::remove_file(e.path());
    }
    run(Command::new("apt-get")
        .args(&opts)
        .args(["-q", "download", "etcd-server"])
        .current_dir(&debs))?;
    let deb = fs::read_dir(&debs)
        .map_err(NodeImageError::io("read directory", &debs))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| {
            NodeImageError::input(
                format!("--etcd debian:{suite}"),
                "apt downloaded no etcd-server package",
            )
        })?;
    let extract = dir.join("etcd-server");
    let _ = fs::remove_dir_all(&extract);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&extract))?;
    let etcd = extract.join("usr/bin/etcd");
    super::rootfs::check_executable("--etcd", &etcd)
}

/// `etcd --version` → `3.5.16`.
pub fn version(etcd: &Path) -> Result<String> {
    let out = Command::new(etcd)
        .arg("--version")
        .output()
        .map_err(NodeImageError::io("run", etcd))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("etcd Version: "))
        .map(str::to_owned)
        .filter(|v| {
            out.status.success() && super::kube_binaries::check_version(&format!("v{v}")).is_ok()
        })
        .ok_or_else(|| {
            NodeImageError::input(
                format!("--etcd {}", etcd.display()),
                format!(
                    "`etcd --version` printed no `etcd Version: X.Y.Z`: {:?}",
                    text.trim()
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(EtcdSource::parse("none").unwrap(), EtcdSource::None);
        assert_eq!(
            EtcdSource::parse("debian:trixie").unwrap(),
            EtcdSource::Debian("trixie".into())
        );
        assert_eq!(
            EtcdSource::parse("/x/etcd").unwrap(),
            EtcdSource::Binary("/x/etcd".into())
        );
        let e = EtcdSource::parse("debian:../x").unwrap_err().to_string();
        assert!(e.contains("debian:../x"), "{e}");
        assert_eq!(EtcdSource::default(), EtcdSource::Debian("trixie".into()));
    }
}
