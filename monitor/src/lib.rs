//! cri-monitor as a library: only the wire formats shared with its caller (cri-server), so both
//! sides use one definition. The monitor itself is the `cri-monitor` binary (src/main.rs).

pub mod protocol;
