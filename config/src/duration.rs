//! Durations as people write them in rules and flags: `90d`, `24h`, `30m`, `45s`, `2w`.

use std::time::Duration;

use crate::Error;

const UNITS: [(&str, u64); 5] = [
    ("w", 7 * 86_400),
    ("d", 86_400),
    ("h", 3_600),
    ("m", 60),
    ("s", 1),
];

/// Reads `N` followed by one unit: `w` (weeks), `d` (days), `h`, `m`, `s`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(kmseal_config::parse_duration("90d")?, Duration::from_secs(90 * 86_400));
/// assert!(kmseal_config::parse_duration("90").is_err());
/// # Ok::<(), kmseal_config::Error>(())
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::Unsupported(format!(
            "expected a number and a unit (w, d, h, m, s), like 90d or 24h; got `{}`",
            kmseal::escape_untrusted(s)
        ))
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    // Digits only: no sign, no leading zeros beyond a single 0 (one spelling per value).
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
        return Err(bad());
    }
    let n: u64 = n.parse().map_err(|_| bad())?;
    let (_, scale) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?;
    n.checked_mul(*scale)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// The shortest text [`parse_duration`] reads back to `d` (whole seconds; the largest unit
/// that divides it exactly).
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (unit, scale) = UNITS
        .iter()
        .find(|(_, scale)| secs.is_multiple_of(*scale) && secs >= *scale)
        .copied()
        .unwrap_or(("s", 1));
    format!("{}{unit}", secs / scale)
}

/// A duration for a report, to the nearest unit: days from two days on, else hours from two
/// hours on, else minutes.
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let nearest = |unit: u64| secs.saturating_add(unit / 2) / unit;
    if secs >= 2 * 86_400 {
        format!("{} days", nearest(86_400))
    } else if secs >= 2 * 3_600 {
        format!("{} hours", nearest(3_600))
    } else {
        format!("{} minutes", nearest(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_print_back() {
        for (text, secs) in [
            ("90d", 90 * 86_400),
            ("2w", 14 * 86_400),
            ("24h", 86_400),
            ("30m", 1_800),
            ("45s", 45),
            ("0s", 0),
        ] {
            let d = parse_duration(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(d, Duration::from_secs(secs), "{text}");
            assert_eq!(parse_duration(&format_duration(d)).ok(), Some(d), "{text}");
        }
        assert_eq!(format_duration(Duration::from_secs(86_400)), "1d");
        assert_eq!(format_duration(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(format_duration(Duration::from_secs(14 * 86_400)), "2w");
        assert_eq!(human(Duration::from_secs(10 * 86_400 - 60)), "10 days");
        assert_eq!(human(Duration::from_secs(3 * 3_600 + 1_700)), "3 hours");
        assert_eq!(human(Duration::from_secs(90)), "2 minutes");
        for bad in [
            "",
            "d",
            "90",
            "-1d",
            "+1d",
            "1.5d",
            "1y",
            "1D",
            "090d",
            "1 d",
            "99999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
