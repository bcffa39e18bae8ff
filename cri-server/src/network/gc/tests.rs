//! STATUS/GC protocol handling, against a recording script plugin (Debian's plugins are
//! CNI 1.0.0 and have neither verb).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::network::cni::CniConfig;

/// A plugin that logs "<verb> <container id> <stdin>" and answers ADD with an address;
/// STATUS fails while `<dir>/down` exists.
fn recorder(dir: &Path) -> CniConfig {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("log");
    let down = dir.join("down");
    let script = format!(
        r#"#!/bin/sh
conf=$(cat)
echo "$CNI_COMMAND $CNI_CONTAINERID $conf" >> {log}
case "$CNI_COMMAND" in
ADD) echo '{{"cniVersion":"1.1.0","interfaces":[{{"name":"eth0","sandbox":"/x"}}],"ips":[{{"interface":0,"address":"10.0.0.5/24"}}]}}' ;;
STATUS) if [ -e {down} ]; then echo '{{"code":50,"msg":"daemon down"}}'; exit 1; fi ;;
esac
"#,
        log = log.display(),
        down = down.display()
    );
    let p = bin.join("rec");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf_dir = dir.join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();
    CniConfig {
        conf_dir,
        bin_dirs: vec![bin],
        cache_dir: dir.join("cache"),
        ..CniConfig::default()
    }
}

fn write_list(cfg: &CniConfig, version: &str) {
    std::fs::write(
        cfg.conf_dir.join("10-rec.conflist"),
        format!(r#"{{"cniVersion":"{version}","name":"rec","plugins":[{{"type":"rec"}},{{"type":"rec"}}]}}"#),
    )
    .unwrap();
}

fn log_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn pod(id: &str) -> PodNetworkRequest {
    PodNetworkRequest {
        container_id: id.into(),
        netns_path: "/proc/self/ns/net".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn status_runs_only_for_1_1_0_networks_and_reports_plugin_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = recorder(tmp.path());
    write_list(&cfg, "1.0.0");
    let mgr = CniManager::new(cfg.clone());
    mgr.network_status().await.unwrap();
    assert!(log_lines(tmp.path()).is_empty(), "no STATUS before 1.1.0");

    write_list(&cfg, "1.1.0");
    mgr.reload();
    mgr.network_status().await.unwrap();
    let lines = log_lines(tmp.path());
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l.starts_with("STATUS ")), "{lines:?}");

    std::fs::write(tmp.path().join("down"), "").unwrap();
    let reason = mgr.network_status().await.unwrap_err();
    assert!(
        reason.contains("daemon down") && reason.contains("rec"),
        "{reason}"
    );
}

#[tokio::test]
async fn gc_deletes_stale_cached_attachments_and_passes_valid_ones_to_plugins() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = recorder(tmp.path());
    write_list(&cfg, "1.1.0");
    let mgr = CniManager::new(cfg.clone());
    mgr.setup(&pod("live1")).await.unwrap();
    mgr.setup(&pod("stale2")).await.unwrap();
    std::fs::remove_file(tmp.path().join("log")).unwrap();

    let live: HashSet<String> = ["live1".to_string()].into();
    let report = mgr.gc(&live).await.unwrap();
    assert_eq!(report.removed, vec!["stale2".to_string()]);
    assert!(report.failed.is_empty());

    let lines = log_lines(tmp.path());
    let dels: Vec<_> = lines.iter().filter(|l| l.starts_with("DEL ")).collect();
    assert_eq!(dels.len(), 2, "{lines:?}");
    assert!(dels.iter().all(|l| l.starts_with("DEL stale2 ")));
    assert!(
        dels[0].contains("\"prevResult\""),
        "DEL gets the cached result"
    );
    let gcs: Vec<_> = lines.iter().filter(|l| l.starts_with("GC ")).collect();
    assert_eq!(gcs.len(), 2, "{lines:?}");
    assert!(
        gcs[0].contains(r#""cni.dev/valid-attachments":[{"containerID":"live1","ifname":"eth0"}]"#),
        "{}",
        gcs[0]
    );

    let cache = crate::network::cache::ResultCache::new(&cfg.cache_dir);
    assert!(cache.load("rec", "stale2", "eth0").unwrap().is_none());
    assert!(cache.load("rec", "live1", "eth0").unwrap().is_some());
}
