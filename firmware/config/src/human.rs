//! Sizes and durations as people write and read them, one convention for
//! the CLI, the admin page and the config file. Sizes are powers of 1024
//! named KB, MB, GB, TB, as Windows and macOS Finder before 10.6 name them,
//! so that a quota set as `2G` reads back as `2 GB`.

const UNITS: [(&str, u64); 4] = [
    ("TB", 1 << 40),
    ("GB", 1 << 30),
    ("MB", 1 << 20),
    ("KB", 1 << 10),
];

/// Parses a human size such as `500K`, `10M`, `2G` or a plain byte count.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// `0 B`, `512 B`, `1.5 KB`, `2 GB`, `12.3 MB`: at most one decimal, none
/// when it would be `.0`; never `0.0 MB` for a small mailbox.
pub fn format_size(bytes: u64) -> String {
    let Some(&(name, unit)) = UNITS.iter().find(|(_, unit)| bytes >= *unit) else {
        return format!("{bytes} B");
    };
    // Tenths of the unit, rounded; u128 so that 16 EB does not overflow.
    let tenths = (u128::from(bytes) * 10 + u128::from(unit) / 2) / u128::from(unit);
    if tenths % 10 == 0 {
        format!("{} {name}", tenths / 10)
    } else {
        format!("{}.{} {name}", tenths / 10, tenths % 10)
    }
}

/// `90 s`, `12 min`, `3 h 5 min`, `2 d 4 h`, `2070 years`: how long until
/// or since, to the precision a person needs.
pub fn format_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        172_800..=63_071_999 => format!("{} d {} h", s / 86400, s % 86400 / 3600),
        // An owner's certificate may be good for centuries: "755720 d"
        // says less than this.
        _ => format!("{} years", s / 31_557_600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("500k"), Some(500 << 10));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("2 GB"), Some(2 << 30));
        assert_eq!(parse_size("1234"), Some(1234));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("10X"), None);
        assert_eq!(parse_size("99999999999999T"), None);
    }

    #[test]
    fn format() {
        let cases = [
            (0, "0 B"),
            (1, "1 B"),
            (1023, "1023 B"),
            (1024, "1 KB"),
            (1536, "1.5 KB"),
            (2 << 30, "2 GB"),
            (2147483648 + 100 * (1 << 20), "2.1 GB"),
            (10 * (1 << 20) - 1, "10 MB"),
            (u64::MAX, "16777216 TB"),
        ];
        for (n, text) in cases {
            assert_eq!(format_size(n), text, "{n}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(-5), "0 s");
        assert_eq!(format_duration(119), "119 s");
        assert_eq!(format_duration(300), "5 min");
        assert_eq!(format_duration(3600), "60 min");
        assert_eq!(format_duration(7260), "2 h 1 min");
        assert_eq!(format_duration(200_000), "2 d 7 h");
        assert_eq!(format_duration(2070 * 31_557_600), "2070 years");
    }

    #[test]
    fn round_trip() {
        for text in ["500 MB", "2 GB", "1 TB", "20 KB"] {
            assert_eq!(format_size(parse_size(text).unwrap()), text);
        }
    }
}
