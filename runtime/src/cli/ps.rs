//! `ps <id> [ps options]`: the container's processes, as a `ps` table (default `-ef`) filtered
//! to the container's pids, or `--format json` (array of pids).

use std::io::Write;

use super::CliError;
use crate::container::Runtime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short = 'f', long, value_enum, default_value = "table")]
    pub format: Format,
    /// Container id.
    pub id: String,
    /// Options for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32, CliError> {
    let pids = rt.pids(&a.id)?;
    let io = |what: &str| {
        let what = what.to_string();
        move |source| CliError::Io { what, source }
    };
    let mut out = std::io::stdout().lock();
    if a.format == Format::Json {
        writeln!(out, "{}", serde_json::json!(pids)).map_err(io("write stdout"))?;
        return Ok(0);
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args
    };
    let output = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(io("run ps"))?;
    if !output.status.success() {
        return Err(CliError::Usage(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    write!(out, "{}", filter(&text, &pids).map_err(CliError::Usage)?)
        .map_err(io("write stdout"))?;
    Ok(0)
}

/// Keeps the header and the lines whose PID column is one of `pids`.
fn filter(text: &str, pids: &[i32]) -> Result<String, String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .ok_or("ps output has no PID column")?;
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_pid_column() {
        let t = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sh\nroot 43 1 x\n";
        assert_eq!(
            filter(t, &[42]).unwrap(),
            "UID PID PPID CMD\nroot 42 1 sh\n"
        );
        assert!(filter("A B\n", &[1]).is_err());
    }
}
