//! `update <id>`: new resource limits from `--resources FILE|-` (LinuxResources JSON) or flags.

use std::io::Read;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;
use serde_json::{Map, Value, json};

use super::CliError;
use crate::container::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// LinuxResources JSON file, or - for stdin.
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k/m/g suffix).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Container id.
    pub id: String,
}

pub fn run(rt: &Runtime, a: Args) -> Result<i32, CliError> {
    let r = resources(&a)?;
    rt.update(&a.id, &r)?;
    Ok(0)
}

fn resources(a: &Args) -> Result<LinuxResources, CliError> {
    let usage = |m: String| CliError::Usage(format!("update {}: {m}", a.id));
    let mut v = match &a.resources {
        Some(p) => {
            let mut data = Vec::new();
            let res = if p.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut data).map(drop)
            } else {
                std::fs::read(p).map(|d| data = d)
            };
            res.map_err(|source| CliError::Io {
                what: format!("read {}", p.display()),
                source,
            })?;
            serde_json::from_slice::<Value>(&data)
                .map_err(|e| usage(format!("--resources: {e}")))?
        }
        None => json!({}),
    };
    let obj = v
        .as_object_mut()
        .ok_or_else(|| usage("--resources must be a JSON object".into()))?;
    let mut set = |section: &str, key: &str, val: Value| {
        let s = obj
            .entry(section)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(o) = s.as_object_mut() {
            o.insert(key.into(), val);
        }
    };
    for (key, val) in [
        ("limit", &a.memory),
        ("reservation", &a.memory_reservation),
        ("swap", &a.memory_swap),
    ] {
        if let Some(text) = val {
            set("memory", key, json!(parse_bytes(text).map_err(usage)?));
        }
    }
    if let Some(q) = a.cpu_quota {
        set("cpu", "quota", json!(q));
    }
    if let Some(p) = a.cpu_period {
        set("cpu", "period", json!(p));
    }
    if let Some(s) = a.cpu_shares {
        set("cpu", "shares", json!(s));
    }
    if let Some(c) = &a.cpuset_cpus {
        set("cpu", "cpus", json!(c));
    }
    if let Some(m) = &a.cpuset_mems {
        set("cpu", "mems", json!(m));
    }
    if let Some(p) = a.pids_limit {
        set("pids", "limit", json!(p));
    }
    if let Some(w) = a.blkio_weight {
        set("blockIO", "weight", json!(w));
    }
    let text = v.to_string();
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de)
        .map_err(|e| usage(format!("resources.{}: {}", e.path(), e.inner())))
}

/// "512m", "1G", "1048576", "-1" → bytes.
fn parse_bytes(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    if n < 0.0 {
        return Err(format!("invalid size {s:?}"));
    }
    Ok((n * mult as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
    }
}
