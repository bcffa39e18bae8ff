//! Node containers without Kubernetes (issue: kina nodes): time from "create" to systemd
//! `running` for one node, idle memory of a booted node (its cgroup's working set: usage minus
//! inactive file cache, summed over the node), and the time `delete` takes. Targets: ready
//! < 1 s, idle node < 60 MiB. Run as root with a node image:
//!   KINA_BENCH_IMAGE=_output/node-image cargo bench -p kina --bench nodes
//! Everything happens in a network namespace the bench creates and removes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kina::provider::native::NativeProvider;
use kina::provider::{NodeSpec, Provider, Role};
use kina::state::StateStore;

fn working_set(node: &str) -> Option<u64> {
    let dir = PathBuf::from(format!("/sys/fs/cgroup/memory/kina-{node}"));
    let v1 = std::fs::read_to_string(dir.join("memory.usage_in_bytes")).ok();
    let (usage, stat) = match v1 {
        Some(u) => (u, std::fs::read_to_string(dir.join("memory.stat")).ok()?),
        None => {
            let d = PathBuf::from(format!("/sys/fs/cgroup/kina-{node}"));
            (
                std::fs::read_to_string(d.join("memory.current")).ok()?,
                std::fs::read_to_string(d.join("memory.stat")).ok()?,
            )
        }
    };
    let usage: u64 = usage.trim().parse().ok()?;
    let inactive = stat
        .lines()
        .find_map(|l| {
            l.strip_prefix("total_inactive_file ")
                .or_else(|| l.strip_prefix("inactive_file "))
        })
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Some(usage.saturating_sub(inactive))
}

fn main() {
    let Some(image) = std::env::var_os("KINA_BENCH_IMAGE") else {
        eprintln!("set KINA_BENCH_IMAGE to a node image (OCI layout dir or archive)");
        std::process::exit(2);
    };
    let image = PathBuf::from(image)
        .canonicalize()
        .expect("KINA_BENCH_IMAGE exists");
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let runtime = ["release", "debug"]
        .iter()
        .map(|p| target.join(p).join("kina-runtime"))
        .find(|p| p.is_file())
        .expect("build kina-runtime first (cargo build --release -p kina-runtime)");
    let state = std::env::temp_dir().join(format!("kina-bench-nodes-{}", std::process::id()));
    let ns = format!("kina-bench-{}", std::process::id());
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
    ok(Command::new("ip").args(["netns", "add", &ns]));
    let ns_path = Path::new("/run/netns").join(&ns);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            let f = std::fs::File::open(&ns_path).unwrap();
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let provider = NativeProvider::new(StateStore::open(&state), runtime.clone());
            let img = image.display().to_string();
            provider.ensure_image(&img).unwrap();
            let mut ready = Vec::new();
            let mut deleted = Vec::new();
            let mut memory = Vec::new();
            for run in 0..runs {
                let name = format!("bench{run}-control-plane");
                let spec = NodeSpec {
                    cluster: format!("bench{run}"),
                    name: name.clone(),
                    role: Role::ControlPlane,
                    image: img.clone(),
                    mounts: vec![],
                    ports: vec![],
                    labels: Default::default(),
                    ip_family: kina::config::IpFamily::Ipv4,
                };
                let t = Instant::now();
                provider.create_nodes(&[spec]).unwrap();
                ready.push(t.elapsed());
                std::thread::sleep(Duration::from_secs(10));
                memory.extend(working_set(&name));
                let t = Instant::now();
                provider
                    .delete_nodes(&format!("bench{run}"), &[name])
                    .unwrap();
                deleted.push(t.elapsed());
            }
            (ready, memory, deleted)
        })
        .join()
    });
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    let _ = std::fs::remove_dir_all(&state);
    let (mut ready, mut memory, mut deleted) = result.expect("bench thread");
    ready.sort();
    deleted.sort();
    memory.sort();
    let mid = |v: &[Duration]| v[v.len() / 2];
    println!(
        "node ready (create → systemd running), median of {runs}: {:?} (target < 1 s)",
        mid(&ready)
    );
    println!("node delete, median: {:?}", mid(&deleted));
    if let Some(m) = memory.get(memory.len() / 2) {
        println!(
            "idle node working set (systemd + cri-server, 10 s after ready), median: {:.1} MiB (target < 60 MiB)",
            *m as f64 / (1 << 20) as f64
        );
    }
}
