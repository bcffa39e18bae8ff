//! Persisted container state under --root, and the runc-compatible state JSON.
