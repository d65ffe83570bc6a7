//! How values look on the pages: GRID amounts, UTC times, shortened hashes.

/// The token has 12 decimals.
const DECIMALS: u32 = 12;

/// `"1500000000000"` → `"1.5 GRID"`; anything that is not a u128 is shown as it is.
pub fn grid_amount(smallest_units: &str) -> String {
    let Ok(value) = smallest_units.parse::<u128>() else {
        return smallest_units.to_string();
    };
    let unit = 10u128.pow(DECIMALS);
    let whole = value / unit;
    let fraction = value % unit;
    let mut whole_text = whole.to_string();
    // thousands separators for the whole part
    let mut grouped = String::new();
    while whole_text.len() > 3 {
        let tail = whole_text.split_off(whole_text.len() - 3);
        grouped = format!(",{tail}{grouped}");
    }
    grouped = format!("{whole_text}{grouped}");
    if fraction == 0 {
        return format!("{grouped} GRID");
    }
    let fraction = format!("{fraction:012}");
    format!("{grouped}.{} GRID", fraction.trim_end_matches('0'))
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_time(timestamp_ms: u64) -> String {
    let secs = timestamp_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `0x1234…cdef` for hashes, `5Grw…utQY` for addresses.
pub fn short(text: &str) -> String {
    let keep = if text.starts_with("0x") { 6 } else { 4 };
    if text.len() <= 2 * keep + 3 || !text.is_ascii() {
        return text.to_string();
    }
    format!("{}…{}", &text[..keep], &text[text.len() - 4..])
}

/// `1234` → `"1.23 s"`, `250` → `"250 ms"`.
pub fn duration_ms(ms: u64) -> String {
    if ms >= 1000 {
        format!("{:.2} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

/// Percent-encodes `text` for a query-string value.
pub fn url_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Bytes in binary units: `"32 GiB"`, `"1.5 TiB"`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(grid_amount("0"), "0 GRID");
        assert_eq!(grid_amount("1500000000000"), "1.5 GRID");
        assert_eq!(grid_amount("1000000000"), "0.001 GRID");
        assert_eq!(grid_amount("1234567000000000000000"), "1,234,567,000 GRID");
        assert_eq!(grid_amount("x"), "x");
    }

    #[test]
    fn times() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_time(1_764_064_800_000), "2025-11-25 10:00:00 UTC");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn byte_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(32 << 30), "32 GiB");
        assert_eq!(bytes(3 << 39), "1.5 TiB");
    }

    #[test]
    fn shortening() {
        assert_eq!(short("0x0123456789abcdef0123"), "0x0123…0123");
        assert_eq!(short("abc"), "abc");
    }
}
