//! The kina command line: one file per command.
