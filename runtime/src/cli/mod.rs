//! The runc-compatible command line: one file per command.
