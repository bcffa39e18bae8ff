//! The node's CNI network config, as kindnetd writes it: one `ptp` plugin (a veth per pod, no
//! bridge, `ipMasq: false` since [`super::masq`] masquerades) with `host-local` IPAM over the
//! node's pod CIDRs (one range set per family), a default route per family, the MTU of the
//! node's uplink, then `portmap` for `hostPort`s. [`ConflistWriter`] replaces the file
//! atomically (temp file with an extension CNI loaders ignore, then rename) and only when its
//! content changes.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ipnetwork::IpNetwork;
use serde_json::json;

/// Where kindnetd (and so kina-net) writes the config.
pub const CONFLIST_PATH: &str = "/etc/cni/net.d/10-kindnet.conflist";
/// The network name pods' CNI results carry.
pub const NETWORK_NAME: &str = "kindnet";
/// host-local's lease directory: under /run so leases vanish with the node's boot, like the
/// pods they belong to.
pub const IPAM_DATA_DIR: &str = "/run/cni-ipam-state";

/// Writing the config failed; names the path.
#[derive(Debug, thiserror::Error)]
pub enum ConflistError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the node has no pod CIDR: no CNI config to write")]
    NoPodCidr,
}

/// The inputs of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflistInputs {
    /// The node's pod CIDRs.
    pub pod_cidrs: Vec<IpNetwork>,
    /// MTU for the pods' interfaces; `None` leaves the kernel default.
    pub mtu: Option<u32>,
    /// host-local's lease directory.
    pub ipam_data_dir: String,
}

impl ConflistInputs {
    /// Inputs for `pod_cidrs` with the standard lease directory.
    pub fn new(pod_cidrs: Vec<IpNetwork>, mtu: Option<u32>) -> Self {
        Self {
            pod_cidrs,
            mtu,
            ipam_data_dir: IPAM_DATA_DIR.to_owned(),
        }
    }
}

/// The conflist text (pretty JSON, trailing newline) for `inputs`.
pub fn render(inputs: &ConflistInputs) -> Result<String, ConflistError> {
    if inputs.pod_cidrs.is_empty() {
        return Err(ConflistError::NoPodCidr);
    }
    let mut routes = Vec::new();
    if inputs.pod_cidrs.iter().any(|c| c.is_ipv4()) {
        routes.push(json!({"dst": "0.0.0.0/0"}));
    }
    if inputs.pod_cidrs.iter().any(|c| c.is_ipv6()) {
        routes.push(json!({"dst": "::/0"}));
    }
    let ranges: Vec<_> = inputs
        .pod_cidrs
        .iter()
        .map(|c| json!([{"subnet": c.to_string()}]))
        .collect();
    let mut ptp = json!({
        "type": "ptp",
        "ipMasq": false,
        "ipam": {
            "type": "host-local",
            "dataDir": inputs.ipam_data_dir,
            "routes": routes,
            "ranges": ranges,
        },
    });
    if let Some(mtu) = inputs.mtu {
        ptp["mtu"] = json!(mtu);
    }
    let doc = json!({
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            ptp,
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    Ok(text)
}

/// Writes the config file, skipping writes that would not change it.
#[derive(Debug)]
pub struct ConflistWriter {
    path: PathBuf,
    last: Option<String>,
}

impl ConflistWriter {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            last: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the file hold `content`; returns whether it was (re)written. A file already
    /// holding it (e.g. after a restart) is left alone.
    pub fn write(&mut self, content: &str) -> Result<bool, ConflistError> {
        if self.last.as_deref() == Some(content)
            || std::fs::read_to_string(&self.path).is_ok_and(|c| c == content)
        {
            self.last = Some(content.to_owned());
            return Ok(false);
        }
        let io = |op, path: &Path| {
            let path = path.to_owned();
            move |source| ConflistError::Io { op, path, source }
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        }
        // An extension CNI loaders skip (.conf/.conflist/.json only), so a half-written file
        // is never read.
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".temp");
        let tmp = PathBuf::from(tmp);
        let result = (|| {
            let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
            f.write_all(content.as_bytes()).map_err(io("write", &tmp))?;
            f.sync_all().map_err(io("fsync", &tmp))?;
            std::fs::rename(&tmp, &self.path).map_err(io("rename into place", &self.path))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result?;
        self.last = Some(content.to_owned());
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn rendered(cidrs: &[&str], mtu: Option<u32>) -> Value {
        let inputs = ConflistInputs::new(cidrs.iter().map(|c| c.parse().unwrap()).collect(), mtu);
        serde_json::from_str(&render(&inputs).unwrap()).unwrap()
    }

    #[test]
    fn ipv4_config_matches_kindnet() {
        let v = rendered(&["10.244.1.0/24"], Some(1500));
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["name"], "kindnet");
        let ptp = &v["plugins"][0];
        assert_eq!(ptp["type"], "ptp");
        assert_eq!(ptp["ipMasq"], false);
        assert_eq!(ptp["mtu"], 1500);
        assert_eq!(ptp["ipam"]["type"], "host-local");
        assert_eq!(ptp["ipam"]["dataDir"], IPAM_DATA_DIR);
        assert_eq!(
            ptp["ipam"]["routes"],
            serde_json::json!([{"dst": "0.0.0.0/0"}])
        );
        assert_eq!(
            ptp["ipam"]["ranges"],
            serde_json::json!([[{"subnet": "10.244.1.0/24"}]])
        );
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert_eq!(v["plugins"][1]["capabilities"]["portMappings"], true);
    }

    #[test]
    fn ipv6_and_dual_stack_configs() {
        let v6 = rendered(&["fd00:10:244:1::/64"], None);
        assert_eq!(
            v6["plugins"][0]["ipam"]["routes"],
            serde_json::json!([{"dst": "::/0"}])
        );
        assert!(v6["plugins"][0].get("mtu").is_none());
        let dual = rendered(&["10.244.1.0/24", "fd00:10:244:1::/64"], Some(1400));
        assert_eq!(
            dual["plugins"][0]["ipam"]["routes"],
            serde_json::json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}])
        );
        assert_eq!(
            dual["plugins"][0]["ipam"]["ranges"],
            serde_json::json!([[{"subnet": "10.244.1.0/24"}], [{"subnet": "fd00:10:244:1::/64"}]])
        );
    }

    #[test]
    fn no_pod_cidr_is_an_error() {
        assert!(matches!(
            render(&ConflistInputs::new(Vec::new(), None)),
            Err(ConflistError::NoPodCidr)
        ));
    }

    #[test]
    fn writer_replaces_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("net.d/10-kindnet.conflist");
        let mut w = ConflistWriter::new(&path);
        assert!(w.write("a\n").unwrap());
        assert!(!w.write("a\n").unwrap());
        assert!(w.write("b\n").unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
        // A restarted writer finds the file current.
        assert!(!ConflistWriter::new(&path).write("b\n").unwrap());
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("10-kindnet.conflist")]);
    }

    #[test]
    fn unwritable_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = ConflistWriter::new(file.join("x.conflist"))
            .write("a")
            .unwrap_err();
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    }
}
