//! Times as the api and the receipts write them: RFC 3339 in UTC, to the millisecond.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `ms` since the Unix epoch as RFC 3339 (`2026-12-02T10:00:00.009Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// An RFC 3339 time as ms since the Unix epoch; `None` for text that is not one, or a time
/// before the epoch.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_back_to_the_millisecond() {
        let ms = 1_796_205_600_009;
        let text = rfc3339_ms(ms);
        assert!(text.ends_with('Z'), "{text}");
        assert_eq!(parse_rfc3339_ms(&text), Some(ms));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), None);
    }
}
