//! Durations as operators write them: `500ms`, `30s`, `5m`, `1h`, or a combination (`1m30s`);
//! and instants as RFC 3339 (`--restore-to-time`).

use std::time::Duration;

/// Parse a duration. Errors name the expected form; the caller adds which option it was.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let expected = "expected a duration like 500ms, 30s or 5m";
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("empty value: {expected}"));
    }
    if trimmed.starts_with('-') {
        return Err(format!("{text:?} is negative: {expected}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{text:?} is not a duration: {expected}"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| format!("{text:?} is too large: {expected}"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = unit_duration(number, &rest[..unit_len])
            .ok_or_else(|| format!("{text:?} has no valid unit (ms, s, m, h): {expected}"))?;
        total = total.checked_add(part).ok_or_else(|| format!("{text:?} is too large: {expected}"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

fn unit_duration(number: u64, unit: &str) -> Option<Duration> {
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => None,
    }?;
    Some(Duration::from_millis(millis))
}

/// Format a duration the way `parse` reads it (for help texts and logs).
pub(crate) fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

/// Parse an RFC 3339 time (`2026-12-05T07:30:00Z`, fractions allowed) into milliseconds since
/// the epoch. Errors name the expected form.
pub(crate) fn parse_rfc3339_ms(text: &str) -> Result<u64, String> {
    let at = humantime::parse_rfc3339_weak(text.trim())
        .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e}): write it like 2026-12-05T07:30:00Z"))?;
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .map_err(|_| format!("{text:?} is before 1970: write a time like 2026-12-05T07:30:00Z"))
}

/// Milliseconds since the epoch as RFC 3339 in UTC, with milliseconds.
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339() {
        assert_eq!(parse_rfc3339_ms("2026-12-05T07:30:00Z"), Ok(1_796_455_800_000));
        assert_eq!(parse_rfc3339_ms("2026-12-05T07:30:00.250Z"), Ok(1_796_455_800_250));
        assert!(parse_rfc3339_ms("yesterday").expect_err("bad").contains("RFC 3339"));
        assert_eq!(rfc3339_ms(1_796_455_800_250), "2026-12-05T07:30:00.250Z");
    }

    #[test]
    fn parses_each_unit_and_combinations() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_negative_unitless_unknown_unit_and_overflow() {
        for bad in ["-5s", "", "10", "5d", "s", "1.5s", "abc", "99999999999999999999s", "5 s"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("expected a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn format_round_trips() {
        for text in ["500ms", "30s", "5m", "2h", "0s"] {
            assert_eq!(format(parse(text).expect(text)), text);
        }
    }
}

/// Property tests: `parse` reads outside input (flags, variables) and never panics; `format`
/// writes what `parse` reads back.
#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn parse_never_panics_on_duration_like_text(text in "[-0-9 ]{0,3}([0-9]{0,22}(ms|s|m|h|d|)){0,4}") {
            let _ = parse(&text);
        }

        #[test]
        fn format_round_trips_any_whole_millisecond_duration(ms in any::<u64>()) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse(&format(d)), Ok(d));
        }

        #[test]
        fn accepted_text_reformats_to_the_same_duration(text in "([0-9]{1,6}(ms|s|m|h)){1,4}") {
            let d = parse(&text).expect("generated durations are valid");
            prop_assert_eq!(parse(&format(d)), Ok(d));
        }

        #[test]
        fn combinations_add_up(h in 0u64..1000, m in 0u64..1000, s in 0u64..1000, ms in 0u64..1000) {
            let want = Duration::from_millis(((h * 60 + m) * 60 + s) * 1000 + ms);
            prop_assert_eq!(parse(&format!("{h}h{m}m{s}s{ms}ms")), Ok(want));
        }
    }
}
