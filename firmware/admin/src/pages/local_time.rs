//! Times on the page in the box's local time. The mail log and the store
//! keep UTC, which is right for files; a person compares the page with the
//! clock on the wall. The zone is the box's as every Unix program takes it
//! (`TZ`, else `/etc/localtime`, else UTC; on the appliance UTC unless
//! configured), read by chrono's TZif reader: the `time` crate will not
//! tell the local offset in a process with threads, and this one has many.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// The box's offset from UTC at `unix` (summer time included).
fn offset_at(unix: i64) -> UtcOffset {
    use chrono::{Offset, TimeZone};
    chrono::Local
        .timestamp_opt(unix, 0)
        .single()
        .and_then(|t| UtcOffset::from_whole_seconds(t.offset().fix().local_minus_utc()).ok())
        .unwrap_or(UtcOffset::UTC)
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `UTC`, `UTC+01:00`, `UTC-03:30`.
fn zone_name(offset: UtcOffset) -> String {
    if offset.is_utc() {
        return "UTC".to_owned();
    }
    let (h, m, _) = offset.as_hms();
    let sign = if offset.is_negative() { '-' } else { '+' };
    format!("UTC{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

/// `unix` at `offset`: `2026-11-28 00:50`, or with `seconds` `…:41`.
fn at(unix: i64, offset: UtcOffset, seconds: bool) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp(unix)
        .ok()?
        .checked_to_offset(offset)?;
    let mut out = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute()
    );
    if seconds {
        out.push_str(&format!(":{:02}", t.second()));
    }
    Some(out)
}

/// The Unix time of a mail log time, `2026-11-27T23:50:41Z`.
fn parse_log_time(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<u16>().ok();
    let date = Date::from_calendar_date(
        i32::from(num(0..4)?),
        Month::try_from(u8::try_from(num(5..7)?).ok()?).ok()?,
        u8::try_from(num(8..10)?).ok()?,
    )
    .ok()?;
    let hms = [num(11..13)?, num(14..16)?, num(17..19)?];
    let [h, m, s] = hms.map(|n| u8::try_from(n).unwrap_or(u8::MAX));
    let time = Time::from_hms(h, m, s).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// The sentence over a list of times.
pub(super) fn note() -> String {
    format!(
        "Times are the box's local time, {}.",
        zone_name(offset_at(now()))
    )
}

/// A mail log time in the box's local time, to the second, under
/// [`note`]: `2026-11-28 05:20:41`; a time whose offset differs from
/// today's (summer time began or ended since) carries its own. Text that
/// is not a log time is shown as it is.
pub(super) fn log_time(text: &str) -> String {
    let Some(unix) = parse_log_time(text) else {
        return text.to_owned();
    };
    log_time_at(unix, offset_at(unix), offset_at(now())).unwrap_or_else(|| text.to_owned())
}

fn log_time_at(unix: i64, offset: UtcOffset, today: UtcOffset) -> Option<String> {
    let shown = at(unix, offset, true)?;
    Some(if offset == today {
        shown
    } else {
        format!("{shown} {}", zone_name(offset))
    })
}

/// A Unix time with its zone, where no [`note`] stands over it:
/// `2026-11-27 23:50 UTC`, `2026-11-28 05:20 UTC+05:30`; "never" for none.
pub fn when(unix: Option<i64>) -> String {
    unix.and_then(|t| when_at(t, offset_at(t)))
        .unwrap_or_else(|| "never".into())
}

fn when_at(unix: i64, offset: UtcOffset) -> Option<String> {
    Some(format!(
        "{} {}",
        at(unix, offset, false)?,
        zone_name(offset)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(h: i8, m: i8) -> UtcOffset {
        UtcOffset::from_hms(h, m, 0).expect("a valid offset")
    }

    #[test]
    fn zones_and_times() {
        assert_eq!(zone_name(UtcOffset::UTC), "UTC");
        assert_eq!(zone_name(offset(1, 0)), "UTC+01:00");
        assert_eq!(zone_name(offset(-3, -30)), "UTC-03:30");
        assert_eq!(zone_name(offset(5, 30)), "UTC+05:30");

        let t = parse_log_time("2026-11-27T23:50:41Z");
        assert_eq!(t, Some(1_795_823_441));
        let t = t.unwrap_or_default();
        assert_eq!(
            log_time_at(t, offset(5, 30), offset(5, 30)).as_deref(),
            Some("2026-11-28 05:20:41")
        );
        assert_eq!(
            log_time_at(t, offset(2, 0), offset(1, 0)).as_deref(),
            Some("2026-11-28 01:50:41 UTC+02:00")
        );
        assert_eq!(
            when_at(0, UtcOffset::UTC).as_deref(),
            Some("1970-01-01 00:00 UTC")
        );
        assert_eq!(
            when_at(0, offset(-3, -30)).as_deref(),
            Some("1969-12-31 20:30 UTC-03:30")
        );
        for bad in [
            "",
            "yesterday",
            "2026-11-27 23:50:41Z",
            "2026-13-27T23:50:41Z",
            "2026-11-27T25:50:41Z",
            "2026-11-27T23:50:41+",
            "२०२६-11-27T23:50:41Z",
        ] {
            assert_eq!(parse_log_time(bad), None, "{bad}");
            assert_eq!(log_time(bad), bad);
        }
    }
}
