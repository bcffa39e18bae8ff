//! cri-server binary.
fn main() {}
