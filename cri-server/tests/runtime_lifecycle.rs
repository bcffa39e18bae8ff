//! Container lifecycle details through the CRI: OOMKilled, events, resource updates, and a
//! SIGKILLed cri-server restarted while pods run.

mod runtime_support;

use std::time::Duration;

use k8s_cri::v1 as cri;
use runtime_support::server::{self, Options, Server};

fn opts(dir: &std::path::Path) -> Options {
    Options {
        handler: runtime_support::handler(),
        cni_conf_dir: dir.join("no-cni"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_limit_oom_is_reported_as_oomkilled() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), opts(tmp.path()));
    let mut c = srv.client().await;
    let cfg = server::host_network(server::pod_config("oom", &tmp.path().join("logs")));
    let pod = server::run_sandbox(&mut c, &cfg).await;
    // tail keeps a newline-free input in memory: 256 MiB against a 32 MiB limit.
    let mut cc = server::container_config("hog", "head -c 268435456 /dev/zero | tail");
    cc.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 32 << 20,
            oom_score_adj: -998,
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
    let st = server::wait_exited(&mut c, &id, 60).await;
    assert_eq!(st.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(
        st.reason,
        "OOMKilled",
        "exit {} {}",
        st.exit_code,
        srv.log()
    );
    assert_ne!(st.exit_code, 0);
    server::remove_pod(&mut c, &pod).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_stream_created_started_stopped_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), opts(tmp.path()));
    let mut c = srv.client().await;
    let mut events = c
        .get_container_events(cri::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let cfg = server::host_network(server::pod_config("ev", &tmp.path().join("logs")));
    let (pod, ids) = server::run_pod(&mut c, &cfg, &[("quick", "exit 0")]).await;
    let st = server::wait_exited(&mut c, &ids[0], 20).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (0, "Completed"));
    server::remove_pod(&mut c, &pod).await;
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let ev = tokio::time::timeout(Duration::from_secs(10), events.message())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        if ev.container_id == ids[0] {
            seen.push(ev.container_event_type);
        }
    }
    use cri::ContainerEventType as E;
    assert_eq!(
        seen,
        vec![
            E::ContainerCreatedEvent as i32,
            E::ContainerStartedEvent as i32,
            E::ContainerStoppedEvent as i32,
            E::ContainerDeletedEvent as i32
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn update_resources_reaches_the_cgroup() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(tmp.path(), opts(tmp.path()));
    let mut c = srv.client().await;
    let cfg = server::host_network(server::pod_config("upd", &tmp.path().join("logs")));
    let (pod, ids) = server::run_pod(&mut c, &cfg, &[("s", "sleep 1000")]).await;
    c.update_container_resources(cri::UpdateContainerResourcesRequest {
        container_id: ids[0].clone(),
        linux: Some(cri::LinuxContainerResources {
            memory_limit_in_bytes: 48 << 20,
            cpu_shares: 256,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory{}/upd/{}/memory.limit_in_bytes",
        server::cgroup_root(tmp.path()),
        ids[0]
    ))
    .unwrap();
    assert_eq!(limit.trim(), (48u64 << 20).to_string());
    let st = server::container_status(&mut c, &ids[0]).await;
    let r = st.resources.unwrap().linux.unwrap();
    assert_eq!(r.memory_limit_in_bytes, 48 << 20);
    server::remove_pod(&mut c, &pod).await;
    assert!(
        !std::path::Path::new(&format!(
            "/sys/fs/cgroup/memory{}/upd/{}",
            server::cgroup_root(tmp.path()),
            ids[0]
        ))
        .exists(),
        "container cgroup left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_and_restart_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(tmp.path(), opts(tmp.path()));
    let mut c = srv.client().await;
    let logs = tmp.path().join("logs");
    let cfg = server::host_network(server::pod_config("survivor", &logs));
    let (pod, ids) = server::run_pod(
        &mut c,
        &cfg,
        &[
            (
                "ticker",
                "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
            ),
            ("short", "sleep 2; exit 5"),
        ],
    )
    .await;
    srv.kill9();
    let before = std::fs::read_to_string(logs.join("ticker.log"))
        .unwrap()
        .len();
    // The short container exits while the server is down.
    std::thread::sleep(Duration::from_secs(3));
    let srv = Server::spawn(tmp.path(), srv.opts.clone());
    let mut c = srv.client().await;
    let pods = c
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].id, pod);
    assert_eq!(pods[0].state, cri::PodSandboxState::SandboxReady as i32);
    let ticker = server::container_status(&mut c, &ids[0]).await;
    assert_eq!(ticker.state, cri::ContainerState::ContainerRunning as i32);
    let short = server::container_status(&mut c, &ids[1]).await;
    assert_eq!(short.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(short.exit_code, 5);
    assert!(short.finished_at > short.started_at);
    std::thread::sleep(Duration::from_millis(500));
    let after = std::fs::read_to_string(logs.join("ticker.log"))
        .unwrap()
        .len();
    assert!(after > before, "logs stopped flowing: {before} -> {after}");
    // Exec and stop still work on containers from before the restart.
    let r = c
        .exec_sync(cri::ExecSyncRequest {
            container_id: ids[0].clone(),
            cmd: vec!["echo".into(), "still-here".into()],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.stdout, b"still-here\n");
    server::remove_pod(&mut c, &pod).await;
    assert!(runtime_support::processes_with(&pod).is_empty());
}
