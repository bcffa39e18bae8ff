//! `kill <id> [signal]`: signal by name (with or without SIG), number, or RTMIN+n.

use super::CliError;
use crate::container::Runtime;
use crate::sys::lifecycle::{sigrtmax, sigrtmin};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Signal every process in the container.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Container id.
    pub id: String,
    /// Signal (default SIGTERM).
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32, CliError> {
    let sig = parse_signal(&a.signal)
        .ok_or_else(|| CliError::Usage(format!("unknown signal {:?}", a.signal)))?;
    rt.kill(&a.id, sig, a.all)?;
    Ok(0)
}

/// "KILL", "SIGKILL", "kill", "9", "RTMIN+3", "SIGRTMAX-1" → signal number.
pub fn parse_signal(s: &str) -> Option<i32> {
    let valid = |n: i32| (1..=sigrtmax()).contains(&n).then_some(n);
    if let Ok(n) = s.parse::<i32>() {
        return valid(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let rt = |base: i32, rest: &str| -> Option<i32> {
        if rest.is_empty() {
            return Some(base);
        }
        let (sign, num) = rest.split_at(1);
        let n: i32 = num.parse().ok()?;
        match sign {
            "+" => Some(base + n),
            "-" => Some(base - n),
            _ => None,
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(sigrtmin(), rest).and_then(valid);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(sigrtmax(), rest).and_then(valid);
    }
    let full = format!("SIG{name}");
    full.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names() {
        assert_eq!(parse_signal("KILL"), Some(9));
        assert_eq!(parse_signal("SIGKILL"), Some(9));
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("RTMIN+3"), Some(sigrtmin() + 3));
        assert_eq!(parse_signal("SIGBOGUS"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("999"), None);
    }
}
