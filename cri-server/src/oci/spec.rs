//! OCI runtime specs from CRI requests: the sandbox's pause container and workload containers.
//! Built as JSON and checked against `oci_spec::runtime::Spec` before use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use serde_json::{Value, json};

use super::OciError;
use super::security;

/// Namespaces a container joins or creates.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    /// `(type, path)`; an empty path creates a new namespace.
    pub list: Vec<(&'static str, String)>,
}

/// The process identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Inputs common to the pause and workload specs.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub rootfs: &'a Path,
    pub readonly_rootfs: bool,
    pub hostname: &'a str,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: User,
    pub namespaces: Namespaces,
    pub cgroups_path: String,
    /// Extra mounts (`destination`, `source`, `type`, options).
    pub mounts: Vec<Value>,
    pub resources: Option<&'a cri::LinuxContainerResources>,
    pub privileged: bool,
    pub caps_add: Vec<String>,
    pub caps_drop: Vec<String>,
    pub no_new_privs: bool,
    pub seccomp: Option<Value>,
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub sysctls: HashMap<String, String>,
    pub devices: Vec<Value>,
    pub tty: bool,
    pub annotations: HashMap<String, String>,
}

const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Character devices every container may use (major, minor).
const DEFAULT_DEVICES: &[(i64, i64)] = &[(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2)];

fn default_mounts(privileged: bool) -> Vec<Value> {
    let sys_opt = if privileged { "rw" } else { "ro" };
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", sys_opt]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", sys_opt]}),
    ]
}

/// `linux.resources` from CRI resources (also what UpdateContainerResources applies).
pub fn resources(r: Option<&cri::LinuxContainerResources>) -> Value {
    let mut out = json!({});
    let Some(r) = r else { return out };
    let mut cpu = json!({});
    if r.cpu_shares > 0 {
        cpu["shares"] = json!(r.cpu_shares);
    }
    if r.cpu_quota != 0 {
        cpu["quota"] = json!(r.cpu_quota);
    }
    if r.cpu_period > 0 {
        cpu["period"] = json!(r.cpu_period);
    }
    if !r.cpuset_cpus.is_empty() {
        cpu["cpus"] = json!(r.cpuset_cpus);
    }
    if !r.cpuset_mems.is_empty() {
        cpu["mems"] = json!(r.cpuset_mems);
    }
    if cpu.as_object().is_some_and(|o| !o.is_empty()) {
        out["cpu"] = cpu;
    }
    if r.memory_limit_in_bytes > 0 {
        out["memory"] = json!({"limit": r.memory_limit_in_bytes});
        if r.memory_swap_limit_in_bytes > 0 {
            out["memory"]["swap"] = json!(r.memory_swap_limit_in_bytes);
        }
    }
    // The kubelet sends a limit per page size the kernel has; without a hugetlb controller
    // no runtime can apply them (runc: "cannot set hugetlb limit").
    if !r.hugepage_limits.is_empty() && super::host::hugetlb_available() {
        out["hugepageLimits"] = r
            .hugepage_limits
            .iter()
            .map(|h| json!({"pageSize": h.page_size, "limit": h.limit}))
            .collect();
    }
    if !r.unified.is_empty() {
        out["unified"] = json!(r.unified);
    }
    out
}

/// The host device at `host_path` as an OCI device plus its cgroup rule.
pub fn device(
    host_path: &Path,
    container_path: &str,
    perms: &str,
) -> Result<(Value, Value), OciError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::metadata(host_path).map_err(|e| {
        OciError::InvalidSpec(format!("devices: host_path {}: {e}", host_path.display()))
    })?;
    let kind = if md.file_type().is_char_device() {
        "c"
    } else if md.file_type().is_block_device() {
        "b"
    } else {
        return Err(OciError::InvalidSpec(format!(
            "devices: host_path {} is not a device",
            host_path.display()
        )));
    };
    let dev = md.rdev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let perms = if perms.is_empty() { "rwm" } else { perms };
    if !perms.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(OciError::InvalidSpec(format!(
            "devices: permissions {perms:?} of {container_path}: want a subset of rwm"
        )));
    }
    Ok((
        json!({"path": container_path, "type": kind, "major": major, "minor": minor,
               "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid()}),
        json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": perms}),
    ))
}

/// All host devices under /dev (for privileged containers).
pub fn host_devices() -> Vec<Value> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/dev") else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p.display().to_string();
        if name == "/dev/console" || name == "/dev/ptmx" {
            continue;
        }
        if let Ok((d, _)) = device(&p, &name, "rwm") {
            out.push(d);
        }
    }
    out
}

/// The complete spec, validated against the OCI schema types.
pub fn build(input: &SpecInput<'_>) -> Result<Value, OciError> {
    let bounding = security::bounding_set();
    let caps = security::capabilities(
        input.privileged,
        &input.caps_add,
        &input.caps_drop,
        &bounding,
    )?;
    let mut mounts = default_mounts(input.privileged);
    // Later mounts win for the same destination, as the runtime applies them in order.
    let dests: Vec<String> = input
        .mounts
        .iter()
        .filter_map(|m| m["destination"].as_str().map(str::to_owned))
        .collect();
    mounts.retain(|m| !dests.iter().any(|d| m["destination"] == d.as_str()));
    mounts.extend(input.mounts.iter().cloned());
    let mut res = resources(input.resources);
    let mut rules = vec![json!({"allow": input.privileged, "access": "rwm"})];
    if !input.privileged {
        rules.extend(DEFAULT_DEVICES.iter().map(
            |(ma, mi)| json!({"allow": true, "type": "c", "major": ma, "minor": mi, "access": "rwm"}),
        ));
        rules.push(json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}));
    }
    let mut devices = Vec::new();
    if input.privileged {
        devices.extend(host_devices());
    }
    for d in &input.devices {
        devices.push(d["device"].clone());
        rules.push(d["rule"].clone());
    }
    res["devices"] = json!(rules);
    let oom = input
        .resources
        .map(|r| security::clamp_oom_score_adj(r.oom_score_adj))
        .unwrap_or(0);
    let mut process = json!({
        "terminal": input.tty,
        "user": {"uid": input.user.uid, "gid": input.user.gid},
        "args": input.args,
        "env": input.env,
        "cwd": input.cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": input.no_new_privs,
        "oomScoreAdj": oom,
    });
    if !input.user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(input.user.additional_gids);
    }
    let namespaces: Vec<Value> = input
        .namespaces
        .list
        .iter()
        .map(|(t, p)| {
            if p.is_empty() {
                json!({"type": t})
            } else {
                json!({"type": t, "path": p})
            }
        })
        .collect();
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": res,
        "cgroupsPath": input.cgroups_path,
        "devices": devices,
        "sysctl": input.sysctls,
    });
    if !input.privileged {
        linux["maskedPaths"] = json!(
            input
                .masked_paths
                .clone()
                .unwrap_or_else(|| MASKED.iter().map(|s| s.to_string()).collect())
        );
        linux["readonlyPaths"] = json!(
            input
                .readonly_paths
                .clone()
                .unwrap_or_else(|| READONLY.iter().map(|s| s.to_string()).collect())
        );
    }
    if let Some(s) = &input.seccomp {
        linux["seccomp"] = s.clone();
    }
    let mut spec = json!({
        "ociVersion": "1.1.0",
        "process": process,
        "root": {"path": input.rootfs, "readonly": input.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
        "annotations": input.annotations,
    });
    // The hostname is set where the UTS namespace is created (the sandbox); containers joining
    // it inherit the name (runtimes may refuse a hostname for a joined namespace).
    if input
        .namespaces
        .list
        .iter()
        .any(|(t, p)| *t == "uts" && p.is_empty())
    {
        spec["hostname"] = json!(input.hostname);
    }
    // The OCI types are the schema: refuse anything they do not accept.
    let typed: oci_spec::runtime::Spec = serde_json::from_value(spec.clone())
        .map_err(|e| OciError::InvalidSpec(format!("generated spec is invalid: {e}")))?;
    serde_json::to_value(typed).map_err(|e| OciError::InvalidSpec(e.to_string()))
}

/// A bind mount of `src` at `dst` with a CRI propagation (0 private, 1 rslave, 2 rshared).
pub fn bind_mount(src: &Path, dst: &str, readonly: bool, propagation: i32) -> Value {
    let prop = match propagation {
        1 => "rslave",
        2 => "rshared",
        _ => "rprivate",
    };
    json!({"destination": dst, "type": "bind", "source": src,
           "options": ["rbind", prop, if readonly { "ro" } else { "rw" }]})
}

/// The `cgroupsPath` for `id` under `parent` for the cgroupfs or systemd driver.
pub fn cgroups_path(systemd: bool, parent: &str, id: &str) -> String {
    if systemd {
        let slice = if parent.is_empty() {
            "system.slice"
        } else {
            parent
        };
        format!("{slice}:cri-server:{id}")
    } else {
        let parent = if parent.is_empty() {
            "/cri-server"
        } else {
            parent
        };
        let p: PathBuf = Path::new(parent).join(id);
        p.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(rootfs: &Path) -> SpecInput<'_> {
        SpecInput {
            rootfs,
            readonly_rootfs: true,
            hostname: "pod",
            args: vec!["/pause".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            user: User::default(),
            namespaces: Namespaces {
                list: vec![("pid", String::new()), ("network", "/run/netns/x".into())],
            },
            cgroups_path: cgroups_path(false, "", "abc"),
            mounts: vec![bind_mount(Path::new("/tmp"), "/dev/shm", false, 1)],
            resources: None,
            privileged: false,
            caps_add: vec![],
            caps_drop: vec![],
            no_new_privs: true,
            seccomp: None,
            masked_paths: None,
            readonly_paths: None,
            sysctls: HashMap::new(),
            devices: vec![],
            tty: false,
            annotations: HashMap::new(),
        }
    }

    #[test]
    fn builds_valid_spec() {
        let s = build(&input(Path::new("/r"))).unwrap();
        assert_eq!(s["root"]["path"], "/r");
        assert_eq!(s["linux"]["cgroupsPath"], "/cri-server/abc");
        assert_eq!(s["linux"]["namespaces"][1]["path"], "/run/netns/x");
        let shm: Vec<&Value> = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["destination"] == "/dev/shm")
            .collect();
        assert_eq!(shm.len(), 1);
        assert_eq!(shm[0]["options"][1], "rslave");
        assert!(s["linux"]["maskedPaths"].as_array().unwrap().len() > 3);
    }

    #[test]
    fn resources_map_to_oci() {
        let r = cri::LinuxContainerResources {
            cpu_shares: 512,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            memory_limit_in_bytes: 64 << 20,
            cpuset_cpus: "0".into(),
            ..Default::default()
        };
        let v = resources(Some(&r));
        assert_eq!(v["cpu"]["shares"], 512);
        assert_eq!(v["memory"]["limit"], 64 << 20);
        assert_eq!(v["cpu"]["cpus"], "0");
    }

    #[test]
    fn devices_are_checked() {
        let (d, rule) = device(Path::new("/dev/null"), "/dev/mynull", "rw").unwrap();
        assert_eq!(d["major"], 1);
        assert_eq!(rule["access"], "rw");
        assert!(device(Path::new("/etc/hostname"), "/x", "").is_err());
        assert!(device(Path::new("/dev/null"), "/x", "rwx").is_err());
    }
}
