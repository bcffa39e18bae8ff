//! ListPodSandbox / ListContainers filters, ReopenContainerLog, a sandbox whose pause process
//! dies, and graceful shutdown (SIGTERM leaves pods running for the next start).

mod runtime_support;

use std::collections::HashMap;
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
async fn filters_reopen_log_pause_death_and_graceful_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(tmp.path(), opts(tmp.path()));
    let mut c = srv.client().await;
    let logs = tmp.path().join("logs");
    let mut a = server::host_network(server::pod_config("pod-a", &logs));
    a.labels = HashMap::from([
        ("app".into(), "web".into()),
        ("tier".into(), "front".into()),
    ]);
    let b = server::host_network(server::pod_config("pod-b", &logs));
    let (pa, ca) = server::run_pod(
        &mut c,
        &a,
        &[("ticker", "while true; do echo tick; sleep 0.1; done")],
    )
    .await;
    let (pb, cb) = server::run_pod(&mut c, &b, &[("done", "exit 0")]).await;
    server::wait_exited(&mut c, &cb[0], 20).await;

    let pods = |f: cri::PodSandboxFilter| {
        let mut c = c.clone();
        async move {
            let mut ids: Vec<String> = c
                .list_pod_sandbox(cri::ListPodSandboxRequest { filter: Some(f) })
                .await
                .unwrap()
                .into_inner()
                .items
                .into_iter()
                .map(|p| p.id)
                .collect();
            ids.sort();
            ids
        }
    };
    let mut both = vec![pa.clone(), pb.clone()];
    both.sort();
    assert_eq!(pods(Default::default()).await, both);
    assert_eq!(
        pods(cri::PodSandboxFilter {
            id: pa[..12].into(),
            ..Default::default()
        })
        .await,
        vec![pa.clone()]
    );
    assert_eq!(
        pods(cri::PodSandboxFilter {
            label_selector: HashMap::from([("app".into(), "web".into())]),
            ..Default::default()
        })
        .await,
        vec![pa.clone()]
    );
    assert!(
        pods(cri::PodSandboxFilter {
            label_selector: HashMap::from([("app".into(), "db".into())]),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    let ctrs = |f: cri::ContainerFilter| {
        let mut c = c.clone();
        async move {
            c.list_containers(cri::ListContainersRequest { filter: Some(f) })
                .await
                .unwrap()
                .into_inner()
                .containers
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        }
    };
    let exited = cri::ContainerFilter {
        state: Some(cri::ContainerStateValue {
            state: cri::ContainerState::ContainerExited as i32,
        }),
        ..Default::default()
    };
    assert_eq!(ctrs(exited).await, cb);
    assert_eq!(
        ctrs(cri::ContainerFilter {
            pod_sandbox_id: pa.clone(),
            ..Default::default()
        })
        .await,
        ca
    );

    // ReopenContainerLog: after a rotation the monitor writes to a fresh file at the path.
    let log = logs.join("ticker.log");
    std::fs::rename(&log, logs.join("ticker.log.1")).unwrap();
    c.reopen_container_log(cri::ReopenContainerLogRequest {
        container_id: ca[0].clone(),
    })
    .await
    .unwrap();
    assert!(runtime_support::wait_until(10, || std::fs::read_to_string(
        &log
    )
    .is_ok_and(|s| s.contains("tick"))));
    let e = c
        .reopen_container_log(cri::ReopenContainerLogRequest {
            container_id: cb[0].clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);

    // Graceful shutdown keeps pods running; the next server finds them.
    assert!(srv.stop(), "SIGTERM exit status: {}", srv.log());
    let srv = Server::spawn(tmp.path(), srv.opts.clone());
    let mut c = srv.client().await;
    let st = server::container_status(&mut c, &ca[0]).await;
    assert_eq!(st.state, cri::ContainerState::ContainerRunning as i32);

    // The pause process dying makes the sandbox NotReady.
    let info = c
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pb.clone(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner()
        .info;
    let info: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
    let pause = info["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pause),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut state = 0;
    for _ in 0..100 {
        state = c
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: pb.clone(),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner()
            .status
            .unwrap()
            .state;
        if state == cri::PodSandboxState::SandboxNotready as i32 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, cri::PodSandboxState::SandboxNotready as i32);
    server::remove_pod(&mut c, &pa).await;
    server::remove_pod(&mut c, &pb).await;
}
