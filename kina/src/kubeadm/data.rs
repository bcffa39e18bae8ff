//! [`ConfigData`]: everything that varies per node in the generated kubeadm configuration
//! (kind's `kubeadm.ConfigData`), its validation, and the bootstrap secrets kubeadm needs.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;

use crate::config::{IpFamily, NodeRole, ProxyMode};

use super::KubeadmError;

/// The default CRI socket of kina nodes (cri-server).
pub const DEFAULT_CRI_SOCKET: &str = "unix:///run/cri-server/cri-server.sock";
/// The port every API server listens on inside its node.
pub const API_BIND_PORT: u16 = 6443;
/// The cluster DNS domain when [`ConfigData::dns_domain`] is empty.
pub const DEFAULT_DNS_DOMAIN: &str = "cluster.local";
/// kind's kubelet `cgroupRoot`: pods live under `/kubelet` (`kubelet.slice` with systemd),
/// apart from the node's own services.
pub const KIND_CGROUP_ROOT: &str = "/kubelet";

/// The kubelet's cgroup driver; it must match the runtime's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupDriver {
    /// systemd manages the cgroups (kind's default since Kubernetes 1.24).
    #[default]
    Systemd,
    /// Direct cgroupfs writes.
    Cgroupfs,
}

impl CgroupDriver {
    /// The KubeletConfiguration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupDriver::Systemd => "systemd",
            CgroupDriver::Cgroupfs => "cgroupfs",
        }
    }
}

/// Everything the kubeadm configuration of one node depends on.
///
/// Strings follow the kind convention "empty means unset" where a default exists
/// ([`ConfigData::dns_domain`]); required fields are checked by [`super::render`], which names
/// the field when one is missing or malformed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigData {
    /// The cluster name (`clusterName`).
    pub cluster_name: String,
    /// The Kubernetes version, e.g. `v1.36.2` (`kubernetesVersion`).
    pub kubernetes_version: String,
    /// `host:port` the nodes reach the API at: the first control plane's `IP:6443`, or the
    /// load balancer's (`controlPlaneEndpoint`, join discovery endpoint).
    pub control_plane_endpoint: String,
    /// The port the API server binds inside its node ([`API_BIND_PORT`]).
    pub api_bind_port: u16,
    /// The host-side API address (e.g. `127.0.0.1`) that kubeconfigs use; added to certSANs.
    pub api_server_address: String,
    /// The bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`), see [`random_token`].
    pub token: String,
    /// 64 hex digits: the key kubeadm encrypts the uploaded control-plane certificates with.
    /// Set on the init node (run `kubeadm init --upload-certs`) and on control-plane joins.
    pub certificate_key: Option<String>,
    /// The node (and Kubernetes Node object) name.
    pub node_name: String,
    /// The node's addresses; the ones of the cluster's family (families) are used.
    pub node_ips: Vec<IpAddr>,
    /// control-plane or worker.
    pub role: NodeRole,
    /// `kubeadm join` (true) or `kubeadm init` (false, the first control plane).
    pub join: bool,
    /// Labels of the Kubernetes node (kubelet `--node-labels`).
    pub node_labels: BTreeMap<String, String>,
    /// The cluster's IP family.
    pub ip_family: IpFamily,
    /// Pod CIDR(s), comma separated for dual stack.
    pub pod_subnet: String,
    /// Service CIDR(s), comma separated for dual stack.
    pub service_subnet: String,
    /// The cluster DNS domain; [`DEFAULT_DNS_DOMAIN`] when empty.
    pub dns_domain: String,
    /// Feature gates for every component (API server, controller manager, scheduler,
    /// kubelet, kube-proxy), as kind passes them.
    pub feature_gates: BTreeMap<String, bool>,
    /// kube-apiserver `--runtime-config` entries.
    pub runtime_config: BTreeMap<String, String>,
    /// kube-proxy mode; [`ProxyMode::None`] disables the kube-proxy addon.
    pub kube_proxy_mode: ProxyMode,
    /// The kubelet's cgroup driver (must match cri-server's).
    pub cgroup_driver: CgroupDriver,
    /// The kubelet's `cgroupRoot`; kind always uses [`KIND_CGROUP_ROOT`].
    pub cgroup_root: Option<String>,
    /// The CRI endpoint, e.g. [`DEFAULT_CRI_SOCKET`].
    pub cri_socket: String,
    /// The kubelet's `failCgroupV1`: must be false on cgroup v1 hosts (Kubernetes 1.35+
    /// refuses to start there otherwise).
    pub fail_cgroup_v1: bool,
    /// `oomScoreAdj` of the kubelet and kube-proxy. `Some(0)` where the node cannot lower
    /// scores (no CAP_SYS_RESOURCE: the kernel refuses the default -999); `None` keeps it.
    pub oom_score_adj: Option<i32>,
    /// `etcd.local.imageTag`, e.g. `3.5.16-0`; below 3.6 kina adds the etcd 3.5 patches
    /// (see [`super::etcd`]).
    pub etcd_image_tag: Option<String>,
    /// `dns.imageTag` (CoreDNS), e.g. `v1.13.1`.
    pub dns_image_tag: Option<String>,
    /// `nodeRegistration.imagePullPolicy: Never`: the images are preloaded in the node.
    pub image_pull_policy_never: bool,
    /// Register the node without taints (`taints: []`): a control plane that must also run
    /// workloads (clusters without workers). kind removes the taint after init instead.
    pub untainted: bool,
}

impl ConfigData {
    /// True on control-plane nodes.
    pub fn control_plane(&self) -> bool {
        self.role == NodeRole::ControlPlane
    }

    /// The cluster DNS domain in force.
    pub fn dns_domain(&self) -> &str {
        if self.dns_domain.is_empty() {
            DEFAULT_DNS_DOMAIN
        } else {
            &self.dns_domain
        }
    }

    /// True for an IPv6 single-stack cluster: components bind `::` (kind's `IPv6`).
    pub fn ipv6(&self) -> bool {
        self.ip_family == IpFamily::Ipv6
    }

    /// The node addresses kubeadm sees, primary family first (kind's `NodeAddress`):
    /// the first IPv4 for ipv4, the first IPv6 for ipv6, both (IPv4 first) for dual.
    pub fn node_addresses(&self) -> Result<Vec<IpAddr>, KubeadmError> {
        let v4 = self.node_ips.iter().find(|a| a.is_ipv4()).copied();
        let v6 = self.node_ips.iter().find(|a| a.is_ipv6()).copied();
        let missing = |fam: &str| {
            KubeadmError::invalid(
                "node_ips",
                format!(
                    "node {} has no {fam} address ({:?}) but the cluster's ipFamily is {}",
                    self.node_name,
                    self.node_ips,
                    self.ip_family.as_str()
                ),
            )
        };
        Ok(match self.ip_family {
            IpFamily::Ipv4 => vec![v4.ok_or_else(|| missing("IPv4"))?],
            IpFamily::Ipv6 => vec![v6.ok_or_else(|| missing("IPv6"))?],
            IpFamily::Dual => vec![
                v4.ok_or_else(|| missing("IPv4"))?,
                v6.ok_or_else(|| missing("IPv6"))?,
            ],
        })
    }

    /// Checks every required field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), KubeadmError> {
        non_empty("cluster_name", &self.cluster_name)?;
        non_empty("node_name", &self.node_name)?;
        non_empty("control_plane_endpoint", &self.control_plane_endpoint)?;
        non_empty("cri_socket", &self.cri_socket)?;
        parse_version("kubernetes_version", &self.kubernetes_version)?;
        if self.api_bind_port == 0 {
            return Err(KubeadmError::invalid("api_bind_port", "must not be 0"));
        }
        if !self.control_plane_endpoint.contains(':') {
            return Err(KubeadmError::invalid(
                "control_plane_endpoint",
                format!("{:?} is not host:port", self.control_plane_endpoint),
            ));
        }
        if !is_token(&self.token) {
            return Err(KubeadmError::invalid(
                "token",
                format!(
                    "{:?} is not a bootstrap token ([a-z0-9]{{6}}.[a-z0-9]{{16}})",
                    self.token
                ),
            ));
        }
        if let Some(k) = &self.certificate_key
            && (k.len() != 64 || !k.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(KubeadmError::invalid(
                "certificate_key",
                "must be 64 hex digits (32 bytes)",
            ));
        }
        self.node_addresses()?;
        check_subnets("pod_subnet", &self.pod_subnet, self.ip_family)?;
        check_subnets("service_subnet", &self.service_subnet, self.ip_family)?;
        if let Some(tag) = &self.etcd_image_tag {
            parse_version("etcd_image_tag", tag)?;
        }
        if let Some(tag) = &self.dns_image_tag {
            non_empty("dns_image_tag", tag)?;
        }
        for (k, v) in &self.node_labels {
            if k.is_empty() || k.contains([',', '=']) || v.contains([',', '=']) {
                return Err(KubeadmError::invalid(
                    "node_labels",
                    format!("label {k:?}={v:?} cannot be passed in --node-labels"),
                ));
            }
        }
        Ok(())
    }
}

fn non_empty(field: &'static str, v: &str) -> Result<(), KubeadmError> {
    if v.trim().is_empty() {
        return Err(KubeadmError::invalid(field, "must not be empty"));
    }
    Ok(())
}

/// Parses `v1.36.2`, `3.5.16-0` or `1.36` into (major, minor, patch).
pub(crate) fn parse_version(field: &'static str, v: &str) -> Result<(u64, u64, u64), KubeadmError> {
    let bad = || KubeadmError::invalid(field, format!("{v:?} is not a version like v1.36.2"));
    let core = v.strip_prefix('v').unwrap_or(v);
    let core = core.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.').map(|p| p.parse::<u64>());
    let major = parts.next().ok_or_else(bad)?.map_err(|_| bad())?;
    let minor = parts.next().ok_or_else(bad)?.map_err(|_| bad())?;
    let patch = match parts.next() {
        Some(p) => p.map_err(|_| bad())?,
        None => 0,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((major, minor, patch))
}

fn check_subnets(field: &'static str, v: &str, family: IpFamily) -> Result<(), KubeadmError> {
    non_empty(field, v)?;
    let nets = v
        .split(',')
        .map(|s| {
            let s = s.trim();
            if !s.contains('/') {
                let why = format!("{s:?} is not a CIDR (no prefix length)");
                return Err(KubeadmError::invalid(field, why));
            }
            s.parse::<ipnetwork::IpNetwork>()
                .map_err(|e| KubeadmError::invalid(field, format!("{s:?} is not a CIDR: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let fams: Vec<bool> = nets.iter().map(|n| n.is_ipv4()).collect();
    let ok = match family {
        IpFamily::Ipv4 => fams == [true],
        IpFamily::Ipv6 => fams == [false],
        IpFamily::Dual => fams.len() == 2 && fams[0] != fams[1],
    };
    if !ok {
        return Err(KubeadmError::invalid(
            field,
            format!("{v:?} does not fit ipFamily {}", family.as_str()),
        ));
    }
    Ok(())
}

fn is_token(t: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    matches!(t.split_once('.'), Some((id, secret)) if ok(id, 6) && ok(secret, 16))
}

fn random_bytes(n: usize) -> Result<Vec<u8>, KubeadmError> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(KubeadmError::Random)?;
    Ok(buf)
}

/// A fresh bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}` from the system's random source.
pub fn random_token() -> Result<String, KubeadmError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(23);
    let mut pool = Vec::new();
    while out.len() < 23 {
        if out.len() == 6 {
            out.push('.');
            continue;
        }
        if pool.is_empty() {
            pool = random_bytes(64)?;
        }
        let b = pool.pop().unwrap_or_default();
        // Rejection sampling keeps the 36 characters equally likely.
        if (b as usize) < 252 {
            out.push(ALPHABET[b as usize % 36] as char);
        }
    }
    Ok(out)
}

/// A fresh certificate key (32 random bytes, hex) for `kubeadm init --upload-certs`.
pub fn random_certificate_key() -> Result<String, KubeadmError> {
    Ok(hex::encode(random_bytes(32)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("f", "v1.36.2").unwrap(), (1, 36, 2));
        assert_eq!(parse_version("f", "3.5.16-0").unwrap(), (3, 5, 16));
        assert_eq!(parse_version("f", "3.6").unwrap(), (3, 6, 0));
        assert_eq!(parse_version("f", "v1.36.2+kina").unwrap(), (1, 36, 2));
        for bad in ["", "latest", "v1", "1.x.2", "1.2.3.4"] {
            let e = parse_version("etcd_image_tag", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("etcd_image_tag"), "{e}");
        }
    }

    #[test]
    fn random_secrets_have_kubeadm_formats() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert!(is_token(&a), "{a}");
        assert_ne!(a, b);
        let k = random_certificate_key().unwrap();
        assert_eq!(k.len(), 64);
        assert!(k.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn token_format_is_checked() {
        assert!(is_token("abcdef.0123456789abcdef"));
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abc.def",
            "",
        ] {
            assert!(!is_token(bad), "{bad}");
        }
    }

    #[test]
    fn subnets_must_fit_the_family() {
        check_subnets("pod_subnet", "10.244.0.0/16", IpFamily::Ipv4).unwrap();
        check_subnets("pod_subnet", "fd00:10:244::/56", IpFamily::Ipv6).unwrap();
        check_subnets(
            "pod_subnet",
            "10.244.0.0/16,fd00:10:244::/56",
            IpFamily::Dual,
        )
        .unwrap();
        let e = check_subnets("pod_subnet", "10.244.0.0/16", IpFamily::Dual).unwrap_err();
        assert!(e.to_string().contains("pod_subnet"), "{e}");
        let e = check_subnets("service_subnet", "10.96.0.0/99", IpFamily::Ipv4).unwrap_err();
        assert!(e.to_string().contains("service_subnet"), "{e}");
    }
}
