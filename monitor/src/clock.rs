//! Timestamps in RFC 3339 with nanoseconds, as CRI log lines and the exit file carry them
//! (`2016-10-06T00:17:09.669794202Z`, or `...+02:00` in a zone east of UTC): always 9 fractional
//! digits like CRI-O, in the local time zone like the kubelet and CRI-O.

use crate::sys;
use std::time::{SystemTime, UNIX_EPOCH};

/// The current time, formatted.
pub fn now_rfc3339_nano() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2);
    format_rfc3339_nano(secs, d.subsec_nanos(), sys::local_utc_offset(secs))
}

/// Formats a Unix time plus nanoseconds in a zone `offset_secs` east of UTC.
pub fn format_rfc3339_nano(unix_secs: i64, nanos: u32, offset_secs: i32) -> String {
    let local = unix_secs + i64::from(offset_secs);
    let days = local.div_euclid(86_400);
    let sod = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let zone = if offset_secs == 0 {
        "Z".to_string()
    } else {
        let sign = if offset_secs < 0 { '-' } else { '+' };
        let abs = offset_secs.unsigned_abs() / 60;
        format!("{sign}{:02}:{:02}", abs / 60, abs % 60)
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}{zone}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_kubernetes_example() {
        // 2016-10-06T00:17:09.669794202Z is the example of the CRI log format design doc.
        assert_eq!(
            format_rfc3339_nano(1_475_713_029, 669_794_202, 0),
            "2016-10-06T00:17:09.669794202Z"
        );
    }

    #[test]
    fn keeps_nine_digits_and_handles_epoch_and_leap_days() {
        assert_eq!(
            format_rfc3339_nano(0, 0, 0),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            format_rfc3339_nano(951_782_400, 5, 0),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            format_rfc3339_nano(4_107_542_399, 999_999_999, 0),
            "2100-02-28T23:59:59.999999999Z"
        );
    }

    #[test]
    fn applies_zone_offsets() {
        assert_eq!(
            format_rfc3339_nano(1_475_713_029, 1, 2 * 3600),
            "2016-10-06T02:17:09.000000001+02:00"
        );
        assert_eq!(
            format_rfc3339_nano(1_475_713_029, 1, -(5 * 3600 + 30 * 60)),
            "2016-10-05T18:47:09.000000001-05:30"
        );
    }

    #[test]
    fn now_has_the_cri_shape() {
        let s = now_rfc3339_nano();
        let (date, rest) = s.split_once('T').unwrap();
        assert_eq!(date.len(), 10);
        let frac = rest.split_once('.').unwrap().1;
        assert!(frac[..9].bytes().all(|b| b.is_ascii_digit()), "{s}");
    }
}
