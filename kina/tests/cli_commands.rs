//! The kina binary as users run it: version, completion, and the commands that read and
//! change the cluster-state store.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use kina::provider::Role;
use kina::state::{ClusterRecord, NodeRecord, StateStore};

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn store(&self) -> StateStore {
        StateStore::open(self.state())
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kina"));
        c.args(args)
            .env("KINA_STATE_DIR", self.state())
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .env_remove("KINA_CLUSTER_NAME")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn add_cluster(&self, name: &str, workers: usize) {
        let mut rec = ClusterRecord::new(name);
        rec.nodes.push(NodeRecord {
            name: format!("{name}-control-plane"),
            role: Role::ControlPlane,
            image: "kina/node:v1.36.2".into(),
            ipv4: Some(Ipv4Addr::new(10, 89, 0, 2)),
            ipv6: None,
            ports: vec![],
        });
        for i in 0..workers {
            let suffix = if i == 0 {
                String::new()
            } else {
                (i + 1).to_string()
            };
            rec.nodes.push(NodeRecord {
                name: format!("{name}-worker{suffix}"),
                role: Role::Worker,
                image: "kina/node:v1.36.2".into(),
                ipv4: Some(Ipv4Addr::new(10, 89, 0, 3 + i as u8)),
                ipv6: None,
                ports: vec![],
            });
        }
        rec.kubeconfig = Some(kubeconfig_of(name));
        self.store().put(&rec).unwrap();
    }
}

fn kubeconfig_of(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kina-{name}
  cluster:
    server: https://127.0.0.1:41234
users:
- name: kina-{name}
  user:
    token: abc
contexts:
- name: kina-{name}
  context:
    cluster: kina-{name}
    user: kina-{name}
current-context: kina-{name}
"
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn version_prints_name_version_and_platform() {
    let o = Sandbox::new().run(&["version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!("kina v{} linux/", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

#[test]
fn completion_scripts_cover_the_subcommands() {
    let s = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let o = s.run(&["completion", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let out = stdout(&o);
        for word in [
            "create",
            "delete",
            "clusters",
            "kubeconfig",
            "image-archive",
            "node-image",
        ] {
            assert!(out.contains(word), "{shell} completion lacks {word}");
        }
    }
    let o = s.run(&["completion", "powershell"]);
    assert!(!o.status.success());
}

#[test]
fn get_clusters_with_an_empty_store() {
    let s = Sandbox::new();
    // reading and deleting nothing leave no state dir behind
    assert!(
        s.run(&["delete", "cluster", "--name", "x"])
            .status
            .success()
    );
    assert!(!s.state().exists());
    let o = s.run(&["get", "clusters"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("No kina clusters found."),
        "{}",
        stderr(&o)
    );
    let o = s.run(&["-q", "get", "clusters"]);
    assert!(o.status.success());
    assert_eq!(stderr(&o), "");
}

#[test]
fn get_clusters_and_nodes_from_a_populated_store() {
    let s = Sandbox::new();
    s.add_cluster("beta", 2);
    s.add_cluster("alpha", 0);
    let o = s.run(&["get", "clusters"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "alpha\nbeta\n");

    let o = s.run(&["get", "nodes", "--name", "beta"]);
    assert_eq!(
        stdout(&o),
        "beta-control-plane\nbeta-worker\nbeta-worker2\n"
    );
    let o = s.run(&["get", "nodes", "-A"]);
    assert_eq!(
        stdout(&o),
        "alpha-control-plane\nbeta-control-plane\nbeta-worker\nbeta-worker2\n"
    );
    let o = s
        .cmd(&["get", "nodes"])
        .env("KINA_CLUSTER_NAME", "alpha")
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "alpha-control-plane\n");
    let o = s.run(&["get", "nodes"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).contains("No kina nodes found for cluster \"kina\"."));
}

#[test]
fn get_and_export_kubeconfig() {
    let s = Sandbox::new();
    s.add_cluster("beta", 1);
    let o = s.run(&["get", "kubeconfig", "--name", "beta"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), kubeconfig_of("beta"));
    let o = s.run(&["get", "kubeconfig", "--name", "beta", "--internal"]);
    assert!(
        stdout(&o).contains("https://10.89.0.2:6443"),
        "{}",
        stdout(&o)
    );
    let o = s.run(&["get", "kubeconfig", "--name", "nope"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("could not locate any control plane nodes for cluster named \"nope\"")
    );

    std::fs::write(s.kubeconfig(), "apiVersion: v1\nkind: Config\nclusters:\n- name: mine\n  cluster: {server: https://example:6443}\n").unwrap();
    let o = s.run(&["export", "kubeconfig", "--name", "beta"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("Set kubectl context to \"kina-beta\""));
    let kc = std::fs::read_to_string(s.kubeconfig()).unwrap();
    assert!(kc.contains("current-context: kina-beta"), "{kc}");
    assert!(kc.contains("name: mine"), "{kc}");
}

#[test]
fn delete_cluster_removes_store_entries_and_kubeconfig_context() {
    let s = Sandbox::new();
    s.add_cluster("beta", 1);
    s.add_cluster("gamma", 0);
    assert!(
        s.run(&["export", "kubeconfig", "--name", "beta"])
            .status
            .success()
    );
    let o = s.run(&["delete", "cluster", "--name", "beta"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("Deleting cluster \"beta\" ..."));
    assert_eq!(s.store().list().unwrap(), vec!["gamma"]);
    let kc = std::fs::read_to_string(s.kubeconfig()).unwrap();
    assert!(!kc.contains("kina-beta"), "{kc}");
    // deleting what does not exist succeeds, as in kind
    let o = s.run(&["delete", "cluster", "--name", "beta"]);
    assert!(o.status.success(), "{}", stderr(&o));

    s.add_cluster("delta", 0);
    // a cluster whose creation stopped before any node existed is listed and deletable
    s.store().put(&ClusterRecord::new("half")).unwrap();
    let o = s.run(&["get", "clusters"]);
    assert_eq!(stdout(&o), "delta\ngamma\nhalf\n");
    let o = s.run(&["delete", "cluster", "--name", "half"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.store().list().unwrap(), vec!["delta", "gamma"]);
    let o = s.run(&["delete", "clusters", "--all"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Deleted clusters: [\"delta\", \"gamma\"]"),
        "{}",
        stderr(&o)
    );
    assert!(s.store().list().unwrap().is_empty());
    let o = s.run(&["delete", "clusters"]);
    assert!(!o.status.success(), "names or --all are required");
    let o = s.run(&["delete", "cluster", "--name", "../etc"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("\"../etc\" is not a valid cluster name"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn commands_on_nodes_that_do_not_run_fail_clearly() {
    let s = Sandbox::new();
    s.add_cluster("beta", 0);
    let archive = s.dir.path().join("image.tar");
    std::fs::write(&archive, b"not really").unwrap();
    let o = s.run(&[
        "load",
        "image-archive",
        archive.to_str().unwrap(),
        "--name",
        "beta",
    ]);
    assert!(!o.status.success());
    // The record names a node whose container does not exist.
    assert!(
        stderr(&o).contains("kina load image-archive: node beta-control-plane"),
        "{}",
        stderr(&o)
    );
    let o = s.run(&[
        "load",
        "image-archive",
        "/nonexistent.tar",
        "--name",
        "beta",
    ]);
    assert!(stderr(&o).contains("/nonexistent.tar"), "{}", stderr(&o));
    let o = s.run(&[
        "load",
        "image-archive",
        archive.to_str().unwrap(),
        "--name",
        "beta",
        "--nodes",
        "beta-worker9",
    ]);
    assert!(
        stderr(&o).contains("unknown node \"beta-worker9\""),
        "{}",
        stderr(&o)
    );
    let tmp = s.dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let o = s
        .cmd(&["export", "logs", "--name", "beta"])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("kina export logs: node beta-control-plane")
            && stderr(&o).contains("not running"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "left a log dir behind"
    );
    let o = s.run(&["export", "logs", "--name", "nope"]);
    assert!(
        stderr(&o).contains("unknown cluster \"nope\""),
        "{}",
        stderr(&o)
    );
    let o = s.run(&["build", "node-image", "--output", "img.tar"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("name the Kubernetes binaries"),
        "{}",
        stderr(&o)
    );
    let o = s.run(&[
        "build",
        "node-image",
        "v1.36.2",
        "--output",
        "img.tar",
        "--cri-server",
        "/nonexistent/cri-server",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("kina build node-image: --cri-server /nonexistent/cri-server"),
        "{}",
        stderr(&o)
    );
    let e = stderr(&o).to_lowercase();
    assert!(
        !e.contains("not yet implemented") && !e.contains("todo"),
        "{e}"
    );
}

#[test]
fn create_cluster_without_the_node_image_fails_before_creating_anything() {
    let s = Sandbox::new();
    let o = s.run(&["create", "cluster", "--name", "demo"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("Creating cluster \"demo\" ..."), "{err}");
    assert!(
        err.contains(" ✗ Ensuring node image (kina/node:v1.36.2) 🖼"),
        "{err}"
    );
    assert!(
        err.contains(
            "kina create cluster: node image \"kina/node:v1.36.2\" is not in kina's image store"
        ) && err.contains("kina build node-image"),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "control codes on a non-terminal: {err:?}"
    );
    assert!(s.store().list().unwrap().is_empty());
    // an existing cluster is refused by name
    s.add_cluster("demo", 0);
    let o = s.run(&["create", "cluster", "--name", "demo"]);
    assert!(stderr(&o).contains("node(s) already exist for a cluster with the name \"demo\""));
}

#[test]
fn create_cluster_rejects_a_bad_config_with_field_and_line() {
    let s = Sandbox::new();
    let cfg = s.dir.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n  extraPortMappings:\n  - containerPort: 80\n    hostPort: 70000\n",
    )
    .unwrap();
    let o = s.run(&["create", "cluster", "--config", cfg.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("line 8: nodes[1].extraPortMappings[0].hostPort"),
        "{err}"
    );
    assert!(
        !err.contains("Creating cluster"),
        "touched something: {err}"
    );
    assert!(
        !s.state().exists(),
        "state dir created for a rejected config"
    );

    // the same through stdin
    let o = s.run_stdin(
        &["create", "cluster", "--config", "-"],
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  imagee: x\n",
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("<stdin>") && err.contains("line 5"), "{err}");
    assert!(err.contains("unknown field `imagee`"), "{err}");

    let o = s.run(&["create", "cluster", "--config", "/no/such/config.yaml"]);
    assert!(stderr(&o).contains("/no/such/config.yaml"));
}

#[test]
fn create_cluster_wait_takes_go_durations() {
    let s = Sandbox::new();
    let o = s.run(&["create", "cluster", "--wait", "1x"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("1x") && err.contains("--wait"), "{err}");
    assert!(!err.contains("Creating cluster"), "{err}");
    for ok in ["0", "30s", "5m", "1m30s"] {
        let o = s.run(&["-q", "create", "cluster", "--wait", ok]);
        let err = stderr(&o);
        // parsing succeeds; creation then needs the node image
        assert!(err.contains("is not in kina's image store"), "{ok}: {err}");
        assert!(
            !err.contains("Creating cluster"),
            "-q printed status: {err}"
        );
    }
}

#[test]
fn global_flags_parse_anywhere() {
    let s = Sandbox::new();
    assert!(s.run(&["get", "clusters", "-v", "3"]).status.success());
    assert!(
        s.run(&["--verbosity", "1", "-q", "get", "clusters"])
            .status
            .success()
    );
    assert!(!s.run(&["get", "clusters", "-v", "x"]).status.success());
    assert!(Path::new(env!("CARGO_BIN_EXE_kina")).exists());
}
