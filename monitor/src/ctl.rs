//! The control FIFO: `<socket-dir>/ctl` (like conmon's ctl fifo).
//!
//! Writers send lines `<type> <width> <height>\n`:
//! - `1 W H`: resize the tty to W columns and H rows (only for `--tty` containers);
//! - `2 0 0`: reopen the log file (same as SIGUSR1; the kubelet's ReopenContainerLog).
//!
//! The monitor opens the FIFO read-write itself, so writers may come and go without the monitor
//! ever seeing EOF. Malformed lines are logged and skipped.

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Errors of the control FIFO, naming its path.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("ctl fifo {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
}

/// One request read from the FIFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtlRequest {
    Resize { width: u16, height: u16 },
    ReopenLog,
    Invalid(String),
}

/// The open control FIFO.
#[derive(Debug)]
pub struct CtlFifo {
    path: PathBuf,
    fd: OwnedFd,
    partial: Vec<u8>,
}

impl CtlFifo {
    /// Creates (replacing a stale one) and opens the FIFO.
    pub fn create(path: &Path) -> Result<Self, CtlError> {
        let err = |what, source: Errno| CtlError::Io {
            path: path.to_path_buf(),
            what,
            source: source.into(),
        };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CtlError::Io {
                    path: path.to_path_buf(),
                    what: "remove stale fifo",
                    source,
                });
            }
        }
        nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600)).map_err(|e| err("mkfifo", e))?;
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err("open", e))?;
        Ok(Self {
            path: path.to_path_buf(),
            fd,
            partial: Vec::new(),
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Reads every complete request available now.
    pub fn read_requests(&mut self) -> Vec<CtlRequest> {
        let mut buf = [0u8; 512];
        loop {
            match nix::unistd::read(&self.fd, &mut buf) {
                Ok(0) | Err(Errno::EAGAIN) => break,
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        let mut out = Vec::new();
        while let Some(nl) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            out.push(parse(&String::from_utf8_lossy(&line[..nl])));
        }
        if self.partial.len() > 256 {
            out.push(CtlRequest::Invalid("over-long line".into()));
            self.partial.clear();
        }
        out
    }
}

impl Drop for CtlFifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Parses one `<type> <width> <height>` line.
pub fn parse(line: &str) -> CtlRequest {
    let f: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u16>().ok());
    match (f.first().copied(), num(1), num(2), f.len()) {
        (Some("1"), Some(width), Some(height), 3) => CtlRequest::Resize { width, height },
        (Some("2"), Some(_), Some(_), 3) => CtlRequest::ReopenLog,
        _ => CtlRequest::Invalid(line.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_requests() {
        assert_eq!(
            parse("1 80 24"),
            CtlRequest::Resize {
                width: 80,
                height: 24
            }
        );
        assert_eq!(parse("2 0 0"), CtlRequest::ReopenLog);
        assert!(matches!(parse("3 0 0"), CtlRequest::Invalid(_)));
        assert!(matches!(parse("1 80"), CtlRequest::Invalid(_)));
        assert!(matches!(parse("1 -1 2"), CtlRequest::Invalid(_)));
    }

    #[test]
    fn fifo_delivers_lines_written_in_pieces_and_survives_writer_close() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ctl");
        let mut fifo = CtlFifo::create(&p).unwrap();
        {
            let mut w = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            w.write_all(b"2 0 0\n1 1").unwrap();
        }
        assert_eq!(fifo.read_requests(), vec![CtlRequest::ReopenLog]);
        {
            let mut w = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            w.write_all(b"00 30\n").unwrap();
        }
        assert_eq!(
            fifo.read_requests(),
            vec![CtlRequest::Resize {
                width: 100,
                height: 30
            }]
        );
        assert!(fifo.read_requests().is_empty());
        drop(fifo);
        assert!(!p.exists(), "fifo removed on drop");
    }
}
