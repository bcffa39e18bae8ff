//! Content-addressed blob store: `<root>/blobs/sha256/<hex>`, written through a verifying
//! ingest file in `<root>/ingest/` and renamed into place only once its digest checks out,
//! so a crash never leaves a half-written blob visible.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

use super::digest::Digest;
use super::error::{Error, Result};

/// What an ingest expects to receive.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// The digest the content must hash to (None: accept and report the computed one).
    pub digest: Option<Digest>,
    /// The exact size, when known.
    pub size: Option<u64>,
    /// Human context for errors, e.g. "layer sha256:... of docker.io/library/busybox:latest".
    pub context: String,
}

/// A blob being written; dropped without `commit` it leaves nothing behind.
pub trait Ingest: Write + Send {
    /// Verifies digest and size, then makes the blob visible atomically.
    fn commit(self: Box<Self>) -> Result<(Digest, u64)>;
}

/// Blob storage keyed by digest.
pub trait ContentStore: Send + Sync {
    /// Size of the blob, if present.
    fn size(&self, digest: &Digest) -> Option<u64>;
    /// Opens a blob for reading.
    fn open(&self, digest: &Digest) -> Result<File>;
    /// Reads a small blob (manifest, config) fully; refuses blobs above `limit` bytes.
    fn read(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>>;
    /// Starts writing a blob.
    fn ingest(&self, expected: Expected) -> Result<Box<dyn Ingest>>;
    /// Stores a small in-memory blob, verifying it against `digest` when given.
    fn put(&self, data: &[u8], digest: Option<&Digest>, context: &str) -> Result<Digest> {
        let mut w = self.ingest(Expected {
            digest: digest.cloned(),
            size: Some(data.len() as u64),
            context: context.to_owned(),
        })?;
        w.write_all(data)
            .map_err(|e| Error::Internal(format!("{context}: {e}")))?;
        Ok(w.commit()?.0)
    }
    /// All stored blobs.
    fn list(&self) -> Result<Vec<Digest>>;
    /// Deletes a blob; Ok(false) if it was absent.
    fn delete(&self, digest: &Digest) -> Result<bool>;
}

/// [`ContentStore`] on a local filesystem.
#[derive(Debug)]
pub struct FsContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

static INGEST_SEQ: AtomicU64 = AtomicU64::new(0);

impl FsContentStore {
    /// Opens (creating) the store at `root`, discarding ingests left by crashed processes.
    pub fn open(root: &Path) -> Result<Self> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        fs::create_dir_all(&blobs).map_err(Error::io("create", &blobs))?;
        fs::create_dir_all(&ingest).map_err(Error::io("create", &ingest))?;
        // Ingests of processes that died (a crash mid-pull) are garbage; live ones are not ours.
        super::flock::clean_abandoned(&ingest)?;
        Ok(Self { blobs, ingest })
    }

    /// Path of a blob (present or not).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }
}

impl ContentStore for FsContentStore {
    fn size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest)).ok().map(|m| m.len())
    }

    fn open(&self, digest: &Digest) -> Result<File> {
        let p = self.blob_path(digest);
        File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(format!("blob {digest}")),
            _ => Error::Io {
                op: "open",
                path: p,
                source: e,
            },
        })
    }

    fn read(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let f = self.open(digest)?;
        let mut buf = Vec::new();
        f.take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(Error::io("read", self.blob_path(digest)))?;
        if buf.len() as u64 > limit {
            return Err(Error::InvalidArgument(format!(
                "blob {digest} is larger than {limit} bytes"
            )));
        }
        Ok(buf)
    }

    fn ingest(&self, expected: Expected) -> Result<Box<dyn Ingest>> {
        let seq = INGEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self.ingest.join(format!("{}-{seq}", std::process::id()));
        let file = File::create(&tmp).map_err(Error::io("create", &tmp))?;
        Ok(Box::new(FsIngest {
            file: Some(io::BufWriter::with_capacity(256 * 1024, file)),
            tmp,
            blobs: self.blobs.clone(),
            hasher: Sha256::new(),
            written: 0,
            expected,
        }))
    }

    fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.blobs).map_err(Error::io("list", &self.blobs))? {
            let e = e.map_err(Error::io("list", &self.blobs))?;
            if let Ok(d) = Digest::parse(&format!("sha256:{}", e.file_name().to_string_lossy())) {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn delete(&self, digest: &Digest) -> Result<bool> {
        let p = self.blob_path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::Io {
                op: "remove",
                path: p,
                source: e,
            }),
        }
    }
}

struct FsIngest {
    file: Option<io::BufWriter<File>>,
    tmp: PathBuf,
    blobs: PathBuf,
    hasher: Sha256,
    written: u64,
    expected: Expected,
}

impl Write for FsIngest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("ingest already committed"))?;
        let n = f.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        if let Some(size) = self.expected.size
            && self.written > size
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: more than the announced {size} bytes",
                    self.expected.context
                ),
            ));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Ingest for FsIngest {
    fn commit(mut self: Box<Self>) -> Result<(Digest, u64)> {
        let ctx = self.expected.context.clone();
        let file = self.file.take().expect("file present until commit");
        let file = file.into_inner().map_err(|e| Error::Io {
            op: "write",
            path: self.tmp.clone(),
            source: e.into_error(),
        })?;
        let actual = Digest::from_hasher(std::mem::take(&mut self.hasher));
        if let Some(size) = self.expected.size
            && size != self.written
        {
            return Err(Error::SizeMismatch {
                context: ctx,
                expected: size,
                actual: self.written,
            });
        }
        if let Some(want) = &self.expected.digest
            && *want != actual
        {
            return Err(Error::DigestMismatch {
                context: ctx,
                expected: want.to_string(),
                actual: actual.to_string(),
            });
        }
        file.sync_all().map_err(Error::io("fsync", &self.tmp))?;
        drop(file);
        let dst = self.blobs.join(actual.hex());
        fs::rename(&self.tmp, &dst).map_err(Error::io("rename", &dst))?;
        if let Ok(dir) = File::open(&self.blobs) {
            let _ = dir.sync_all();
        }
        Ok((actual, self.written))
    }
}

impl Drop for FsIngest {
    fn drop(&mut self) {
        // Not committed (or commit failed): the partial content must not survive.
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_verifies_digest_and_leaves_nothing_on_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsContentStore::open(dir.path()).unwrap();
        let good = Digest::of(b"hello");
        assert_eq!(store.put(b"hello", Some(&good), "t").unwrap(), good);
        assert_eq!(store.read(&good, 100).unwrap(), b"hello");
        let wrong = Digest::of(b"other");
        let err = store.put(b"hello!", Some(&wrong), "blob x").unwrap_err();
        assert!(
            matches!(
                err,
                Error::SizeMismatch { .. } | Error::DigestMismatch { .. }
            ),
            "{err}"
        );
        let err = store.put(b"hellO", Some(&good), "blob x").unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert_eq!(store.list().unwrap(), vec![good]);
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    }
}
