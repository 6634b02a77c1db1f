//! Time formats on the wire (docs/protocol/decisions.md §10): UTC `yyyyMMddHHmmss` (14 digits) and
//! `yyyyMMddHHmmssSSS` (17 digits); request timestamps in epoch milliseconds (10 digits = seconds).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// Parses a 14- or 17-digit UTC time. The refreshInstance doc example sends 17 digits where the
/// table says 14 (docs/protocol/callbacks.md §6.3), so both are accepted everywhere.
pub fn parse_compact(s: &str) -> Option<DateTime<Utc>> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let naive = match s.len() {
        14 => NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?,
        17 => {
            let base = NaiveDateTime::parse_from_str(&s[..14], "%Y%m%d%H%M%S").ok()?;
            let millis: i64 = s[14..].parse().ok()?;
            base + chrono::Duration::milliseconds(millis)
        }
        _ => return None,
    };
    Some(Utc.from_utc_datetime(&naive))
}

/// `yyyyMMddHHmmss`, UTC.
pub fn format_14(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%S").to_string()
}

/// `yyyyMMddHHmmssSSS`, UTC (e.g. `statisticalTime` in queryInstance usage).
pub fn format_17(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%S%3f").to_string()
}

/// Parses the signature `timestamp` query parameter into epoch milliseconds. Documented as
/// milliseconds; some doc versions say seconds, so a 10-digit value is taken as seconds
/// (docs/protocol/decisions.md §1).
pub fn parse_request_timestamp(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 13 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = s.parse().ok()?;
    Some(if s.len() <= 10 {
        v.checked_mul(1000)?
    } else {
        v
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    #[test]
    fn seventeen_digit_expire_time_from_the_refresh_doc_parses_with_millis() {
        // docs/protocol/callbacks.md §14.7: "20221124023618256" must parse as
        // 2022-11-24T02:36:18.256Z.
        let t = parse_compact("20221124023618256").unwrap();
        assert_eq!(
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "2022-11-24T02:36:18.256Z"
        );
        assert_eq!(format_17(t), "20221124023618256");
    }

    #[test]
    fn fourteen_digit_time_parses_and_formats_back() {
        let t = parse_compact("20251121235959").unwrap();
        assert_eq!(t.hour(), 23);
        assert_eq!(format_14(t), "20251121235959");
    }

    #[test]
    fn malformed_times_are_rejected() {
        for bad in [
            "",
            "2025112123595",
            "202511212359599",
            "2025-11-21 23:59",
            "20251341000000",
            "２０２５１１２１２３５９５９",
        ] {
            assert_eq!(parse_compact(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn request_timestamps_in_ms_or_seconds() {
        assert_eq!(
            parse_request_timestamp("1680508066618"),
            Some(1_680_508_066_618)
        );
        assert_eq!(
            parse_request_timestamp("1680508066"),
            Some(1_680_508_066_000)
        );
        assert_eq!(parse_request_timestamp("-1"), None);
        assert_eq!(parse_request_timestamp("16805080666180"), None);
        assert_eq!(parse_request_timestamp(""), None);
    }
}
