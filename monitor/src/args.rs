//! Command line of cri-monitor.
//!
//! ```text
//! cri-monitor --runtime PATH [--runtime-arg X]... --root DIR --bundle DIR --id ID
//!             --log-path PATH --exit-file PATH --pid-file PATH [--tty] [--stdin [--stdin-once]]
//!             [--socket-dir DIR] [--log-size-max N] [--sync-fd FD]
//! ```
//!
//! Hand-parsed (no clap) to keep the per-container process small. Relative paths are resolved
//! against the working directory at start, because the daemon later changes to `/`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Usage text printed by `--help`.
pub const USAGE: &str = "usage: cri-monitor --runtime PATH [--runtime-arg X]... --root DIR \
--bundle DIR --id ID --log-path PATH --exit-file PATH --pid-file PATH [--tty] [--stdin [--stdin-once]] \
[--socket-dir DIR] [--log-size-max BYTES] [--sync-fd FD]";

/// Errors of command-line parsing; each names the offending flag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("missing required flag {0}")]
    Missing(&'static str),
    #[error("flag {0} needs a value")]
    MissingValue(String),
    #[error("unknown argument {0:?}")]
    Unknown(String),
    #[error("flag {flag} given twice")]
    Duplicate { flag: String },
    #[error("invalid value {value:?} for {flag}: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("argument is not valid UTF-8: {0:?}")]
    NotUtf8(OsString),
}

/// Everything the monitor needs to run one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub runtime: PathBuf,
    pub runtime_args: Vec<String>,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub id: String,
    pub log_path: PathBuf,
    pub exit_file: PathBuf,
    pub pid_file: PathBuf,
    pub tty: bool,
    pub stdin: bool,
    /// Close the container's stdin when the first attach client that sent input detaches
    /// (the CRI's `stdin_once`).
    pub stdin_once: bool,
    pub socket_dir: Option<PathBuf>,
    pub log_size_max: Option<u64>,
    pub sync_fd: Option<i32>,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Box<Args>),
    Help,
    Version,
}

/// Flags that take a value.
const VALUE_FLAGS: &[&str] = &[
    "--runtime",
    "--runtime-arg",
    "--root",
    "--bundle",
    "--id",
    "--log-path",
    "--exit-file",
    "--pid-file",
    "--socket-dir",
    "--log-size-max",
    "--sync-fd",
];

#[derive(Default)]
struct Builder {
    runtime: Option<PathBuf>,
    runtime_args: Vec<String>,
    root: Option<PathBuf>,
    bundle: Option<PathBuf>,
    id: Option<String>,
    log_path: Option<PathBuf>,
    exit_file: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    tty: bool,
    stdin: bool,
    stdin_once: bool,
    socket_dir: Option<PathBuf>,
    log_size_max: Option<u64>,
    sync_fd: Option<i32>,
}

fn set<T>(slot: &mut Option<T>, flag: &str, v: T) -> Result<(), ArgsError> {
    if slot.is_some() {
        return Err(ArgsError::Duplicate { flag: flag.into() });
    }
    *slot = Some(v);
    Ok(())
}

fn abs(cwd: &Path, v: &str, flag: &'static str) -> Result<PathBuf, ArgsError> {
    if v.is_empty() {
        return Err(ArgsError::Invalid {
            flag,
            value: v.into(),
            reason: "empty path",
        });
    }
    Ok(cwd.join(v))
}

/// Parses the arguments after the program name; relative paths are joined to `cwd`.
pub fn parse<I>(args: I, cwd: &Path) -> Result<Command, ArgsError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut b = Builder::default();
    let mut it = args.into_iter();
    while let Some(raw) = it.next() {
        let arg = raw.into_string().map_err(ArgsError::NotUtf8)?;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-v" | "--version" => return Ok(Command::Version),
            "--tty" | "-t" => b.tty = true,
            "--stdin" | "-i" => b.stdin = true,
            "--stdin-once" => b.stdin_once = true,
            f if !VALUE_FLAGS.contains(&f) => return Err(ArgsError::Unknown(arg)),
            _ => {
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| ArgsError::MissingValue(flag.clone()))?
                        .into_string()
                        .map_err(ArgsError::NotUtf8)?,
                };
                match flag.as_str() {
                    "--runtime" => {
                        // A bare name is looked up in PATH; anything else is a path.
                        let rt = if value.contains('/') {
                            abs(cwd, &value, "--runtime")?
                        } else {
                            abs(Path::new(""), &value, "--runtime")?
                        };
                        set(&mut b.runtime, &flag, rt)?
                    }
                    "--runtime-arg" => b.runtime_args.push(value),
                    "--root" => set(&mut b.root, &flag, abs(cwd, &value, "--root")?)?,
                    "--bundle" => set(&mut b.bundle, &flag, abs(cwd, &value, "--bundle")?)?,
                    "--id" => set(&mut b.id, &flag, check_id(value)?)?,
                    "--log-path" => set(&mut b.log_path, &flag, abs(cwd, &value, "--log-path")?)?,
                    "--exit-file" => {
                        set(&mut b.exit_file, &flag, abs(cwd, &value, "--exit-file")?)?
                    }
                    "--pid-file" => set(&mut b.pid_file, &flag, abs(cwd, &value, "--pid-file")?)?,
                    "--socket-dir" => {
                        set(&mut b.socket_dir, &flag, abs(cwd, &value, "--socket-dir")?)?
                    }
                    "--log-size-max" => {
                        let n = value.parse::<u64>().map_err(|_| ArgsError::Invalid {
                            flag: "--log-size-max",
                            value: value.clone(),
                            reason: "not a byte count",
                        })?;
                        // 0 or negative means "no limit" for the kubelet's ContainerLogMaxSize.
                        set(&mut b.log_size_max, &flag, n)?;
                    }
                    "--sync-fd" => {
                        let fd = value.parse::<i32>().ok().filter(|&fd| fd > 2).ok_or(
                            ArgsError::Invalid {
                                flag: "--sync-fd",
                                value: value.clone(),
                                reason: "must be an inherited descriptor number above 2",
                            },
                        )?;
                        set(&mut b.sync_fd, &flag, fd)?;
                    }
                    _ => return Err(ArgsError::Unknown(arg)),
                }
            }
        }
    }
    if b.stdin_once && !b.stdin {
        return Err(ArgsError::Missing("--stdin (required with --stdin-once)"));
    }
    if b.tty && b.socket_dir.is_none() {
        // The console socket lives in the socket dir; a tty container needs one.
        return Err(ArgsError::Missing("--socket-dir (required with --tty)"));
    }
    Ok(Command::Run(Box::new(Args {
        runtime: b.runtime.ok_or(ArgsError::Missing("--runtime"))?,
        runtime_args: b.runtime_args,
        root: b.root.ok_or(ArgsError::Missing("--root"))?,
        bundle: b.bundle.ok_or(ArgsError::Missing("--bundle"))?,
        id: b.id.ok_or(ArgsError::Missing("--id"))?,
        log_path: b.log_path.ok_or(ArgsError::Missing("--log-path"))?,
        exit_file: b.exit_file.ok_or(ArgsError::Missing("--exit-file"))?,
        pid_file: b.pid_file.ok_or(ArgsError::Missing("--pid-file"))?,
        tty: b.tty,
        stdin: b.stdin,
        stdin_once: b.stdin_once,
        socket_dir: b.socket_dir,
        log_size_max: b.log_size_max.filter(|&n| n > 0),
        sync_fd: b.sync_fd,
    })))
}

/// A container id becomes a path component and a runtime argument: no separators, no flags.
fn check_id(id: String) -> Result<String, ArgsError> {
    let reason = if id.is_empty() {
        Some("empty id")
    } else if id.starts_with('-') {
        Some("id must not start with '-'")
    } else if id.contains('/') || id == "." || id == ".." || id.contains('\0') {
        Some("id must be a single path component")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ArgsError::Invalid {
            flag: "--id",
            value: id,
            reason,
        }),
        None => Ok(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Result<Command, ArgsError> {
        parse(v.iter().map(OsString::from), Path::new("/cwd"))
    }

    const BASE: &[&str] = &[
        "--runtime",
        "/usr/sbin/runc",
        "--root",
        "/run/r",
        "--bundle",
        "b",
        "--id",
        "c1",
        "--log-path",
        "/l/c.log",
        "--exit-file",
        "/e",
        "--pid-file",
        "/p",
    ];

    fn run(extra: &[&str]) -> Args {
        let mut v = BASE.to_vec();
        v.extend_from_slice(extra);
        match p(&v).unwrap() {
            Command::Run(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_all_flags_and_resolves_relative_paths() {
        let a = run(&[
            "--runtime-arg",
            "--systemd-cgroup",
            "--runtime-arg=--debug",
            "--tty",
            "--stdin",
            "--stdin-once",
            "--socket-dir=s",
            "--log-size-max",
            "1024",
            "--sync-fd",
            "5",
        ]);
        assert_eq!(a.runtime, Path::new("/usr/sbin/runc"));
        assert_eq!(a.runtime_args, ["--systemd-cgroup", "--debug"]);
        assert_eq!(a.bundle, Path::new("/cwd/b"));
        assert_eq!(a.socket_dir.as_deref(), Some(Path::new("/cwd/s")));
        assert!(a.tty && a.stdin && a.stdin_once);
        assert_eq!(a.log_size_max, Some(1024));
        assert_eq!(a.sync_fd, Some(5));
        assert_eq!(a.id, "c1");
    }

    #[test]
    fn defaults_and_zero_log_size_means_unlimited() {
        let a = run(&["--log-size-max", "0"]);
        assert!(!a.tty && !a.stdin && !a.stdin_once);
        assert!(
            matches!(p(&[BASE, &["--stdin-once"]].concat()), Err(ArgsError::Missing(m)) if m.contains("--stdin "))
        );
        assert_eq!(a.log_size_max, None);
        assert_eq!(a.sync_fd, None);
    }

    #[test]
    fn reports_missing_and_bad_flags_by_name() {
        assert_eq!(p(&["--runtime", "x"]), Err(ArgsError::Missing("--root")));
        assert_eq!(
            p(&["--root"]),
            Err(ArgsError::MissingValue("--root".into()))
        );
        assert_eq!(p(&["--frob"]), Err(ArgsError::Unknown("--frob".into())));
        assert_eq!(p(&["stray"]), Err(ArgsError::Unknown("stray".into())));
        let mut v = BASE.to_vec();
        v.extend(["--bogus", "1"]);
        assert_eq!(p(&v), Err(ArgsError::Unknown("--bogus".into())));
        let mut v = BASE.to_vec();
        v.extend(["--id", "c2"]);
        assert_eq!(
            p(&v),
            Err(ArgsError::Duplicate {
                flag: "--id".into()
            })
        );
        let mut v = BASE.to_vec();
        v.push("--tty");
        assert!(matches!(p(&v), Err(ArgsError::Missing(m)) if m.contains("--socket-dir")));
        for (flag, bad) in [
            ("--log-size-max", "-1"),
            ("--sync-fd", "1"),
            ("--sync-fd", "x"),
        ] {
            let mut v = BASE.to_vec();
            v.extend([flag, bad]);
            assert!(
                matches!(p(&v), Err(ArgsError::Invalid { flag: f, .. }) if f == flag),
                "{flag} {bad}"
            );
        }
    }

    #[test]
    fn rejects_ids_that_are_not_one_path_component() {
        for id in ["", "../x", "a/b", "..", "-rf"] {
            let mut v = BASE.to_vec();
            let i = v.iter().position(|s| *s == "c1").unwrap();
            v[i] = id;
            assert!(
                matches!(p(&v), Err(ArgsError::Invalid { flag: "--id", .. })),
                "{id:?}"
            );
        }
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["-v"]), Ok(Command::Version));
    }
}
