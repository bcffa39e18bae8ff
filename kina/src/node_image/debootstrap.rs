//! Building the Debian base root filesystem with debootstrap, and pruning what an image should
//! not carry (apt lists and caches, the build host's machine-id and resolv.conf).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::{NodeImageError, Result};
use super::recipe::Recipe;

/// Mirror used when apt's sources name none.
pub const FALLBACK_MIRROR: &str = "http://deb.debian.org/debian";

/// The Debian mirror this machine's apt uses (first `…/debian` URI in /etc/apt/sources.list*),
/// else [`FALLBACK_MIRROR`].
pub fn default_mirror() -> String {
    default_mirror_in(Path::new("/etc/apt")).unwrap_or_else(|| FALLBACK_MIRROR.to_owned())
}

fn default_mirror_in(apt: &Path) -> Option<String> {
    let mut files = vec![apt.join("sources.list")];
    if let Ok(dir) = fs::read_dir(apt.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    files
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .find_map(|text| mirror_in_sources(&text))
}

/// The first Debian archive URI in a one-line (`deb URI suite…`) or deb822 (`URIs:`) sources file.
pub fn mirror_in_sources(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| {
            let uris: Vec<&str> = if let Some(rest) = l.strip_prefix("URIs:") {
                rest.split_whitespace().collect()
            } else if let Some(rest) = l.strip_prefix("deb ") {
                // Options: `deb [arch=amd64 signed-by=…] URI suite…`.
                let rest = rest.trim_start();
                let rest = match rest.strip_prefix('[') {
                    Some(opts) => opts.split_once(']').map_or("", |(_, r)| r),
                    None => rest,
                };
                rest.split_whitespace().take(1).collect()
            } else {
                Vec::new()
            };
            uris.into_iter().map(str::to_owned).collect::<Vec<_>>()
        })
        .find(|u| u.trim_end_matches('/').ends_with("/debian"))
        .map(|u| u.trim_end_matches('/').to_owned())
}

/// Run debootstrap for `recipe` into `rootfs`; its output goes to `log`.
pub fn debootstrap(
    recipe: &Recipe,
    arch: &str,
    mirror: &str,
    rootfs: &Path,
    log: &Path,
) -> Result<()> {
    let log_file = fs::File::create(log).map_err(NodeImageError::io("create", log))?;
    let log_err = log_file
        .try_clone()
        .map_err(NodeImageError::io("open", log))?;
    let args = [
        format!("--variant={}", recipe.base.variant),
        format!("--components={}", recipe.base.components.join(",")),
        format!("--include={}", recipe.include_arg()),
        format!("--arch={arch}"),
        recipe.base.suite.clone(),
        rootfs.display().to_string(),
        mirror.to_owned(),
    ];
    let command = format!("debootstrap {}", args.join(" "));
    tracing::info!(%command, "building the Debian base");
    let status = Command::new("debootstrap")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err)
        .status()
        .map_err(|e| NodeImageError::Command {
            command: command.clone(),
            status: "not started".into(),
            stderr: format!("{e} (install the debootstrap package)"),
        })?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(NodeImageError::Command {
            command,
            status: status.to_string(),
            stderr: format!("{} (full log: {})", tail.join("\n"), log.display()),
        });
    }
    Ok(())
}

/// Remove what an image should not carry from a fresh debootstrap root.
pub fn prune(rootfs: &Path) -> Result<()> {
    for dir in [
        "var/lib/apt/lists",
        "var/cache/apt/archives",
        "var/cache/apt",
        "var/log/apt",
    ] {
        let dir = rootfs.join(dir);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let keep = p
                .file_name()
                .is_some_and(|n| n == "partial" || n == "lock" || n == "archives");
            if keep || !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            fs::remove_file(&p).map_err(NodeImageError::io("remove", &p))?;
        }
    }
    // Every node gets its own identity and DNS from the runtime at start.
    for (file, contents) in [
        ("etc/machine-id", ""),
        ("etc/resolv.conf", ""),
        ("etc/hostname", "kina\n"),
    ] {
        let p = rootfs.join(file);
        if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(&p).map_err(NodeImageError::io("remove", &p))?;
        }
        fs::write(&p, contents).map_err(NodeImageError::io("write", &p))?;
    }
    Ok(())
}

/// Names of the CNI plugins Debian installed in /usr/lib/cni.
pub fn cni_plugins(rootfs: &Path) -> Result<Vec<String>> {
    let dir = rootfs.join("usr/lib/cni");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(NodeImageError::io("read CNI plugin directory", &dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    if !names.iter().any(|n| n == "bridge") {
        return Err(NodeImageError::input(
            format!("base root {}", rootfs.display()),
            "containernetworking-plugins did not install /usr/lib/cni/bridge",
        ));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_from_both_source_formats() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/archive/debian/x\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n";
        assert_eq!(
            mirror_in_sources(deb822).as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let one_line = "deb https://packages.cloud.google.com/apt cloud-sdk main\ndeb [arch=amd64 signed-by=/k] http://ftp.de.debian.org/debian/ bookworm main\n";
        assert_eq!(
            mirror_in_sources(one_line).as_deref(),
            Some("http://ftp.de.debian.org/debian")
        );
        assert_eq!(
            mirror_in_sources("URIs: http://deb.debian.org/debian-security\n"),
            None
        );
        assert_eq!(
            mirror_in_sources("# deb http://x/debian bookworm main\n"),
            None
        );
    }
}
