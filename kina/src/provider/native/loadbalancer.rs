//! The API server load balancer of a cluster with several control planes, as kind does it:
//! a node container of the same image running HAProxy (from Debian, in the node image but
//! masked in every other node) in TCP mode in front of the control planes' API servers, with
//! TLS health checks on `/healthz` so a dead API server leaves the rotation.

use std::net::IpAddr;

use super::NativeError;
use crate::provider::{Node, NodeNetwork};

/// Where HAProxy reads its configuration in the node.
pub const CONFIG_PATH: &str = "/etc/haproxy/haproxy.cfg";

/// HAProxy's configuration for `backends` (name, address) listening on `port`.
pub fn haproxy_config(port: u16, backends: &[(String, IpAddr)]) -> String {
    let mut cfg = format!(
        "# Written by kina: the API server load balancer.
global
  log stdout format raw local0
  maxconn 4096

defaults
  log global
  mode tcp
  option dontlognull
  timeout connect 5s
  timeout client 30m
  timeout server 30m
  timeout tunnel 30m

frontend control-plane
  bind :::{port} v4v6
  default_backend kube-apiservers

backend kube-apiservers
  option httpchk GET /healthz
  http-check expect status 200
"
    );
    for (name, ip) in backends {
        let addr = match ip {
            IpAddr::V6(a) => format!("[{a}]"),
            IpAddr::V4(a) => a.to_string(),
        };
        cfg.push_str(&format!(
            "  server {name} {addr}:6443 check check-ssl verify none inter 2s fall 3 rise 1\n"
        ));
    }
    cfg
}

/// The address of `net` the cluster prefers (IPv4 unless the node has only IPv6).
pub fn preferred(net: &NodeNetwork) -> Option<IpAddr> {
    net.ipv4
        .map(IpAddr::V4)
        .or_else(|| net.ipv6.map(IpAddr::V6))
}

/// Configures and starts HAProxy in the load-balancer node `lb` for `control_planes`.
pub fn start(lb: &dyn Node, control_planes: &[&dyn Node]) -> Result<(), NativeError> {
    let mut backends = Vec::new();
    for cp in control_planes {
        let net = cp.network().map_err(|e| NativeError::NotReady {
            node: cp.name().to_string(),
            message: e.to_string(),
        })?;
        let ip = preferred(&net).ok_or_else(|| NativeError::NotReady {
            node: cp.name().to_string(),
            message: "no address on the cluster network".into(),
        })?;
        backends.push((cp.name().to_string(), ip));
    }
    let cfg = haproxy_config(6443, &backends);
    let run = |argv: &[&str], stdin: Option<&[u8]>| -> Result<(), NativeError> {
        let args: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let out = lb.exec(&args, stdin).map_err(|e| NativeError::NotReady {
            node: lb.name().to_string(),
            message: e.to_string(),
        })?;
        if out.status != 0 {
            return Err(NativeError::Runtime {
                node: lb.name().to_string(),
                what: argv.join(" "),
                output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    };
    run(
        &[
            "sh",
            "-c",
            "mkdir -p /etc/haproxy && cat > \"$1\"",
            "sh",
            CONFIG_PATH,
        ],
        Some(cfg.as_bytes()),
    )?;
    // The load balancer runs no Kubernetes: its runtime and kubelet stay off.
    run(
        &["systemctl", "stop", "kubelet.service", "cri-server.service"],
        None,
    )?;
    run(&["systemctl", "unmask", "haproxy.service"], None)?;
    run(&["systemctl", "restart", "haproxy.service"], None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_every_control_plane_with_tls_health_checks() {
        let cfg = haproxy_config(
            6443,
            &[
                ("c-control-plane".into(), "172.18.0.3".parse().unwrap()),
                ("c-control-plane2".into(), "fc00::4".parse().unwrap()),
            ],
        );
        assert!(cfg.contains("bind :::6443 v4v6"), "{cfg}");
        assert!(cfg.contains("server c-control-plane 172.18.0.3:6443 check check-ssl verify none"));
        assert!(cfg.contains("server c-control-plane2 [fc00::4]:6443 check"));
        assert!(cfg.contains("option httpchk GET /healthz"));
    }
}
