//! Device access control for real: v1 devices.allow/deny through the manager, the cgroup2 eBPF
//! filter (attached to the cgroup2 tree, which exists on hybrid hosts too), and the kernel
//! verifier accepting the generated programs.

mod common;

use common::{TestCgroup, layout, read};
use kina_cgroups::devices::ebpf::{EXIT, Insn, MOV32_IMM, Program};
use kina_cgroups::devices::{DevicePolicy, default_allowed_devices, rules_from_oci};
use kina_cgroups::v1::V1Manager;
use kina_cgroups::v2::{V2Manager, apply_device_filter, attached_device_programs};
use kina_cgroups::{CgroupError, Layout};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResourcesBuilder};

const PROBE: &str =
    "(exec 3</dev/null) && echo null-ok; (exec 3</dev/zero) && echo zero-ok || echo zero-denied";

fn rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(typ);
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

fn deny_all_allow_null() -> Vec<LinuxDeviceCgroup> {
    vec![
        rule(false, None, None, None, "rwm"),
        rule(true, Some(LinuxDeviceType::C), Some(1), Some(3), "rwm"),
    ]
}

fn assert_null_only(out: &str) {
    assert!(out.contains("null-ok"), "{out}");
    assert!(out.contains("zero-denied"), "{out}");
    assert!(!out.contains("zero-ok"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
}

#[test]
fn deny_all_then_allow_null_through_the_manager() {
    let mut t = TestCgroup::new("dev");
    let p = t.spawn(PROBE);
    t.mgr.apply(p.pid).unwrap();
    let r = LinuxResourcesBuilder::default()
        .devices(deny_all_allow_null())
        .build()
        .unwrap();
    t.mgr.set(&r).unwrap();
    if layout() != Layout::V2 {
        assert_eq!(read("devices", &t.path, "devices.list"), "c 1:3 rwm");
    }
    t.go(&p);
    assert_null_only(&t.output(&p));
    if layout() != Layout::V2 {
        // An update between allow lists changes only the difference.
        let mut more = deny_all_allow_null();
        more.push(rule(true, Some(LinuxDeviceType::C), Some(1), Some(5), "r"));
        let r = LinuxResourcesBuilder::default()
            .devices(more)
            .build()
            .unwrap();
        t.mgr.set(&r).unwrap();
        assert_eq!(
            read("devices", &t.path, "devices.list"),
            "c 1:3 rwm\nc 1:5 r"
        );
        t.mgr
            .set(
                &LinuxResourcesBuilder::default()
                    .devices(deny_all_allow_null())
                    .build()
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(read("devices", &t.path, "devices.list"), "c 1:3 rwm");
    }
    // An allow-all update opens everything again.
    let p2 = t.spawn(PROBE);
    t.mgr.apply(p2.pid).unwrap();
    let all = LinuxResourcesBuilder::default()
        .devices(vec![rule(true, None, None, None, "rwm")])
        .build()
        .unwrap();
    t.mgr.set(&all).unwrap();
    t.go(&p2);
    let out = t.output(&p2);
    assert!(out.contains("null-ok") && out.contains("zero-ok"), "{out}");
}

#[test]
fn ebpf_filter_on_the_cgroup2_tree_restricts_and_is_replaced_on_update() {
    let mut t = TestCgroup::new("ebpf");
    // The cgroup2 directory the manager put the process in: the cgroup itself on v2, the
    // unified-tree twin on hybrid hosts (where device programs apply on top of v1 devices).
    let dir = match layout() {
        Layout::V2 => V2Manager::new(&t.path).unwrap().dir().to_path_buf(),
        Layout::Hybrid => V1Manager::new(&t.path)
            .unwrap()
            .unified_dir()
            .unwrap()
            .to_path_buf(),
        // No cgroup2 tree: the verifier test below still exercises the programs.
        Layout::V1 => return,
    };
    let p = t.spawn(PROBE);
    t.mgr.apply(p.pid).unwrap();
    assert!(dir.is_dir(), "{}", dir.display());
    let rules = rules_from_oci(&deny_all_allow_null()).unwrap();
    apply_device_filter(&dir, &rules).unwrap();
    let first = attached_device_programs(&dir).unwrap();
    assert_eq!(first.len(), 1);
    // Update: the default allow list replaces the previous program, never adds to it.
    let mut with_defaults = deny_all_allow_null();
    with_defaults.extend(default_allowed_devices());
    apply_device_filter(&dir, &rules_from_oci(&with_defaults).unwrap()).unwrap();
    let second = attached_device_programs(&dir).unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(first, second);
    // Back to null only, then probe.
    apply_device_filter(&dir, &rules).unwrap();
    t.go(&p);
    assert_null_only(&t.output(&p));
    t.mgr.destroy().unwrap();
    assert!(!dir.exists());
}

#[test]
fn generated_programs_pass_the_kernel_verifier() {
    let c = Some(LinuxDeviceType::C);
    let b = Some(LinuxDeviceType::B);
    let sets: Vec<Vec<LinuxDeviceCgroup>> = vec![
        vec![],
        vec![rule(true, None, None, None, "rwm")],
        default_allowed_devices(),
        vec![
            rule(true, None, None, None, "rwm"),
            rule(false, b, Some(8), Some(0), "rwm"),
            rule(false, c, Some(10), None, "w"),
        ],
        vec![
            rule(true, c, None, Some(7), "r"),
            rule(true, b, Some(253), None, "m"),
        ],
    ];
    for set in sets {
        let rules = rules_from_oci(&set).unwrap();
        let prog = Program::from_policy(&DevicePolicy::from_rules(&rules)).unwrap();
        let fd = prog
            .load()
            .unwrap_or_else(|e| panic!("{e}\n{}", prog.listing()));
        drop(fd);
    }
    // A program that does not end in exit is refused, with the verifier's reason.
    let bad = Program {
        insns: vec![Insn {
            code: MOV32_IMM,
            dst: 0,
            src: 0,
            off: 0,
            imm: 1,
        }],
    };
    let err = bad.load().unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::Bpf {
                op: "BPF_PROG_LOAD",
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("verifier log"), "{msg}");
    // Sanity: the good minimal program is exactly two instructions longer than the prologue.
    let ok = Program::from_policy(&DevicePolicy::from_rules(&[])).unwrap();
    assert_eq!(ok.insns.last().unwrap().code, EXIT);
}
