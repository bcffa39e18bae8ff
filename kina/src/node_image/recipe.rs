//! The node-image recipe (top-level `node-image/`), embedded at compile time so `kina` builds
//! images from any directory: the debootstrap suite and packages, the systemd units to enable and
//! mask, the sysctls to shield and the files installed verbatim.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::{NodeImageError, Result};

const RECIPE_FILE: &str = "node-image/recipe.toml";
const RECIPE_TOML: &str = include_str!("../../../node-image/recipe.toml");

/// A file of `node-image/files/`: its path in the image, mode and contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipeFile {
    /// Absolute path inside the image.
    pub path: &'static str,
    /// Permission bits.
    pub mode: u32,
    /// The contents.
    pub contents: &'static str,
}

macro_rules! recipe_file {
    ($path:literal, $mode:literal) => {
        RecipeFile {
            path: concat!("/", $path),
            mode: $mode,
            contents: include_str!(concat!("../../../node-image/files/", $path)),
        }
    };
}

/// Every file of `node-image/files/`.
pub const FILES: &[RecipeFile] = &[
    recipe_file!("etc/cri-server/config.toml", 0o644),
    recipe_file!("etc/crictl.yaml", 0o644),
    recipe_file!("etc/systemd/system/cri-server.service", 0o644),
    recipe_file!("etc/systemd/system/kubelet.service", 0o644),
    recipe_file!(
        "etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        0o644
    ),
    recipe_file!("etc/systemd/system/kina-sysctl-shield.service", 0o644),
    recipe_file!("etc/systemd/system/kina-import-images.service", 0o644),
    recipe_file!("etc/systemd/journald.conf.d/kina.conf", 0o644),
    recipe_file!("usr/local/bin/kina-shield-sysctls", 0o755),
];

/// `node-image/recipe.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// What debootstrap installs.
    pub base: Base,
    /// Unit wiring.
    pub systemd: Systemd,
    /// Sysctl name (dotted) → the value the node sees.
    pub sysctl_shields: BTreeMap<String, String>,
    /// Sysctls of the node's own network namespace (`net.` names) → the value written at boot.
    #[serde(default)]
    pub node_sysctls: BTreeMap<String, String>,
}

/// `[base]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Base {
    /// Debian suite, e.g. bookworm.
    pub suite: String,
    /// debootstrap variant, e.g. minbase.
    pub variant: String,
    /// Archive components.
    pub components: Vec<String>,
    /// Packages installed on top of the variant.
    pub packages: Vec<String>,
}

/// `[systemd]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Systemd {
    /// The target `default.target` points at.
    pub default_target: String,
    /// Units enabled through their `WantedBy=`.
    pub enable: Vec<String>,
    /// Units linked to /dev/null.
    pub mask: Vec<String>,
}

impl Recipe {
    /// The recipe embedded in this binary.
    pub fn embedded() -> Result<Self> {
        Self::parse(RECIPE_TOML)
    }

    /// Parse and check recipe text.
    pub fn parse(text: &str) -> Result<Self> {
        let recipe: Recipe = toml::from_str(text).map_err(|e| recipe_error(e.to_string()))?;
        recipe.validate()?;
        Ok(recipe)
    }

    fn validate(&self) -> Result<()> {
        if self.base.suite.is_empty() || self.base.suite.contains(['/', ' ']) {
            return Err(recipe_error(format!(
                "base.suite {:?} is not a suite",
                self.base.suite
            )));
        }
        for p in &self.base.packages {
            let ok = !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
            if !ok {
                return Err(recipe_error(format!(
                    "base.packages: {p:?} is not a Debian package name"
                )));
            }
        }
        for unit in self.systemd.enable.iter().chain(&self.systemd.mask) {
            if unit.is_empty() || unit.contains('/') || !unit.contains('.') {
                return Err(recipe_error(format!(
                    "systemd: {unit:?} is not a unit name"
                )));
            }
        }
        for unit in &self.systemd.enable {
            if self.systemd.mask.contains(unit) {
                return Err(recipe_error(format!(
                    "systemd: {unit} is both enabled and masked"
                )));
            }
            unit_file(unit)?;
        }
        for (table, sysctls) in [
            ("sysctl_shields", &self.sysctl_shields),
            ("node_sysctls", &self.node_sysctls),
        ] {
            for (name, value) in sysctls {
                let ok = !name.is_empty()
                    && name.split('.').all(|part| {
                        !part.is_empty()
                            && part
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    });
                if !ok {
                    return Err(recipe_error(format!(
                        "{table}: {name:?} is not a sysctl name"
                    )));
                }
                if value.contains('\n') {
                    return Err(recipe_error(format!("{table}.{name}: value has a newline")));
                }
            }
        }
        // A node writes these itself: only its network namespace's, never the host's.
        if let Some(name) = self.node_sysctls.keys().find(|n| !n.starts_with("net.")) {
            return Err(recipe_error(format!(
                "node_sysctls: {name} is not a network (per-namespace) sysctl; shield host-wide \
                 ones in [sysctl_shields]"
            )));
        }
        Ok(())
    }

    /// The packages debootstrap's `--include=` takes.
    pub fn include_arg(&self) -> String {
        self.base.packages.join(",")
    }
}

fn recipe_error(message: String) -> NodeImageError {
    NodeImageError::Recipe {
        file: RECIPE_FILE,
        message,
    }
}

/// The embedded unit file named `unit` (under /etc/systemd/system).
pub fn unit_file(unit: &str) -> Result<&'static RecipeFile> {
    let path = format!("/etc/systemd/system/{unit}");
    FILES
        .iter()
        .find(|f| f.path == path)
        .ok_or_else(|| NodeImageError::Recipe {
            file: RECIPE_FILE,
            message: format!(
                "systemd.enable names {unit}, but node-image/files{path} does not exist"
            ),
        })
}

/// The targets a unit's `[Install]` section lists in `WantedBy=`.
pub fn wanted_by(unit: &str, text: &str) -> Result<Vec<String>> {
    let mut section = "";
    let mut targets = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = &line[1..line.len() - 1];
            continue;
        }
        if section == "Install"
            && let Some(value) = line.strip_prefix("WantedBy=")
        {
            targets.extend(value.split_whitespace().map(str::to_owned));
        }
    }
    if targets.is_empty() {
        return Err(NodeImageError::Recipe {
            file: RECIPE_FILE,
            message: format!("{unit} is enabled but has no WantedBy= in [Install]"),
        });
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_recipe_parses_and_names_existing_units() {
        let r = Recipe::embedded().unwrap();
        assert_eq!(r.base.suite, "bookworm");
        for p in [
            "systemd",
            "systemd-sysv",
            "containernetworking-plugins",
            "runc",
            "iptables",
        ] {
            assert!(r.base.packages.iter().any(|x| x == p), "{p} missing");
        }
        assert!(r.systemd.mask.iter().any(|u| u == "systemd-sysctl.service"));
        assert!(r.systemd.mask.iter().any(|u| u == "getty@.service"));
        assert_eq!(r.sysctl_shields["vm.overcommit_memory"], "1");
        assert_eq!(r.node_sysctls["net.ipv4.ip_forward"], "1");
        assert!(r.include_arg().contains("systemd,systemd-sysv"));
    }

    #[test]
    fn units_start_cri_server_and_kubelet_like_kind() {
        let cri = unit_file("cri-server.service").unwrap();
        assert!(
            cri.contents.contains(
                "ExecStart=/usr/local/bin/cri-server --config /etc/cri-server/config.toml"
            )
        );
        assert_eq!(
            wanted_by("cri-server.service", cri.contents).unwrap(),
            ["multi-user.target"]
        );
        let kubelet = unit_file("kubelet.service").unwrap();
        assert!(
            kubelet
                .contents
                .contains("ConditionPathExists=/var/lib/kubelet/config.yaml")
        );
        let dropin = FILES
            .iter()
            .find(|f| f.path.ends_with("kubelet.service.d/10-kubeadm.conf"))
            .unwrap();
        assert!(
            dropin
                .contents
                .contains("EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env")
        );
        let shield = unit_file("kina-sysctl-shield.service").unwrap();
        assert_eq!(wanted_by("x", shield.contents).unwrap(), ["sysinit.target"]);
    }

    #[test]
    fn crictl_and_cri_server_agree_on_the_socket() {
        let crictl = FILES.iter().find(|f| f.path == "/etc/crictl.yaml").unwrap();
        assert!(
            crictl
                .contents
                .contains("runtime-endpoint: unix:///run/cri-server/cri-server.sock")
        );
        let config = FILES
            .iter()
            .find(|f| f.path == "/etc/cri-server/config.toml")
            .unwrap();
        assert!(
            config
                .contents
                .contains("listen = \"/run/cri-server/cri-server.sock\"")
        );
    }

    #[test]
    fn bad_recipes_are_named() {
        let good = RECIPE_TOML;
        let e = Recipe::parse(&good.replace("\"socat\"", "\"So Cat\"")).unwrap_err();
        assert!(e.to_string().contains("So Cat"), "{e}");
        let e = Recipe::parse(&good.replace("[systemd]", "[systemd]\nbogus = 1")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = Recipe::parse(
            &good.replace("\"kina-sysctl-shield.service\",\n", "\"nope.service\",\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("nope.service"), "{e}");
        let e = wanted_by(
            "a.service",
            "[Unit]\nDescription=x\n[Service]\nWantedBy=x\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("a.service"), "{e}");
        let e = Recipe::parse(&good.replace(
            "[node_sysctls]\n",
            "[node_sysctls]\n\"kernel.pid_max\" = \"4194304\"\n",
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains("node_sysctls: kernel.pid_max"),
            "{e}"
        );
    }

    #[test]
    fn the_node_runs_kina_runtime_and_keeps_runc_as_a_handler() {
        let config = FILES
            .iter()
            .find(|f| f.path == "/etc/cri-server/config.toml")
            .unwrap();
        let c = config.contents;
        assert!(c.contains("default_runtime_handler = \"kina\""), "{c}");
        assert!(c.contains("kina = \"/usr/local/bin/kina-runtime\""), "{c}");
        assert!(c.contains("runc = \"/usr/sbin/runc\""), "{c}");
        assert!(
            c.contains("monitor_path = \"/usr/local/bin/cri-monitor\""),
            "{c}"
        );
    }
}
