//! Whether an executable can run without a dynamic loader: binaries that become the only file
//! of a `scratch` image (kina's pause, coredns) have no libc or ld.so next to them, and a
//! dynamically linked one fails every pod with a bare "exec: no such file or directory".

use std::path::Path;

use super::error::{NodeImageError, Result};

/// ELF program header type of the interpreter (dynamic loader) path.
const PT_INTERP: u32 = 3;

/// The dynamic loader an ELF file asks for (its `PT_INTERP`), `None` for a static binary.
pub fn interpreter(bytes: &[u8]) -> std::result::Result<Option<String>, String> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("is not an ELF executable".into());
    }
    let le = match bytes[5] {
        1 => true,
        2 => false,
        e => return Err(format!("has an unknown ELF data encoding {e}")),
    };
    let num = |at: usize, len: usize| -> std::result::Result<u64, String> {
        let b = at
            .checked_add(len)
            .and_then(|end| bytes.get(at..end))
            .ok_or_else(|| format!("is a truncated ELF file (offset {at})"))?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if le { b[len - 1 - i] } else { b[i] };
            v = v << 8 | u64::from(byte);
        }
        Ok(v)
    };
    // (e_phoff, e_phentsize, e_phnum) and (p_offset, p_filesz) positions per ELF class.
    let (phoff, phentsize, phnum, p_offset, p_filesz, word) = match bytes[4] {
        1 => (num(0x1c, 4)?, num(0x2a, 2)?, num(0x2c, 2)?, 4, 16, 4),
        2 => (num(0x20, 8)?, num(0x36, 2)?, num(0x38, 2)?, 8, 32, 8),
        c => return Err(format!("has an unknown ELF class {c}")),
    };
    for i in 0..phnum {
        let ph = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|o| usize::try_from(o).ok())
            .ok_or_else(|| "has program headers outside the file".to_string())?;
        if num(ph, 4)? as u32 != PT_INTERP {
            continue;
        }
        let off = usize::try_from(num(ph.saturating_add(p_offset), word)?).unwrap_or(usize::MAX);
        let len = usize::try_from(num(ph.saturating_add(p_filesz), word)?).unwrap_or(usize::MAX);
        let path = bytes
            .get(off..off.saturating_add(len))
            .ok_or_else(|| "has a PT_INTERP outside the file".to_string())?;
        let path = path.split(|b| *b == 0).next().unwrap_or_default();
        return Ok(Some(String::from_utf8_lossy(path).into_owned()));
    }
    Ok(None)
}

/// A statically linked executable, or an error naming `flag` and the loader it needs.
pub fn check_static(flag: &str, path: &Path) -> Result<()> {
    let what = || format!("{flag} {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| NodeImageError::input(what(), e.to_string()))?;
    match interpreter(&bytes) {
        Ok(None) => Ok(()),
        Ok(Some(loader)) => Err(NodeImageError::input(
            what(),
            format!(
                "is dynamically linked (needs {loader}), but its image has no libc; \
                 give a static build (kina's pause: pause/build-static.sh)"
            ),
        )),
        Err(message) => Err(NodeImageError::input(what(), message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_and_static_binaries_are_told_apart() {
        // /bin/busybox is busybox-static; /bin/ls links glibc.
        let busybox = std::fs::read("/bin/busybox").unwrap();
        assert_eq!(interpreter(&busybox).unwrap(), None);
        let ls = std::fs::read("/bin/ls").unwrap();
        let loader = interpreter(&ls).unwrap().unwrap();
        assert!(loader.contains("ld-linux"), "{loader}");
        let e = check_static("--pause", Path::new("/bin/ls")).unwrap_err();
        assert!(
            e.to_string().contains("--pause /bin/ls") && e.to_string().contains(&loader),
            "{e}"
        );
        assert!(check_static("--pause", Path::new("/bin/busybox")).is_ok());
    }

    #[test]
    fn non_elf_and_truncated_files_are_errors_not_panics() {
        assert!(interpreter(b"#!/bin/sh\necho hi\n").is_err());
        let ls = std::fs::read("/bin/ls").unwrap();
        for cut in [64, 100, 500] {
            let _ = interpreter(&ls[..cut]);
        }
        let mut hostile = ls[..64].to_vec();
        hostile[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        hostile[0x38..0x3a].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(interpreter(&hostile).is_err());
    }
}
