//! Container and pod stats through the real crictl: `crictl stats` / `statsp` show the cgroup
//! CPU and memory figures, the writable layer's usage and process counts of a running pod, and
//! `crictl inspect` the limits the test set.

mod runtime_support;

use runtime_support::server::{Options, Server};

fn ok(srv: &Server, args: &[&str]) -> String {
    let out = srv.crictl(args);
    assert!(
        out.status.success(),
        "crictl {args:?}: {}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
        srv.log()
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A protojson UInt64Value (`{"value": "123"}`) as a number.
fn u64_of(v: &serde_json::Value) -> Option<u64> {
    let v = &v["value"];
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

#[test]
fn crictl_stats_show_cgroup_usage_and_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: "kina".into(),
            cni_conf_dir: tmp.path().join("no-cni"),
        },
    );
    let pod_json = tmp.path().join("pod.json");
    std::fs::write(
        &pod_json,
        serde_json::json!({
            "metadata": {"name": "stats", "namespace": "default", "uid": "stats-uid", "attempt": 1},
            "log_directory": tmp.path().join("logs"),
            "linux": {
                "cgroup_parent": format!("{}/stats", runtime_support::server::cgroup_root(tmp.path())),
                "security_context": {"namespace_options": {"network": 2}},
            },
        })
        .to_string(),
    )
    .unwrap();
    let ctr_json = tmp.path().join("ctr.json");
    std::fs::write(
        &ctr_json,
        serde_json::json!({
            "metadata": {"name": "busy"},
            "image": {"image": runtime_support::images::BUSYBOX},
            "command": ["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=3 2>/dev/null; while :; do :; done"],
            "log_path": "busy.log",
            "labels": {"app": "busy"},
            "linux": {"resources": {"memory_limit_in_bytes": 67108864, "cpu_period": 100000, "cpu_quota": 50000}},
        })
        .to_string(),
    )
    .unwrap();
    let pod = ok(&srv, &["runp", pod_json.to_str().unwrap()])
        .trim()
        .to_owned();
    let ctr = ok(
        &srv,
        &[
            "create",
            &pod,
            ctr_json.to_str().unwrap(),
            pod_json.to_str().unwrap(),
        ],
    )
    .trim()
    .to_owned();
    ok(&srv, &["start", &ctr]);
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&srv, &["inspect", "-o", "json", &ctr])).unwrap();
    let res = &inspect["status"]["resources"]["linux"];
    assert_eq!(
        res["memoryLimitInBytes"].to_string().trim_matches('"'),
        "67108864",
        "{inspect}"
    );
    assert_eq!(
        res["cpuQuota"].to_string().trim_matches('"'),
        "50000",
        "{inspect}"
    );
    // The layer write has happened and the loop burns CPU.
    let mut stats = serde_json::Value::Null;
    let seen = runtime_support::wait_until(20, || {
        let all: serde_json::Value =
            serde_json::from_str(&ok(&srv, &["stats", "-o", "json", "--id", &ctr])).unwrap();
        stats = all["stats"][0].clone();
        u64_of(&stats["writableLayer"]["usedBytes"]).unwrap_or(0) >= 3 << 20
            && u64_of(&stats["cpu"]["usageNanoCores"]).unwrap_or(0) > 0
    });
    assert!(seen, "{stats}\n{}", srv.log());
    assert_eq!(stats["attributes"]["id"], ctr.as_str());
    assert_eq!(stats["attributes"]["labels"]["app"], "busy");
    assert!(u64_of(&stats["cpu"]["usageCoreNanoSeconds"]).unwrap() > 0);
    let ws = u64_of(&stats["memory"]["workingSetBytes"]).unwrap();
    assert!(ws > 0, "{stats}");
    let avail = u64_of(&stats["memory"]["availableBytes"]).unwrap();
    assert_eq!(avail, 67108864 - ws, "{stats}");
    // Filters: by pod and by label; an unknown label matches nothing.
    let by_pod: serde_json::Value =
        serde_json::from_str(&ok(&srv, &["stats", "-o", "json", "--pod", &pod])).unwrap();
    assert_eq!(by_pod["stats"].as_array().unwrap().len(), 1, "{by_pod}");
    let none: serde_json::Value =
        serde_json::from_str(&ok(&srv, &["stats", "-o", "json", "--label", "app=other"])).unwrap();
    assert!(
        none["stats"].as_array().is_none_or(|a| a.is_empty()),
        "{none}"
    );
    // Pod stats: the pod cgroup's processes (pause + sh), CPU and memory, and its container.
    let pods: serde_json::Value =
        serde_json::from_str(&ok(&srv, &["statsp", "-o", "json", "--id", &pod])).unwrap();
    let p = &pods["stats"][0];
    assert_eq!(p["attributes"]["id"], pod.as_str(), "{pods}");
    let linux = &p["linux"];
    assert!(
        u64_of(&linux["process"]["processCount"]).unwrap() >= 2,
        "{pods}"
    );
    assert!(u64_of(&linux["cpu"]["usageCoreNanoSeconds"]).unwrap() > 0);
    assert!(u64_of(&linux["memory"]["workingSetBytes"]).unwrap() > 0);
    assert_eq!(linux["containers"][0]["attributes"]["id"], ctr.as_str());
    // cAdvisor-named metrics with the same figures.
    let descs = ok(&srv, &["metricdescs", "-o", "json"]);
    assert!(
        descs.contains("container_cpu_usage_seconds_total")
            && descs.contains("container_memory_working_set_bytes"),
        "{descs}"
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&ok(&srv, &["metricsp", "-o", "json"])).unwrap();
    let pm = metrics["podMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["podSandboxId"] == pod.as_str())
        .unwrap_or_else(|| panic!("{metrics}"))
        .clone();
    let cm = &pm["containerMetrics"][0];
    assert_eq!(cm["containerId"], ctr.as_str(), "{pm}");
    let ws = cm["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "container_memory_working_set_bytes")
        .unwrap_or_else(|| panic!("{pm}"));
    assert_eq!(ws["labelValues"][0], "busy", "{ws}");
    assert!(u64_of(&ws["value"]).unwrap() > 0, "{ws}");
    // An unknown id is a clear error.
    let out = srv.crictl(&["stats", "--id", "no-such-ctr", "-o", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(&ctr), "{text}");
    ok(&srv, &["stop", "-t", "1", &ctr]);
    ok(&srv, &["rm", &ctr]);
    ok(&srv, &["stopp", &pod]);
    ok(&srv, &["rmp", &pod]);
}
