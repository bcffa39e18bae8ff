//! `list`: a table like runc's (ID PID STATUS BUNDLE CREATED OWNER), `--format json`, `-q`.

use std::io::Write;

use super::CliError;
use crate::container::Runtime;
use crate::state::{Status, owner_name};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(short = 'f', long, value_enum, default_value = "table")]
    pub format: Format,
    /// Only print container ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32, CliError> {
    let all = rt.list()?;
    let io = |source| CliError::Io {
        what: "write stdout".into(),
        source,
    };
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for l in &all {
            writeln!(out, "{}", l.state.id).map_err(io)?;
        }
        return Ok(0);
    }
    if a.format == Format::Json {
        let v: Vec<_> = all.iter().map(|l| l.state.runc_json(l.status)).collect();
        writeln!(out, "{}", serde_json::Value::Array(v)).map_err(io)?;
        return Ok(0);
    }
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for l in &all {
        let pid = if l.status == Status::Stopped {
            0
        } else {
            l.state.pid
        };
        rows.push([
            l.state.id.clone(),
            pid.to_string(),
            l.status.to_string(),
            l.state.bundle.display().to_string(),
            l.state.created.clone(),
            owner_name(l.state.owner_uid),
        ]);
    }
    write!(out, "{}", table(&rows)).map_err(io)?;
    Ok(0)
}

/// Go tabwriter layout as runc configures it (minwidth 12, padding 3, last column unpadded).
fn table(rows: &[[String; 6]]) -> String {
    let mut widths = [12usize; 6];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len() + 3);
        }
    }
    let mut s = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}", w = widths[i]));
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let rows = vec![
            ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from),
            ["a-long-container-id", "1", "running", "/b", "t", "root"].map(String::from),
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0].find("PID"), lines[1].find('1'));
        assert!(lines[0].starts_with(&format!("{:<22}PID", "ID")));
    }
}
