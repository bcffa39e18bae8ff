//! Shared helpers of the config tests.

use std::path::Path;

use kina::config::{self, Loaded, NodeRole};

/// Load a guide example, as if run from /home/user/project.
pub fn load(yaml: &str) -> Loaded {
    config::load_str(yaml, "guide.yaml", None, Path::new("/home/user/project"))
        .unwrap_or_else(|e| panic!("guide example rejected: {e}\n{yaml}"))
}

/// The node roles, in order.
#[allow(dead_code)] // not every test file looks at roles
pub fn roles(l: &Loaded) -> Vec<NodeRole> {
    l.cluster.nodes.iter().map(|n| n.role).collect()
}
