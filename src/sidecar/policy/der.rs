//! Just enough DER to read when an X.509 certificate is valid: the `validity` field of its
//! `tbsCertificate` (RFC 5280 4.1), with both time forms (UTCTime, GeneralizedTime). Nothing is
//! verified here: the TLS library does that; this only tells how long a certificate has left.

/// When a certificate is valid, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The validity of the DER-encoded certificate `der`.
pub(crate) fn validity(der: &[u8]) -> Result<Validity, String> {
    let (cert, _) = expect(der, SEQUENCE, "certificate")?;
    let (tbs, _) = expect(cert, SEQUENCE, "tbsCertificate")?;
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == VERSION {
        rest = after;
    }
    // serialNumber, signature, issuer
    for _ in 0..3 {
        rest = tlv(rest)?.2;
    }
    let (validity, _) = expect(rest, SEQUENCE, "validity")?;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    Ok(Validity { not_before, not_after })
}

/// One TLV: tag, contents, what follows.
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("truncated DER")?;
    if tag & 0x1f == 0x1f {
        return Err("unexpected multi-byte DER tag".into());
    }
    let (&first, rest) = rest.split_first().ok_or("truncated DER length")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err("unsupported DER length".into());
        }
        let (bytes, rest) = rest.split_at_checked(n).ok_or("truncated DER length")?;
        (bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), rest)
    };
    let (contents, rest) = rest.split_at_checked(len).ok_or("truncated DER contents")?;
    Ok((tag, contents, rest))
}

fn expect<'a>(input: &'a [u8], want: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let (tag, contents, rest) = tlv(input)?;
    if tag != want {
        return Err(format!("not a certificate: {what} has tag {tag:#04x}"));
    }
    Ok((contents, rest))
}

/// A Time (UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ`), as Unix seconds.
fn time(input: &[u8]) -> Result<(i64, &[u8]), String> {
    let (tag, contents, rest) = tlv(input)?;
    let text = std::str::from_utf8(contents).map_err(|_| "a certificate time is not text")?;
    let digits = text.strip_suffix('Z').ok_or_else(|| format!("certificate time {text:?} is not in UTC"))?;
    let (year, tail) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = number(&digits[..2])?;
            // RFC 5280: 50..99 are 19xx, 00..49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (GENERALIZED_TIME, 14) => (number(&digits[..4])?, &digits[4..]),
        _ => return Err(format!("certificate time {text:?} has an unexpected form")),
    };
    let field = |i: usize| number(&tail[i..i + 2]);
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return Err(format!("certificate time {text:?} is not a valid date"));
    }
    let days = days_from_civil(year, month, day);
    Ok((days * 86_400 + hour * 3_600 + minute * 60 + second, rest))
}

fn number(digits: &str) -> Result<i64, String> {
    if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().map_err(|_| format!("{digits:?} is not a number"))
    } else {
        Err(format!("{digits:?} is not a number"))
    }
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian calendar: count whole
/// 400-year cycles from 0000-03-01, with the year starting in March so leap days come last.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719468: days from 0000-03-01 to 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_table() {
        // (date, days since 1970-01-01, why)
        let rows = [
            ((1970, 1, 1), 0, "the epoch"),
            ((1969, 12, 31), -1, "the day before"),
            ((2000, 2, 29), 11_016, "a leap day in a year divisible by 400"),
            ((2000, 3, 1), 11_017, "the day after it"),
            ((2100, 3, 1), 47_541, "2100 is not a leap year: no Feb 29 before"),
            ((2024, 12, 31), 20_088, "end of a leap year"),
            ((2049, 12, 31), 29_219, "the last UTCTime year"),
        ];
        for ((y, m, d), days, why) in rows {
            assert_eq!(days_from_civil(y, m, d), days, "{why}");
        }
    }

    fn encoded(tag: u8, text: &str) -> Vec<u8> {
        let mut out = vec![tag, u8::try_from(text.len()).expect("short")];
        out.extend_from_slice(text.as_bytes());
        out
    }

    #[test]
    fn time_table() {
        // (tag, text, unix seconds or error, why)
        let rows: [(u8, &str, Option<i64>, &str); 9] = [
            (UTC_TIME, "700101000000Z", Some(0), "UTCTime at the epoch"),
            (UTC_TIME, "491231235959Z", Some(2_524_607_999), "UTCTime 49 is 2049"),
            (UTC_TIME, "500101000000Z", Some(-631_152_000), "UTCTime 50 is 1950"),
            (GENERALIZED_TIME, "20500101000000Z", Some(2_524_608_000), "GeneralizedTime from 2050 on"),
            (GENERALIZED_TIME, "99991231235959Z", Some(253_402_300_799), "the 'no expiry' date of RFC 5280"),
            (UTC_TIME, "700101000000+0100", None, "an offset is not DER"),
            (UTC_TIME, "7001010000Z", None, "no seconds is not DER"),
            (UTC_TIME, "701301000000Z", None, "month 13"),
            (0x04, "700101000000Z", None, "not a time tag"),
        ];
        for (tag, text, want, why) in rows {
            let got = time(&encoded(tag, text)).map(|(t, _)| t).ok();
            assert_eq!(got, want, "{why}");
        }
    }

    #[test]
    fn reads_the_validity_of_a_real_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["etcd-0".to_string()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2024, 2, 29);
        params.not_after = rcgen::date_time_ymd(2051, 6, 1);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let v = validity(cert.der()).expect("validity");
        assert_eq!(v.not_before, days_from_civil(2024, 2, 29) * 86_400);
        assert_eq!(v.not_after, days_from_civil(2051, 6, 1) * 86_400, "GeneralizedTime after 2049");
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for input in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01",
            b"\x04\x00",
            b"\x30\x02\x1f\x00",
        ] {
            assert!(validity(input).is_err(), "{input:?}");
        }
    }
}
