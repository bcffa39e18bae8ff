//! Applies a layer tar (gzip, zstd or plain) into one snapshot directory, converting OCI
//! whiteouts into overlayfs whiteouts (0/0 character devices and `trusted.overlay.opaque`),
//! preserving modes, ownership, xattrs, hardlinks, symlinks and device nodes, and refusing
//! any entry that would write outside the snapshot.

mod safe_fs;

use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmodat, makedev, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchownat, linkat, symlinkat};
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use self::safe_fs::{Dir, SafeError, components};
use super::digest::Digest;
use super::error::{Error, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What applying a layer produced.
#[derive(Debug, Clone)]
pub struct Applied {
    /// sha256 of the uncompressed tar stream (the layer's diff ID).
    pub diff_id: Digest,
    /// Number of tar entries applied.
    pub entries: u64,
}

/// Compression of a layer blob, detected from its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Sniffs the compression of a layer stream.
pub fn detect(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Returns a reader of the uncompressed tar stream of `blob`.
pub fn decompress<'a>(blob: impl Read + 'a, layer: &str) -> Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(256 * 1024, blob);
    let head = br
        .fill_buf()
        .map_err(|e| bad(layer, format!("read: {e}")))?;
    Ok(match detect(head) {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(br)
                .map_err(|e| bad(layer, format!("zstd: {e}")))?,
        ),
    })
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn bad(layer: &str, reason: String) -> Error {
    Error::BadLayer {
        layer: layer.to_owned(),
        reason,
    }
}

fn unsafe_entry(layer: &str, entry: &Path, reason: impl Into<String>) -> Error {
    Error::UnsafeLayer {
        layer: layer.to_owned(),
        entry: entry.display().to_string(),
        reason: reason.into(),
    }
}

fn map_safe<'a>(layer: &'a str, entry: &'a Path) -> impl FnOnce(SafeError) -> Error + 'a {
    move |e| match e {
        SafeError::Unsafe(reason) => unsafe_entry(layer, entry, reason),
        SafeError::Sys { op, path, errno } => bad(
            layer,
            format!(
                "entry {}: {op} {}: {errno}",
                entry.display(),
                path.display()
            ),
        ),
    }
}

/// Applies the (possibly compressed) layer `blob` into the directory `root`.
/// `layer` names the layer in errors. Returns the diff ID actually read.
pub fn apply_layer(root: &Path, layer: &str, blob: impl Read) -> Result<Applied> {
    let plain = decompress(blob, layer)?;
    let mut hr = HashingReader {
        inner: plain,
        hasher: Sha256::new(),
    };
    let entries = {
        let mut ar = tar::Archive::new(&mut hr);
        apply_entries(root, layer, &mut ar)?
    };
    // Hash the trailing padding too: the diff ID covers the whole uncompressed stream.
    io::copy(&mut hr, &mut io::sink()).map_err(|e| bad(layer, format!("read: {e}")))?;
    Ok(Applied {
        diff_id: Digest::from_hasher(hr.hasher),
        entries,
    })
}

fn apply_entries<R: Read>(root: &Path, layer: &str, ar: &mut tar::Archive<R>) -> Result<u64> {
    let top = Dir::open_root(root).map_err(map_safe(layer, Path::new(".")))?;
    let mut dir_times: Vec<(Vec<OsString>, u64)> = Vec::new();
    let mut count = 0u64;
    for entry in ar.entries().map_err(|e| bad(layer, format!("tar: {e}")))? {
        let mut entry = entry.map_err(|e| bad(layer, format!("tar: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(layer, format!("tar path: {e}")))?
            .into_owned();
        let comps = components(&path).map_err(map_safe(layer, &path))?;
        count += 1;
        let Some((name, parents)) = comps.split_last() else {
            continue;
        }; // the layer root itself
        let name_s = name.to_string_lossy();
        if name_s == OPAQUE_MARKER {
            let dir = top.walk(parents, true).map_err(map_safe(layer, &path))?;
            set_opaque(&dir)
                .map_err(|e| bad(layer, format!("entry {}: set opaque: {e}", path.display())))?;
            continue;
        }
        if let Some(target) = name_s.strip_prefix(WHITEOUT_PREFIX) {
            if target.starts_with(".wh.") {
                continue; // aufs metadata (.wh..wh.plnk etc.)
            }
            if target.is_empty() || target == "." || target == ".." {
                return Err(unsafe_entry(layer, &path, "malformed whiteout"));
            }
            let dir = top.walk(parents, true).map_err(map_safe(layer, &path))?;
            let t = OsStr::from_bytes(target.as_bytes());
            dir.remove(t).map_err(map_safe(layer, &path))?;
            mknodat(
                dir.fd.as_fd(),
                t,
                SFlag::S_IFCHR,
                Mode::empty(),
                makedev(0, 0),
            )
            .map_err(|e| {
                bad(
                    layer,
                    format!("entry {}: mknod whiteout: {e}", path.display()),
                )
            })?;
            continue;
        }
        let dir = top.walk(parents, true).map_err(map_safe(layer, &path))?;
        let hdr = entry.header().clone();
        let kind = hdr.entry_type();
        let existing = dir.lstat(name).map_err(map_safe(layer, &path))?;
        let existing_is_dir = existing.is_some_and(|s| {
            SFlag::from_bits_truncate(s.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
        });
        if existing.is_some() && !(kind == EntryType::Directory && existing_is_dir) {
            dir.remove(name).map_err(map_safe(layer, &path))?;
        }
        let perm = hdr
            .mode()
            .map_err(|e| bad(layer, format!("entry {}: mode: {e}", path.display())))?
            & 0o7777;
        let fail = |op: &str, e: &dyn std::fmt::Display| {
            bad(layer, format!("entry {}: {op}: {e}", path.display()))
        };
        match kind {
            EntryType::Directory => {
                if !existing_is_dir {
                    nix::sys::stat::mkdirat(
                        dir.fd.as_fd(),
                        name.as_os_str(),
                        Mode::from_bits_truncate(0o700),
                    )
                    .map_err(|e| fail("mkdir", &e))?;
                }
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = openat(
                    dir.fd.as_fd(),
                    name.as_os_str(),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| fail("create", &e))?;
                let mut f = std::fs::File::from(fd);
                io::copy(&mut entry, &mut f).map_err(|e| fail("write", &e))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| fail("link name", &e))?
                    .ok_or_else(|| {
                        bad(
                            layer,
                            format!("entry {}: symlink without target", path.display()),
                        )
                    })?;
                symlinkat(target.as_ref(), dir.fd.as_fd(), name.as_os_str())
                    .map_err(|e| fail("symlink", &e))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| fail("link name", &e))?
                    .ok_or_else(|| {
                        bad(
                            layer,
                            format!("entry {}: hardlink without target", path.display()),
                        )
                    })?;
                let tcomps = components(&target).map_err(|e| match e {
                    SafeError::Unsafe(r) => unsafe_entry(
                        layer,
                        &path,
                        format!("hardlink target {}: {r}", target.display()),
                    ),
                    other => map_safe(layer, &path)(other),
                })?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(unsafe_entry(layer, &path, "hardlink to the layer root"));
                };
                let tdir = top.walk(tparents, false).map_err(map_safe(layer, &path))?;
                linkat(
                    tdir.fd.as_fd(),
                    tname.as_os_str(),
                    dir.fd.as_fd(),
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| fail(&format!("hardlink to {}", target.display()), &e))?;
                continue; // a hardlink shares the target's metadata
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let sflag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = hdr.device_major().ok().flatten().unwrap_or(0);
                let minor = hdr.device_minor().ok().flatten().unwrap_or(0);
                mknodat(
                    dir.fd.as_fd(),
                    name.as_os_str(),
                    sflag,
                    Mode::from_bits_truncate(perm),
                    makedev(major.into(), minor.into()),
                )
                .map_err(|e| fail("mknod", &e))?;
            }
            other => {
                tracing::warn!(layer, entry = %path.display(), kind = ?other, "skipping unsupported tar entry type");
                continue;
            }
        }
        let uid = hdr.uid().map_err(|e| fail("uid", &e))?;
        let gid = hdr.gid().map_err(|e| fail("gid", &e))?;
        fchownat(
            dir.fd.as_fd(),
            name.as_os_str(),
            Some(Uid::from_raw(uid as u32)),
            Some(Gid::from_raw(gid as u32)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| fail("chown", &e))?;
        if kind != EntryType::Symlink {
            // After chown, which clears setuid/setgid. The name is not a symlink (we just made it).
            fchmodat(
                dir.fd.as_fd(),
                name.as_os_str(),
                Mode::from_bits_truncate(perm),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| fail("chmod", &e))?;
        }
        if let Some(exts) = entry
            .pax_extensions()
            .map_err(|e| fail("pax headers", &e))?
        {
            for ext in exts {
                let ext = ext.map_err(|e| fail("pax header", &e))?;
                let Some(key) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                    continue;
                };
                let key = OsStr::from_bytes(key);
                match xattr::set(dir.proc_path(name), key, ext.value_bytes()) {
                    Ok(()) => {}
                    // Like containerd: an attribute the filesystem (or a symlink) cannot carry
                    // is skipped, not fatal.
                    Err(e)
                        if e.raw_os_error() == Some(libc::ENOTSUP)
                            || (kind == EntryType::Symlink
                                && e.raw_os_error() == Some(libc::EPERM)) =>
                    {
                        tracing::warn!(layer, entry = %path.display(), xattr = %key.to_string_lossy(), error = %e, "xattr not supported, skipped");
                    }
                    Err(e) => return Err(fail(&format!("setxattr {}", key.to_string_lossy()), &e)),
                }
            }
        }
        let mtime = hdr.mtime().unwrap_or(0);
        if kind == EntryType::Directory {
            dir_times.push((comps.clone(), mtime));
        } else {
            set_mtime(&dir, name, mtime).map_err(|e| fail("utimes", &e))?;
        }
    }
    // Directory mtimes last: creating children would have bumped them.
    for (comps, mtime) in dir_times.iter().rev() {
        let (name, parents) = comps.split_last().expect("non-empty");
        let p: PathBuf = comps.iter().collect();
        let dir = top.walk(parents, false).map_err(map_safe(layer, &p))?;
        set_mtime(&dir, name, *mtime)
            .map_err(|e| bad(layer, format!("entry {}: utimes: {e}", p.display())))?;
    }
    Ok(count)
}

fn set_mtime(dir: &Dir, name: &OsStr, mtime: u64) -> nix::Result<()> {
    let t = TimeSpec::new(mtime as i64, 0);
    utimensat(
        dir.fd.as_fd(),
        name,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
}

fn set_opaque(dir: &Dir) -> io::Result<()> {
    use xattr::FileExt;
    let f = std::fs::File::from(dir.fd.try_clone()?);
    f.set_xattr("trusted.overlay.opaque", b"y")
}
