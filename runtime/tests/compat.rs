//! The same bundles under runc (/usr/sbin/runc) and kina-runtime: observable output, exit
//! codes and state/list JSON keys must match.

mod common;

use std::collections::BTreeSet;

use common::{Bundle, Rt};

fn both(b: &Bundle) -> [(i32, String); 2] {
    [Rt::runc(), Rt::ours()].map(|rt| {
        let id = rt.id("compat");
        let o = rt.run(&["run", "-b", b.path().to_str().unwrap(), &id]);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    })
}

#[test]
fn hostname_uid_map_and_exit_code_match_runc() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "hostname; cat /proc/self/uid_map; ls /dev; exit 7",
    ]);
    let [runc, ours] = both(&b);
    assert_eq!(runc.0, 7);
    assert_eq!(ours, runc);
}

#[test]
fn user_namespace_matches_runc() {
    let mut b = Bundle::new(&["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id"]);
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        let map = serde_json::json!([{"containerID": 0, "hostID": 200000, "size": 1000}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    let [runc, ours] = both(&b);
    assert_eq!(ours, runc);
}

#[test]
fn state_and_list_keys_match_runc() {
    let b = Bundle::new(&["sleep", "1000"]);
    let keys = |rt: &Rt| {
        let id = rt.id("keys");
        rt.ok(&["create", "-b", b.path().to_str().unwrap(), &id]);
        let st = rt.state(&id);
        let list: serde_json::Value =
            serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
        let k = |v: &serde_json::Value| {
            v.as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<BTreeSet<_>>()
        };
        (
            k(&st),
            k(&list[0]),
            st["status"].clone(),
            rt.ok(&["list"])
                .lines()
                .next()
                .unwrap()
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
        )
    };
    let (runc, ours) = (keys(&Rt::runc()), keys(&Rt::ours()));
    assert_eq!(ours, runc);
}
