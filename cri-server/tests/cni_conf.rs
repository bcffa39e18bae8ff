//! The conf dir as the runtime sees it: NetworkReady follows configs appearing and plugins
//! missing, the first file in lexical order wins, and UpdateRuntimeConfig renders the
//! conf template once.

mod cni_support;

use std::sync::Arc;
use std::time::Duration;

use cni_support::*;
use cri_server::network::{CniManager, NetworkState};

#[tokio::test]
async fn network_ready_flips_when_a_conflist_appears() {
    let env = TestEnv::new();
    let mgr = Arc::new(CniManager::new(env.config.clone()));
    let reason = mgr.network_ready().unwrap_err();
    assert!(reason.contains("no CNI network config found"), "{reason}");
    assert!(
        reason.contains(&env.config.conf_dir.display().to_string()),
        "{reason}"
    );
    assert!(mgr.network().unwrap_err().is_retryable());

    let mut rx = mgr.subscribe();
    let watcher = mgr.watch(Duration::from_millis(50));
    // Written as a temp file then renamed, as config managers do.
    let tmp = env.config.conf_dir.join("10-kt.conflist.tmp");
    std::fs::write(
        &tmp,
        env.conflist("kt", "1.0.0", "10.88.10.0/24", &[LOOPBACK]),
    )
    .unwrap();
    std::fs::rename(&tmp, env.config.conf_dir.join("10-kt.conflist")).unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|s| matches!(s, NetworkState::Ready(_))),
    )
    .await
    .expect("watcher noticed the config")
    .unwrap();
    mgr.network_ready().expect("ready");
    assert_eq!(mgr.network().unwrap().name(), "kt");
    // Reloading an unchanged dir does not wake subscribers.
    rx.borrow_and_update();
    mgr.reload();
    assert!(!rx.has_changed().unwrap());

    // Removing it flips back.
    std::fs::remove_file(env.config.conf_dir.join("10-kt.conflist")).unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|s| matches!(s, NetworkState::NotReady(_))),
    )
    .await
    .expect("watcher noticed the removal")
    .unwrap();
    watcher.abort();
}

#[test]
fn first_config_in_lexical_order_wins_and_conf_files_are_wrapped() {
    let env = TestEnv::new();
    env.write_conf(
        "20-b.conflist",
        &env.conflist("b", "1.0.0", "10.88.11.0/24", &[]),
    );
    env.write_conf(
        "10-a.conflist",
        &env.conflist("a", "1.0.0", "10.88.12.0/24", &[]),
    );
    env.write_conf("00-broken.conflist", "{\"cniVersion\": ");
    let mgr = CniManager::new(env.config.clone());
    assert_eq!(mgr.network().unwrap().name(), "a");

    env.write_conf(
        "05-single.conf",
        r#"{"cniVersion": "0.4.0", "name": "single", "type": "bridge",
            "ipam": {"type": "host-local", "subnet": "10.88.13.0/24"}}"#,
    );
    mgr.reload();
    let net = mgr.network().unwrap();
    assert_eq!(net.name(), "single");
    assert_eq!(net.list().plugins.len(), 1);
    assert_eq!(net.list().cni_version, "0.4.0");
}

#[test]
fn missing_plugin_binary_makes_the_network_not_ready() {
    let mut env = TestEnv::new();
    env.config.bin_dirs = vec![env.tmp.path().join("empty-bin")];
    env.write_conf(
        "10-kt.conflist",
        &env.conflist("kt", "1.0.0", "10.88.14.0/24", &[]),
    );
    let mgr = CniManager::new(env.config.clone());
    let reason = mgr.network_ready().unwrap_err();
    assert!(reason.contains("\"bridge\" not found"), "{reason}");
}

const TEMPLATE: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "templated",
  "plugins": [
    {"type": "bridge", "bridge": "kt-tpl", "isGateway": true,
     "ipam": {"type": "host-local",
              "ranges": [{{- range $i, $r := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$r}}"}]{{end}}],
              "routes": [{{- range $i, $r := .Routes}}{{if $i}}, {{end}}{"dst": "{{$r}}"}{{end}}]}},
    {"type": "loopback"}
  ]
}"#;

#[test]
fn update_runtime_config_renders_the_template_only_while_not_ready() {
    let mut env = TestEnv::new();
    let template = env.tmp.path().join("template.conflist");
    std::fs::write(&template, TEMPLATE).unwrap();
    env.config.conf_template = Some(template.clone());
    let mgr = CniManager::new(env.config.clone());
    assert!(mgr.network_ready().is_err());
    assert_eq!(mgr.update_runtime_config(&[]).unwrap(), None, "no CIDR yet");

    let cidrs = [
        "10.244.1.0/24".parse().unwrap(),
        "fd00:10:244:1::/64".parse().unwrap(),
    ];
    let written = mgr
        .update_runtime_config(&cidrs)
        .unwrap()
        .expect("rendered");
    assert_eq!(written, env.config.conf_dir.join("10-kina-net.conflist"));
    mgr.network_ready().expect("ready after rendering");
    let net = mgr.network().unwrap();
    assert_eq!(net.name(), "templated");
    let ipam = &net.list().plugins[0].raw["ipam"];
    assert_eq!(ipam["ranges"][0][0]["subnet"], "10.244.1.0/24");
    assert_eq!(ipam["ranges"][1][0]["subnet"], "fd00:10:244:1::/64");
    assert_eq!(ipam["routes"][1]["dst"], "::/0");

    // Once a network is ready, a new CIDR does not overwrite it.
    let before = std::fs::read(&written).unwrap();
    assert_eq!(
        mgr.update_runtime_config(&["10.9.0.0/16".parse().unwrap()])
            .unwrap(),
        None
    );
    assert_eq!(std::fs::read(&written).unwrap(), before);

    // A broken template is an error naming the template, and writes nothing.
    std::fs::remove_file(&written).unwrap();
    mgr.reload();
    std::fs::write(&template, "{\"name\": \"{{.Nope}}\"}").unwrap();
    let err = mgr.update_runtime_config(&cidrs).unwrap_err().to_string();
    assert!(
        err.contains("template.conflist") && err.contains(".Nope"),
        "{err}"
    );
    assert!(!written.exists());
}
