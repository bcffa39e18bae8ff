//! Unit tests of [`super`]: kind's merge and JSON 6902 patch semantics on kina's documents.

use serde_json::{Value, json};

use super::*;
use crate::kubeadm::render::render;
use crate::kubeadm::render::tests::control_plane;

fn generated() -> String {
    render(&control_plane()).unwrap()
}

fn patched(merge: &[&str], json6902: &[PatchJson6902]) -> Result<Vec<Value>, KubeadmError> {
    let merge: Vec<String> = merge.iter().map(|s| s.to_string()).collect();
    let out = apply_patches(&generated(), &PatchSource::Cluster, &merge, json6902)?;
    Ok(parse_stream(&out).unwrap())
}

fn by_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap()
}

fn j6902(group: &str, version: &str, kind: &str, patch: &str) -> PatchJson6902 {
    PatchJson6902 {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        patch: patch.into(),
    }
}

#[test]
fn no_patches_keep_the_documents() {
    let before = parse_stream(&generated()).unwrap();
    assert_eq!(patched(&[], &[]).unwrap(), before);
}

#[test]
fn merge_patch_on_cluster_configuration() {
    let docs = patched(
        &["kind: ClusterConfiguration\napiVersion: kubeadm.k8s.io/v1beta4\nnetworking:\n  serviceSubnet: 10.0.0.0/16\n  dnsDomain: null\nclusterName: other\n"],
        &[],
    )
    .unwrap();
    let c = by_kind(&docs, "ClusterConfiguration");
    assert_eq!(c["networking"]["serviceSubnet"], "10.0.0.0/16");
    assert_eq!(c["networking"]["podSubnet"], "10.244.0.0/16", "maps merge");
    assert!(c["networking"].get("dnsDomain").is_none(), "null deletes");
    assert_eq!(c["clusterName"], "other");
    assert_eq!(c["apiVersion"], "kubeadm.k8s.io/v1beta4");
    // lists are replaced, as RFC 7386 says
    let docs = patched(
        &["kind: ClusterConfiguration\napiServer:\n  certSANs: [a.example]\n"],
        &[],
    )
    .unwrap();
    assert_eq!(
        by_kind(&docs, "ClusterConfiguration")["apiServer"]["certSANs"],
        json!(["a.example"])
    );
}

#[test]
fn kind_style_map_args_patch_v1beta4_lists() {
    // kind's ingress guide, written for v1beta3
    let docs = patched(
        &[
            "kind: InitConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    node-labels: \"ingress-ready=true\"\n",
            "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n    enable-admission-plugins: NodeRestriction\n",
        ],
        &[],
    )
    .unwrap();
    let i = by_kind(&docs, "InitConfiguration");
    assert_eq!(
        i["nodeRegistration"]["kubeletExtraArgs"],
        json!([
            {"name": "node-ip", "value": "10.89.0.2"},
            {"name": "node-labels", "value": "ingress-ready=true"},
        ])
    );
    let c = by_kind(&docs, "ClusterConfiguration");
    assert_eq!(c["apiVersion"], "kubeadm.k8s.io/v1beta4");
    let api: Vec<&str> = c["apiServer"]["extraArgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        api,
        [
            "feature-gates",
            "runtime-config",
            "enable-admission-plugins"
        ]
    );
}

#[test]
fn node_level_patch_on_init_configuration() {
    let base = generated();
    let cluster = apply_patches(
        &base,
        &PatchSource::Cluster,
        &["kind: InitConfiguration\nnodeRegistration:\n  name: from-cluster\n".into()],
        &[],
    )
    .unwrap();
    let node = apply_patches(
        &cluster,
        &PatchSource::Node("kina-control-plane".into()),
        &["kind: InitConfiguration\nnodeRegistration:\n  imagePullPolicy: IfNotPresent\n".into()],
        &[],
    )
    .unwrap();
    let docs = parse_stream(&node).unwrap();
    let reg = &by_kind(&docs, "InitConfiguration")["nodeRegistration"];
    assert_eq!(reg["name"], "from-cluster");
    assert_eq!(reg["imagePullPolicy"], "IfNotPresent");
    assert_eq!(reg["criSocket"], "unix:///run/cri-server/cri-server.sock");
}

#[test]
fn json6902_add_and_remove() {
    let docs = patched(
        &[],
        &[
            j6902(
                "kubeadm.k8s.io",
                "v1beta4",
                "ClusterConfiguration",
                "- op: add\n  path: /apiServer/certSANs/-\n  value: my-hostname\n",
            ),
            j6902(
                "kubelet.config.k8s.io",
                "v1beta1",
                "KubeletConfiguration",
                r#"[{"op": "remove", "path": "/cgroupRoot"}]"#,
            ),
            // kind's own testdata targets an older kubeadm version
            j6902(
                "kubeadm.k8s.io",
                "v1beta2",
                "ClusterConfiguration",
                "- op: replace\n  path: /clusterName\n  value: renamed\n",
            ),
        ],
    )
    .unwrap();
    let c = by_kind(&docs, "ClusterConfiguration");
    assert_eq!(
        c["apiServer"]["certSANs"],
        json!(["localhost", "127.0.0.1", "my-hostname"])
    );
    assert_eq!(c["clusterName"], "renamed");
    assert!(
        by_kind(&docs, "KubeletConfiguration")
            .get("cgroupRoot")
            .is_none()
    );
}

#[test]
fn patches_for_absent_kinds_or_versions_change_nothing() {
    let before = parse_stream(&generated()).unwrap();
    let after = patched(
        &[
            "kind: JoinConfiguration\nnodeRegistration:\n  name: x\n",
            "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1\nfailSwapOn: true\n",
        ],
        &[j6902(
            "",
            "",
            "JoinConfiguration",
            "- op: remove\n  path: /discovery\n",
        )],
    )
    .unwrap();
    assert_eq!(after, before);
}

#[test]
fn one_patch_string_may_hold_several_documents() {
    let docs = patched(
        &["kind: ClusterConfiguration\nclusterName: a\n---\nkind: KubeletConfiguration\nfailSwapOn: true\n"],
        &[],
    )
    .unwrap();
    assert_eq!(by_kind(&docs, "ClusterConfiguration")["clusterName"], "a");
    assert_eq!(by_kind(&docs, "KubeletConfiguration")["failSwapOn"], true);
}

fn merge_error(patch: &str) -> String {
    apply_patches(
        &generated(),
        &PatchSource::Node("n1".into()),
        &["kind: KubeletConfiguration\n".into(), patch.into()],
        &[],
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn malformed_merge_patches_are_named() {
    for (patch, why) in [
        ("kind: [", "not valid YAML"),
        ("b o g u s", "must be a YAML mapping"),
        ("nodeRegistration: {}\n", "no `kind`"),
        (
            "kind: ClusterConfiguration\napiVersion: [1]\n",
            "apiVersion must be a string",
        ),
        ("", "empty"),
        (
            "kind: InitConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    v: [1]\n",
            "argument value",
        ),
    ] {
        let e = merge_error(patch);
        assert!(e.starts_with("node n1 kubeadmConfigPatches[1]: "), "{e}");
        assert!(e.contains(why), "{patch:?}: {e}");
    }
}

#[test]
fn malformed_json6902_patches_are_named() {
    for (p, why) in [
        (j6902("", "", "", "[]"), "no `kind`"),
        (
            j6902(
                "",
                "",
                "InitConfiguration",
                "- op: frobnicate\n  path: /x\n",
            ),
            "RFC 6902",
        ),
        (
            j6902("", "", "InitConfiguration", "{op: add"),
            "not valid YAML",
        ),
        (
            j6902(
                "",
                "",
                "InitConfiguration",
                "- op: remove\n  path: /no/such/field\n",
            ),
            "cannot apply to InitConfiguration",
        ),
        (
            j6902(
                "",
                "",
                "InitConfiguration",
                "- op: test\n  path: /kind\n  value: Other\n",
            ),
            "cannot apply",
        ),
    ] {
        let e = apply_patches(
            &generated(),
            &PatchSource::Cluster,
            &[],
            std::slice::from_ref(&p),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("cluster kubeadmConfigPatchesJSON6902[0]: "),
            "{e}"
        );
        assert!(e.contains(why), "{p:?}: {e}");
    }
}

#[test]
fn malformed_input_stream_is_an_error() {
    let e = apply_patches("- a\n- b\n", &PatchSource::Cluster, &[], &[]).unwrap_err();
    assert!(e.to_string().contains("document 0"), "{e}");
    assert!(apply_patches("kind: [", &PatchSource::Cluster, &[], &[]).is_err());
}
