//! The syscall layer: the only place in kina-runtime where `unsafe` is allowed.
//! Each `unsafe` block carries a `// SAFETY:` comment saying why it is sound.

pub mod lifecycle;
pub mod setup;
