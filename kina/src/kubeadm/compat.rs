//! kind-era kubeadm patches on kina's `kubeadm.k8s.io/v1beta4` documents.
//!
//! kind generates v1beta3 (v1beta2 for old releases), so kind users' `kubeadmConfigPatches`
//! write extra arguments as maps:
//! ```yaml
//! kind: InitConfiguration
//! nodeRegistration:
//!   kubeletExtraArgs:
//!     node-labels: "ingress-ready=true"
//! ```
//! In v1beta4 these fields are `[{name, value}]` lists; a plain merge patch would replace the
//! list by a map kubeadm rejects. So, before merging, a map found in the patch at one of the
//! argument fields is applied argument by argument to the document's list: a value sets the
//! argument of that name (replacing every earlier entry of the name, appending it if absent),
//! `null` removes it. A list in the patch is v1beta4 syntax and replaces the list, as RFC 7386
//! says. Patches that name an older kubeadm apiVersion (`kubeadm.k8s.io/v1beta3`) target the
//! v1beta4 documents too; fields that differ in other ways are left for kubeadm to judge.

use serde_json::{Map, Value, json};

/// The kubeadm API group.
const KUBEADM_GROUP: &str = "kubeadm.k8s.io/";

/// The argument fields of each kubeadm kind, as paths of map keys.
const ARG_FIELDS: &[(&str, &[&str])] = &[
    (
        "InitConfiguration",
        &["nodeRegistration", "kubeletExtraArgs"],
    ),
    (
        "JoinConfiguration",
        &["nodeRegistration", "kubeletExtraArgs"],
    ),
    ("ClusterConfiguration", &["apiServer", "extraArgs"]),
    ("ClusterConfiguration", &["controllerManager", "extraArgs"]),
    ("ClusterConfiguration", &["scheduler", "extraArgs"]),
    ("ClusterConfiguration", &["etcd", "local", "extraArgs"]),
];

/// True when both apiVersions are of the kubeadm group (any version).
pub(crate) fn same_kubeadm_group(a: &str, b: &str) -> bool {
    a.starts_with(KUBEADM_GROUP) && b.starts_with(KUBEADM_GROUP)
}

/// Applies the map-form arguments of `patch` to `doc`'s v1beta4 lists and removes them from
/// `patch`, leaving the rest for the RFC 7386 merge.
pub(crate) fn merge_map_args(doc: &mut Value, patch: &mut Value) -> Result<(), String> {
    let is_kubeadm = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with(KUBEADM_GROUP));
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    if !is_kubeadm {
        return Ok(());
    }
    let fields: Vec<&[&str]> = ARG_FIELDS
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, p)| *p)
        .collect();
    for path in fields {
        let Some(args) = take_map_at(patch, path) else {
            continue;
        };
        let list = list_at(doc, path).map_err(|e| format!("{}: {e}", path.join(".")))?;
        for (name, value) in args {
            list.retain(|a| a.get("name").and_then(Value::as_str) != Some(name.as_str()));
            let value = match value {
                Value::Null => continue,
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(format!(
                        "{}.{name}: an argument value must be a string, not {other}",
                        path.join(".")
                    ));
                }
            };
            list.push(json!({"name": name, "value": value}));
        }
    }
    Ok(())
}

/// Removes and returns the map at `path` in `patch` when it is a map (kind's syntax).
fn take_map_at(patch: &mut Value, path: &[&str]) -> Option<Map<String, Value>> {
    let (last, parents) = path.split_last()?;
    let mut cur = patch;
    for key in parents {
        cur = cur.get_mut(*key)?;
    }
    let obj = cur.as_object_mut()?;
    if !obj.get(*last)?.is_object() {
        return None;
    }
    match obj.remove(*last) {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The argument list at `path` in `doc`, created (with its parents) when absent.
fn list_at<'a>(doc: &'a mut Value, path: &[&str]) -> Result<&'a mut Vec<Value>, String> {
    let mut cur = doc;
    for (i, key) in path.iter().enumerate() {
        let obj = cur
            .as_object_mut()
            .ok_or_else(|| format!("{} is not a mapping", path[..i].join(".")))?;
        let leaf = i + 1 == path.len();
        let slot = obj.entry(*key).or_insert_with(|| {
            if leaf {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        });
        if slot.is_null() {
            *slot = if leaf {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            };
        }
        cur = slot;
    }
    cur.as_array_mut()
        .ok_or_else(|| "the document's value is not a v1beta4 argument list".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() -> Value {
        json!({
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "InitConfiguration",
            "nodeRegistration": {"kubeletExtraArgs": [
                {"name": "node-ip", "value": "10.0.0.2"},
                {"name": "node-labels", "value": "a=b"},
            ]},
        })
    }

    #[test]
    fn map_args_set_replace_and_remove_by_name() {
        let mut doc = init();
        let mut patch = json!({"nodeRegistration": {
            "kubeletExtraArgs": {"node-labels": "ingress-ready=true", "v": 4, "node-ip": null},
            "name": "x",
        }});
        merge_map_args(&mut doc, &mut patch).unwrap();
        assert_eq!(
            doc["nodeRegistration"]["kubeletExtraArgs"],
            json!([
                {"name": "node-labels", "value": "ingress-ready=true"},
                {"name": "v", "value": "4"},
            ])
        );
        // the rest of the patch is left for the merge
        assert_eq!(patch, json!({"nodeRegistration": {"name": "x"}}));
    }

    #[test]
    fn list_args_are_left_to_the_merge() {
        let mut doc = init();
        let list = json!([{"name": "v", "value": "2"}]);
        let mut patch = json!({"nodeRegistration": {"kubeletExtraArgs": list.clone()}});
        merge_map_args(&mut doc, &mut patch).unwrap();
        assert_eq!(patch["nodeRegistration"]["kubeletExtraArgs"], list);
        assert_eq!(doc, init());
    }

    #[test]
    fn absent_lists_are_created() {
        let mut doc =
            json!({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration"});
        let mut patch = json!({"etcd": {"local": {"extraArgs": {"quota-backend-bytes": "1"}}}});
        merge_map_args(&mut doc, &mut patch).unwrap();
        assert_eq!(
            doc["etcd"]["local"]["extraArgs"],
            json!([{"name": "quota-backend-bytes", "value": "1"}])
        );
        assert_eq!(patch, json!({"etcd": {"local": {}}}));
    }

    #[test]
    fn nested_values_are_refused() {
        let mut doc = init();
        let mut patch = json!({"nodeRegistration": {"kubeletExtraArgs": {"v": {"x": 1}}}});
        let e = merge_map_args(&mut doc, &mut patch).unwrap_err();
        assert!(e.contains("kubeletExtraArgs.v"), "{e}");
    }

    #[test]
    fn other_groups_are_untouched() {
        let mut doc =
            json!({"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"});
        let mut patch = json!({"nodeRegistration": {"kubeletExtraArgs": {"v": "1"}}});
        let before = patch.clone();
        merge_map_args(&mut doc, &mut patch).unwrap();
        assert_eq!(patch, before);
        assert!(same_kubeadm_group(
            "kubeadm.k8s.io/v1beta3",
            "kubeadm.k8s.io/v1beta4"
        ));
        assert!(!same_kubeadm_group(
            "kubelet.config.k8s.io/v1beta1",
            "kubeadm.k8s.io/v1beta4"
        ));
    }
}
