//! Pods and containers through the CRI, with the real server, runtime, monitor and CNI plugins.

mod runtime_support;

use std::time::Duration;

use k8s_cri::v1 as cri;
use runtime_support::net::BridgeNet;
use runtime_support::server::{self, Options, Server};

fn opts(handler: &str, conf: &std::path::Path) -> Options {
    Options {
        handler: handler.into(),
        cni_conf_dir: conf.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn host_network_pod_runs_logs_execs_and_reports_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(
        tmp.path(),
        opts(&runtime_support::handler(), &tmp.path().join("no-cni")),
    );
    let mut c = srv.client().await;
    let logs = tmp.path().join("logs");
    let cfg = server::host_network(server::pod_config("hostnet", &logs));
    let (pod, ids) = server::run_pod(
        &mut c,
        &cfg,
        &[
            ("hello", "echo hello $IMAGE_VAR; echo err >&2; exit 3"),
            ("sleeper", "trap '' TERM; while true; do sleep 1; done"),
        ],
    )
    .await;
    let st = server::wait_exited(&mut c, &ids[0], 20).await;
    assert_eq!(
        st.state,
        cri::ContainerState::ContainerExited as i32,
        "{}",
        srv.log()
    );
    assert_eq!(st.exit_code, 3);
    assert_eq!(st.reason, "Error");
    assert!(st.finished_at >= st.started_at && st.started_at > 0);
    let log = std::fs::read_to_string(logs.join("hello.log")).unwrap();
    assert!(log.contains(" stdout F hello from-image"), "{log}");
    assert!(log.contains(" stderr F err"), "{log}");

    // ExecSync: output and exit code; a timeout kills the process.
    let r = c
        .exec_sync(cri::ExecSyncRequest {
            container_id: ids[1].clone(),
            cmd: vec!["sh".into(), "-c".into(), "echo in-exec; exit 7".into()],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.stdout.as_slice(), r.exit_code), (&b"in-exec\n"[..], 7));
    let t0 = std::time::Instant::now();
    let e = c
        .exec_sync(cri::ExecSyncRequest {
            container_id: ids[1].clone(),
            cmd: vec!["sleep".into(), "60".into()],
            timeout: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::DeadlineExceeded);
    assert!(t0.elapsed() < Duration::from_secs(20));
    let ps = c
        .exec_sync(cri::ExecSyncRequest {
            container_id: ids[1].clone(),
            cmd: vec!["ps".into()],
            timeout: 10,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains("sleep 60"));

    // StopContainer: the shell ignores SIGTERM, so the grace period ends in SIGKILL.
    c.stop_container(cri::StopContainerRequest {
        container_id: ids[1].clone(),
        timeout: 1,
    })
    .await
    .unwrap();
    let st = server::container_status(&mut c, &ids[1]).await;
    assert_eq!(st.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(st.exit_code, 137);

    let list = c
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(list.len(), 2);
    // Stop twice (idempotent), then remove twice (idempotent too).
    for _ in 0..2 {
        c.stop_pod_sandbox(cri::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    }
    for _ in 0..2 {
        c.remove_pod_sandbox(cri::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    }
    let e = c
        .container_status(cri::ContainerStatusRequest {
            container_id: ids[0].clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert!(runtime_support::mounts_with(&pod).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bridge_pod_shares_network_is_reachable_and_maps_host_port() {
    let tmp = tempfile::tempdir().unwrap();
    let net = BridgeNet::new(tmp.path(), 1);
    let srv = Server::start(tmp.path(), opts(&runtime_support::handler(), &net.conf_dir));
    let mut c = srv.client().await;
    let logs = tmp.path().join("logs");
    let mut cfg = server::pod_config("web", &logs);
    let host_port = 20000 + (std::process::id() % 20000) as i32;
    cfg.port_mappings = vec![cri::PortMapping {
        protocol: cri::Protocol::Tcp as i32,
        container_port: 8080,
        host_port,
        host_ip: String::new(),
    }];
    let (pod, ids) = server::run_pod(
        &mut c,
        &cfg,
        &[
            (
                "server",
                "mkdir -p /tmp/www && echo hello-from-pod > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
            ),
            (
                "client",
                "for i in $(seq 100); do wget -q -O - http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1",
            ),
        ],
    )
    .await;
    let st = server::wait_exited(&mut c, &ids[1], 30).await;
    assert_eq!(st.exit_code, 0, "client failed: {}", srv.log());
    let log = std::fs::read_to_string(logs.join("client.log")).unwrap();
    assert!(log.contains("hello-from-pod"), "{log}");

    let status = c
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    let ip = status.network.unwrap().ip;
    assert!(ip.starts_with(&net.prefix), "pod ip {ip}");
    let body = net
        .http_get(&format!("{ip}:8080"))
        .expect("pod IP reachable from the host");
    assert!(body.contains("hello-from-pod"), "{body}");
    let body = net
        .http_get(&format!("{}:{host_port}", net.gateway()))
        .expect("host port mapped");
    assert!(body.contains("hello-from-pod"), "{body}");

    server::remove_pod(&mut c, &pod).await;
    assert!(net.leases().is_empty(), "leases left: {:?}", net.leases());
    assert!(net.veths().is_empty(), "veths left: {:?}", net.veths());
    assert!(runtime_support::mounts_with(&pod).is_empty());
    assert!(
        !tmp.path()
            .join("state/netns")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );
}
