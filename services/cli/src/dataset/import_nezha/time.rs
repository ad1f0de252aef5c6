//! UTC calendar times as the Nezha files write them (`2022-08-22 03:53:54`,
//! `2022-08-22 03:51:19.799087274 +0000 UTC m=+0.305041286`), to unix time.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYY-MM-DD HH:MM:SS[.fraction]`, read as UTC, at the start of `text` (anything after a
/// space that follows the seconds is ignored: the metric files append `+0000 UTC m=+...`).
/// Unix nanoseconds.
pub fn parse_utc_ns(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date, rest) = text.split_once(' ')?;
    let clock = rest.split(' ').next()?;
    let mut d = date.split('-');
    let (year, month, day) = (number(d.next()?)?, number(d.next()?)?, number(d.next()?)?);
    if d.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.split(':');
    let (h, m, s) = (number(t.next()?)?, number(t.next()?)?, number(t.next()?)?);
    if t.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut nanos = 0u64;
    if !fraction.is_empty() {
        if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nanos = fraction.parse::<u64>().ok()? * 10u64.pow(9 - fraction.len() as u32);
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(h) * 3_600 + i64::from(m) * 60 + i64::from(s);
    let secs = u64::try_from(secs).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Whether `name` looks like a day folder (`YYYY-MM-DD`).
pub fn is_day(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_spellings() {
        // fault_list.json of onlineboutique/2022-08-22: inject_timestamp 1661140434.
        assert_eq!(
            parse_utc_ns("2022-08-22 03:53:54"),
            Some(1_661_140_434_000_000_000)
        );
        assert_eq!(
            parse_utc_ns("2022-08-22 03:51:19.799087274 +0000 UTC m=+0.305041286"),
            Some(1_661_140_279_799_087_274)
        );
        assert_eq!(
            parse_utc_ns("2023-01-29 08:43:04.5"),
            Some(1_674_981_784_500_000_000)
        );
        assert_eq!(
            parse_utc_ns("2000-02-29 00:00:00"),
            Some(951_782_400_000_000_000)
        );
        for bad in [
            "",
            "2022-08-22",
            "2022-13-01 00:00:00",
            "2022-08-22 24:00:00",
            "x y",
        ] {
            assert_eq!(parse_utc_ns(bad), None, "{bad}");
        }
        assert!(is_day("2022-08-22"));
        assert!(!is_day("faultfree_minutes"));
    }
}
