//! Bad configs are rejected with the field path and the line of the problem.

use std::path::Path;

use kina::config::{self, ConfigError, LocatedError};

fn load(yaml: &str) -> Result<config::Loaded, ConfigError> {
    config::load_str(yaml, "\"bad.yaml\"", None, Path::new("/"))
}

/// The semantic errors of a config that must be invalid.
fn invalid(yaml: &str) -> Vec<LocatedError> {
    match load(yaml) {
        Err(ConfigError::Invalid { errors, .. }) => errors,
        other => panic!("expected validation errors, got {other:?}"),
    }
}

/// Assert exactly one error, at `field` on `line`, whose message contains `needle`.
fn one(yaml: &str, field: &str, line: usize, needle: &str) {
    let errs = invalid(yaml);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].field, field, "{errs:?}");
    assert_eq!(errs[0].line, Some(line), "{errs:?}");
    assert!(errs[0].message.contains(needle), "{errs:?}");
    let shown = load(yaml).unwrap_err().to_string();
    assert!(
        shown.contains(&format!("line {line}: {field}: ")),
        "{shown}"
    );
    assert!(shown.contains("bad.yaml"), "{shown}");
}

fn decode(yaml: &str) -> (usize, String) {
    match load(yaml) {
        Err(ConfigError::Decode { line, message, .. }) => (line, message),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

const HEAD: &str = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n";

#[test]
fn host_port_out_of_range_names_field_and_line() {
    one(
        &format!(
            "{HEAD}nodes:
- role: control-plane
- role: worker
  extraPortMappings:
  - containerPort: 80
    hostPort: 70000
"
        ),
        "nodes[1].extraPortMappings[0].hostPort",
        8,
        "invalid port number: 70000",
    );
}

#[test]
fn container_port_and_api_server_port_out_of_range() {
    one(
        &format!(
            "{HEAD}nodes:\n- role: control-plane\n  extraPortMappings:\n  - containerPort: -2\n    hostPort: 80\n"
        ),
        "nodes[0].extraPortMappings[0].containerPort",
        6,
        "-2",
    );
    one(
        &format!("{HEAD}networking:\n  apiServerPort: 65536\n"),
        "networking.apiServerPort",
        4,
        "65536",
    );
}

#[test]
fn unknown_field_is_rejected_with_field_and_line() {
    let (line, msg) = decode(&format!(
        "{HEAD}nodes:\n- role: control-plane\n  imagee: kindest/node:v1.30.0\n"
    ));
    assert_eq!(line, 5);
    assert!(msg.contains("nodes[0]"), "{msg}");
    assert!(msg.contains("unknown field `imagee`"), "{msg}");
    let (line, msg) = decode(&format!("{HEAD}networking:\n  podCIDR: 10.0.0.0/8\n"));
    assert_eq!(line, 4);
    assert!(msg.contains("unknown field `podCIDR`"), "{msg}");
    let (line, msg) = decode(&format!("{HEAD}clusterName: x\n"));
    assert_eq!(line, 3);
    assert!(msg.contains("unknown field `clusterName`"), "{msg}");
}

#[test]
fn wrong_enum_values_list_the_allowed_ones() {
    let (line, msg) = decode(&format!("{HEAD}nodes:\n- role: master\n"));
    assert_eq!(line, 4);
    assert!(msg.contains("nodes[0].role"), "{msg}");
    assert!(
        msg.contains("control-plane") && msg.contains("worker"),
        "{msg}"
    );
    let (line, msg) = decode(&format!("{HEAD}networking:\n  ipFamily: ipv5\n"));
    assert_eq!(line, 4);
    assert!(
        msg.contains("networking.ipFamily") && msg.contains("dual"),
        "{msg}"
    );
    let (_, msg) = decode(&format!("{HEAD}networking:\n  kubeProxyMode: userspace\n"));
    assert!(
        msg.contains("kubeProxyMode") && msg.contains("nftables"),
        "{msg}"
    );
    let (_, msg) = decode(&format!(
        "{HEAD}nodes:\n- extraPortMappings:\n  - containerPort: 1\n    protocol: tcp\n"
    ));
    assert!(msg.contains("protocol") && msg.contains("TCP"), "{msg}");
}

#[test]
fn wrong_types_are_decode_errors_with_lines() {
    let (line, msg) = decode(&format!(
        "{HEAD}nodes:\n- role: worker\n- role: control-plane\n  extraPortMappings:\n  - hostPort: eighty\n"
    ));
    assert_eq!(line, 7);
    assert!(
        msg.contains("nodes[1].extraPortMappings[0].hostPort"),
        "{msg}"
    );
}

#[test]
fn malformed_yaml_reports_the_line() {
    let (line, _) = decode(&format!(
        "{HEAD}nodes:\n- role: worker\n   image: x\n  - bad\n"
    ));
    assert!((4..=6).contains(&line), "line {line}");
}

#[test]
fn wrong_api_version_and_kind() {
    let e = load("kind: Cluster\napiVersion: kind.sigs.k8s.io/v1alpha3\n").unwrap_err();
    let s = e.to_string();
    assert!(
        matches!(e, ConfigError::Type { ref error, .. } if error.line == Some(2)),
        "{e:?}"
    );
    assert!(
        s.contains("kind.sigs.k8s.io/v1alpha3") && s.contains("kind.x-k8s.io/v1alpha4"),
        "{s}"
    );

    let e = load("apiVersion: kind.x-k8s.io/v1alpha4\nkind: Pod\n").unwrap_err();
    assert!(
        matches!(e, ConfigError::Type { ref error, .. } if error.line == Some(2) && error.field == "kind"),
        "{e:?}"
    );
    assert!(e.to_string().contains("\"Pod\""), "{e}");

    let e = load("kind: Cluster\nname: x\n").unwrap_err();
    assert!(e.to_string().contains("apiVersion is missing"), "{e}");
    let e = load("# nothing here\n\n").unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn at_least_one_control_plane() {
    one(
        &format!("{HEAD}nodes:\n- role: worker\n- role: worker\n"),
        "nodes",
        3,
        "at least one control-plane",
    );
}

#[test]
fn subnets_must_parse_and_match_the_family() {
    one(
        &format!("{HEAD}networking:\n  ipFamily: ipv6\n  podSubnet: 10.0.0.0/16\n"),
        "networking.podSubnet",
        5,
        "expected IPv6 CIDR",
    );
    one(
        &format!("{HEAD}networking:\n  serviceSubnet: fd00::/108\n"),
        "networking.serviceSubnet",
        4,
        "expected IPv4 CIDR",
    );
    one(
        &format!("{HEAD}networking:\n  podSubnet: 10.244.0.0\n"),
        "networking.podSubnet",
        4,
        "not a CIDR",
    );
    one(
        &format!("{HEAD}networking:\n  ipFamily: dual\n  podSubnet: 10.244.0.0/16,10.245.0.0/16\n"),
        "networking.podSubnet",
        5,
        "dual-stack",
    );
    one(
        &format!("{HEAD}networking:\n  podSubnet: 10.244.0.0/16,fd00::/56\n"),
        "networking.podSubnet",
        4,
        "only one CIDR",
    );
}

#[test]
fn duplicate_host_bindings_are_rejected() {
    one(
        &format!(
            "{HEAD}nodes:
- role: control-plane
  extraPortMappings:
  - containerPort: 80
    hostPort: 8080
    listenAddress: 127.0.0.1
  - containerPort: 81
    hostPort: 8080
"
        ),
        "nodes[0].extraPortMappings[1]",
        9,
        "0.0.0.0:8080/TCP",
    );
    // across nodes too: they share the host
    one(
        &format!(
            "{HEAD}nodes:
- role: control-plane
  extraPortMappings:
  - containerPort: 80
    hostPort: 80
- role: worker
  extraPortMappings:
  - containerPort: 80
    hostPort: 80
"
        ),
        "nodes[1].extraPortMappings[0]",
        10,
        "already configured",
    );
    // same port, other protocol or other address: fine
    load(&format!(
        "{HEAD}nodes:
- role: control-plane
  extraPortMappings:
  - {{containerPort: 53, hostPort: 53, protocol: UDP}}
  - {{containerPort: 53, hostPort: 53, protocol: TCP}}
  - {{containerPort: 80, hostPort: 80, listenAddress: 127.0.0.1}}
  - {{containerPort: 80, hostPort: 80, listenAddress: 127.0.0.2}}
  - {{containerPort: 80, hostPort: 0}}
  - {{containerPort: 81, hostPort: 0}}
"
    ))
    .unwrap();
}

#[test]
fn addresses_must_be_ips() {
    one(
        &format!(
            "{HEAD}nodes:\n- role: control-plane\n  extraPortMappings:\n  - containerPort: 80\n    listenAddress: localhost\n"
        ),
        "nodes[0].extraPortMappings[0].listenAddress",
        7,
        "not an IP",
    );
    one(
        &format!("{HEAD}networking:\n  apiServerAddress: my-host\n"),
        "networking.apiServerAddress",
        4,
        "not an IP",
    );
}

#[test]
fn mounts_need_paths() {
    one(
        &format!(
            "{HEAD}nodes:\n- role: control-plane\n  extraMounts:\n  - hostPath: /srv\n    containerPath: srv\n"
        ),
        "nodes[0].extraMounts[0].containerPath",
        7,
        "absolute",
    );
    one(
        &format!("{HEAD}nodes:\n- role: control-plane\n  extraMounts:\n  - containerPath: /srv\n"),
        "nodes[0].extraMounts[0].hostPath",
        6,
        "required",
    );
}

#[test]
fn node_labels_must_be_kubernetes_labels() {
    one(
        &format!(
            "{HEAD}nodes:\n- role: control-plane\n  labels:\n    tier: frontend\n    bad key: x\n"
        ),
        "nodes[0].labels.bad key",
        7,
        "label key",
    );
}

#[test]
fn cluster_name_follows_kinds_rule() {
    one(
        &format!("{HEAD}name: My_Cluster\n"),
        "name",
        3,
        "My_Cluster",
    );
    let e = config::load_str(HEAD, "x", Some("Bad/Name"), Path::new("/")).unwrap_err();
    let ConfigError::Invalid { errors, .. } = e else {
        panic!("{e:?}")
    };
    assert_eq!(errors[0].field, "--name");
    assert_eq!(errors[0].line, None);
}

#[test]
fn patches_must_be_well_formed() {
    one(
        &format!(
            "{HEAD}nodes:\n- role: control-plane\n  kubeadmConfigPatches:\n  - |\n    kind: [unclosed\n"
        ),
        "nodes[0].kubeadmConfigPatches[0]",
        6,
        "not valid YAML",
    );
    one(
        &format!("{HEAD}kubeadmConfigPatches:\n- |\n  apiServer: {{}}\n"),
        "kubeadmConfigPatches[0]",
        4,
        "no `kind`",
    );
    one(
        &format!("{HEAD}containerdConfigPatches:\n- |-\n  [plugins\n"),
        "containerdConfigPatches[0]",
        4,
        "not valid TOML",
    );
    one(
        &format!(
            "{HEAD}kubeadmConfigPatchesJSON6902:\n- group: kubeadm.k8s.io\n  version: v1beta3\n  kind: ClusterConfiguration\n  patch: 'op: add'\n"
        ),
        "kubeadmConfigPatchesJSON6902[0].patch",
        7,
        "RFC 6902",
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let errs = invalid(&format!(
        "{HEAD}name: UPPER
networking:
  apiServerPort: 99999
nodes:
- role: worker
  extraPortMappings:
  - containerPort: 80
    hostPort: -5
"
    ));
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "name",
            "networking.apiServerPort",
            "nodes[0].extraPortMappings[0].hostPort",
            "nodes"
        ]
    );
    let lines: Vec<Option<usize>> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![Some(3), Some(5), Some(10), Some(6)]);
}
