//! cri-monitor binary.
fn main() {}
