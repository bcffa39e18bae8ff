//! `kina create cluster` end to end (see e2e/README.md): a one-node cluster that runs what
//! users run, and a three-node cluster whose pods reach each other across nodes. Each
//! cluster lives in a network namespace the test owns; `kina delete cluster` must leave
//! nothing behind.

#[path = "../kina/tests/native_support/mod.rs"]
mod native_support;
#[path = "../kina/tests/node_image_support/mod.rs"]
mod node_image_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use native_support::{
    TestNetns, busybox_web_image, fresh_state_dir, kina_bin, mounts_under, ok, processes_in_cgroup,
    runtime_bin, stderr, stdout, wait_for,
};

/// One cluster at a time: two control planes starting together on a 2-core CI machine make
/// each other's kubeadm time out.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A cluster created by the kina binary in its own network namespace.
struct Cluster {
    name: String,
    state: PathBuf,
    kubeconfig: PathBuf,
    deleted: bool,
    // Dropped last: the cluster's network lives in it.
    ns: TestNetns,
}

impl Drop for Cluster {
    /// A failed test still removes its cluster (nodes keep running otherwise) and the
    /// state dir with its image store.
    fn drop(&mut self) {
        if !self.deleted {
            let _ = self
                .kina()
                .args(["delete", "cluster", "--name", &self.name])
                .output();
        }
        let _ = fs::remove_dir_all(&self.state);
    }
}

impl Cluster {
    fn create(tag: &str, config: &str) -> Self {
        let (layout, _) = node_image_support::image();
        let name = format!("{tag}{}", std::process::id() % 10_000);
        let state = fresh_state_dir(&name);
        let c = Cluster {
            ns: TestNetns::new(tag),
            kubeconfig: state.join("kubeconfig"),
            state,
            name,
            deleted: false,
        };
        let config_path = c.state.join("cluster.yaml");
        fs::write(&config_path, config).unwrap();
        let out = c
            .kina()
            .args([
                "create", "cluster", "--name", &c.name, "--wait", "5m", "--image",
            ])
            .arg(layout)
            .arg("--config")
            .arg(&config_path)
            .arg("--kubeconfig")
            .arg(&c.kubeconfig)
            .output()
            .unwrap();
        if !out.status.success() {
            let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-logs-{}", c.name));
            let _ = c
                .kina()
                .args(["export", "logs"])
                .arg(&logs)
                .args(["--name", &c.name])
                .output();
            panic!(
                "kina create cluster failed:\n{}\n{}\n(logs in {})",
                stdout(&out),
                stderr(&out),
                logs.display()
            );
        }
        let err = stderr(&out);
        for step in [
            "Preparing nodes",
            "Writing configuration",
            "Starting control-plane",
            "Installing CNI",
            "Installing StorageClass",
            "Waiting ≤ 5m0s for control-plane = Ready",
        ] {
            assert!(err.contains(&format!(" ✓ {step}")), "no {step:?} in\n{err}");
        }
        assert!(
            err.contains(&format!("Set kubectl context to \"kina-{}\"", c.name)),
            "{err}"
        );
        c
    }

    fn kina(&self) -> Command {
        let mut c = self.ns.command(kina_bin());
        c.env("KINA_STATE_DIR", &self.state)
            .env("KINA_RUNTIME", runtime_bin())
            .env("KUBECONFIG", &self.kubeconfig);
        c
    }

    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        // The kubectl of the cluster's own release (the host's may be several minors older).
        let mut c = self
            .ns
            .command(node_image_support::kube_bin_dir().join("kubectl"));
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        c
    }

    fn kubectl(&self, args: &[&str]) -> String {
        stdout(&ok(&mut self.kubectl_cmd(args)))
    }

    fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {}", stderr(&out));
        out
    }

    fn apply(&self, yaml: &str) {
        self.kubectl_stdin(&["apply", "-f", "-"], yaml);
    }

    /// Waits until `kubectl wait` says so (the object must exist first).
    fn wait(&self, what: &[&str]) {
        let done = wait_for(Duration::from_secs(240), || {
            let out = self
                .kubectl_cmd(&[&["wait", "--timeout=20s"], what].concat())
                .output()
                .unwrap();
            out.status.success().then_some(())
        });
        assert!(
            done.is_some(),
            "kubectl wait {what:?} never succeeded:\n{}\n{}",
            self.kubectl(&["get", "pods", "-A", "-o", "wide"]),
            self.kubectl(&["get", "events", "-A"])
        );
    }

    fn load(&self, archive: &Path) {
        ok(self
            .kina()
            .args(["load", "image-archive"])
            .arg(archive)
            .args(["--name", &self.name]));
    }

    fn delete_and_check(self) {
        ok(self
            .kina()
            .args(["delete", "cluster", "--name", &self.name]));
        let links = stdout(&ok(self.ns.command("ip").args(["-o", "link"])));
        assert!(
            !links.contains("kina-") && !links.contains("veth"),
            "links left:\n{links}"
        );
        let tables = stdout(&ok(self.ns.command("nft").args(["list", "tables"])));
        assert!(!tables.contains("kina"), "nft tables left:\n{tables}");
        assert_eq!(
            mounts_under(&self.state),
            Vec::<String>::new(),
            "mounts left"
        );
        let procs = processes_in_cgroup(&format!("/kina-{}-", self.name));
        let described: Vec<String> = procs
            .iter()
            .map(|p| {
                let read =
                    |f: &str| fs::read_to_string(format!("/proc/{p}/{f}")).unwrap_or_default();
                format!(
                    "{p}: {:?} {}\n{}",
                    read("cmdline").replace('\0', " "),
                    read("status")
                        .lines()
                        .find(|l| l.starts_with("State"))
                        .unwrap_or(""),
                    read("cgroup")
                )
            })
            .collect();
        assert!(
            procs.is_empty(),
            "processes left:\n{}",
            described.join("\n")
        );
        let nodes = fs::read_dir(self.state.join("nodes"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(nodes, 0, "node dirs left");
        let kc = fs::read_to_string(&self.kubeconfig).unwrap_or_default();
        assert!(
            !kc.contains(&format!("kina-{}", self.name)),
            "kubeconfig entry left:\n{kc}"
        );
        let _ = fs::remove_dir_all(&self.state);
    }
}

/// A background `kubectl port-forward`, killed on drop.
struct Forward(Child);

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn web_image(dir: &Path) -> PathBuf {
    let archive = dir.join("web.tar");
    busybox_web_image(&archive, "kina.test/web:v1", "hello from kina\n");
    archive
}

const ONE_NODE: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraPortMappings:
  - containerPort: 30080
    hostPort: 38081
    listenAddress: 127.0.0.1
";

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: httpd
        image: kina.test/web:v1
        imagePullPolicy: Never
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-nodeport}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 80, nodePort: 30080}]
";

const PVC: &str = "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  containers:
  - name: w
    image: kina.test/web:v1
    imagePullPolicy: Never
    command: [/bin/sh, -c, 'echo persisted > /data/file && sleep 3600']
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
";

#[test]
fn one_node_cluster_runs_what_users_run() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let c = Cluster::create("one", ONE_NODE);
    let node = format!("{}-control-plane", c.name);
    assert_eq!(
        c.kubectl(&["get", "nodes", "-o", "name"]).trim(),
        format!("node/{node}")
    );
    c.wait(&["--for=condition=Ready", "pod", "--all", "-n", "kube-system"]);

    // An image loaded with `kina load image-archive` runs as a Deployment.
    c.load(&web_image(&c.state));
    c.apply(WEB);
    c.wait(&["--for=condition=Available", "deployment/web"]);

    // exec, logs and port-forward go through cri-server's streaming server.
    let page = c.kubectl(&["exec", "deploy/web", "--", "cat", "/www/index.html"]);
    assert_eq!(page, "hello from kina\n");
    c.kubectl(&["logs", "deploy/web"]);
    let forward = Forward(
        c.kubectl_cmd(&["port-forward", "deploy/web", "38090:80"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let get = |url: &str| {
        wait_for(Duration::from_secs(60), || {
            let out =
                c.ns.command("curl")
                    .args(["-s", "--max-time", "5", url])
                    .output()
                    .unwrap();
            stdout(&out).contains("hello from kina").then_some(())
        })
    };
    assert!(
        get("http://127.0.0.1:38090/").is_some(),
        "port-forward did not reach the pod"
    );
    drop(forward);

    // The Service's ClusterIP (by DNS name) answers from another pod.
    let out = wait_for(Duration::from_secs(90), || {
        let o = c
            .kubectl_cmd(&[
                "run",
                "client",
                "--rm",
                "-i",
                "--restart=Never",
                "--image=kina.test/web:v1",
                "--image-pull-policy=Never",
                "--",
                "wget",
                "-qO-",
                "http://web.default.svc.cluster.local/",
            ])
            .output()
            .unwrap();
        let text = stdout(&o);
        let _ = c
            .kubectl_cmd(&["delete", "pod", "client", "--ignore-not-found"])
            .output();
        text.contains("hello from kina").then_some(text)
    });
    assert!(out.is_some(), "the Service did not answer from another pod");

    // A NodePort is reachable from the host through extraPortMappings.
    assert!(
        get("http://127.0.0.1:38081/").is_some(),
        "NodePort 30080 not reachable via 38081"
    );

    // A PVC of the default StorageClass binds and a pod writes to it.
    c.apply(PVC);
    c.wait(&["--for=condition=Ready", "pod/writer"]);
    c.wait(&["--for=jsonpath={.status.phase}=Bound", "pvc/data"]);
    assert_eq!(
        c.kubectl(&["exec", "writer", "--", "cat", "/data/file"]),
        "persisted\n"
    );

    c.delete_and_check();
}

const THREE_NODES: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
- role: worker
";

fn pinned_pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  nodeName: {node}
  containers:
  - name: httpd
    image: kina.test/web:v1
    imagePullPolicy: Never
"
    )
}

#[test]
fn three_node_cluster_pods_reach_each_other() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let c = Cluster::create("three", THREE_NODES);
    let nodes = c.kubectl(&["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.lines().count(), 3, "{nodes}");
    c.wait(&["--for=condition=Ready", "node", "--all"]);
    c.load(&web_image(&c.state));
    let (w1, w2) = (format!("{}-worker", c.name), format!("{}-worker2", c.name));
    c.apply(&pinned_pod("a", &w1));
    c.apply(&pinned_pod("b", &w2));
    c.wait(&["--for=condition=Ready", "pod/a", "pod/b"]);
    let ip_b = c.kubectl(&["get", "pod", "b", "-o", "jsonpath={.status.podIP}"]);
    // (busybox-static's wget crashes on -T: the attempt's own time is bounded by wait_for.)
    let reached = wait_for(Duration::from_secs(60), || {
        let o = c
            .kubectl_cmd(&[
                "exec",
                "a",
                "--",
                "wget",
                "-qO-",
                &format!("http://{ip_b}/"),
            ])
            .output()
            .unwrap();
        stdout(&o).contains("hello from kina").then_some(())
    });
    assert!(
        reached.is_some(),
        "pod a on {w1} cannot reach pod b ({ip_b}) on {w2}"
    );
    c.delete_and_check();
}

const HA: &str = "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: control-plane
- role: control-plane
- role: worker
";

#[test]
fn ha_cluster_runs_three_control_planes_behind_a_load_balancer() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let c = Cluster::create("ha", HA);
    let nodes = c.kubectl(&["get", "nodes", "-o", "name"]);
    assert_eq!(nodes.lines().count(), 4, "{nodes}");
    c.wait(&["--for=condition=Ready", "node", "--all"]);
    let etcd = c.kubectl(&[
        "get",
        "pods",
        "-n",
        "kube-system",
        "-l",
        "component=etcd",
        "-o",
        "name",
    ]);
    assert_eq!(etcd.lines().count(), 3, "{etcd}");
    // The load balancer is a node container of the cluster, and the kubeconfig goes through it.
    let listed = stdout(&ok(c.kina().args(["get", "nodes", "--name", &c.name])));
    let lb = format!("{}-external-load-balancer", c.name);
    assert!(listed.lines().any(|l| l == lb), "{listed}");
    let internal = stdout(&ok(c.kina().args([
        "get",
        "kubeconfig",
        "--internal",
        "--name",
        &c.name,
    ])));
    let lb_ip = stdout(&ok(c
        .kina()
        .args(["exec", "--name", &c.name, &lb, "--", "hostname", "-I"])));
    let lb_ip = lb_ip
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        internal.contains(&format!("https://{lb_ip}:6443")),
        "{internal}"
    );
    c.delete_and_check();
}
