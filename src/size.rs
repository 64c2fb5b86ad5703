//! Sizes as operators write them: `100MB`, `1.5GB`, `512MiB`, `2GiB`, `1048576` (bytes); and as
//! the logs print them (`12.3 MB`, decimal units as etcd's own logs use).

const UNITS: [(&str, f64); 9] = [
    ("", 1.0),
    ("B", 1.0),
    ("kB", 1e3),
    ("KB", 1e3),
    ("MB", 1e6),
    ("GB", 1e9),
    ("KiB", 1024.0),
    ("MiB", 1_048_576.0),
    ("GiB", 1_073_741_824.0),
];

/// Parse a size in bytes. Errors name the expected form; the caller adds which option it was.
pub(crate) fn parse(text: &str) -> Result<u64, String> {
    let expected = "expected a size like 100MB, 512MiB, 2GB or a number of bytes";
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let scale =
        UNITS.iter().find(|(u, _)| *u == unit.trim()).map(|(_, s)| *s).ok_or_else(|| {
            format!("{text:?} has no known unit (B, kB, MB, GB, KiB, MiB, GiB): {expected}")
        })?;
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a size: {expected}"))?;
    let bytes = (value * scale).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{text:?} is too large: {expected}"));
    }
    Ok(bytes as u64)
}

/// `12.3 MB` (decimal units).
pub(crate) fn format(bytes: u64) -> String {
    const STEPS: [(&str, f64); 3] = [("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (unit, scale) in STEPS {
        if bytes as f64 >= scale {
            return format!("{:.1} {unit}", bytes as f64 / scale);
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        // (text, bytes or error, why)
        let rows: [(&str, Option<u64>, &str); 12] = [
            ("100MB", Some(100_000_000), "the default, decimal"),
            ("512MiB", Some(536_870_912), "binary"),
            ("2GiB", Some(2_147_483_648), "etcd's default quota"),
            ("1.5GB", Some(1_500_000_000), "a fraction"),
            ("1048576", Some(1_048_576), "bare bytes"),
            ("10 MB", Some(10_000_000), "a space before the unit"),
            ("0", Some(0), "zero"),
            ("8kB", Some(8_000), "kilo"),
            ("100mb", None, "units are case-sensitive: mb would be millibits"),
            ("-1MB", None, "negative"),
            ("MB", None, "no number"),
            ("1e30GB", None, "not a plain number"),
        ];
        for (text, want, why) in rows {
            assert_eq!(parse(text).ok(), want, "{why}: {:?}", parse(text));
        }
        assert!(parse("100XB").expect_err("unit").contains("no known unit"));
    }

    #[test]
    fn format_table() {
        assert_eq!(format(512), "512 B");
        assert_eq!(format(2_500), "2.5 kB");
        assert_eq!(format(104_857_600), "104.9 MB");
        assert_eq!(format(2_147_483_648), "2.1 GB");
    }
}
