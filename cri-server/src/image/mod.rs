//! Images: content store, snapshots, pull, import/export.
