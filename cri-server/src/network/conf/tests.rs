//! Loading and building network configs.

use super::*;
use serde_json::json;

const LIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "kina",
  "plugins": [
    {"type": "bridge", "bridge": "kina0", "ipam": {"type": "host-local", "subnet": "10.88.0.0/16"}},
    {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}},
    {"type": "bandwidth", "capabilities": {"bandwidth": true}}
  ]
}"#;

#[test]
fn parses_conflist_and_capabilities() {
    let l = NetworkConfigList::from_conflist(LIST.as_bytes(), Path::new("x.conflist")).unwrap();
    assert_eq!(l.name, "kina");
    assert_eq!(l.cni_version, "1.0.0");
    assert_eq!(l.plugins.len(), 3);
    assert_eq!(l.plugins[1].plugin_type, "portmap");
    assert_eq!(
        l.plugins[1].capabilities.iter().collect::<Vec<_>>(),
        vec!["portMappings"]
    );
    assert!(l.plugins[0].capabilities.is_empty());
}

#[test]
fn plugin_config_injects_name_version_prev_result_and_declared_capabilities_only() {
    let l = NetworkConfigList::from_conflist(LIST.as_bytes(), Path::new("x.conflist")).unwrap();
    let mut caps = Map::new();
    caps.insert(
        "portMappings".into(),
        json!([{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}]),
    );
    caps.insert("bandwidth".into(), json!({"ingressRate": 1000}));
    let prev = json!({"cniVersion": "1.0.0", "ips": []});

    let c0 = l.plugin_config(0, None, &caps);
    assert_eq!(c0["name"], "kina");
    assert_eq!(c0["cniVersion"], "1.0.0");
    assert!(c0.get("prevResult").is_none());
    assert!(
        c0.get("runtimeConfig").is_none(),
        "bridge declared no capabilities"
    );

    let c1 = l.plugin_config(1, Some(&prev), &caps);
    assert_eq!(c1["prevResult"], prev);
    assert_eq!(c1["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
    assert!(
        c1["runtimeConfig"].get("bandwidth").is_none(),
        "bandwidth: false"
    );

    let c2 = l.plugin_config(2, Some(&prev), &caps);
    assert_eq!(
        c2["runtimeConfig"],
        json!({"bandwidth": {"ingressRate": 1000}})
    );
}

#[test]
fn single_plugin_conf_is_wrapped_into_a_list() {
    let conf =
        br#"{"cniVersion":"0.4.0","name":"single","type":"bridge","ipam":{"type":"host-local"}}"#;
    let l = NetworkConfigList::from_conf(conf, Path::new("10-a.conf")).unwrap();
    assert_eq!(l.name, "single");
    assert_eq!(l.cni_version, "0.4.0");
    assert_eq!(l.plugins.len(), 1);
    assert_eq!(l.plugins[0].plugin_type, "bridge");
    assert_eq!(l.plugins[0].raw["ipam"]["type"], "host-local");
}

#[test]
fn invalid_configs_name_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("{", "invalid JSON"),
        (
            r#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#,
            "name is missing",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"a/b","plugins":[{"type":"x"}]}"#,
            "not a valid network name",
        ),
        (
            r#"{"name":"n","plugins":[{"type":"x"}]}"#,
            "cniVersion is missing",
        ),
        (
            r#"{"cniVersion":"7.0.0","name":"n","plugins":[{"type":"x"}]}"#,
            "cniVersion \"7.0.0\"",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
            "plugins is empty",
        ),
        (r#"{"cniVersion":"1.0.0","name":"n"}"#, "plugins is missing"),
        (
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"ipam":{}}]}"#,
            "plugins[0].type is missing",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../../bin/sh"}]}"#,
            "not a plugin name",
        ),
        (
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x","capabilities":[]}]}"#,
            "capabilities is not an object",
        ),
    ];
    for (json, want) in cases {
        let err = NetworkConfigList::from_conflist(json.as_bytes(), Path::new("/c/x.conflist"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(want) && msg.contains("/c/x.conflist"),
            "{json}: {msg}"
        );
    }
    let err = NetworkConfigList::from_conf(LIST.as_bytes(), Path::new("a.conf")).unwrap_err();
    assert!(err.to_string().contains("rename it .conflist"), "{err}");
}

#[test]
fn conf_dir_is_read_in_lexical_order_skipping_invalid_and_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(matches!(load_first(d), Err(CniError::NoConfig { .. })));
    std::fs::write(d.join("README.md"), "not a config").unwrap();
    std::fs::write(d.join("05-broken.conflist"), "{").unwrap();
    std::fs::write(
        d.join("20-b.conflist"),
        r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}"#,
    )
    .unwrap();
    std::fs::write(
        d.join("10-a.conf"),
        r#"{"cniVersion":"1.0.0","name":"a","type":"ptp"}"#,
    )
    .unwrap();
    let files = conf_files(d).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["05-broken.conflist", "10-a.conf", "20-b.conflist"]
    );
    assert_eq!(load_first(d).unwrap().name, "a");

    std::fs::remove_file(d.join("10-a.conf")).unwrap();
    std::fs::remove_file(d.join("20-b.conflist")).unwrap();
    let err = load_first(d).unwrap_err().to_string();
    assert!(
        err.contains("05-broken.conflist") && err.contains("invalid JSON"),
        "{err}"
    );
}

#[test]
fn versions_compare_numerically() {
    assert!(version_at_least("1.0.0", "0.4.0"));
    assert!(version_at_least("0.4.0", "0.4.0"));
    assert!(!version_at_least("0.3.1", "0.4.0"));
    assert!(version_at_least("0.10.0", "0.4.0"));
}
