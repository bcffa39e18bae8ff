//! kina binary.
fn main() {}
