//! A real cri-server process on a temporary socket, and k8s-cri clients for it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use super::bins;

/// Settings of a test server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Default runtime handler (`runc` or `kina`).
    pub handler: String,
    /// CNI conf dir (an empty dir means NetworkReady=false).
    pub cni_conf_dir: PathBuf,
}

/// A running cri-server; SIGKILLed on drop. Its dir holds root, state, socket and log.
#[derive(Debug)]
pub struct Server {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub opts: Options,
    child: Option<Child>,
}

impl Server {
    /// Imports the test images into `<dir>/root` and starts a server there.
    pub fn start(dir: &Path, opts: Options) -> Server {
        let b = bins();
        // The import API is blocking: keep it off the test's async threads.
        let (root, pause) = (dir.join("root"), b.pause.clone());
        std::thread::spawn(move || super::images::import_test_images(&root, &pause))
            .join()
            .expect("import test images");
        Self::spawn(dir, opts)
    }

    /// Starts a server on an existing `dir` (a restart).
    pub fn spawn(dir: &Path, opts: Options) -> Server {
        let b = bins();
        let socket = dir.join("cri.sock");
        let cfg = dir.join("config.toml");
        std::fs::create_dir_all(&opts.cni_conf_dir).unwrap();
        // `<dir>/extra.toml` holds more top-level keys for this server.
        let extra = std::fs::read_to_string(dir.join("extra.toml")).unwrap_or_default();
        // A `<dir>/cni-template.conflist` becomes the CNI `conf_template`.
        let template = dir.join("cni-template.conflist");
        let template = if template.exists() {
            format!("conf_template = {template:?}\n")
        } else {
            String::new()
        };
        std::fs::write(
            &cfg,
            format!(
                "{extra}root_dir = {:?}\nstate_dir = {:?}\nlisten = {:?}\nlog_level = \"debug\"\n\
                 default_runtime_handler = {:?}\nmonitor_path = {:?}\n\
                 [cni]\nconf_dir = {:?}\nbin_dirs = [\"/usr/lib/cni\"]\n{}\
                 [runtime_handlers]\nrunc = \"/usr/sbin/runc\"\nkina = {:?}\n",
                dir.join("root"),
                dir.join("state"),
                socket,
                opts.handler,
                b.monitor,
                opts.cni_conf_dir,
                template,
                b.kina_runtime,
            ),
        )
        .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("cri-server.log"))
            .unwrap();
        // A `<dir>/host-netns` (written by `BridgeNet`) names the network namespace that plays
        // the host: nsenter joins it and execs cri-server, so the child is the server itself.
        let mut cmd = match std::fs::read_to_string(dir.join(super::net::HOST_NETNS_FILE)) {
            Ok(netns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={netns}")).arg("--").arg(&b.cri_server);
                c
            }
            Err(_) => Command::new(&b.cri_server),
        };
        let child = cmd.arg("--config").arg(&cfg).stderr(log).spawn().unwrap();
        let s = Server {
            dir: dir.to_owned(),
            socket,
            opts,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&s.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "cri-server did not listen: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("cri-server.log")).unwrap_or_default()
    }

    /// A RuntimeService client.
    pub async fn client(&self) -> RuntimeServiceClient<Channel> {
        let path = self.socket.clone();
        let ch = Endpoint::try_from("http://[::]:50051")
            .unwrap()
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .unwrap();
        RuntimeServiceClient::new(ch)
    }

    /// SIGKILL and reap (containers keep running under their monitors).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        c.wait().unwrap().success()
    }

    /// crictl against this server.
    pub fn crictl(&self, args: &[&str]) -> std::process::Output {
        let ep = format!("unix://{}", self.socket.display());
        let crictl = std::env::var_os("CRICTL")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bin/crictl")
            });
        Command::new(crictl)
            .args([
                "--image-endpoint",
                &ep,
                "--runtime-endpoint",
                &ep,
                "--timeout",
                "60s",
            ])
            .args(args)
            .output()
            .expect("run crictl")
    }
}

impl Drop for Server {
    /// A safety net for failed tests (passing tests have removed everything already): kill
    /// what still runs in this test's pod cgroups or names this server's dir, unmount what is
    /// mounted under it, and remove the pod cgroups.
    fn drop(&mut self) {
        self.kill9();
        let dir = self.dir.display().to_string();
        let mut pids: Vec<i32> = super::processes_with(&dir)
            .iter()
            .filter_map(|l| l.split(':').next()?.parse().ok())
            .collect();
        for d in cgroup_dirs(&self.dir) {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            pids.extend(procs.lines().filter_map(|p| p.parse::<i32>().ok()));
        }
        pids.retain(|&p| p != std::process::id() as i32);
        for p in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if !pids.is_empty() {
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut mounts: Vec<String> = super::mounts_with(&dir)
            .iter()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&dir))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        remove_cgroup_root(&self.dir);
    }
}

/// The cgroup parent of the pods of the server in `dir` (the kubelet's part: it owns pod
/// cgroups).
pub fn cgroup_root(dir: &Path) -> String {
    format!(
        "/kina-test-{}",
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('.')
    )
}

/// Every cgroup directory under [`cgroup_root`] in every hierarchy, deepest first.
pub fn cgroup_dirs(dir: &Path) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out);
                }
            }
        }
        out.push(p.to_owned());
    }
    let mut out = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let root = h.path().join(cgroup_root(dir).trim_start_matches('/'));
        if root.exists() {
            walk(&root, &mut out);
        }
    }
    out
}

/// Removes the (empty) pod cgroups of the server in `dir`, like the kubelet would.
pub fn remove_cgroup_root(dir: &Path) {
    for d in cgroup_dirs(dir) {
        let _ = std::fs::remove_dir(d);
    }
}

/// A pod sandbox config with unique metadata; `log_dir` is `<server dir>/logs`.
pub fn pod_config(name: &str, log_dir: &Path) -> cri::PodSandboxConfig {
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: log_dir.display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("{}/{name}", cgroup_root(log_dir.parent().unwrap())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A busybox container config running `sh -c script`.
pub fn container_config(name: &str, script: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: super::images::BUSYBOX.into(),
            ..Default::default()
        }),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}

/// Host network namespace options for a pod.
pub fn host_network(mut c: cri::PodSandboxConfig) -> cri::PodSandboxConfig {
    let linux = c.linux.get_or_insert_with(Default::default);
    linux
        .security_context
        .get_or_insert_with(Default::default)
        .namespace_options = Some(cri::NamespaceOption {
        network: cri::NamespaceMode::Node as i32,
        ..Default::default()
    });
    c
}

/// Runs a pod sandbox on the default handler; returns its id.
pub async fn run_sandbox(
    client: &mut RuntimeServiceClient<Channel>,
    config: &cri::PodSandboxConfig,
) -> String {
    client
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id
}

/// Creates container `container` in `pod` (whose config is `sandbox`) and starts it;
/// returns its id, or the status of the call that failed.
pub async fn start_container(
    client: &mut RuntimeServiceClient<Channel>,
    pod: &str,
    sandbox: &cri::PodSandboxConfig,
    container: cri::ContainerConfig,
) -> Result<String, tonic::Status> {
    let id = client
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(container),
            sandbox_config: Some(sandbox.clone()),
        })
        .await?
        .into_inner()
        .container_id;
    client
        .start_container(cri::StartContainerRequest {
            container_id: id.clone(),
        })
        .await?;
    Ok(id)
}

/// Runs a pod, creates and starts one container per `(name, script)`; returns (pod, ids).
pub async fn run_pod(
    client: &mut RuntimeServiceClient<Channel>,
    config: &cri::PodSandboxConfig,
    containers: &[(&str, &str)],
) -> (String, Vec<String>) {
    let pod = run_sandbox(client, config).await;
    let mut ids = Vec::new();
    for (name, script) in containers {
        let cc = container_config(name, script);
        ids.push(
            start_container(client, &pod, config, cc)
                .await
                .expect("CreateContainer and StartContainer"),
        );
    }
    (pod, ids)
}

/// ContainerStatus.
pub async fn container_status(
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
) -> cri::ContainerStatus {
    client
        .container_status(cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        })
        .await
        .expect("ContainerStatus")
        .into_inner()
        .status
        .unwrap()
}

/// Waits until the container has exited; returns its status.
pub async fn wait_exited(
    client: &mut RuntimeServiceClient<Channel>,
    id: &str,
    secs: u64,
) -> cri::ContainerStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = container_status(client, id).await;
        if s.state == cri::ContainerState::ContainerExited as i32 || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops and removes a pod.
pub async fn remove_pod(client: &mut RuntimeServiceClient<Channel>, pod: &str) {
    client
        .stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.into(),
        })
        .await
        .expect("StopPodSandbox");
    client
        .remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.into(),
        })
        .await
        .expect("RemovePodSandbox");
}
