//! Fixture results of each CNI version, as the standard plugins print them.

use super::*;

const V100: &str = r#"{
  "cniVersion": "1.0.0",
  "interfaces": [
    {"name": "cni0", "mac": "6a:1e:5b:3c:00:01"},
    {"name": "veth1234", "mac": "6a:1e:5b:3c:00:02"},
    {"name": "eth0", "mac": "6a:1e:5b:3c:00:03", "sandbox": "/run/netns/pod1"}
  ],
  "ips": [
    {"interface": 2, "address": "10.88.0.5/16", "gateway": "10.88.0.1"},
    {"interface": 2, "address": "fd00:88::5/64", "gateway": "fd00:88::1"}
  ],
  "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "fd00:88::1"}],
  "dns": {"nameservers": ["10.96.0.10"], "search": ["svc.cluster.local"]}
}"#;

const V040: &str = r#"{
  "cniVersion": "0.4.0",
  "interfaces": [
    {"name": "cni0", "mac": "6a:1e:5b:3c:00:01"},
    {"name": "eth0", "mac": "6a:1e:5b:3c:00:03", "sandbox": "/run/netns/pod1"}
  ],
  "ips": [
    {"version": "6", "interface": 1, "address": "fd00:88::5/64"},
    {"version": "4", "interface": 1, "address": "10.88.0.5/16", "gateway": "10.88.0.1"}
  ],
  "dns": {}
}"#;

const V031: &str = r#"{
  "cniVersion": "0.3.1",
  "interfaces": [{"name": "eth0", "sandbox": "/proc/1/ns/net"}],
  "ips": [{"version": "4", "interface": 0, "address": "192.168.1.2/24"}]
}"#;

const V110: &str = r#"{
  "cniVersion": "1.1.0",
  "interfaces": [{"name": "eth0", "sandbox": "/run/netns/p", "mtu": 1450, "socketPath": "/x"}],
  "ips": [{"interface": 0, "address": "10.1.2.3/24", "gateway": "10.1.2.1"}],
  "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1", "mtu": 1400, "priority": 10, "table": 5}]
}"#;

const V020: &str = r#"{
  "cniVersion": "0.2.0",
  "ip4": {"ip": "10.0.0.9/8", "gateway": "10.0.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
  "ip6": {"ip": "fd00::9/64"},
  "dns": {"nameservers": ["1.1.1.1"]}
}"#;

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

#[test]
fn parses_1_0_0_result_with_both_families() {
    let r = CniResult::parse(V100.as_bytes(), "1.0.0").unwrap();
    assert_eq!(r.cni_version, "1.0.0");
    assert_eq!(r.interfaces.len(), 3);
    assert_eq!(r.interfaces[2].sandbox.as_deref(), Some("/run/netns/pod1"));
    let ips = r.sandbox_ips();
    assert_eq!(ips[0].address, net("10.88.0.5/16"));
    assert_eq!(ips[0].gateway, Some("10.88.0.1".parse().unwrap()));
    assert_eq!(ips[1].address, net("fd00:88::5/64"));
    assert_eq!(r.routes.len(), 2);
    assert_eq!(r.routes[1].gw, Some("fd00:88::1".parse().unwrap()));
    assert_eq!(r.dns.nameservers, vec!["10.96.0.10"]);
    assert_eq!(r.dns.search, vec!["svc.cluster.local"]);
}

#[test]
fn parses_0_4_0_result_and_puts_ipv4_first() {
    let r = CniResult::parse(V040.as_bytes(), "0.4.0").unwrap();
    let ips = r.sandbox_ips();
    assert_eq!(ips.len(), 2);
    assert!(ips[0].address.is_ipv4());
    assert_eq!(ips[1].address, net("fd00:88::5/64"));
    assert_eq!(ips[1].gateway, None);
}

#[test]
fn parses_0_3_1_result() {
    let r = CniResult::parse(V031.as_bytes(), "0.3.1").unwrap();
    assert_eq!(r.sandbox_ips()[0].address, net("192.168.1.2/24"));
    assert_eq!(r.dns, Dns::default());
}

#[test]
fn parses_1_1_0_result_ignoring_new_optional_fields() {
    let r = CniResult::parse(V110.as_bytes(), "1.0.0").unwrap();
    assert_eq!(r.cni_version, "1.1.0");
    assert_eq!(r.interfaces[0].mtu, Some(1450));
    assert_eq!(r.routes[0].dst, net("0.0.0.0/0"));
    assert_eq!(r.routes[0].gw, Some("10.1.2.1".parse().unwrap()));
}

#[test]
fn parses_0_2_0_result() {
    let r = CniResult::parse(V020.as_bytes(), "0.2.0").unwrap();
    let ips = r.sandbox_ips();
    assert_eq!(ips.len(), 2);
    assert_eq!(ips[0].address, net("10.0.0.9/8"));
    assert_eq!(ips[0].gateway, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(ips[1].address, net("fd00::9/64"));
    assert_eq!(r.routes.len(), 1);
    assert_eq!(r.dns.nameservers, vec!["1.1.1.1"]);
}

#[test]
fn result_without_version_uses_the_network_version() {
    let r = CniResult::parse(br#"{"ips":[{"address":"10.0.0.2/24"}]}"#, "1.0.0").unwrap();
    assert_eq!(r.cni_version, "1.0.0");
    assert_eq!(r.sandbox_ips().len(), 1);
}

#[test]
fn host_side_addresses_are_not_pod_ips() {
    let r = CniResult::parse(
        br#"{"cniVersion":"1.0.0","interfaces":[{"name":"cni0"},{"name":"eth0","sandbox":"/n"}],
             "ips":[{"interface":0,"address":"10.0.0.1/24"},{"interface":1,"address":"10.0.0.2/24"}]}"#,
        "1.0.0",
    )
    .unwrap();
    let ips = r.sandbox_ips();
    assert_eq!(ips.len(), 1);
    assert_eq!(ips[0].address, net("10.0.0.2/24"));
}

#[test]
fn malformed_results_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}"#,
            "ips[0].address",
        ),
        (
            r#"{"cniVersion":"0.4.0","ips":[{"version":"6","address":"10.0.0.3/24"}]}"#,
            "ips[0].version",
        ),
        (
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.3/24","interface":4}]}"#,
            "ips[0].interface",
        ),
        (
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.3/24","gateway":"fd00::1"}]}"#,
            "ips[0].gateway",
        ),
        (
            r#"{"cniVersion":"1.0.0","routes":[{"dst":"default"}]}"#,
            "routes[0].dst",
        ),
        (
            r#"{"cniVersion":"0.2.0","ip4":{"ip":"fd00::1/64"}}"#,
            "ip4.ip",
        ),
    ];
    for (json, field) in cases {
        let err = CniResult::parse(json.as_bytes(), "1.0.0").unwrap_err();
        assert!(err.to_string().contains(field), "{json}: {err}");
    }
}

#[test]
fn rejects_unknown_versions_and_non_objects() {
    assert!(matches!(
        CniResult::parse(br#"{"cniVersion":"9.9.9"}"#, "1.0.0"),
        Err(ResultError::UnsupportedVersion(v)) if v == "9.9.9"
    ));
    assert!(CniResult::parse(b"[]", "1.0.0").is_err());
    assert!(CniResult::parse(b"not json", "1.0.0").is_err());
}
