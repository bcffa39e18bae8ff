//! kind's config validation (`Cluster.Validate`), each problem tied to its field path.
//!
//! Mirrors kind: name regex `^[a-z0-9.-]+$`, ports in -1..=65535, CIDRs matching the IP
//! family (two, one per family, for dual stack), at least one control-plane node, no two
//! port mappings binding the same address, port and protocol. kina adds what kind leaves
//! to docker to find out late: addresses must be IPs, mounts need a host path and an
//! absolute container path, kubeadm patches must be YAML, and duplicate host bindings are
//! caught across nodes too, since every node shares the host.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use super::locate::FieldPath;
use super::types::{Cluster, IpFamily, NodeRole, PatchJson6902, Protocol};

/// One problem in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where the problem is.
    pub path: FieldPath,
    /// What is wrong.
    pub message: String,
}

fn err(errs: &mut Vec<FieldError>, path: FieldPath, message: impl Into<String>) {
    errs.push(FieldError {
        path,
        message: message.into(),
    });
}

/// Every problem of a defaulted cluster config; empty when it is valid.
pub fn validate(c: &Cluster) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let root = FieldPath::root();
    if !valid_name(&c.name) {
        err(
            &mut errs,
            root.key("name"),
            format!(
                "'{}' is not a valid cluster name, cluster names must match `^[a-z0-9.-]+$`",
                c.name
            ),
        );
    }
    let net = &c.networking;
    let np = root.key("networking");
    if net.api_server_port != 0
        && let Err(e) = validate_port(net.api_server_port)
    {
        err(&mut errs, np.key("apiServerPort"), e);
    }
    if net.api_server_address.parse::<IpAddr>().is_err() {
        err(
            &mut errs,
            np.key("apiServerAddress"),
            format!("{:?} is not an IP address", net.api_server_address),
        );
    }
    // kind defaults no pod subnet when the default CNI is disabled.
    if !(net.pod_subnet.is_empty() && net.disable_default_cni)
        && let Err(e) = validate_subnets(&net.pod_subnet, net.ip_family)
    {
        err(
            &mut errs,
            np.key("podSubnet"),
            format!("invalid pod subnet: {e}"),
        );
    }
    if let Err(e) = validate_subnets(&net.service_subnet, net.ip_family) {
        err(
            &mut errs,
            np.key("serviceSubnet"),
            format!("invalid service subnet: {e}"),
        );
    }
    if let Some(search) = &net.dns_search {
        for (i, d) in search.iter().enumerate() {
            if d.is_empty() || d.contains(char::is_whitespace) {
                err(
                    &mut errs,
                    np.key("dnsSearch").index(i),
                    format!("{d:?} is not a DNS search domain"),
                );
            }
        }
    }
    validate_patches(
        &mut errs,
        &root,
        &c.kubeadm_config_patches,
        &c.kubeadm_config_patches_json6902,
    );

    // host bindings seen so far: "port/protocol" → [(address, path)]
    let mut bound: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for (i, n) in c.nodes.iter().enumerate() {
        let p = root.key("nodes").index(i);
        if n.image.is_empty() {
            err(&mut errs, p.key("image"), "image is a required field");
        }
        for (k, v) in &n.labels {
            if let Err(e) = validate_label(k, v) {
                err(&mut errs, p.key("labels").key(k), e);
            }
        }
        for (j, m) in n.extra_mounts.iter().enumerate() {
            let mp = p.key("extraMounts").index(j);
            if m.host_path.is_empty() {
                err(
                    &mut errs,
                    mp.key("hostPath"),
                    "hostPath is a required field",
                );
            }
            if !m.container_path.starts_with('/') {
                err(
                    &mut errs,
                    mp.key("containerPath"),
                    format!(
                        "containerPath {:?} must be an absolute path",
                        m.container_path
                    ),
                );
            }
        }
        for (j, pm) in n.extra_port_mappings.iter().enumerate() {
            let pp = p.key("extraPortMappings").index(j);
            let mut ok = true;
            if let Err(e) = validate_port(pm.host_port) {
                err(&mut errs, pp.key("hostPort"), e);
                ok = false;
            }
            if let Err(e) = validate_port(pm.container_port) {
                err(&mut errs, pp.key("containerPort"), e);
            }
            let addr = if pm.listen_address.is_empty() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                match pm.listen_address.parse::<IpAddr>() {
                    Ok(a) => a,
                    Err(_) => {
                        err(
                            &mut errs,
                            pp.key("listenAddress"),
                            format!("{:?} is not an IP address", pm.listen_address),
                        );
                        continue;
                    }
                }
            };
            // -1 and 0 pick a random port, so they never collide.
            if !ok || pm.host_port == -1 || pm.host_port == 0 {
                continue;
            }
            if let Some(e) = check_binding(&mut bound, addr, pm.host_port, pm.protocol) {
                err(&mut errs, pp.clone(), e);
            }
        }
        validate_patches(
            &mut errs,
            &p,
            &n.kubeadm_config_patches,
            &n.kubeadm_config_patches_json6902,
        );
    }
    if !c.nodes.iter().any(|n| n.role == NodeRole::ControlPlane) {
        err(
            &mut errs,
            root.key("nodes"),
            "must have at least one control-plane node",
        );
    }
    errs
}

/// kind's cluster name rule.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// A Kubernetes label: `[prefix/]name` with a DNS-subdomain prefix, and a value, both
/// as the API server (and the kubelet's `--node-labels`) accept them.
fn validate_label(key: &str, value: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "label key {key:?}: prefix must be a DNS subdomain (lowercase letters, digits, '-' and '.')"
            ));
        }
    }
    if !label_name_ok(name, false) {
        return Err(format!(
            "label key {key:?}: name must be 1-63 characters of letters, digits, '-', '_' or '.', starting and ending alphanumeric"
        ));
    }
    if !label_name_ok(value, true) {
        return Err(format!(
            "label value {value:?}: must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending alphanumeric"
        ));
    }
    Ok(())
}

fn label_name_ok(s: &str, may_be_empty: bool) -> bool {
    if s.is_empty() {
        return may_be_empty;
    }
    let b = s.as_bytes();
    s.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn validate_port(port: i32) -> Result<(), String> {
    // -1 asks the backend to pick the port.
    if !(-1..=65535).contains(&port) {
        return Err(format!("invalid port number: {port}"));
    }
    Ok(())
}

/// kind's duplicate binding rule: same port+protocol on the same address, or on any
/// address when one of the two is the wildcard (0.0.0.0 and :: are the same wildcard).
fn check_binding(
    bound: &mut HashMap<String, Vec<IpAddr>>,
    addr: IpAddr,
    port: i32,
    proto: Protocol,
) -> Option<String> {
    let addr = if addr.is_unspecified() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        addr
    };
    let key = format!("{port}/{}", proto.as_str());
    let seen = bound.entry(key.clone()).or_default();
    let clash = if addr.is_unspecified() {
        !seen.is_empty()
    } else {
        seen.iter().any(|a| *a == addr || a.is_unspecified())
    };
    if clash {
        return Some(format!(
            "port mapping with same listen address, port and protocol already configured: {addr}:{key}"
        ));
    }
    seen.push(addr);
    None
}

/// A CIDR as Go's `net.ParseCIDR` accepts it.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, bits) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a CIDR (no prefix length)"))?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("{s:?} is not a CIDR (bad address)"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits: u8 = bits
        .parse()
        .ok()
        .filter(|b| *b <= max && !bits.starts_with('+'))
        .ok_or_else(|| format!("{s:?} is not a CIDR (bad prefix length)"))?;
    Ok((ip, bits))
}

fn validate_subnets(s: &str, family: IpFamily) -> Result<(), String> {
    let mut nets = Vec::new();
    for part in s.split(',') {
        nets.push(parse_cidr(part)?);
    }
    let v4 = nets.iter().filter(|(ip, _)| ip.is_ipv4()).count();
    let v6 = nets.len() - v4;
    match family {
        IpFamily::Dual if nets.len() > 2 || (nets.len() == 2 && (v4 != 1 || v6 != 1)) => Err(
            "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking"
                .into(),
        ),
        IpFamily::Ipv4 | IpFamily::Ipv6 if nets.len() > 1 => {
            Err("only one CIDR allowed for single-stack networking".into())
        }
        IpFamily::Ipv4 if v4 == 0 => Err(format!("expected IPv4 CIDR for IPv4 family, got {s}")),
        IpFamily::Ipv6 if v6 == 0 => Err(format!("expected IPv6 CIDR for IPv6 family, got {s}")),
        _ => Ok(()),
    }
}

fn validate_patches(
    errs: &mut Vec<FieldError>,
    parent: &FieldPath,
    merge: &[String],
    json6902: &[PatchJson6902],
) {
    for (i, patch) in merge.iter().enumerate() {
        match serde_norway::from_str::<serde_norway::Value>(patch) {
            Ok(serde_norway::Value::Mapping(m)) => {
                if !m.contains_key("kind") {
                    err(
                        errs,
                        parent.key("kubeadmConfigPatches").index(i),
                        "patch has no `kind` naming the object it applies to",
                    );
                }
            }
            Ok(_) => err(
                errs,
                parent.key("kubeadmConfigPatches").index(i),
                "patch is not a YAML mapping",
            ),
            Err(e) => err(
                errs,
                parent.key("kubeadmConfigPatches").index(i),
                format!("patch is not valid YAML: {e}"),
            ),
        }
    }
    for (i, patch) in json6902.iter().enumerate() {
        let p = parent.key("kubeadmConfigPatchesJSON6902").index(i);
        if patch.kind.is_empty() {
            err(errs, p.key("kind"), "kind is a required field");
        }
        match serde_norway::from_str::<serde_norway::Value>(&patch.patch) {
            Ok(serde_norway::Value::Sequence(_)) => {}
            Ok(_) => err(
                errs,
                p.key("patch"),
                "patch is not a list of RFC 6902 operations",
            ),
            Err(e) => err(
                errs,
                p.key("patch"),
                format!("patch is not valid YAML: {e}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_follow_go_parse_cidr() {
        assert!(parse_cidr("10.244.0.0/16").is_ok());
        assert!(parse_cidr("fd00:10:244::/56").is_ok());
        assert!(parse_cidr("10.244.0.0").is_err());
        assert!(parse_cidr("10.244.0.0/33").is_err());
        assert!(parse_cidr(" 10.244.0.0/16").is_err());
    }

    #[test]
    fn subnet_families() {
        assert!(validate_subnets("10.0.0.0/8", IpFamily::Ipv4).is_ok());
        assert!(validate_subnets("fd00::/8", IpFamily::Ipv4).is_err());
        assert!(validate_subnets("10.0.0.0/8", IpFamily::Ipv6).is_err());
        assert!(validate_subnets("10.0.0.0/8,fd00::/8", IpFamily::Dual).is_ok());
        assert!(validate_subnets("10.0.0.0/8", IpFamily::Dual).is_ok());
        assert!(validate_subnets("10.0.0.0/8,10.1.0.0/16", IpFamily::Dual).is_err());
        assert!(validate_subnets("10.0.0.0/8,fd00::/8", IpFamily::Ipv4).is_err());
    }

    #[test]
    fn wildcard_bindings_clash_with_any_address() {
        let mut b = HashMap::new();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let any6: IpAddr = "::".parse().unwrap();
        assert!(check_binding(&mut b, lo, 80, Protocol::Tcp).is_none());
        assert!(check_binding(&mut b, lo, 80, Protocol::Udp).is_none());
        assert!(check_binding(&mut b, any6, 80, Protocol::Tcp).is_some());
        assert!(check_binding(&mut b, lo, 81, Protocol::Tcp).is_none());
        assert!(check_binding(&mut b, lo, 81, Protocol::Tcp).is_some());
    }

    #[test]
    fn labels_follow_kubernetes_syntax() {
        assert!(validate_label("tier", "frontend").is_ok());
        assert!(validate_label("ingress-ready", "true").is_ok());
        assert!(validate_label("node.kubernetes.io/exclude", "").is_ok());
        assert!(validate_label("example.com/My_Label.1", "v-1").is_ok());
        assert!(validate_label("", "x").is_err());
        assert!(validate_label("-tier", "x").is_err());
        assert!(validate_label("Example.com/x", "x").is_err());
        assert!(validate_label("/x", "x").is_err());
        assert!(validate_label("tier", "has space").is_err());
        assert!(validate_label("tier", &"a".repeat(64)).is_err());
    }

    #[test]
    fn names_follow_kinds_regex() {
        assert!(valid_name("app-1-cluster"));
        assert!(valid_name("a.b"));
        assert!(!valid_name("App"));
        assert!(!valid_name("a_b"));
        assert!(!valid_name(""));
    }
}
