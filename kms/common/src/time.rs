//! RFC 3339 timestamps as the stores' APIs write them (`2026-12-01T19:20:01.123456789Z`,
//! `…+02:00`), without a date-time crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses an RFC 3339 date-time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, `T` or space) into a
/// [`SystemTime`]. `None` for anything else, including times before 1970.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !b"Tt ".contains(&b[10]) {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 9)];
        let scale = 10u32.pow(9 - u32::try_from(digits.len()).ok()?);
        nanos = digits.parse::<u32>().ok()? * scale;
    }
    let offset = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            if tz.as_bytes()[3] != b':' {
                return None;
            }
            let h = num(i + 1..i + 3)?;
            let m = num(i + 4..i + 6)?;
            if h > 23 || m > 59 {
                return None;
            }
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
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

    fn secs(s: &str) -> Option<(u64, u32)> {
        parse_rfc3339(s).map(|t| {
            let d = t.duration_since(UNIX_EPOCH).unwrap();
            (d.as_secs(), d.subsec_nanos())
        })
    }

    #[test]
    fn timestamps_parse_to_the_right_instant() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), Some((0, 0)));
        // `date -u -d 2018-03-22T02:24:06Z +%s`
        assert_eq!(
            secs("2018-03-22T02:24:06.945319214Z"),
            Some((1_521_685_446, 945_319_214))
        );
        assert_eq!(
            secs("2026-12-01T19:20:01.5+01:00"),
            Some((1_796_149_201, 500_000_000))
        );
        assert_eq!(secs("2024-02-29 12:00:00z"), Some((1_709_208_000, 0)));
        assert_eq!(
            secs("2026-12-01T19:20:01.1234567891Z").map(|t| t.1),
            Some(123_456_789)
        );
    }

    #[test]
    fn anything_else_is_none_never_a_panic() {
        for bad in [
            "",
            "2018-03-22",
            "2018-03-22T02:24:06",
            "2018-13-22T02:24:06Z",
            "2018-03-22T24:24:06Z",
            "2018-03-22T02:24:06.Z",
            "2018-03-22T02:24:06+0100",
            "1969-12-31T23:59:59Z",
            "2018-03-22T02:24:06Zjunk",
            "２０１８-03-22T02:24:06Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        let good = "2018-03-22T02:24:06.945319214+02:00";
        for end in 0..good.len() {
            let _ = parse_rfc3339(&good[..end]);
        }
    }
}
