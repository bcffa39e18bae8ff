//! Rendering containerd-style conf templates.

use super::*;

/// containerd's documented example (docs/cri/config.md), abridged.
const CONTAINERD_EXAMPLE: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "containerd-net",
  "plugins": [
    {
      "type": "bridge",
      "ipam": {
        "type": "host-local",
        "ranges": [
          {{- range $i, $range := .PodCIDRRanges}}
          {{- if $i}}, {{end}}
          [{"subnet": "{{$range}}"}]
          {{- end}}
        ],
        "routes": [
          {{- range $i, $route := .Routes}}
          {{- if $i}}, {{end}}
          {"dst": "{{$route}}"}
          {{- end}}
        ]
      }
    }
  ]
}"#;

fn data(cidrs: &[&str]) -> TemplateData {
    let nets: Vec<IpNetwork> = cidrs.iter().map(|c| c.parse().unwrap()).collect();
    TemplateData::new(&nets)
}

#[test]
fn renders_containerd_example_dual_stack() {
    let out = render(
        CONTAINERD_EXAMPLE,
        &data(&["10.244.1.0/24", "fd00:10:244:1::/64"]),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
    let ipam = &v["plugins"][0]["ipam"];
    assert_eq!(
        ipam["ranges"],
        serde_json::json!([[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]])
    );
    assert_eq!(
        ipam["routes"],
        serde_json::json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
    );
}

#[test]
fn renders_pod_cidr_and_dot_ranges() {
    let t = r#"{"subnet": "{{.PodCIDR}}", "old": "{{.Subnet}}", "all": [{{range .PodCIDRRanges}}"{{.}}",{{end}}"x"]}"#;
    let out = render(t, &data(&["10.1.0.0/16"])).unwrap();
    assert_eq!(
        out,
        r#"{"subnet": "10.1.0.0/16", "old": "10.1.0.0/16", "all": ["10.1.0.0/16","x"]}"#
    );
}

#[test]
fn if_else_on_fields() {
    let t = "{{if .PodCIDR}}yes{{else}}no{{end}}";
    assert_eq!(render(t, &data(&["10.0.0.0/8"])).unwrap(), "yes");
    assert_eq!(render(t, &data(&[])).unwrap(), "no");
}

#[test]
fn errors_name_the_line_and_action() {
    let e = render("a\n{{.Nope}}", &data(&["10.0.0.0/8"])).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.reason.contains(".Nope"), "{e}");
    assert!(
        render("{{range .Routes}}x", &data(&[]))
            .unwrap_err()
            .reason
            .contains("{{end}}")
    );
    assert!(
        render("{{printf \"%s\" .PodCIDR}}", &data(&[]))
            .unwrap_err()
            .reason
            .contains("unsupported")
    );
    assert!(render("{{end}}", &data(&[])).is_err());
    assert!(
        render("{{.PodCIDR", &data(&[]))
            .unwrap_err()
            .reason
            .contains("unclosed")
    );
}
