//! Linux namespaces: create new ones, join existing ones by path, user namespace id mappings.
