//! The native provider for real (issue: kina nodes): two node containers of the real node
//! image on kina-runtime, inside a network namespace this test owns. Both boot systemd with
//! cri-server ready; an image loaded with `kina load image-archive` runs as a pod in the
//! worker (via crictl); the pod answers from the control-plane node and from the "host"
//! through an extraPortMapping; `get` lists them; `export logs` writes the files; `delete
//! cluster` leaves no bridge, veth, mount, nft table, process, cgroup or state. A create that
//! fails removes what it made, unless --retain.

mod native_support;
mod node_image_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kina::provider::native::NativeProvider;
use kina::provider::{Node, Provider};
use kina::state::StateStore;
use native_support::{
    TestNetns, busybox_web_image, fresh_state_dir, kina_bin, mounts_under, ok, processes_in_cgroup,
    runtime_bin, stderr, stdout, wait_for,
};

const HOST_PORT: u16 = 38080;
const NODE_PORT: u16 = 30080;

/// Deletes the cluster and its state dir (with its image store) even when the test fails.
struct Cleanup<'a> {
    ns: &'a TestNetns,
    state: PathBuf,
    cluster: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = kina(self.ns, &self.state)
            .args(["delete", "cluster", "--name", &self.cluster])
            .output();
        let _ = fs::remove_dir_all(&self.state);
    }
}

fn kina(ns: &TestNetns, state: &Path) -> Command {
    let mut c = ns.command(kina_bin());
    c.env("KINA_STATE_DIR", state)
        .env("KINA_RUNTIME", runtime_bin());
    c
}

fn exec(node: &dyn Node, script: &str) -> String {
    let out = node
        .exec(&["sh".into(), "-c".into(), script.into()], None)
        .unwrap();
    assert_eq!(
        out.status,
        0,
        "{script} in {}: {}{}",
        node.name(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn write_file(node: &dyn Node, path: &str, content: &str) {
    let out = node
        .exec(
            &["sh".into(), "-c".into(), format!("cat > {path}")],
            Some(content.as_bytes()),
        )
        .unwrap();
    assert_eq!(out.status, 0, "{out:?}");
}

/// Runs the web image as a pod in `node` with its port 80 on the node's NODE_PORT; returns
/// the pod IP.
fn run_web_pod(node: &dyn Node, subnet: &str) -> String {
    write_file(
        node,
        "/etc/cni/net.d/10-test.conflist",
        &serde_json::json!({
            "cniVersion": "1.0.0", "name": "test",
            "plugins": [
                {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": true}},
            ]
        })
        .to_string(),
    );
    write_file(
        node,
        "/tmp/pod.json",
        &serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "web-uid", "attempt": 0},
            "log_directory": "/var/log/pods/default_web_web-uid",
            "port_mappings": [{"protocol": 0, "container_port": 80, "host_port": NODE_PORT}],
            "linux": {},
        })
        .to_string(),
    );
    write_file(
        node,
        "/tmp/ctr.json",
        &serde_json::json!({
            "metadata": {"name": "httpd"},
            "log_path": "httpd/0.log",
            "image": {"image": "kina.test/web:v1"},
            "linux": {},
        })
        .to_string(),
    );
    // cri-server may still be reading its CNI config dir: retry runp for a while.
    let pod = wait_for(Duration::from_secs(30), || {
        let out = node
            .exec(
                &["crictl".into(), "runp".into(), "/tmp/pod.json".into()],
                None,
            )
            .unwrap();
        (out.status == 0).then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    })
    .unwrap_or_else(|| {
        panic!(
            "crictl runp never succeeded: {}",
            exec(node, "journalctl -u cri-server --no-pager | tail -30")
        )
    });
    let ctr = exec(
        node,
        &format!("crictl create {pod} /tmp/ctr.json /tmp/pod.json"),
    );
    exec(node, &format!("crictl start {ctr}"));
    let inspect = exec(node, &format!("crictl inspectp -o json {pod}"));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    v["status"]["network"]["ip"].as_str().unwrap().to_owned()
}

#[test]
fn two_nodes_boot_serve_pods_and_delete_without_leftovers() {
    let (layout, _) = node_image_support::image();
    let ns = TestNetns::new("nodes");
    let state = fresh_state_dir("nodes");
    let cluster = format!("n{}", std::process::id() % 100_000);
    let _cleanup = Cleanup {
        ns: &ns,
        state: state.clone(),
        cluster: cluster.clone(),
    };
    let config = state.join("cluster.yaml");
    fs::write(
        &config,
        format!(
            "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
- role: worker
  extraPortMappings:
  - containerPort: {NODE_PORT}
    hostPort: {HOST_PORT}
    listenAddress: 127.0.0.1
"
        ),
    )
    .unwrap();
    let loaded = kina::config::load(config.to_str().unwrap(), Some(&cluster)).unwrap();
    let mut plan = kina::cli::create::plan(&loaded.cluster);
    for n in &mut plan.nodes {
        n.image = layout.display().to_string();
    }
    let provider = NativeProvider::new(StateStore::open(&state), runtime_bin());
    let nodes = ns.run(|| {
        provider
            .ensure_image(&layout.display().to_string())
            .unwrap();
        provider.create_nodes(&plan.nodes).unwrap()
    });
    let names: Vec<&str> = nodes.iter().map(|n| n.name()).collect();
    let (cp_name, worker_name) = (
        format!("{cluster}-control-plane"),
        format!("{cluster}-worker"),
    );
    assert_eq!(names, [cp_name.as_str(), worker_name.as_str()]);
    let (cp, worker) = (nodes[0].as_ref(), nodes[1].as_ref());

    // Both nodes run systemd (create_nodes waited for it) and serve CRI.
    for node in [cp, worker] {
        let s = exec(node, "systemctl is-system-running || true");
        assert!(s == "running" || s == "degraded", "{}: {s}", node.name());
        assert_eq!(exec(node, "hostname"), node.name());
        let version = wait_for(Duration::from_secs(30), || {
            let out = node
                .exec(&["crictl".into(), "version".into()], None)
                .unwrap();
            (out.status == 0).then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .unwrap_or_else(|| panic!("crictl version never worked in {}", node.name()));
        assert!(version.contains("cri-server"), "{version}");
    }

    // `kina get` sees the cluster and its nodes.
    let out = ok(kina(&ns, &state).args(["get", "clusters"]));
    assert!(
        stdout(&out).lines().any(|l| l == cluster),
        "{}",
        stdout(&out)
    );
    let out = ok(kina(&ns, &state).args(["get", "nodes", "--name", &cluster]));
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        [cp_name.as_str(), worker_name.as_str()]
    );

    // `kina exec` and `kina shell` run commands in a node, passing on the exit status.
    let out =
        ok(kina(&ns, &state).args(["exec", "--name", &cluster, &worker_name, "--", "hostname"]));
    assert_eq!(stdout(&out).trim(), worker_name);
    let out = kina(&ns, &state)
        .args([
            "exec", "--name", &cluster, &cp_name, "--", "sh", "-c", "exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let mut shell = kina(&ns, &state)
        .args(["shell", "--name", &cluster])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo \"in $(hostname)\"\n")
        .unwrap();
    let out = shell.wait_with_output().unwrap();
    assert!(
        stdout(&out).contains(&format!("in {cp_name}")),
        "{}",
        stdout(&out)
    );

    // `kina load image-archive` puts the image into every node's store.
    let archive = state.join("web.tar");
    busybox_web_image(&archive, "kina.test/web:v1", "hello from kina\n");
    ok(kina(&ns, &state)
        .args(["load", "image-archive"])
        .arg(&archive)
        .args(["--name", &cluster]));
    for node in [cp, worker] {
        let images = exec(node, "crictl images");
        assert!(
            images.contains("kina.test/web"),
            "{}: {images}",
            node.name()
        );
    }

    // A pod in the worker answers from the other node and from the host's port mapping.
    let pod_ip = run_web_pod(worker, "10.244.1.0/24");
    let worker_ip = worker.network().unwrap().ipv4.unwrap();
    exec(
        cp,
        &format!("ip route replace 10.244.1.0/24 via {worker_ip}"),
    );
    let get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | socat -t 5 - TCP:";
    let page = wait_for(Duration::from_secs(30), || {
        let out = cp
            .exec(
                &["sh".into(), "-c".into(), format!("{get}{pod_ip}:80")],
                None,
            )
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("hello from kina").then_some(text)
    });
    assert!(page.is_some(), "pod {pod_ip} unreachable from {cp_name}");
    let from_host = wait_for(Duration::from_secs(30), || {
        let out = ns
            .command("curl")
            .args(["-s", "--max-time", "5"])
            .arg(format!("http://127.0.0.1:{HOST_PORT}/"))
            .output()
            .unwrap();
        let text = stdout(&out);
        text.contains("hello from kina").then_some(text)
    });
    assert!(
        from_host.is_some(),
        "127.0.0.1:{HOST_PORT} did not reach the pod"
    );

    // `kina export logs` writes each node's journal, console and pod logs.
    let logs = state.join("logs");
    ok(kina(&ns, &state)
        .args(["export", "logs"])
        .arg(&logs)
        .args(["--name", &cluster]));
    for node in [&cp_name, &worker_name] {
        let dir = logs.join(node);
        for f in [
            "journal.log",
            "serial.log",
            "kubelet.log",
            "cri-server.log",
            "inspect.json",
            "images.log",
        ] {
            assert!(dir.join(f).is_file(), "{} missing", dir.join(f).display());
        }
        assert!(fs::metadata(dir.join("journal.log")).unwrap().len() > 0);
    }
    assert!(
        logs.join(&worker_name).join("pods").is_dir(),
        "pod logs of the worker were not exported"
    );
    drop(nodes);

    // `kina delete cluster` leaves nothing behind.
    ok(kina(&ns, &state).args(["delete", "cluster", "--name", &cluster]));
    assert_no_leftovers(&ns, &state, &cluster);
}

fn assert_no_leftovers(ns: &TestNetns, state: &Path, cluster: &str) {
    let links = stdout(&ok(ns.command("ip").args(["-o", "link"])));
    assert!(
        !links.contains("kina-") && !links.contains("veth"),
        "links left:\n{links}"
    );
    let tables = stdout(&ok(ns.command("nft").args(["list", "tables"])));
    assert!(!tables.contains("kina"), "nft tables left:\n{tables}");
    assert_eq!(mounts_under(state), Vec::<String>::new(), "mounts left");
    let procs = processes_in_cgroup(&format!("/kina-{cluster}-"));
    assert!(procs.is_empty(), "processes left: {procs:?}");
    for ctrl in ["memory", "pids", "systemd"] {
        let dir = Path::new("/sys/fs/cgroup").join(ctrl);
        if let Ok(entries) = fs::read_dir(&dir) {
            let left: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("kina-{cluster}-")))
                .collect();
            assert!(
                left.is_empty(),
                "cgroups left in {}: {left:?}",
                dir.display()
            );
        }
    }
    let nodes = state.join("nodes");
    let left: Vec<_> = fs::read_dir(&nodes)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "node dirs left: {left:?}");
    let out = ok(Command::new(kina_bin())
        .env("KINA_STATE_DIR", state)
        .args(["get", "clusters"]));
    assert!(!stdout(&out).contains(cluster), "{}", stdout(&out));
    let runtime = Command::new(runtime_bin())
        .arg("--root")
        .arg(state.join("runtime"))
        .arg("list")
        .output()
        .unwrap();
    assert!(!stdout(&runtime).contains(cluster), "{}", stdout(&runtime));
}

#[test]
fn failed_create_removes_everything_unless_retained() {
    let ns = TestNetns::new("fail");
    let state = fresh_state_dir("fail");
    // A valid image that is no node image: it has no /sbin/init, so the node cannot boot.
    let archive = state.join("not-a-node.tar");
    busybox_web_image(&archive, "kina.test/not-a-node:v1", "x");
    let cluster = format!("f{}", std::process::id() % 100_000);
    let _cleanup = Cleanup {
        ns: &ns,
        state: state.clone(),
        cluster: cluster.clone(),
    };

    let out = kina(&ns, &state)
        .args(["create", "cluster", "--name", &cluster, "--image"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("{cluster}-control-plane")), "{err}");
    assert_no_leftovers(&ns, &state, &cluster);

    // With --retain the failed node stays for debugging, and delete removes it.
    let out = kina(&ns, &state)
        .args([
            "create", "cluster", "--retain", "--name", &cluster, "--image",
        ])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let listed = ok(kina(&ns, &state).args(["get", "nodes", "--name", &cluster]));
    assert!(
        stdout(&listed).contains(&format!("{cluster}-control-plane")),
        "{}",
        stderr(&out)
    );
    ok(kina(&ns, &state).args(["delete", "cluster", "--name", &cluster]));
    assert_no_leftovers(&ns, &state, &cluster);

    // An image that does not exist is a clear error before anything is made.
    let out = kina(&ns, &state)
        .args([
            "create",
            "cluster",
            "--name",
            &cluster,
            "--image",
            "kina.test/absent:v0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("kina build node-image"),
        "{}",
        stderr(&out)
    );
    assert_no_leftovers(&ns, &state, &cluster);
}
