//! What the kubelet relies on beyond plain CRI semantics: the runtime handler list of Status
//! (with the default handler under the empty name), RuntimeConfig's cgroup driver, and
//! containers created with the resources the kubelet really sends.

mod runtime_support;

use k8s_cri::v1 as cri;
use runtime_support::server::{self, Options, Server};

fn opts(dir: &std::path::Path) -> Options {
    Options {
        handler: runtime_support::handler(),
        cni_conf_dir: dir.join("no-cni"),
    }
}

/// The kubelet looks up the pod's handler (`""` without a RuntimeClass) in Status's handler
/// list and logs "Unknown runtime handler" for every pod when it is missing.
#[tokio::test(flavor = "multi_thread")]
async fn status_lists_the_default_handler_under_the_empty_name() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::spawn(tmp.path(), opts(tmp.path()));
    let mut c = srv.client().await;
    let st = c
        .status(cri::StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    let mut names: Vec<&str> = st
        .runtime_handlers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["", "kina", "runc"]);
    assert!(st.runtime_handlers.iter().all(|h| h.features.is_some()));
    let cfg = c
        .runtime_config(cri::RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        cfg.linux.unwrap().cgroup_driver,
        cri::CgroupDriver::Cgroupfs as i32
    );
}

/// The kubelet's page-size names for the sizes the kernel offers (`hugepages-2048kB` → `2MB`).
fn kernel_hugepage_sizes() -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(kb) = name
            .strip_prefix("hugepages-")
            .and_then(|s| s.strip_suffix("kB"))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        out.push(match kb {
            kb if kb >= 1 << 20 => format!("{}GB", kb >> 20),
            kb if kb >= 1 << 10 => format!("{}MB", kb >> 10),
            kb => format!("{kb}KB"),
        });
    }
    if out.is_empty() {
        out.push("2MB".into());
    }
    out
}

/// The kubelet sends a hugepage limit for every page size; a host without a usable hugetlb
/// controller (this hybrid host has hugetlb only on the cgroup2 mount) must still run the pod.
#[tokio::test(flavor = "multi_thread")]
async fn hugepage_limits_as_the_kubelet_sends_them_start() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), opts(tmp.path()));
    let mut c = srv.client().await;
    let cfg = server::host_network(server::pod_config("huge", &tmp.path().join("logs")));
    let pod = server::run_sandbox(&mut c, &cfg).await;
    let mut cc = server::container_config("h", "exit 0");
    cc.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            cpu_shares: 2,
            hugepage_limits: kernel_hugepage_sizes()
                .into_iter()
                .map(|page_size| cri::HugepageLimit {
                    page_size,
                    limit: 0,
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = server::start_container(&mut c, &pod, &cfg, cc)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}
{}",
                srv.log()
            )
        });
    let st = server::wait_exited(&mut c, &id, 20).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (0, "Completed"));
    server::remove_pod(&mut c, &pod).await;
}

/// `kubectl delete --force`, StopPodSandbox and `kubeadm reset` (2 s per call) kill a container
/// at once even while an earlier StopContainer still waits out a long grace period for a
/// process that ignores SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn forced_stop_does_not_wait_for_a_graceful_stop_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), opts(tmp.path()));
    let mut c = srv.client().await;
    let cfg = server::host_network(server::pod_config("grace", &tmp.path().join("logs")));
    let (pod, ids) = server::run_pod(
        &mut c,
        &cfg,
        &[("stubborn", "trap '' TERM; while :; do sleep 1; done")],
    )
    .await;
    let mut graceful_client = srv.client().await;
    let id = ids[0].clone();
    let graceful = tokio::spawn(async move {
        let started = std::time::Instant::now();
        graceful_client
            .stop_container(cri::StopContainerRequest {
                container_id: id,
                timeout: 60,
            })
            .await
            .map(|_| started.elapsed())
    });
    // Let the graceful stop deliver SIGTERM and start waiting.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let forced = std::time::Instant::now();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        c.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        }),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "StopPodSandbox queued behind the graceful stop\n{}",
            srv.log()
        )
    })
    .unwrap();
    assert!(forced.elapsed() < std::time::Duration::from_secs(5));
    let st = server::container_status(&mut c, &ids[0]).await;
    assert_eq!(st.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(st.exit_code, 137, "killed by SIGKILL, not the stop signal");
    // The graceful stop sees the exit and returns too, long before its 60 s.
    let waited = tokio::time::timeout(std::time::Duration::from_secs(10), graceful)
        .await
        .expect("graceful StopContainer returned")
        .unwrap()
        .expect("graceful StopContainer succeeded");
    assert!(waited < std::time::Duration::from_secs(10), "{waited:?}");
    server::remove_pod(&mut c, &pod).await;
}

/// The kubelet mounts the service account token at /var/run/secrets/kubernetes.io/
/// serviceaccount; the runtime creates the missing parents, which a non-root container user
/// must be able to traverse (they were 0750 when the OCI runtime inherited cri-monitor's umask).
#[tokio::test(flavor = "multi_thread")]
async fn non_root_users_reach_mounts_below_directories_the_runtime_created() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), opts(tmp.path()));
    let mut c = srv.client().await;
    let token = tmp.path().join("token");
    std::fs::create_dir(&token).unwrap();
    std::fs::write(token.join("token"), "s3cret").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(token.join("token"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = server::host_network(server::pod_config("sa", &tmp.path().join("logs")));
    let pod = server::run_sandbox(&mut c, &cfg).await;
    let mut cc = server::container_config(
        "reader",
        "cat /var/run/secrets/kubernetes.io/serviceaccount/token",
    );
    cc.mounts = vec![cri::Mount {
        container_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
        host_path: token.display().to_string(),
        readonly: true,
        ..Default::default()
    }];
    cc.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: 1000 }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = server::start_container(&mut c, &pod, &cfg, cc)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}
{}",
                srv.log()
            )
        });
    let st = server::wait_exited(&mut c, &id, 20).await;
    let log = std::fs::read_to_string(tmp.path().join("logs/reader.log")).unwrap_or_default();
    assert_eq!(st.exit_code, 0, "log: {log}");
    assert!(log.contains("s3cret"), "log: {log}");
    server::remove_pod(&mut c, &pod).await;
}
