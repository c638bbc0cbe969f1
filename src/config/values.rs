//! Typed values of `<aspNetCore>` attributes and their flags: whole numbers with ranges,
//! booleans, and IIS TimeSpans, each parsed with the allowed range in its error.

use std::time::Duration;

/// Parses a whole number in `min..=max`; `Err` holds the allowed-values text.
pub(crate) fn uint(value: &str, min: u64, max: u64, unit: &str) -> Result<u64, String> {
    let allowed = || format!("a whole number{unit} from {min} to {max}");
    let n = digits(value.trim()).ok_or_else(allowed)?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(allowed())
    }
}

/// A size in bytes, with an optional unit: `10485760`, `512K`, `10M`, `10MB`, `10MiB`, `1G`
/// (the units are powers of 1024, as for log files); at least 1 KiB.
pub(crate) fn size(value: &str) -> Result<u64, String> {
    let allowed = || {
        "a size in bytes from 1K, as a number with an optional unit K, M or G (KB/KiB...): \
         10485760, 512K, 10M, 1G"
            .to_owned()
    };
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number = digits(number).ok_or_else(allowed)?;
    let unit = unit.trim().to_ascii_uppercase();
    let scale: u64 = match unit.as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(allowed()),
    };
    number
        .checked_mul(scale)
        .filter(|&bytes| bytes >= 1024)
        .ok_or_else(allowed)
}

/// IIS booleans: `true` or `false`, any case.
pub(crate) fn boolean(value: &str) -> Result<bool, String> {
    match value.trim() {
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err("true or false".to_owned()),
    }
}

/// The longest requestTimeout ANCM's schema accepts: 360 hours.
pub(crate) const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(360 * 3600);

const TIMESPAN_ALLOWED: &str =
    "an IIS TimeSpan [d.]hh:mm:ss (hours 0-23, minutes and seconds 0-59), from 00:00:00 to 15.00:00:00";

/// An IIS TimeSpan as web.config writes it: `hh:mm:ss`, `d.hh:mm:ss`, optionally with
/// `.fffffff` fractions of a second. A 60 in the minutes or seconds field is an error under
/// IIS too.
pub(crate) fn timespan(value: &str) -> Result<Duration, String> {
    let err = || TIMESPAN_ALLOWED.to_owned();
    let v = value.trim();
    let (negative, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let mut fields = v.split(':');
    let (Some(first), Some(minutes), seconds, None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(err());
    };
    let (days, hours) = match first.split_once('.') {
        Some((d, h)) => (digits(d).ok_or_else(err)?, digits(h).ok_or_else(err)?),
        None => (0, digits(first).ok_or_else(err)?),
    };
    let minutes = digits(minutes).ok_or_else(err)?;
    let (seconds, nanos) = match seconds {
        None => (0, 0),
        Some(s) => match s.split_once('.') {
            None => (digits(s).ok_or_else(err)?, 0),
            Some((whole, frac)) => (
                digits(whole).ok_or_else(err)?,
                fraction(frac).ok_or_else(err)?,
            ),
        },
    };
    // As .NET's TimeSpan: hours 0-23 (more is written as days), minutes and seconds 0-59.
    if hours > 23 || minutes > 59 || seconds > 59 {
        return Err(err());
    }
    let total = days
        .checked_mul(86_400)
        .and_then(|d| d.checked_add(hours.checked_mul(3600)?))
        .and_then(|t| t.checked_add(minutes * 60 + seconds))
        .ok_or_else(err)?;
    let d = Duration::new(total, nanos);
    if negative && !d.is_zero() || d > MAX_REQUEST_TIMEOUT {
        return Err(err());
    }
    Ok(d)
}

/// [`size`] as a count of bytes in memory (`--max-request-head`, `--max-memory`).
pub(crate) fn human_size(value: &str) -> Result<usize, String> {
    let bytes = size(value)?;
    usize::try_from(bytes).map_err(|_| "a size that fits this machine's memory".to_owned())
}

/// A duration as a person types it on the command line: `90`, `90s`, `2m`, `1h`, `500ms`, or
/// an IIS TimeSpan.
pub(crate) fn human_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    if v.contains(':') {
        return timespan(v);
    }
    let err = || "a duration such as 90, 90s, 500ms, 2m, 1h or hh:mm:ss".to_owned();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let n = digits(number).ok_or_else(err)?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(err)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(err)?),
        _ => return Err(err()),
    };
    if d > MAX_REQUEST_TIMEOUT {
        return Err(format!("{} (at most 360 hours)", err()));
    }
    Ok(d)
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `.fffffff`: up to seven digits, as .NET TimeSpans allow.
fn fraction(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 7 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut nanos: u32 = s.parse().ok()?;
    for _ in s.len()..9 {
        nanos *= 10;
    }
    Some(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(size("10485760"), Ok(10_485_760));
        assert_eq!(size("512K"), Ok(512 * 1024));
        assert_eq!(size("10mb"), Ok(10 << 20));
        assert_eq!(size("1 GiB"), Ok(1 << 30));
        for bad in ["", "M", "10X", "100", "-1K", "1.5M"] {
            assert!(size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timespans_as_iis_writes_them() {
        assert_eq!(timespan("00:02:00"), Ok(Duration::from_secs(120)));
        assert_eq!(timespan("23:00:00"), Ok(Duration::from_secs(23 * 3600)));
        assert_eq!(timespan("1.00:00:00"), Ok(Duration::from_secs(86_400)));
        assert_eq!(timespan("00:00:01.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(timespan("00:05"), Ok(Duration::from_secs(300)));
        assert_eq!(timespan("15.00:00:00"), Ok(MAX_REQUEST_TIMEOUT));
    }

    #[test]
    fn timespans_iis_rejects() {
        for bad in [
            "99:00:00",
            "00:60:00",
            "00:00:60",
            "15.00:00:01",
            "abc",
            "",
            "1:2:3:4",
            "-00:00:01",
            "1.24:00:00",
        ] {
            assert!(timespan(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size("32768"), Ok(32768));
        assert_eq!(human_size("16KiB"), Ok(16 * 1024));
        assert_eq!(human_size("16k"), Ok(16 * 1024));
        assert_eq!(human_size("1 MB"), Ok(1024 * 1024));
        assert_eq!(human_size("1GiB"), Ok(1 << 30));
        assert!(human_size("512").is_err(), "under 1 KiB");
        assert!(human_size("16 kilobytes").is_err());
        assert!(human_size("").is_err());
        assert!(human_size("99999999999999999999k").is_err());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(human_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(human_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(human_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(human_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(human_duration("00:00:30"), Ok(Duration::from_secs(30)));
        assert!(human_duration("5 minutes").is_err());
        assert!(human_duration("361h").is_err());
    }

    #[test]
    fn ranges_and_booleans() {
        assert_eq!(uint("120", 0, 3600, " of seconds"), Ok(120));
        assert_eq!(
            uint("3601", 0, 3600, " of seconds"),
            Err("a whole number of seconds from 0 to 3600".to_owned())
        );
        assert!(uint("-1", 0, 10, "").is_err());
        assert!(uint("+5", 0, 10, "").is_err());
        assert_eq!(boolean("TRUE"), Ok(true));
        assert_eq!(boolean("False"), Ok(false));
        assert!(boolean("yes").is_err());
    }
}
