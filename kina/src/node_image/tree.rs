//! An in-memory file tree: what kina adds on top of the Debian base (recipe files, binaries,
//! unit symlinks). Parents are created implicitly; adding a path twice replaces it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// What a tree entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A directory.
    Dir,
    /// A file with these bytes.
    Bytes(Vec<u8>),
    /// A file copied from the host when the layer is written.
    HostFile(PathBuf),
    /// A symbolic link to this target.
    Symlink(PathBuf),
}

/// One entry of a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path in the image.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// The contents.
    pub content: Content,
}

/// Files keyed by absolute path; iteration is sorted, so parents come before children.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `content` at `path` (absolute, normalised), creating parent directories 0755.
    pub fn insert(&mut self, path: &str, mode: u32, content: Content) {
        let path = normalise(path);
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            parent.push('/');
            parent.push_str(part);
            self.entries.entry(parent.clone()).or_insert_with(|| Entry {
                path: parent.clone(),
                mode: 0o755,
                content: Content::Dir,
            });
        }
        self.entries.insert(
            path.clone(),
            Entry {
                path,
                mode,
                content,
            },
        );
    }

    /// A file with `bytes`.
    pub fn file(&mut self, path: &str, mode: u32, bytes: impl Into<Vec<u8>>) {
        self.insert(path, mode, Content::Bytes(bytes.into()));
    }

    /// A symlink `path` → `target`.
    pub fn symlink(&mut self, path: &str, target: impl Into<PathBuf>) {
        self.insert(path, 0o777, Content::Symlink(target.into()));
    }

    /// A directory.
    pub fn dir(&mut self, path: &str, mode: u32) {
        self.insert(path, mode, Content::Dir);
    }

    /// The entry at `path`.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(&normalise(path))
    }

    /// Entries sorted by path (a directory sorts before its children).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        // A parent's path is a prefix of its children's, so it always sorts before them.
        self.entries.values()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Tree {
    /// A digest of everything the tree's layer would hold (host files by content), so an
    /// unchanged tree can reuse a cached layer.
    pub fn content_key(&self) -> io::Result<String> {
        let mut h = Sha256::new();
        // Bump with the layer format (ownership, mtime) of [`super::layer::LayerWriter::append_tree`].
        h.update(b"kina tree layer v1\0");
        for e in self.entries() {
            h.update(format!("{}\0{:o}\0", e.path, e.mode).as_bytes());
            match &e.content {
                Content::Dir => h.update(b"dir\0"),
                Content::Bytes(b) => {
                    h.update(format!("bytes {}\0", b.len()).as_bytes());
                    h.update(b);
                }
                Content::HostFile(p) => {
                    let mut f = File::open(p)
                        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
                    let mut fh = Sha256::new();
                    let n = io::copy(&mut f, &mut fh)?;
                    h.update(format!("file {n}\0").as_bytes());
                    h.update(fh.finalize());
                }
                Content::Symlink(t) => {
                    h.update(format!("symlink {}\0", t.display()).as_bytes());
                }
            }
        }
        Ok(hex::encode(h.finalize()))
    }
}

fn normalise(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_come_first() {
        let mut t = Tree::new();
        t.file("/etc/systemd/system/x.service", 0o644, "a");
        t.symlink("etc//systemd/system/y.service", "/dev/null");
        let paths: Vec<&str> = t.entries().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc",
                "/etc/systemd",
                "/etc/systemd/system",
                "/etc/systemd/system/x.service",
                "/etc/systemd/system/y.service"
            ]
        );
        assert_eq!(t.get("/etc").unwrap().content, Content::Dir);
        t.file("/etc/systemd/system/x.service", 0o600, "b");
        assert_eq!(t.get("/etc/systemd/system/x.service").unwrap().mode, 0o600);
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn content_key_follows_contents() {
        let f = std::env::temp_dir().join(format!("kina-tree-key-{}", std::process::id()));
        std::fs::write(&f, "one").unwrap();
        let mut t = Tree::new();
        t.file("/a", 0o644, "x");
        t.insert("/bin/b", 0o755, Content::HostFile(f.clone()));
        let k1 = t.content_key().unwrap();
        assert_eq!(t.content_key().unwrap(), k1);
        std::fs::write(&f, "two").unwrap();
        let k2 = t.content_key().unwrap();
        assert_ne!(k1, k2);
        t.file("/a", 0o600, "x");
        assert_ne!(t.content_key().unwrap(), k2);
        std::fs::remove_file(&f).unwrap();
        let e = t.content_key().unwrap_err();
        assert!(e.to_string().contains(&f.display().to_string()), "{e}");
    }
}
