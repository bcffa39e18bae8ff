//! The add-on manifests in ../manifests/: after kina's marker substitution they are valid
//! multi-document YAML, name the images `kina build node-image` preloads (tagged with this
//! workspace's version, never pulled), and pass the settings the daemons read.

use serde::Deserialize as _;
use serde_json::Value;

const KINDNET: &str = include_str!("../../manifests/kindnet.yaml");
const STORAGE: &str = include_str!("../../manifests/storage.yaml");

fn docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn tag() -> String {
    format!("v{}", env!("CARGO_PKG_VERSION"))
}

fn container(ds: &Value) -> &Value {
    &ds["spec"]["template"]["spec"]["containers"][0]
}

fn env(c: &Value, name: &str) -> Value {
    c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn kindnet_manifest_substitutes_and_runs_kina_net() {
    assert!(KINDNET.contains("@POD_SUBNET@") && KINDNET.contains("@CONTROL_PLANE_ENDPOINT@"));
    let text = KINDNET
        .replace("@POD_SUBNET@", "10.244.0.0/16,fd00:10:244::/56")
        .replace("@CONTROL_PLANE_ENDPOINT@", "kina-control-plane:6443");
    assert!(!text.contains('@'), "unsubstituted marker left");
    let d = docs(&text);
    assert_eq!(find(&d, "ServiceAccount").len(), 1);
    let role = find(&d, "ClusterRole")[0];
    assert_eq!(role["rules"][0]["resources"], serde_json::json!(["nodes"]));
    assert_eq!(
        role["rules"][0]["verbs"],
        serde_json::json!(["get", "list", "watch"])
    );
    assert_eq!(find(&d, "ClusterRoleBinding").len(), 1);
    let ds = find(&d, "DaemonSet")[0];
    assert_eq!(ds["metadata"]["namespace"], "kube-system");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{"operator": "Exists"}])
    );
    let c = container(ds);
    assert_eq!(c["image"], format!("localhost/kina/kina-net:{}", tag()));
    assert_eq!(c["imagePullPolicy"], "Never");
    assert_eq!(c["securityContext"]["privileged"], true);
    assert_eq!(
        env(c, "NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    // What kina-net itself accepts.
    let cfg = kina_addons::net::NetConfig::from_lookup(|k| {
        env(c, k)["value"]
            .as_str()
            .map(String::from)
            .or_else(|| (k == "NODE_NAME").then(|| "n1".to_owned()))
    })
    .unwrap();
    assert_eq!(cfg.pod_subnets.len(), 2);
    assert_eq!(
        cfg.control_plane_endpoint.as_deref(),
        Some("kina-control-plane:6443")
    );
    let mounts = c["volumeMounts"].to_string();
    assert!(mounts.contains("/etc/cni/net.d"), "{mounts}");
}

#[test]
fn storage_manifest_defines_the_default_class_and_provisioner() {
    assert!(!STORAGE.contains('@'), "storage.yaml has no markers");
    let d = docs(STORAGE);
    let sc = find(&d, "StorageClass")[0];
    assert_eq!(sc["metadata"]["name"], "standard");
    assert_eq!(
        sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert_eq!(sc["provisioner"], kina_addons::storage::PROVISIONER);
    assert_eq!(sc["volumeBindingMode"], "WaitForFirstConsumer");
    assert_eq!(sc["reclaimPolicy"], "Delete");
    let rules = find(&d, "ClusterRole")[0]["rules"].to_string();
    for r in [
        "persistentvolumeclaims",
        "persistentvolumes",
        "storageclasses",
        "events",
        "nodes",
    ] {
        assert!(rules.contains(r), "{r} missing from {rules}");
    }
    let ds = find(&d, "DaemonSet")[0];
    let c = container(ds);
    assert_eq!(
        c["image"],
        format!("localhost/kina/kina-local-path:{}", tag())
    );
    assert_eq!(c["imagePullPolicy"], "Never");
    assert_eq!(
        env(c, "STORAGE_DIR")["value"],
        kina_addons::storage::DEFAULT_STORAGE_DIR
    );
    let vol = &ds["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(
        vol["hostPath"]["path"],
        kina_addons::storage::DEFAULT_STORAGE_DIR
    );
    assert_eq!(
        c["volumeMounts"][0]["mountPath"],
        kina_addons::storage::DEFAULT_STORAGE_DIR
    );
    let sa = find(&d, "ServiceAccount")[0];
    assert_eq!(
        ds["spec"]["template"]["spec"]["serviceAccountName"],
        sa["metadata"]["name"]
    );
    assert_eq!(ds["metadata"]["namespace"], sa["metadata"]["namespace"]);
}
