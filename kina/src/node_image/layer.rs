//! Image layers: a gzip-compressed tar written in one pass while both digests are computed
//! (`diff_id` over the tar, `digest` over the gzip stream). Entries come from a directory on disk
//! (the debootstrap base: modes, ownership, xattrs such as file capabilities, device nodes, FIFOs
//! and hardlinks preserved) or from an in-memory [`Tree`] (what kina adds to the base).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use super::error::{NodeImageError, Result};
use super::tree::{Content, Tree};

/// mtime of entries kina adds, so the same inputs give the same layer (2025-01-01T00:00:00Z).
pub const TREE_MTIME: u64 = 1_735_689_600;

/// What an image manifest and config need to know about a written layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerInfo {
    /// `sha256:…` of the compressed blob.
    pub digest: String,
    /// `sha256:…` of the uncompressed tar.
    pub diff_id: String,
    /// Size of the compressed blob in bytes.
    pub size: u64,
}

/// A writer that hashes (and counts) what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W>(inner: W) -> Hashing<W> {
    Hashing {
        inner,
        hash: Sha256::new(),
        bytes: 0,
    }
}

type Stack = Hashing<GzEncoder<Hashing<BufWriter<File>>>>;

/// Writes one layer blob to a file.
pub struct LayerWriter {
    tar: tar::Builder<Stack>,
    path: PathBuf,
    /// (dev, inode) → first path of a multiply-linked file, to emit later names as hardlinks.
    links: HashMap<(u64, u64), PathBuf>,
}

impl LayerWriter {
    /// Start a layer at `path` (created or truncated).
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(NodeImageError::io("create layer", path))?;
        let gz = GzEncoder::new(hashing(BufWriter::new(file)), Compression::default());
        let mut tar = tar::Builder::new(hashing(gz));
        tar.mode(tar::HeaderMode::Complete);
        Ok(LayerWriter {
            tar,
            path: path.to_owned(),
            links: HashMap::new(),
        })
    }

    fn err(&self) -> impl FnOnce(io::Error) -> NodeImageError + '_ {
        NodeImageError::io("write layer", self.path.clone())
    }

    /// Add everything below `root` (not `root` itself), sorted by name. The contents of
    /// directories in `skip_contents` (relative, e.g. `proc`) are left out; the directory stays.
    pub fn append_dir(&mut self, root: &Path, skip_contents: &[&str]) -> Result<()> {
        self.walk(root, Path::new(""), skip_contents)
    }

    fn walk(&mut self, root: &Path, rel: &Path, skip: &[&str]) -> Result<()> {
        let dir = root.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(NodeImageError::io("read directory", &dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(NodeImageError::io("read directory", &dir))?;
        names.sort();
        for name in names {
            let rel = rel.join(&name);
            let full = root.join(&rel);
            let meta = fs::symlink_metadata(&full).map_err(NodeImageError::io("stat", &full))?;
            self.append_path(&full, &rel, &meta)?;
            let skipped = skip.iter().any(|s| Path::new(s) == rel);
            if meta.is_dir() && !skipped {
                self.walk(root, &rel, skip)?;
            }
        }
        Ok(())
    }

    fn append_path(&mut self, full: &Path, rel: &Path, meta: &fs::Metadata) -> Result<()> {
        let ft = meta.file_type();
        if ft.is_socket() {
            tracing::debug!(path = %full.display(), "sockets cannot be stored in a layer; skipped");
            return Ok(());
        }
        let mut h = Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid().into());
        h.set_gid(meta.gid().into());
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_size(0);
        self.append_xattrs(full, rel)?;
        let err = NodeImageError::io("write layer", self.path.clone());
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                h.set_entry_type(EntryType::Link);
                let first = first.clone();
                return self.tar.append_link(&mut h, rel, first).map_err(err);
            }
            self.links.insert(key, rel.to_owned());
        }
        if ft.is_dir() {
            h.set_entry_type(EntryType::Directory);
            self.tar.append_data(&mut h, rel, io::empty()).map_err(err)
        } else if ft.is_symlink() {
            let target = fs::read_link(full).map_err(NodeImageError::io("read link", full))?;
            h.set_entry_type(EntryType::Symlink);
            self.tar.append_link(&mut h, rel, target).map_err(err)
        } else if ft.is_file() {
            let f = File::open(full).map_err(NodeImageError::io("open", full))?;
            h.set_entry_type(EntryType::Regular);
            h.set_size(meta.len());
            self.tar.append_data(&mut h, rel, f).map_err(err)
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            h.set_entry_type(if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            });
            let rdev = meta.rdev();
            h.set_device_major(nix::sys::stat::major(rdev) as u32)
                .map_err(self.err())?;
            h.set_device_minor(nix::sys::stat::minor(rdev) as u32)
                .map_err(self.err())?;
            self.tar.append_data(&mut h, rel, io::empty()).map_err(err)
        } else {
            Err(NodeImageError::Oci(format!(
                "{}: unsupported file type",
                full.display()
            )))
        }
    }

    /// Extended attributes (file capabilities, user.*) as a PAX header before the entry.
    fn append_xattrs(&mut self, full: &Path, rel: &Path) -> Result<()> {
        let names = match xattr::list(full) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc_enotsup()) => return Ok(()),
            Err(e) => return Err(NodeImageError::io("list xattrs", full)(e)),
        };
        let mut records = Vec::new();
        for name in names {
            let name_str = name.to_string_lossy();
            if name_str.starts_with("trusted.") || name_str == "security.selinux" {
                continue;
            }
            if let Some(value) =
                xattr::get(full, &name).map_err(NodeImageError::io("read xattr", full))?
            {
                pax_record(&mut records, &format!("SCHILY.xattr.{name_str}"), &value);
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_mode(0o644);
        h.set_size(records.len() as u64);
        let pax_name = PathBuf::from("PaxHeaders").join(rel.file_name().unwrap_or_default());
        self.tar
            .append_data(&mut h, pax_name, records.as_slice())
            .map_err(self.err())
    }

    /// Add the entries of an in-memory tree, in order, owned by root with [`TREE_MTIME`].
    pub fn append_tree(&mut self, tree: &Tree) -> Result<()> {
        for entry in tree.entries() {
            let mut h = Header::new_gnu();
            h.set_mode(entry.mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(TREE_MTIME);
            h.set_size(0);
            let path = entry.path.trim_start_matches('/');
            let err = NodeImageError::io("write layer", self.path.clone());
            match &entry.content {
                Content::Dir => {
                    h.set_entry_type(EntryType::Directory);
                    self.tar
                        .append_data(&mut h, path, io::empty())
                        .map_err(err)?;
                }
                Content::Bytes(b) => {
                    h.set_entry_type(EntryType::Regular);
                    h.set_size(b.len() as u64);
                    self.tar
                        .append_data(&mut h, path, b.as_slice())
                        .map_err(err)?;
                }
                Content::HostFile(src) => {
                    let f = File::open(src).map_err(NodeImageError::io("open", src))?;
                    let len = f.metadata().map_err(NodeImageError::io("stat", src))?.len();
                    h.set_entry_type(EntryType::Regular);
                    h.set_size(len);
                    self.tar.append_data(&mut h, path, f).map_err(err)?;
                }
                Content::Symlink(target) => {
                    h.set_entry_type(EntryType::Symlink);
                    self.tar.append_link(&mut h, path, target).map_err(err)?;
                }
            }
        }
        Ok(())
    }

    /// Finish the archive and the gzip stream; return the layer's digests and size.
    pub fn finish(self) -> Result<LayerInfo> {
        let path = self.path;
        let err = || NodeImageError::io("finish layer", path.clone());
        let tar_hashing = self.tar.into_inner().map_err(err())?;
        let diff_id = format!("sha256:{}", hex::encode(tar_hashing.hash.finalize()));
        let blob_hashing = tar_hashing.inner.finish().map_err(err())?;
        let digest = format!("sha256:{}", hex::encode(blob_hashing.hash.finalize()));
        let size = blob_hashing.bytes;
        let file = blob_hashing
            .inner
            .into_inner()
            .map_err(|e| err()(e.into_error()))?;
        file.sync_all().map_err(err())?;
        Ok(LayerInfo {
            digest,
            diff_id,
            size,
        })
    }
}

fn libc_enotsup() -> i32 {
    nix::errno::Errno::EOPNOTSUPP as i32
}

/// One PAX record: "<len> <key>=<value>\n" where len counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        pax_record(&mut out, "SCHILY.xattr.user.a", b"xyz");
        let s = String::from_utf8(out.clone()).unwrap();
        let len: usize = s.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(len, out.len());
        let mut out = Vec::new();
        pax_record(&mut out, "k", &[b'v'; 95]); // crosses 99 → 100
        let len: usize = String::from_utf8_lossy(&out)
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, out.len());
    }
}
