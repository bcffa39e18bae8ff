//! 100 pods on the bridge network, created and removed, leave nothing behind: no mounts, netns
//! pins, veths, IP leases, cgroups, processes or state files.

mod runtime_support;

use k8s_cri::v1 as cri;
use runtime_support::net::BridgeNet;
use runtime_support::server::{self, Options, Server};

const PODS: usize = 100;
const PARALLEL: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn hundred_pods_created_and_removed_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let net = BridgeNet::new(tmp.path(), 3);
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: runtime_support::handler(),
            cni_conf_dir: net.conf_dir.clone(),
        },
    );
    let client = srv.client().await;
    let logs = tmp.path().join("logs");
    let mut pods = Vec::new();
    for batch in (0..PODS).collect::<Vec<_>>().chunks(PARALLEL) {
        let mut tasks = Vec::new();
        for i in batch {
            let mut c = client.clone();
            let cfg = server::pod_config(&format!("leak-{i}"), &logs);
            tasks.push(tokio::spawn(async move {
                server::run_pod(&mut c, &cfg, &[("app", "sleep 1000")]).await
            }));
        }
        for t in tasks {
            pods.push(t.await.unwrap());
        }
    }
    let mut c = client.clone();
    let listed = c
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(listed.len(), PODS);
    let running = c
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                state: Some(cri::ContainerStateValue {
                    state: cri::ContainerState::ContainerRunning as i32,
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(running.len(), PODS);
    assert_eq!(net.leases().len(), PODS);
    for batch in pods.chunks(PARALLEL) {
        let mut tasks = Vec::new();
        for (pod, _) in batch {
            let mut c = client.clone();
            let pod = pod.clone();
            tasks.push(tokio::spawn(async move {
                server::remove_pod(&mut c, &pod).await
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    let dir = tmp.path().display().to_string();
    assert!(
        runtime_support::mounts_with(&dir).is_empty(),
        "mounts: {:?}",
        runtime_support::mounts_with(&dir)
    );
    assert!(net.veths().is_empty(), "veths: {:?}", net.veths());
    assert!(net.leases().is_empty(), "leases: {:?}", net.leases());
    let netns: Vec<_> = std::fs::read_dir(tmp.path().join("state/netns"))
        .unwrap()
        .collect();
    assert!(netns.is_empty(), "netns pins: {netns:?}");
    for (pod, ids) in &pods {
        assert!(
            runtime_support::processes_with(pod).is_empty(),
            "processes of {pod}"
        );
        assert!(runtime_support::processes_with(&ids[0]).is_empty());
    }
    // Only the (kubelet-owned) pod-level parents remain, all empty.
    let leftovers: Vec<_> = server::cgroup_dirs(tmp.path())
        .into_iter()
        .filter(|d| d.file_name().unwrap().len() == 64)
        .collect();
    assert!(leftovers.is_empty(), "container cgroups: {leftovers:?}");
    for sub in [
        "state/sandboxes",
        "state/containers",
        "root/runtime/sandboxes",
        "root/runtime/containers",
        "state/s",
    ] {
        let p = tmp.path().join(sub);
        let left: Vec<_> = std::fs::read_dir(&p)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{sub}: {left:?}");
    }
    let overlay = tmp.path().join("root/overlay/containers");
    assert_eq!(
        std::fs::read_dir(&overlay).unwrap().count(),
        0,
        "container layers left"
    );
}
