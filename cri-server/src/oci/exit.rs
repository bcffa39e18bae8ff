//! The exit file cri-monitor writes when a container's init ends:
//! `{"exit_code":N,"signal":S,"exited_at":"RFC3339Nano","oom_killed":B}`.

use std::path::Path;

use serde::Deserialize;

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatus {
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// Unix nanoseconds.
    pub exited_at: i64,
    pub oom_killed: bool,
}

#[derive(Deserialize)]
struct Raw {
    exit_code: i32,
    #[serde(default)]
    signal: Option<i32>,
    exited_at: String,
    #[serde(default)]
    oom_killed: Option<bool>,
}

impl ExitStatus {
    /// Reads `path`; `Ok(None)` while the container has not exited.
    pub fn read(path: &Path) -> Result<Option<Self>, String> {
        let data = match std::fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("read exit file {}: {e}", path.display())),
        };
        Self::parse(&data)
            .map(Some)
            .map_err(|e| format!("exit file {}: {e}", path.display()))
    }

    /// Parses the JSON document.
    pub fn parse(data: &[u8]) -> Result<Self, String> {
        let raw: Raw = serde_json::from_slice(data).map_err(|e| e.to_string())?;
        Ok(Self {
            exit_code: raw.exit_code,
            signal: raw.signal,
            exited_at: parse_rfc3339_nanos(&raw.exited_at)
                .ok_or_else(|| format!("exited_at {:?} is not RFC 3339", raw.exited_at))?,
            oom_killed: raw.oom_killed.unwrap_or(false),
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → Unix nanoseconds.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut f = frac[..digits.min(9)].to_string();
        while f.len() < 9 {
            f.push('0');
        }
        nanos = f.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && matches!(&rest[..1], "+" | "-") && &rest[3..4] == ":" => {
            let v = rest[1..3].parse::<i64>().ok()? * 3600 + rest[4..6].parse::<i64>().ok()? * 60;
            if rest.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some(secs * 1_000_000_000 + nanos)
}

/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(parse_rfc3339_nanos("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_nanos("2016-10-06T00:17:09.669794202Z"),
            Some(1_475_713_029_669_794_202)
        );
        assert_eq!(
            parse_rfc3339_nanos("2016-10-06T02:17:09.5+02:00"),
            Some(1_475_713_029_500_000_000)
        );
        assert_eq!(parse_rfc3339_nanos("2016-13-06T00:17:09Z"), None);
        assert_eq!(parse_rfc3339_nanos("yesterday"), None);
    }

    #[test]
    fn parses_exit_file() {
        let e = ExitStatus::parse(
            br#"{"exit_code":137,"signal":9,"exited_at":"1970-01-01T00:00:01Z","oom_killed":true}"#,
        )
        .unwrap();
        assert_eq!(
            e,
            ExitStatus {
                exit_code: 137,
                signal: Some(9),
                exited_at: 1_000_000_000,
                oom_killed: true
            }
        );
        assert!(ExitStatus::parse(br#"{"exit_code":1}"#).is_err());
    }
}
