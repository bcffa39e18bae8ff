//! What a container sees of its CRI settings: hostname, DNS, sysctls, mounts with propagation,
//! devices, env, working dir, users and groups, read-only rootfs, capabilities, privileged,
//! seccomp, masked paths, no_new_privs, oom_score_adj and the pod's PID namespace.

mod runtime_support;

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use runtime_support::net::BridgeNet;
use runtime_support::server::{self, Options, Server};
use tonic::transport::Channel;

/// Unmounts (lazily) on drop.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

async fn exec(c: &mut RuntimeServiceClient<Channel>, id: &str, script: &str) -> (String, i32) {
    let r = c
        .exec_sync(cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["sh".into(), "-c".into(), script.into()],
            timeout: 20,
        })
        .await
        .unwrap()
        .into_inner();
    (
        String::from_utf8_lossy(&r.stdout).trim().to_owned()
            + String::from_utf8_lossy(&r.stderr).trim(),
        r.exit_code,
    )
}

async fn create_start(
    c: &mut RuntimeServiceClient<Channel>,
    pod: &str,
    pod_cfg: &cri::PodSandboxConfig,
    cc: cri::ContainerConfig,
) -> String {
    let id = c
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(cc),
            sandbox_config: Some(pod_cfg.clone()),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    c.start_container(cri::StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("StartContainer");
    id
}

fn sc(
    f: impl FnOnce(&mut cri::LinuxContainerSecurityContext),
) -> Option<cri::LinuxContainerConfig> {
    let mut s = cri::LinuxContainerSecurityContext::default();
    f(&mut s);
    Some(cri::LinuxContainerConfig {
        security_context: Some(s),
        resources: None,
    })
}

fn bounding_set_hex() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap();
    l[7..].trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_settings_reach_the_containers() {
    let tmp = tempfile::tempdir().unwrap();
    let net = BridgeNet::new(tmp.path(), 4);
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: runtime_support::handler(),
            cni_conf_dir: net.conf_dir.clone(),
        },
    );
    let mut c = srv.client().await;
    let mut cfg = server::pod_config("settings", &tmp.path().join("logs"));
    cfg.hostname = "my-pod-host".into();
    cfg.dns_config = Some(cri::DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["ns.svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    cfg.linux.as_mut().unwrap().sysctls = [
        ("kernel.shm_rmid_forced".to_owned(), "1".to_owned()),
        (
            "net.ipv4.ip_unprivileged_port_start".to_owned(),
            "80".to_owned(),
        ),
    ]
    .into();
    let (pod, ids) =
        server::run_pod(&mut c, &cfg, &[("a", "sleep 1000"), ("b", "sleep 2000")]).await;
    let a = &ids[0];
    assert_eq!(exec(&mut c, a, "hostname").await.0, "my-pod-host");
    let (resolv, _) = exec(&mut c, a, "cat /etc/resolv.conf").await;
    assert_eq!(
        resolv,
        "nameserver 10.96.0.10\nsearch ns.svc.cluster.local\noptions ndots:5"
    );
    assert_eq!(
        exec(&mut c, a, "cat /proc/sys/kernel/shm_rmid_forced")
            .await
            .0,
        "1"
    );
    assert_eq!(
        exec(
            &mut c,
            a,
            "cat /proc/sys/net/ipv4/ip_unprivileged_port_start"
        )
        .await
        .0,
        "80"
    );
    // One PID namespace for the pod: the pause process and the other container are visible.
    let (ps, _) = exec(&mut c, a, "ps -o args").await;
    assert!(ps.contains("/pause") && ps.contains("sleep 2000"), "{ps}");
    // A container asking for its own PID namespace sees only itself.
    let mut own = server::container_config("own", "sleep 3000");
    own.linux = sc(|s| {
        s.namespace_options = Some(cri::NamespaceOption {
            pid: cri::NamespaceMode::Container as i32,
            ..Default::default()
        })
    });
    let own = create_start(&mut c, &pod, &cfg, own).await;
    let (ps, _) = exec(&mut c, &own, "ps -o args").await;
    assert!(!ps.contains("/pause") && ps.contains("sleep 3000"), "{ps}");
    // TARGET joins another container's PID namespace (ephemeral debug containers).
    let mut dbg = server::container_config("debug", "sleep 4000");
    dbg.linux = sc(|s| {
        s.namespace_options = Some(cri::NamespaceOption {
            pid: cri::NamespaceMode::Target as i32,
            target_id: own.clone(),
            ..Default::default()
        })
    });
    let dbg = create_start(&mut c, &pod, &cfg, dbg).await;
    let (ps, _) = exec(&mut c, &dbg, "ps -o args").await;
    assert!(
        ps.contains("sleep 3000") && ps.contains("sleep 4000") && !ps.contains("/pause"),
        "{ps}"
    );
    server::remove_pod(&mut c, &pod).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn container_settings_are_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(
        tmp.path(),
        Options {
            handler: runtime_support::handler(),
            cni_conf_dir: tmp.path().join("no-cni"),
        },
    );
    let mut c = srv.client().await;
    let cfg = server::host_network(server::pod_config("ctr", &tmp.path().join("logs")));
    let (pod, _) = server::run_pod(&mut c, &cfg, &[]).await;

    // Mounts (read-only and host-to-container propagation), devices, env, working dir.
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("file"), "from-host").unwrap();
    // HostToContainer needs a shared source (the host's / is private here): make one, as the
    // kubelet's root dir would be.
    let prop = tmp.path().join("prop");
    std::fs::create_dir_all(&prop).unwrap();
    let mut refused = server::container_config("refused", "true");
    refused.mounts = vec![cri::Mount {
        container_path: "/prop".into(),
        host_path: prop.display().to_string(),
        propagation: cri::MountPropagation::PropagationBidirectional as i32,
        ..Default::default()
    }];
    let shared_root = std::path::Path::new("/proc/self/mountinfo");
    let root_private = !std::fs::read_to_string(shared_root)
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/") && l.contains("shared:"));
    if root_private {
        let e = c
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(refused),
                sandbox_config: Some(cfg.clone()),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().contains("mounts[0].propagation"),
            "{}",
            e.message()
        );
    }
    nix::mount::mount(
        Some(&prop),
        &prop,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    nix::mount::mount(
        None::<&str>,
        &prop,
        None::<&str>,
        nix::mount::MsFlags::MS_SHARED,
        None::<&str>,
    )
    .unwrap();
    let _unmount_prop = Unmount(prop.clone());
    let mut cc = server::container_config("mounts", "sleep 1000");
    cc.mounts = vec![
        cri::Mount {
            container_path: "/data".into(),
            host_path: data.display().to_string(),
            readonly: true,
            ..Default::default()
        },
        cri::Mount {
            container_path: "/prop".into(),
            host_path: prop.display().to_string(),
            propagation: cri::MountPropagation::PropagationHostToContainer as i32,
            ..Default::default()
        },
    ];
    cc.devices = vec![cri::Device {
        container_path: "/dev/mynull".into(),
        host_path: "/dev/null".into(),
        permissions: "rwm".into(),
    }];
    cc.envs = vec![cri::KeyValue {
        key: "IMAGE_VAR".into(),
        value: "overridden".into(),
    }];
    cc.working_dir = "/tmp".into();
    let id = create_start(&mut c, &pod, &cfg, cc).await;
    assert_eq!(exec(&mut c, &id, "cat /data/file").await.0, "from-host");
    assert_ne!(
        exec(&mut c, &id, "touch /data/new").await.1,
        0,
        "read-only mount"
    );
    // Host-to-container propagation: a mount made on the host later shows up inside.
    let sub = prop.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    std::fs::write(sub.join("late"), "propagated").unwrap();
    let seen = exec(&mut c, &id, "cat /prop/sub/late").await.0;
    nix::mount::umount2(&sub, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert_eq!(seen, "propagated");
    assert_eq!(
        exec(
            &mut c,
            &id,
            "test -c /dev/mynull && echo ok > /dev/mynull && echo dev"
        )
        .await
        .0,
        "dev"
    );
    assert_eq!(
        exec(&mut c, &id, "echo $IMAGE_VAR; pwd").await.0,
        "overridden\n/tmp"
    );
    assert_eq!(
        exec(&mut c, &id, "grep NoNewPrivs /proc/self/status")
            .await
            .0,
        "NoNewPrivs:\t0"
    );

    // Users: the image's passwd/group, runAsUser, runAsGroup, supplemental groups.
    let mut cc = server::container_config("user", "sleep 1000");
    cc.linux = sc(|s| {
        s.run_as_username = "web".into();
        s.supplemental_groups = vec![7];
        s.readonly_rootfs = true;
        s.no_new_privs = true;
    });
    let id = create_start(&mut c, &pod, &cfg, cc).await;
    assert_eq!(
        exec(&mut c, &id, "id -u; id -g; id -G").await.0,
        "1000\n1001\n1001 7 44"
    );
    assert_ne!(exec(&mut c, &id, "touch /x").await.1, 0, "read-only rootfs");
    assert_eq!(
        exec(&mut c, &id, "grep NoNewPrivs /proc/self/status")
            .await
            .0,
        "NoNewPrivs:\t1"
    );
    let st = server::container_status(&mut c, &id).await;
    let user = st.user.unwrap().linux.unwrap();
    assert_eq!((user.uid, user.gid), (1000, 1001));
    let mut cc = server::container_config("uid", "sleep 1000");
    cc.linux = sc(|s| {
        s.run_as_user = Some(cri::Int64Value { value: 4242 });
        s.run_as_group = Some(cri::Int64Value { value: 4343 });
    });
    let id = create_start(&mut c, &pod, &cfg, cc).await;
    assert_eq!(exec(&mut c, &id, "id -u; id -g").await.0, "4242\n4343");

    // Capabilities: drop ALL + add one; privileged gets the whole bounding set.
    let mut cc = server::container_config("caps", "sleep 1000");
    cc.linux = sc(|s| {
        s.capabilities = Some(cri::Capability {
            add_capabilities: vec!["NET_BIND_SERVICE".into()],
            drop_capabilities: vec!["ALL".into()],
            ..Default::default()
        })
    });
    let id = create_start(&mut c, &pod, &cfg, cc).await;
    assert_eq!(
        exec(&mut c, &id, "grep CapEff /proc/self/status").await.0,
        "CapEff:\t0000000000000400"
    );
    let mut cc = server::container_config("priv", "sleep 1000");
    cc.linux = sc(|s| s.privileged = true);
    let id = create_start(&mut c, &pod, &cfg, cc).await;
    assert_eq!(
        exec(&mut c, &id, "grep CapEff /proc/self/status").await.0,
        format!("CapEff:\t{}", bounding_set_hex())
    );
    assert_eq!(
        exec(
            &mut c,
            &id,
            "cat /proc/kcore >/dev/null 2>&1; test -e /dev/loop-control && echo host-devs"
        )
        .await
        .0,
        "host-devs"
    );

    // Seccomp: RuntimeDefault refuses personality(2); Unconfined allows it.
    let mut cc = server::container_config("seccomp", "sleep 1000");
    cc.linux = sc(|s| {
        s.seccomp = Some(cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32,
            ..Default::default()
        })
    });
    let id = create_start(&mut c, &pod, &cfg, cc).await;
    assert_ne!(exec(&mut c, &id, "linux32 true").await.1, 0);
    let mut cc = server::container_config("unconfined", "sleep 1000");
    cc.linux = sc(|s| {
        s.seccomp = Some(cri::SecurityProfile {
            profile_type: cri::security_profile::ProfileType::Unconfined as i32,
            ..Default::default()
        });
        s.masked_paths = vec!["/proc/cpuinfo".into()];
    });
    let id = create_start(&mut c, &pod, &cfg, cc).await;
    assert_eq!(exec(&mut c, &id, "linux32 true").await.1, 0);
    assert_eq!(exec(&mut c, &id, "cat /proc/cpuinfo | wc -c").await.0, "0");

    // Resources: oom_score_adj below ours is clamped, not refused; cpu settings reach cgroups.
    let mut cc = server::container_config("res", "sleep 1000");
    cc.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources {
            oom_score_adj: 500,
            cpu_shares: 512,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            cpuset_cpus: "0".into(),
            ..Default::default()
        }),
        security_context: None,
    });
    let id = create_start(&mut c, &pod, &cfg, cc).await;
    assert_eq!(
        exec(&mut c, &id, "cat /proc/self/oom_score_adj").await.0,
        "500"
    );
    let info = c
        .container_status(cri::ContainerStatusRequest {
            container_id: id.clone(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner()
        .info;
    let info: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
    let pid = info["pid"].as_i64().unwrap();
    let init_adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    assert_eq!(init_adj.trim(), "500");
    let cg = format!("{}/ctr/{id}", server::cgroup_root(tmp.path()));
    let read = |ctrl: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}{cg}/{f}"))
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(read("cpu", "cpu.shares"), "512");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpuset", "cpuset.cpus"), "0");
    server::remove_pod(&mut c, &pod).await;
}
