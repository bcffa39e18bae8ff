//! Version/Status/RuntimeConfig, and bad input: every refusal names the field, ID or image, and
//! a failed CNI ADD leaves no netns, veth or IP lease behind.

mod runtime_support;

use k8s_cri::v1 as cri;
use runtime_support::net::BridgeNet;
use runtime_support::server::{self, Options, Server};
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn version_status_and_runtime_config() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("net.d");
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: runtime_support::handler(),
            cni_conf_dir: conf.clone(),
        },
    );
    let mut c = srv.client().await;
    let v = c
        .version(cri::VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (v.runtime_name.as_str(), v.runtime_api_version.as_str()),
        ("cri-server", "v1")
    );
    let conditions = |s: cri::StatusResponse| s.status.unwrap().conditions;
    let st = conditions(
        c.status(cri::StatusRequest { verbose: false })
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(st.iter().any(|x| x.r#type == "RuntimeReady" && x.status));
    let net = st.iter().find(|x| x.r#type == "NetworkReady").unwrap();
    assert!(
        !net.status && !net.reason.is_empty() && !net.message.is_empty(),
        "{net:?}"
    );
    // A config appearing makes the network ready.
    let _net = BridgeNet::new(tmp.path(), 9);
    let mut ready = false;
    for _ in 0..200 {
        let st = c
            .status(cri::StatusRequest { verbose: false })
            .await
            .unwrap()
            .into_inner();
        ready = st
            .status
            .unwrap()
            .conditions
            .iter()
            .any(|x| x.r#type == "NetworkReady" && x.status);
        if ready {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "NetworkReady did not follow the new conf file");
    let rc = c
        .runtime_config(cri::RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rc.linux.unwrap().cgroup_driver,
        cri::CgroupDriver::Cgroupfs as i32
    );
    let e = c
        .update_runtime_config(cri::UpdateRuntimeConfigRequest {
            runtime_config: Some(cri::RuntimeConfig {
                network_config: Some(cri::NetworkConfig {
                    pod_cidr: "10.1.0.0/33".into(),
                }),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("pod_cidr"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_refused_with_the_field_named() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: runtime_support::handler(),
            cni_conf_dir: tmp.path().join("no-cni"),
        },
    );
    let mut c = srv.client().await;
    let logs = tmp.path().join("logs");
    let run = |cfg: Option<cri::PodSandboxConfig>, handler: &str| cri::RunPodSandboxRequest {
        config: cfg,
        runtime_handler: handler.into(),
    };
    let e = c.run_pod_sandbox(run(None, "")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("config"));
    let mut cfg = server::host_network(server::pod_config("bad", &logs));
    cfg.metadata.as_mut().unwrap().namespace.clear();
    let e = c.run_pod_sandbox(run(Some(cfg), "")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("metadata.namespace"),
        "{}",
        e.message()
    );
    let cfg = server::host_network(server::pod_config("dup", &logs));
    let e = c
        .run_pod_sandbox(run(Some(cfg.clone()), "nosuch"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("nosuch"));

    let (pod, _) = server::run_pod(&mut c, &cfg, &[]).await;
    let e = c
        .run_pod_sandbox(run(Some(cfg.clone()), ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{}", e.message());

    for (id, rpc) in [("", "empty"), ("feedface", "unknown")] {
        let e = c
            .container_status(cri::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            })
            .await
            .unwrap_err();
        let want = if id.is_empty() {
            Code::InvalidArgument
        } else {
            Code::NotFound
        };
        assert_eq!(e.code(), want, "{rpc}: {}", e.message());
        let e = c
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: false,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), want, "{rpc}: {}", e.message());
        let e = c
            .start_container(cri::StartContainerRequest {
                container_id: id.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), want, "{rpc}: {}", e.message());
    }
    let create = |cc: cri::ContainerConfig, pod: &str| cri::CreateContainerRequest {
        pod_sandbox_id: pod.into(),
        config: Some(cc),
        sandbox_config: Some(cfg.clone()),
    };
    let mut cc = server::container_config("x", "true");
    cc.image = Some(cri::ImageSpec {
        image: "kina.test/missing:v9".into(),
        ..Default::default()
    });
    let e = c.create_container(create(cc, &pod)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(
        e.message().contains("kina.test/missing:v9"),
        "{}",
        e.message()
    );
    let mut cc = server::container_config("x", "true");
    cc.metadata = None;
    let e = c.create_container(create(cc, &pod)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("metadata.name"), "{}", e.message());
    let e = c
        .create_container(create(server::container_config("x", "true"), "feedface"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let mut cc = server::container_config("x", "true");
    cc.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            capabilities: Some(cri::Capability {
                add_capabilities: vec!["FLY".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let e = c.create_container(create(cc, &pod)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("CAP_FLY"), "{}", e.message());
    // Refused creations left no container behind, and the name is still free.
    let n = c
        .list_containers(cri::ListContainersRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .containers
        .len();
    assert_eq!(n, 0);
    c.create_container(create(server::container_config("x", "true"), &pod))
        .await
        .unwrap();
    let e = c
        .create_container(create(server::container_config("x", "true"), &pod))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let e = c
        .exec_sync(cri::ExecSyncRequest {
            container_id: "feedface".into(),
            cmd: vec!["true".into()],
            timeout: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    server::remove_pod(&mut c, &pod).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_cni_add_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let net = BridgeNet::new(tmp.path(), 2);
    // A second plugin that fails after the bridge has attached the pod.
    let path = net.conf_dir.join("10-test.conflist");
    let mut conf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    conf["plugins"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "type": "tuning", "sysctl": {"net.ipv4.conf.eth0.no_such_knob": "1"}
        }));
    std::fs::write(&path, conf.to_string()).unwrap();
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: runtime_support::handler(),
            cni_conf_dir: net.conf_dir.clone(),
        },
    );
    let mut c = srv.client().await;
    let cfg = server::pod_config("cnifail", &tmp.path().join("logs"));
    let e = c
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(cfg.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        e.message().contains("tuning") || e.message().contains("no_such_knob"),
        "{}",
        e.message()
    );
    let pods = c
        .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(pods.is_empty());
    assert!(net.leases().is_empty(), "leases: {:?}", net.leases());
    assert!(net.veths().is_empty(), "veths: {:?}", net.veths());
    let netns = tmp.path().join("state/netns");
    assert!(!netns.exists() || std::fs::read_dir(&netns).unwrap().next().is_none());
    assert!(runtime_support::mounts_with(&tmp.path().display().to_string()).is_empty());
    // The name is free again.
    let e = c
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(cfg),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_ne!(e.code(), Code::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_sandbox_image_is_pulled_and_a_failed_pull_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: the pull fails fast.
    std::fs::write(
        tmp.path().join("extra.toml"),
        "sandbox_image = \"127.0.0.1:1/kina/pause:none\"\n",
    )
    .unwrap();
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: runtime_support::handler(),
            cni_conf_dir: tmp.path().join("no-cni"),
        },
    );
    let mut c = srv.client().await;
    let cfg = server::host_network(server::pod_config("nopause", &tmp.path().join("logs")));
    let e = c
        .run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(cfg),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(
        e.message().contains("127.0.0.1:1/kina/pause:none"),
        "{}",
        e.message()
    );
    assert!(srv.log().contains("pulling it"), "{}", srv.log());
}
