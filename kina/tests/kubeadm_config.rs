//! kina's generated kubeadm configurations checked by the real kubeadm v1.36.2 (from the
//! shared Kubernetes release tarball): `kubeadm config validate` accepts every kind of node
//! (strict decoding: an unknown or misspelt field fails), and the `--dry-run` static pods show
//! what the configuration does: etcd 3.5 runs without kubeadm's 3.6-only flags, the
//! controller manager allocates node CIDRs, feature gates reach the components.

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use kina::config::{Cluster, IpFamily, Node, NodeRole, PatchJson6902, ProxyMode};
use kina::kubeadm::{
    self, API_BIND_PORT, CgroupDriver, ConfigData, DEFAULT_CRI_SOCKET, KIND_CGROUP_ROOT,
    PatchSource,
};
use serde_json::Value;

const KUBE_VERSION: &str = "v1.36.2";

fn work_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubeadm-config-test")
}

/// The kubeadm binary, unpacked once from the shared release tarball.
fn kubeadm_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
        let tarball = shared.join(format!(
            "kubernetes/kubernetes-{KUBE_VERSION}-linux-amd64.tar.xz"
        ));
        assert!(
            tarball.is_file(),
            "{} is missing: these tests need the shared Kubernetes release binaries \
             (the repository's ../shared directory)",
            tarball.display()
        );
        let dir = work_dir().join(format!("kubeadm-{KUBE_VERSION}"));
        let bin = dir.join("kubeadm");
        if !bin.is_file() {
            let tmp = work_dir().join(format!("kubeadm.partial.{}", std::process::id()));
            let _ = fs::remove_dir_all(&tmp);
            fs::create_dir_all(&tmp).unwrap();
            run(Command::new("tar")
                .arg("-C")
                .arg(&tmp)
                .arg("-xJf")
                .arg(&tarball)
                .arg("kubeadm"));
            let _ = fs::remove_dir_all(&dir);
            // another test binary may have won the race; either copy is complete
            if fs::rename(&tmp, &dir).is_err() {
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        assert!(bin.is_file(), "{} was not unpacked", bin.display());
        bin
    })
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn control_plane() -> ConfigData {
    ConfigData {
        cluster_name: "kina".into(),
        kubernetes_version: KUBE_VERSION.into(),
        control_plane_endpoint: "10.89.0.2:6443".into(),
        api_bind_port: API_BIND_PORT,
        api_server_address: "127.0.0.1".into(),
        token: kubeadm::random_token().unwrap(),
        node_name: "kina-control-plane".into(),
        node_ips: ips(&["10.89.0.2"]),
        pod_subnet: "10.244.0.0/16".into(),
        service_subnet: "10.96.0.0/16".into(),
        cri_socket: DEFAULT_CRI_SOCKET.into(),
        cgroup_driver: CgroupDriver::Cgroupfs,
        cgroup_root: Some(KIND_CGROUP_ROOT.into()),
        oom_score_adj: Some(0),
        etcd_image_tag: Some("3.5.16-0".into()),
        dns_image_tag: Some("v1.13.1".into()),
        image_pull_policy_never: true,
        node_labels: BTreeMap::from([("ingress-ready".into(), "true".into())]),
        feature_gates: BTreeMap::from([("InPlacePodVerticalScaling".into(), true)]),
        runtime_config: BTreeMap::from([("api/alpha".into(), "false".into())]),
        ..Default::default()
    }
}

fn worker() -> ConfigData {
    ConfigData {
        join: true,
        role: NodeRole::Worker,
        node_name: "kina-worker".into(),
        node_ips: ips(&["10.89.0.3"]),
        ..control_plane()
    }
}

fn ipv6() -> ConfigData {
    ConfigData {
        ip_family: IpFamily::Ipv6,
        node_ips: ips(&["fc00:f853:ccd:e793::2"]),
        control_plane_endpoint: "[fc00:f853:ccd:e793::2]:6443".into(),
        api_server_address: "::1".into(),
        pod_subnet: "fd00:10:244::/56".into(),
        service_subnet: "fd00:10:96::/112".into(),
        ..control_plane()
    }
}

fn dual() -> ConfigData {
    ConfigData {
        ip_family: IpFamily::Dual,
        node_ips: ips(&["10.89.0.2", "fc00:f853:ccd:e793::2"]),
        pod_subnet: "10.244.0.0/16,fd00:10:244::/56".into(),
        service_subnet: "10.96.0.0/16,fd00:10:96::/112".into(),
        ..control_plane()
    }
}

/// A scratch directory per test.
fn scratch(name: &str) -> PathBuf {
    let dir = work_dir().join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn validate(name: &str, config: &str) {
    let dir = scratch(&format!("validate-{name}"));
    let file = dir.join("kubeadm.conf");
    fs::write(&file, config).unwrap();
    let out = run(Command::new(kubeadm_bin())
        .args(["config", "validate", "--config"])
        .arg(&file));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("deprecated") && !stderr.contains("Ignored"),
        "{name}: kubeadm warned:\n{stderr}\n{config}"
    );
}

#[test]
fn every_kind_of_node_validates() {
    let join_cp = ConfigData {
        join: true,
        node_name: "kina-control-plane2".into(),
        node_ips: ips(&["10.89.0.4"]),
        certificate_key: Some(kubeadm::random_certificate_key().unwrap()),
        ..control_plane()
    };
    let no_proxy = ConfigData {
        kube_proxy_mode: ProxyMode::None,
        untainted: true,
        ..control_plane()
    };
    let nft = ConfigData {
        kube_proxy_mode: ProxyMode::Nftables,
        cgroup_driver: CgroupDriver::Systemd,
        etcd_image_tag: Some("3.6.8-0".into()),
        ..control_plane()
    };
    for (name, data) in [
        ("init", control_plane()),
        ("join-worker", worker()),
        ("join-control-plane", join_cp),
        ("ipv6", ipv6()),
        (
            "ipv6-worker",
            ConfigData {
                join: true,
                role: NodeRole::Worker,
                ..ipv6()
            },
        ),
        ("dual", dual()),
        ("no-kube-proxy", no_proxy),
        ("nftables-etcd36", nft),
    ] {
        validate(name, &kubeadm::render(&data).unwrap());
    }
}

#[test]
fn kind_style_patches_still_validate() {
    // kind's documented patches, written for kubeadm v1beta2/v1beta3
    let cluster = Cluster {
        kubeadm_config_patches: vec![
            "kind: ClusterConfiguration\napiServer:\n  extraArgs:\n    enable-admission-plugins: NodeRestriction,MutatingAdmissionWebhook\n".into(),
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 50\n".into(),
        ],
        kubeadm_config_patches_json6902: vec![PatchJson6902 {
            group: "kubeadm.k8s.io".into(),
            version: "v1beta3".into(),
            kind: "ClusterConfiguration".into(),
            patch: "- op: add\n  path: /apiServer/certSANs/-\n  value: my-hostname\n".into(),
        }],
        ..Default::default()
    };
    let node = Node {
        kubeadm_config_patches: vec![
            "kind: InitConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    node-labels: \"ingress-ready=true\"\n    v: 4\n".into(),
        ],
        ..Default::default()
    };
    let out = kubeadm::generate(&control_plane(), &cluster, &node).unwrap();
    assert!(out.config.contains("my-hostname"));
    assert!(out.config.contains("enable-admission-plugins"));
    validate("kind-patches", &out.config);
    let worker_node = Node {
        kubeadm_config_patches: vec![
            "kind: JoinConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    node-labels: \"my-label2=true\"\n".into(),
        ],
        ..Default::default()
    };
    let out = kubeadm::generate(&worker(), &cluster, &worker_node).unwrap();
    assert!(out.config.contains("my-label2=true"));
    validate("kind-patches-worker", &out.config);
}

/// Writes the node's config into a scratch directory, with kina's etcd patches in a
/// `patches` directory beside it (in a node they live in /kina/kubeadm-patches); returns the
/// config file and an empty directory for kubeadm's dry-run output.
fn prepare(name: &str, data: &ConfigData) -> (PathBuf, PathBuf) {
    let dir = scratch(name);
    let patches = dir.join("patches");
    let out_dir = dir.join("out");
    fs::create_dir_all(&patches).unwrap();
    fs::create_dir_all(&out_dir).unwrap();
    let tag = data.etcd_image_tag.clone().unwrap_or_default();
    for (file, content) in kubeadm::etcd::patches(&tag).unwrap() {
        fs::write(patches.join(file), content).unwrap();
    }
    let config = kubeadm::apply_patches(
        &kubeadm::render(data).unwrap(),
        &PatchSource::Node(data.node_name.clone()),
        &[format!(
            "kind: InitConfiguration\npatches:\n  directory: {}\n",
            patches.display()
        )],
        &[],
    )
    .unwrap();
    let file = dir.join("kubeadm.conf");
    fs::write(&file, &config).unwrap();
    (file, out_dir)
}

/// Runs `kubeadm init phase <phase> --dry-run` and returns the static pods kubeadm would
/// write.
fn dry_run(name: &str, data: &ConfigData, phase: &[&str]) -> BTreeMap<String, Value> {
    let (file, out_dir) = prepare(&format!("dry-run-{name}"), data);
    run(Command::new(kubeadm_bin())
        .args(["init", "phase"])
        .args(phase)
        .arg("--config")
        .arg(&file)
        .arg("--dry-run")
        .env("KUBEADM_INIT_DRYRUN_DIR", &out_dir));
    let mut pods = BTreeMap::new();
    for e in fs::read_dir(&out_dir).unwrap() {
        let path = e.unwrap().path();
        let text = fs::read_to_string(&path).unwrap();
        let pod: Value = serde_norway::from_str(&text).unwrap();
        pods.insert(
            path.file_stem().unwrap().to_string_lossy().into_owned(),
            pod,
        );
    }
    pods
}

fn command(pod: &Value) -> Vec<String> {
    pod["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn etcd_command(name: &str, data: &ConfigData) -> Vec<String> {
    let pods = dry_run(name, data, &["etcd", "local"]);
    let etcd = pods
        .get("etcd")
        .unwrap_or_else(|| panic!("no etcd manifest in {:?}", pods.keys()));
    assert_eq!(
        etcd["spec"]["containers"][0]["image"],
        format!(
            "registry.k8s.io/etcd:{}",
            data.etcd_image_tag.as_deref().unwrap()
        )
    );
    command(etcd)
}

#[test]
fn etcd_3_5_runs_without_kubeadms_3_6_flags() {
    for (name, data) in [("etcd-v4", control_plane()), ("etcd-v6", ipv6())] {
        let cmd = etcd_command(name, &data);
        assert_eq!(cmd[0], "etcd");
        for flag in &cmd {
            assert!(
                !flag.starts_with("--feature-gates") && !flag.starts_with("--watch-progress"),
                "{name}: etcd 3.5 does not know {flag}: {cmd:?}"
            );
        }
        assert!(cmd.contains(&"--experimental-initial-corrupt-check=true".to_string()));
        assert!(cmd.contains(&"--experimental-watch-progress-notify-interval=5s".to_string()));
        assert!(cmd.contains(&format!("--name={}", data.node_name)));
    }
    // etcd 3.6 keeps kubeadm's command untouched
    let cmd = etcd_command(
        "etcd-36",
        &ConfigData {
            etcd_image_tag: Some("3.6.8-0".into()),
            ..control_plane()
        },
    );
    assert!(
        cmd.iter().any(|f| f.starts_with("--feature-gates=")),
        "{cmd:?}"
    );
    assert!(
        !cmd.iter().any(|f| f.starts_with("--experimental")),
        "{cmd:?}"
    );
}

fn flag<'a>(cmd: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("--{name}=");
    cmd.iter().find_map(|f| f.strip_prefix(prefix.as_str()))
}

#[test]
fn control_plane_components_get_kinds_settings() {
    let pods = dry_run("control-plane", &dual(), &["control-plane", "all"]);
    let cm = command(&pods["kube-controller-manager"]);
    assert_eq!(flag(&cm, "allocate-node-cidrs"), Some("true"));
    assert_eq!(
        flag(&cm, "cluster-cidr"),
        Some("10.244.0.0/16,fd00:10:244::/56")
    );
    assert_eq!(flag(&cm, "enable-hostpath-provisioner"), Some("true"));
    assert_eq!(
        flag(&cm, "feature-gates"),
        Some("InPlacePodVerticalScaling=true")
    );
    let api = command(&pods["kube-apiserver"]);
    assert_eq!(flag(&api, "runtime-config"), Some("api/alpha=false"));
    assert_eq!(
        flag(&api, "service-cluster-ip-range"),
        Some("10.96.0.0/16,fd00:10:96::/112")
    );
    assert_eq!(flag(&api, "advertise-address"), Some("10.89.0.2"));
    let sched = command(&pods["kube-scheduler"]);
    assert_eq!(
        flag(&sched, "feature-gates"),
        Some("InPlacePodVerticalScaling=true")
    );
    // nodeRegistration.imagePullPolicy governs kubeadm's own pulls; static pods keep
    // IfNotPresent, which never pulls an image the node already holds
    for pod in pods.values() {
        assert_eq!(
            pod["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    let pods = dry_run("control-plane-v6", &ipv6(), &["control-plane", "all"]);
    assert_eq!(
        flag(&command(&pods["kube-controller-manager"]), "bind-address"),
        Some("::")
    );
    assert_eq!(
        flag(&command(&pods["kube-scheduler"]), "bind-address"),
        Some("::1")
    );
}

/// `kubeadm init --dry-run` through every phase after preflight (which needs the node's CRI
/// socket); returns what kubeadm printed.
fn init_dry_run(name: &str, data: &ConfigData) -> String {
    let (file, out_dir) = prepare(&format!("init-{name}"), data);
    let out = run(Command::new(kubeadm_bin())
        .args(["init", "--skip-phases=preflight", "--dry-run", "--config"])
        .arg(&file)
        .env("KUBEADM_INIT_DRYRUN_DIR", &out_dir));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn full_init_dry_run_deploys_the_configured_addons() {
    let out = init_dry_run("with-proxy", &control_plane());
    assert!(
        out.contains("image: registry.k8s.io/coredns/coredns:v1.13.1"),
        "{out}"
    );
    assert!(out.contains("Applied essential addon: kube-proxy"), "{out}");
    assert!(out.contains("maxPerCore: 0"), "{out}");
    assert!(out.contains("containerRuntimeEndpoint: unix:///run/cri-server/cri-server.sock"));

    let no_proxy = ConfigData {
        kube_proxy_mode: ProxyMode::None,
        ..control_plane()
    };
    let out = init_dry_run("without-proxy", &no_proxy);
    assert!(out.contains("Applied essential addon: CoreDNS"), "{out}");
    assert!(
        !out.contains("Applied essential addon: kube-proxy"),
        "{out}"
    );
}
