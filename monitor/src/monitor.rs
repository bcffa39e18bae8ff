//! The monitor's life: set everything up, create the container, then a single-threaded
//! poll(2) loop that logs output, relays attach, serves the ctl fifo and reaps the init; at the
//! end drain the output and write the exit file.

use crate::args::Args;
use crate::attach::{AttachError, AttachServer, ClientRead, StdinSink};
use crate::clock;
use crate::console::{self, ConsoleError, ConsoleSocket};
use crate::ctl::{CtlError, CtlFifo, CtlRequest};
use crate::log::{CriLog, LogError, Stream, StreamLog};
use crate::oom::OomWatch;
use crate::reaper::{self, Event, Exit, ExitRecord, ReaperError, Signals};
use crate::runtime::{self, RuntimeError};
use cri_monitor::protocol;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::Pid;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

/// Everything that can stop the monitor, by step.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Reaper(#[from] ReaperError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Ctl(#[from] CtlError),
    #[error(transparent)]
    Console(#[from] ConsoleError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("socket dir {path}: {source}")]
    SocketDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("container {id}: poll: {source}")]
    Poll { id: String, source: Errno },
}

/// One output stream of the container (a pipe, or the pty master as stdout).
struct Output {
    fd: OwnedFd,
    log: StreamLog,
}

/// A running monitor.
pub struct Monitor {
    id: String,
    exit_file: PathBuf,
    pid: Pid,
    signals: Signals,
    log: CriLog,
    outputs: Vec<Output>,
    stdin: Option<StdinSink>,
    stdin_once: bool,
    /// The attach client whose input goes to stdin first (for `--stdin-once`).
    stdin_owner_seen: bool,
    /// Close stdin once the queued input is written.
    stdin_closing: bool,
    tty: Option<OwnedFd>,
    attach: Option<AttachServer>,
    ctl: Option<CtlFifo>,
    oom: Option<OomWatch>,
    exit: Option<(Exit, String)>,
    buf: Vec<u8>,
}

/// What a poll slot belongs to.
#[derive(Clone, Copy)]
enum Slot {
    Signals,
    Output(usize),
    Listener,
    Client(usize),
    Stdin,
    Ctl,
}

impl Monitor {
    /// Sets up signals, log, sockets, and creates the container.
    pub fn start(args: &Args) -> Result<Self, MonitorError> {
        let signals = Signals::install()?;
        let log = CriLog::open(&args.log_path, args.log_size_max)?;
        let (mut attach, mut ctl, mut console) = (None, None, None);
        if let Some(dir) = &args.socket_dir {
            std::fs::create_dir_all(dir).map_err(|source| MonitorError::SocketDir {
                path: dir.clone(),
                source,
            })?;
            attach = Some(AttachServer::bind(&dir.join(protocol::ATTACH_SOCKET))?);
            ctl = Some(CtlFifo::create(&dir.join(protocol::CTL_FIFO))?);
            if args.tty {
                console = Some(ConsoleSocket::bind(&dir.join(protocol::CONSOLE_SOCKET))?);
            }
        }
        let (pid, io) = runtime::create(args, console.as_ref())?;
        drop(console);

        let mut outputs = Vec::new();
        let (mut stdin, mut tty) = (None, None);
        let dup = |fd: &OwnedFd| {
            fd.try_clone().map_err(|source| RuntimeError::Io {
                id: args.id.clone(),
                what: "dup pty master".into(),
                source,
            })
        };
        if let Some(master) = io.master {
            if args.stdin {
                stdin = Some(StdinSink::new(dup(&master)?));
            }
            tty = Some(dup(&master)?);
            outputs.push(Output {
                fd: master,
                log: StreamLog::new(Stream::Stdout),
            });
        }
        for (fd, stream) in [(io.stdout, Stream::Stdout), (io.stderr, Stream::Stderr)] {
            if let Some(fd) = fd {
                outputs.push(Output {
                    fd,
                    log: StreamLog::new(stream),
                });
            }
        }
        if let Some(w) = io.stdin {
            stdin = Some(StdinSink::new(w));
        }
        let oom = OomWatch::for_pid(pid.as_raw());
        match &oom {
            Some(w) => {
                tracing::debug!(id = %args.id, counter = %w.counter().display(), "watching OOM kills")
            }
            None => {
                tracing::info!(id = %args.id, "no memory cgroup counter: OOM kills are not detected")
            }
        }
        Ok(Self {
            id: args.id.clone(),
            exit_file: args.exit_file.clone(),
            pid,
            signals,
            log,
            outputs,
            stdin,
            stdin_once: args.stdin_once,
            stdin_owner_seen: false,
            stdin_closing: false,
            tty,
            attach,
            ctl,
            oom,
            exit: None,
            buf: vec![0u8; 16 * 1024],
        })
    }

    /// The container init's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Runs until the container has exited; writes and returns the exit record.
    pub fn run(mut self) -> Result<ExitRecord, MonitorError> {
        // A SIGCHLD may have been consumed while the runtime ran: reap once up front.
        self.reap();
        while self.exit.is_none() {
            self.step()?;
        }
        self.drain();
        let (exit, exited_at) = self
            .exit
            .take()
            .unwrap_or((Exit::Code(255), clock::now_rfc3339_nano()));
        let oom = self.oom.as_ref().and_then(OomWatch::oom_killed);
        let record = ExitRecord::new(exit, exited_at, oom);
        reaper::write_exit_file(&record, &self.exit_file)?;
        tracing::info!(id = %self.id, ?record, "container exited");
        if let Some(a) = self.attach.as_mut() {
            a.close_clients();
        }
        // Remaining orphans of the container are reaped; the sockets and fifo are removed on drop.
        reaper::reap(self.pid);
        Ok(record)
    }

    fn reap(&mut self) {
        if let Some(exit) = reaper::reap(self.pid) {
            self.exit = Some((exit, clock::now_rfc3339_nano()));
        }
    }

    /// One poll round.
    fn step(&mut self) -> Result<(), MonitorError> {
        let mut slots = Vec::new();
        let revents: Vec<PollFlags> = {
            let mut fds = vec![PollFd::new(self.signals.fd().as_fd(), PollFlags::POLLIN)];
            slots.push(Slot::Signals);
            // New attach clients first: a client that connected before some output was
            // produced must receive that output.
            if let Some(a) = &self.attach {
                fds.push(PollFd::new(a.listener(), PollFlags::POLLIN));
                slots.push(Slot::Listener);
            }
            for (i, o) in self.outputs.iter().enumerate() {
                fds.push(PollFd::new(o.fd.as_fd(), PollFlags::POLLIN));
                slots.push(Slot::Output(i));
            }
            if let Some(a) = &self.attach {
                let reading = self.stdin.as_ref().is_none_or(StdinSink::accepts_input);
                for (i, c) in a.clients() {
                    let ev = if reading {
                        PollFlags::POLLIN
                    } else {
                        PollFlags::empty()
                    };
                    fds.push(PollFd::new(c, ev));
                    slots.push(Slot::Client(i));
                }
            }
            if let Some(s) = &self.stdin
                && s.has_pending()
            {
                fds.push(PollFd::new(s.fd(), PollFlags::POLLOUT));
                slots.push(Slot::Stdin);
            }
            if let Some(c) = &self.ctl {
                fds.push(PollFd::new(c.fd(), PollFlags::POLLIN));
                slots.push(Slot::Ctl);
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(source) => {
                    return Err(MonitorError::Poll {
                        id: self.id.clone(),
                        source,
                    });
                }
            }
            fds.iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect()
        };
        let mut closed_outputs = Vec::new();
        for (slot, ev) in slots.into_iter().zip(revents) {
            if ev.is_empty() {
                continue;
            }
            match slot {
                Slot::Signals => self.on_signals(),
                Slot::Output(i) => {
                    if !self.read_output(i, 16) {
                        closed_outputs.push(i);
                    }
                }
                Slot::Listener => {
                    if let Some(a) = self.attach.as_mut() {
                        a.accept_all();
                    }
                }
                Slot::Client(i) => {
                    if !self.read_client(i)
                        && let Some(a) = self.attach.as_mut()
                    {
                        a.disconnect(i);
                    }
                }
                Slot::Stdin => self.flush_stdin(),
                Slot::Ctl => self.on_ctl(),
            }
        }
        if let Some(a) = self.attach.as_mut() {
            a.prune();
        }
        for i in closed_outputs.into_iter().rev() {
            let mut o = self.outputs.remove(i);
            if let Err(e) = o.log.finish(&mut self.log) {
                tracing::warn!(id = %self.id, "{e}");
            }
        }
        Ok(())
    }

    fn on_signals(&mut self) {
        for ev in self.signals.drain() {
            match ev {
                Event::Child => self.reap(),
                Event::Reopen => self.reopen_log(),
                Event::Terminate(sig) => tracing::info!(
                    id = %self.id,
                    ?sig,
                    "ignoring signal: the monitor exits when the container exits"
                ),
            }
        }
    }

    fn reopen_log(&mut self) {
        match self.log.reopen() {
            Ok(()) => {
                tracing::info!(id = %self.id, path = %self.log.path().display(), "log reopened")
            }
            Err(e) => tracing::warn!(id = %self.id, "{e}"),
        }
    }

    /// Reads up to `rounds` chunks from output `i`; false once the stream has ended.
    fn read_output(&mut self, i: usize, rounds: usize) -> bool {
        for _ in 0..rounds {
            let o = &mut self.outputs[i];
            match nix::unistd::read(&o.fd, &mut self.buf) {
                // EIO: the pty's slave side is closed for good.
                Ok(0) | Err(Errno::EIO) => return false,
                Ok(n) => {
                    let data = &self.buf[..n];
                    if let Err(e) = o.log.write(&mut self.log, data) {
                        tracing::warn!(id = %self.id, "{e}");
                    }
                    if let Some(a) = self.attach.as_mut() {
                        a.broadcast(o.log.stream, data);
                    }
                }
                Err(Errno::EAGAIN) => return true,
                Err(Errno::EINTR) => {}
                Err(e) => {
                    tracing::warn!(id = %self.id, stream = o.log.stream.as_str(), "read: {e}");
                    return false;
                }
            }
        }
        true
    }

    /// Relays one packet of client input; false if the client is gone.
    fn read_client(&mut self, i: usize) -> bool {
        let Some(a) = self.attach.as_mut() else {
            return false;
        };
        match a.read_client(i, &mut self.buf) {
            ClientRead::Closed => {
                if self.stdin_once && self.stdin_owner_seen && !self.stdin_closing {
                    // stdin_once: the attach session that fed stdin is over; the container
                    // sees EOF once its queued input is written.
                    self.stdin_closing = true;
                    if self.tty.is_some()
                        && let Some(s) = self.stdin.as_mut()
                    {
                        // A pty has no half-close: send the terminal's EOF character.
                        s.queue(b"\x04");
                    }
                    self.flush_stdin();
                }
                false
            }
            ClientRead::Nothing => true,
            ClientRead::Data(n) => {
                if let Some(s) = self.stdin.as_mut()
                    && !self.stdin_closing
                {
                    s.queue(&self.buf[..n]);
                    self.stdin_owner_seen = true;
                    self.flush_stdin();
                }
                true
            }
        }
    }

    fn flush_stdin(&mut self) {
        let Some(s) = self.stdin.as_mut() else { return };
        match s.flush() {
            Err(e) => {
                tracing::info!(id = %self.id, "container stdin closed: {e}");
                self.stdin = None;
            }
            Ok(()) if self.stdin_closing && !s.has_pending() => {
                tracing::info!(id = %self.id, "closing container stdin (stdin-once)");
                self.stdin = None;
            }
            Ok(()) => {}
        }
    }

    fn on_ctl(&mut self) {
        let Some(ctl) = self.ctl.as_mut() else { return };
        for req in ctl.read_requests() {
            match req {
                CtlRequest::ReopenLog => self.reopen_log(),
                CtlRequest::Resize { width, height } => match &self.tty {
                    Some(t) => {
                        if let Err(e) = console::resize(t, height, width) {
                            tracing::warn!(id = %self.id, "resize: {e}");
                        }
                    }
                    None => {
                        tracing::warn!(id = %self.id, "resize request for a container without a tty")
                    }
                },
                CtlRequest::Invalid(line) => {
                    tracing::warn!(id = %self.id, line, "malformed ctl request")
                }
            }
        }
    }

    /// After the init exited: everything it wrote is already in the pipes/pty; read it all.
    /// Non-blocking, so a leftover process holding a pipe open cannot keep the monitor alive.
    fn drain(&mut self) {
        for i in 0..self.outputs.len() {
            while self.read_output(i, 64) {
                let mut probe = [PollFd::new(self.outputs[i].fd.as_fd(), PollFlags::POLLIN)];
                match poll(&mut probe, PollTimeout::ZERO) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
                if probe[0]
                    .revents()
                    .is_none_or(|r| !r.contains(PollFlags::POLLIN))
                {
                    break;
                }
            }
        }
        for mut o in std::mem::take(&mut self.outputs) {
            if let Err(e) = o.log.finish(&mut self.log) {
                tracing::warn!(id = %self.id, "{e}");
            }
        }
    }
}
