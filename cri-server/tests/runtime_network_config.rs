//! UpdateRuntimeConfig: the pod CIDR the kubelet sends is rendered into the CNI conf template,
//! the network becomes ready, and pods get addresses from that CIDR.

mod runtime_support;

use k8s_cri::v1 as cri;
use runtime_support::net::BridgeNet;
use runtime_support::server::{self, Options, Server};

async fn network_ready(
    c: &mut k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>,
) -> bool {
    let st = c
        .status(cri::StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    st.status
        .unwrap()
        .conditions
        .iter()
        .any(|x| x.r#type == "NetworkReady" && x.status)
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_cidr_reaches_the_cni_config() {
    let tmp = tempfile::tempdir().unwrap();
    let net = BridgeNet::new(tmp.path(), 5);
    // Turn the test network into a template: the subnet comes from UpdateRuntimeConfig.
    let conf = net.conf_dir.join("10-test.conflist");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::remove_file(&conf).unwrap();
    let subnet = format!("{}.0/24", net.prefix);
    std::fs::write(
        tmp.path().join("cni-template.conflist"),
        text.replace(&subnet, "{{.PodCIDR}}"),
    )
    .unwrap();
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: runtime_support::handler(),
            cni_conf_dir: net.conf_dir.clone(),
        },
    );
    let mut c = srv.client().await;
    assert!(!network_ready(&mut c).await);
    c.update_runtime_config(cri::UpdateRuntimeConfigRequest {
        runtime_config: Some(cri::RuntimeConfig {
            network_config: Some(cri::NetworkConfig {
                pod_cidr: subnet.clone(),
            }),
        }),
    })
    .await
    .unwrap();
    assert!(network_ready(&mut c).await, "{}", srv.log());
    let rendered = std::fs::read_dir(&net.conf_dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    assert!(std::fs::read_to_string(rendered).unwrap().contains(&subnet));
    let cfg = server::pod_config("cidr", &tmp.path().join("logs"));
    let (pod, _) = server::run_pod(&mut c, &cfg, &[]).await;
    let ip = c
        .pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap()
        .network
        .unwrap()
        .ip;
    assert!(
        ip.starts_with(&format!("{}.", net.prefix)),
        "{ip} not in {subnet}"
    );
    server::remove_pod(&mut c, &pod).await;
}
