//! crictl smoke test on the native runtime (kina-runtime): runp, create, start, ps, pods, logs,
//! inspect, exec --sync, stop, rm, rmp.

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

fn smoke(handler: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: handler.into(),
            cni_conf_dir: tmp.path().join("no-cni"),
        },
    );
    let logs = tmp.path().join("logs");
    let pod_json = tmp.path().join("pod.json");
    std::fs::write(
        &pod_json,
        serde_json::json!({
            "metadata": {"name": "smoke", "namespace": "default", "uid": "smoke-uid", "attempt": 1},
            "hostname": "smokehost",
            "log_directory": logs,
            "linux": {
                "cgroup_parent": format!("{}/smoke", runtime_support::server::cgroup_root(tmp.path())),
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
            "metadata": {"name": "app"},
            "image": {"image": runtime_support::images::BUSYBOX},
            "command": ["/bin/sh", "-c", "echo smoke-log-line; hostname; exec sleep 1000"],
            "log_path": "app.log",
            "envs": [{"key": "GREETING", "value": "hi"}],
        })
        .to_string(),
    )
    .unwrap();
    let pod = ok(&srv, &["runp", pod_json.to_str().unwrap()])
        .trim()
        .to_owned();
    assert_eq!(pod.len(), 64, "{pod}");
    // The handler's runtime holds the pause container's state.
    assert!(
        tmp.path()
            .join("state/runtime")
            .join(handler)
            .join(&pod)
            .exists()
    );
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
    let ps = ok(&srv, &["ps"]);
    assert!(ps.contains(&ctr[..13]) && ps.contains("Running"), "{ps}");
    let pods = ok(&srv, &["pods"]);
    assert!(pods.contains("smoke") && pods.contains("Ready"), "{pods}");
    assert!(runtime_support::wait_until(10, || ok(
        &srv,
        &["logs", &ctr]
    )
    .contains("smoke-log-line")));
    let inspect: serde_json::Value = serde_json::from_str(&ok(&srv, &["inspect", &ctr])).unwrap();
    assert_eq!(inspect["status"]["state"], "CONTAINER_RUNNING");
    assert_eq!(
        inspect["status"]["logPath"],
        logs.join("app.log").display().to_string()
    );
    let inspectp: serde_json::Value = serde_json::from_str(&ok(&srv, &["inspectp", &pod])).unwrap();
    assert_eq!(inspectp["status"]["state"], "SANDBOX_READY");
    let out = ok(
        &srv,
        &[
            "exec",
            "--sync",
            &ctr,
            "sh",
            "-c",
            "echo $GREETING $IMAGE_VAR",
        ],
    );
    assert_eq!(out.trim(), "hi from-image");
    let out = ok(&srv, &["exec", "-s", &ctr, "id", "-u"]);
    assert_eq!(out.trim(), "0");
    ok(&srv, &["stop", "-t", "1", &ctr]);
    let inspect: serde_json::Value = serde_json::from_str(&ok(&srv, &["inspect", &ctr])).unwrap();
    assert_eq!(inspect["status"]["state"], "CONTAINER_EXITED");
    ok(&srv, &["rm", &ctr]);
    ok(&srv, &["stopp", &pod]);
    ok(&srv, &["rmp", &pod]);
    assert!(ok(&srv, &["pods", "-q"]).trim().is_empty());
    assert!(runtime_support::mounts_with(&tmp.path().display().to_string()).is_empty());
}

#[test]
fn crictl_smoke_on_kina_runtime() {
    smoke("kina");
}

#[test]
fn crictl_smoke_on_runc_handler() {
    smoke("runc");
}
