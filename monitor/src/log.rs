//! The CRI container log writer.
//!
//! Format (kubelet's `pkg/kubelet/kuberuntime/logs`): one entry per line,
//! `<RFC3339Nano timestamp> <stdout|stderr> <P|F> <content>\n`. A line longer than
//! [`MAX_LINE`] bytes is cut into chunks of exactly `MAX_LINE` bytes tagged `P` (partial) followed
//! by the rest tagged `F` (final); a complete line is one `F` entry. Like containerd, an
//! unfinished line is held (up to `MAX_LINE` bytes per stream) until its newline arrives or the
//! stream ends, so the tags always say where the container's own lines end.
//!
//! Rotation: the kubelet renames the file and asks the monitor to reopen `log-path`
//! ([`CriLog::reopen`]). With `--log-size-max`, a file that would grow past the limit is
//! truncated and written from the start (CRI-O/conmon semantics).

use crate::clock;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The longest content of one log entry (16 KiB, like the kubelet/containerd/CRI-O).
pub const MAX_LINE: usize = 16 * 1024;

/// Which output stream an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Whether an entry ends a line (`F`) or is a partial chunk of a longer one (`P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Partial,
    Full,
}

impl Tag {
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Partial => "P",
            Tag::Full => "F",
        }
    }
}

/// Errors of the log file, naming the path.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("open container log {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write container log {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Cuts a byte stream into CRI log entries.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit(content, tag)` for every entry that is complete.
    pub fn push(&mut self, mut data: &[u8], emit: &mut dyn FnMut(&[u8], Tag)) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let (line, rest) = (&data[..nl], &data[nl + 1..]);
            if self.pending.is_empty() {
                emit_line(line, emit);
            } else {
                self.pending.extend_from_slice(line);
                emit_line(&self.pending, emit);
                self.pending.clear();
            }
            data = rest;
        }
        self.pending.extend_from_slice(data);
        // Hold up to MAX_LINE bytes: if the newline comes next, the line is still one F entry.
        if self.pending.len() > MAX_LINE {
            let full = self.pending.len() / MAX_LINE * MAX_LINE;
            let cut = if full == self.pending.len() {
                full - MAX_LINE
            } else {
                full
            };
            for chunk in self.pending[..cut].chunks(MAX_LINE) {
                emit(chunk, Tag::Partial);
            }
            self.pending.drain(..cut);
        }
    }

    /// The stream ended: an unfinished line becomes a final entry.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[u8], Tag)) {
        if !self.pending.is_empty() {
            emit_line(&self.pending, emit);
            self.pending.clear();
        }
    }
}

/// Emits one complete line: P chunks of MAX_LINE, then the rest (possibly empty) as F.
fn emit_line(line: &[u8], emit: &mut dyn FnMut(&[u8], Tag)) {
    let mut rest = line;
    while rest.len() > MAX_LINE {
        emit(&rest[..MAX_LINE], Tag::Partial);
        rest = &rest[MAX_LINE..];
    }
    emit(rest, Tag::Full);
}

/// The container's log file at `log-path`.
#[derive(Debug)]
pub struct CriLog {
    path: PathBuf,
    file: File,
    size: u64,
    size_max: Option<u64>,
    entry: Vec<u8>,
}

fn open(path: &Path) -> Result<(File, u64), LogError> {
    let err = |source| LogError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(err)?;
    let size = file.metadata().map_err(err)?.len();
    Ok((file, size))
}

impl CriLog {
    /// Opens (creating, appending) the log file.
    pub fn open(path: &Path, size_max: Option<u64>) -> Result<Self, LogError> {
        let (file, size) = open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            size_max,
            entry: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file and opens `log-path` again (after the kubelet renamed it away).
    pub fn reopen(&mut self) -> Result<(), LogError> {
        let (file, size) = open(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }

    /// Writes one entry as a single write(2), so a reader never sees half an entry.
    pub fn write_entry(
        &mut self,
        timestamp: &str,
        stream: Stream,
        tag: Tag,
        content: &[u8],
    ) -> Result<(), LogError> {
        self.entry.clear();
        self.entry.extend_from_slice(timestamp.as_bytes());
        self.entry.push(b' ');
        self.entry.extend_from_slice(stream.as_str().as_bytes());
        self.entry.push(b' ');
        self.entry.extend_from_slice(tag.as_str().as_bytes());
        self.entry.push(b' ');
        self.entry.extend_from_slice(content);
        self.entry.push(b'\n');
        let werr = |source| LogError::Write {
            path: self.path.clone(),
            source,
        };
        let len = self.entry.len() as u64;
        if let Some(max) = self.size_max
            && self.size > 0
            && self.size + len > max
        {
            self.file.set_len(0).map_err(werr)?;
            self.size = 0;
        }
        self.file.write_all(&self.entry).map_err(werr)?;
        self.size += len;
        if self.entry.capacity() > 4 * MAX_LINE {
            self.entry = Vec::new();
        }
        Ok(())
    }
}

/// One output stream of the container: its splitter feeding the shared log.
#[derive(Debug)]
pub struct StreamLog {
    pub stream: Stream,
    splitter: LineSplitter,
}

impl StreamLog {
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            splitter: LineSplitter::default(),
        }
    }

    /// Logs a chunk of output read from the container.
    pub fn write(&mut self, log: &mut CriLog, data: &[u8]) -> Result<(), LogError> {
        let ts = clock::now_rfc3339_nano();
        let stream = self.stream;
        let mut result = Ok(());
        self.splitter.push(data, &mut |c, tag| {
            if result.is_ok() {
                result = log.write_entry(&ts, stream, tag, c);
            }
        });
        result
    }

    /// The stream ended: flush an unfinished line.
    pub fn finish(&mut self, log: &mut CriLog) -> Result<(), LogError> {
        let ts = clock::now_rfc3339_nano();
        let stream = self.stream;
        let mut result = Ok(());
        self.splitter.finish(&mut |c, tag| {
            if result.is_ok() {
                result = log.write_entry(&ts, stream, tag, c);
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(Vec<u8>, Tag)> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut |c, t| out.push((c.to_vec(), t)));
        }
        s.finish(&mut |c, t| out.push((c.to_vec(), t)));
        out
    }

    fn tags(v: &[(Vec<u8>, Tag)]) -> String {
        v.iter().map(|(_, t)| t.as_str()).collect()
    }

    #[test]
    fn complete_lines_are_full_entries_even_across_reads() {
        let out = split(&[b"he", b"llo\nwor", b"ld\n\n"]);
        assert_eq!(
            out,
            vec![
                (b"hello".to_vec(), Tag::Full),
                (b"world".to_vec(), Tag::Full),
                (b"".to_vec(), Tag::Full)
            ]
        );
    }

    #[test]
    fn long_line_without_newline_is_split_p_p_f_and_reassembles() {
        let input: Vec<u8> = (0..40 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
        // Arrives in odd-sized reads.
        let chunks: Vec<&[u8]> = input.chunks(4000).collect();
        let out = split(&chunks);
        assert_eq!(tags(&out), "PPF");
        assert!(out.iter().all(|(c, _)| c.len() <= MAX_LINE));
        assert_eq!(out[0].0.len(), MAX_LINE);
        assert_eq!(out.concat_content(), input);
    }

    #[test]
    fn line_of_exactly_max_is_one_full_entry() {
        let mut input = vec![b'x'; MAX_LINE];
        input.push(b'\n');
        let out = split(&[&input[..100], &input[100..]]);
        assert_eq!(tags(&out), "F");
        assert_eq!(out[0].0.len(), MAX_LINE);
        let mut two = vec![b'y'; 2 * MAX_LINE];
        two.push(b'\n');
        let out = split(&[&two]);
        assert_eq!(tags(&out), "PF");
        let out = split(&[&two[..2 * MAX_LINE]]);
        assert_eq!(tags(&out), "PF");
    }

    #[test]
    fn partial_then_newline_in_later_read() {
        let big = vec![b'z'; MAX_LINE + 10];
        let out = split(&[&big, b"tail\nnext"]);
        assert_eq!(tags(&out), "PFF");
        assert_eq!(out[1].0, [vec![b'z'; 10], b"tail".to_vec()].concat());
        assert_eq!(out[2].0, b"next");
    }

    trait Concat {
        fn concat_content(&self) -> Vec<u8>;
    }
    impl Concat for Vec<(Vec<u8>, Tag)> {
        fn concat_content(&self) -> Vec<u8> {
            self.iter().flat_map(|(c, _)| c.clone()).collect()
        }
    }

    #[test]
    fn writes_cri_entries_and_reopens_after_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = CriLog::open(&path, None).unwrap();
        let mut out = StreamLog::new(Stream::Stdout);
        let mut err = StreamLog::new(Stream::Stderr);
        out.write(&mut log, b"one\ntw").unwrap();
        err.write(&mut log, b"bad\n").unwrap();
        out.finish(&mut log).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with(" stdout F one"), "{}", lines[0]);
        assert!(lines[1].ends_with(" stderr F bad"));
        assert!(lines[2].ends_with(" stdout F tw"));
        let ts = lines[0].split(' ').next().unwrap();
        let frac = ts.split_once('.').unwrap().1;
        assert!(frac[..9].bytes().all(|b| b.is_ascii_digit()), "{ts}");
        assert!(matches!(frac.as_bytes()[9], b'Z' | b'+' | b'-'), "{ts}");

        std::fs::rename(&path, dir.path().join("c.log.1")).unwrap();
        log.reopen().unwrap();
        out.write(&mut log, b"after\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.trim_end().ends_with("stdout F after"));
    }

    #[test]
    fn size_max_truncates_and_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = CriLog::open(&path, Some(200)).unwrap();
        let mut out = StreamLog::new(Stream::Stdout);
        for i in 0..20 {
            out.write(&mut log, format!("line {i}\n").as_bytes())
                .unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() <= 200);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.trim_end().ends_with("line 19"));
        assert!(!text.contains("line 0\n"));
    }

    #[test]
    fn open_error_names_the_path() {
        let e = CriLog::open(Path::new("/nonexistent-dir/x.log"), None).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/x.log"));
    }
}
