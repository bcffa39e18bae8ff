//! Per-pod files shared by every container of the pod: `/etc/hostname`, `/etc/hosts`,
//! `/etc/resolv.conf` (from the CRI DNS config, else the host's), and the `/dev/shm` tmpfs.

use std::path::Path;

use k8s_cri::v1 as cri;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::container::error::{RuntimeError, io};

/// `resolv.conf` text for a CRI DNS config; `None` means "use the host's".
pub fn resolv_conf(dns: Option<&cri::DnsConfig>) -> Result<Option<String>, RuntimeError> {
    let Some(dns) = dns else { return Ok(None) };
    if dns.servers.is_empty() && dns.searches.is_empty() && dns.options.is_empty() {
        return Ok(None);
    }
    let mut out = String::new();
    for s in &dns.servers {
        if s.parse::<std::net::IpAddr>().is_err() {
            return Err(RuntimeError::InvalidArgument(format!(
                "config.dns_config.servers: {s:?} is not an IP address"
            )));
        }
        out.push_str(&format!("nameserver {s}\n"));
    }
    for (field, v) in [("searches", &dns.searches), ("options", &dns.options)] {
        if let Some(bad) = v
            .iter()
            .find(|x| x.contains(char::is_whitespace) || x.is_empty())
        {
            return Err(RuntimeError::InvalidArgument(format!(
                "config.dns_config.{field}: {bad:?} is empty or contains whitespace"
            )));
        }
    }
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    Ok(Some(out))
}

/// Writes hostname, hosts and resolv.conf into `dir`.
pub fn write_files(
    dir: &Path,
    hostname: &str,
    dns: Option<&cri::DnsConfig>,
) -> Result<(), RuntimeError> {
    let w = |name: &str, data: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, data).map_err(io("write", &p))
    };
    w("hostname", format!("{hostname}\n").as_bytes())?;
    w(
        "hosts",
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
        )
        .as_bytes(),
    )?;
    let resolv = match resolv_conf(dns)? {
        Some(r) => r.into_bytes(),
        None => std::fs::read("/etc/resolv.conf").unwrap_or_default(),
    };
    w("resolv.conf", &resolv)
}

/// Mounts the pod's `/dev/shm` tmpfs at `target`.
pub fn mount_shm(target: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(target).map_err(io("create", target))?;
    mount(
        Some("shm"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| RuntimeError::Io {
        what: "mount shm tmpfs on".into(),
        path: target.to_owned(),
        source: e.into(),
    })
}

/// Unmounts everything stacked on `target` (idempotent).
pub fn unmount_all(target: &Path) -> Result<(), RuntimeError> {
    loop {
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => {
                return Err(RuntimeError::Io {
                    what: "unmount".into(),
                    path: target.to_owned(),
                    source: e.into(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_dns_config() {
        let dns = cri::DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(Some(&dns)).unwrap().unwrap(),
            "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n"
        );
        assert!(resolv_conf(None).unwrap().is_none());
        let bad = cri::DnsConfig {
            servers: vec!["not-an-ip".into()],
            ..Default::default()
        };
        let e = resolv_conf(Some(&bad)).unwrap_err();
        assert!(e.to_string().contains("dns_config.servers"), "{e}");
    }
}
