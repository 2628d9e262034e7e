//! Numbers in words a person reads at a glance: the status page and the OLED say sizes and
//! ages the same way.

pub fn duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// `n` and the noun in the number English wants: "1 reader", "0 readers", "-1 days left".
pub fn count(n: impl Into<i128> + std::fmt::Display + Copy, one: &str, many: &str) -> String {
    format!("{n} {}", if n.into() == 1 { one } else { many })
}

/// Unix seconds as RFC 3339 UTC to the second, as the JSON, the graphs and the messages write
/// times.
pub(crate) fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

/// `#[serde(with = "crate::format::json_time")]`: a time in the JSON as RFC 3339 UTC to the
/// second.
pub mod json_time {
    use std::time::SystemTime;

    pub(crate) fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_seconds(*t))
    }
}

/// [`json_time`] for a time that may be absent (`null`).
pub mod json_time_option {
    use std::time::SystemTime;

    // `pub`, not `pub(crate)`: serde gives a `with` function `&Option<T>`, which clippy asks
    // a crate-private function not to take.
    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::json_time::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(0u64, "reader", "readers"), "0 readers");
        assert_eq!(count(1u64, "reader", "readers"), "1 reader");
        assert_eq!(count(2u64, "day left", "days left"), "2 days left");
        assert_eq!(count(-1i64, "day left", "days left"), "-1 days left");
    }

    #[test]
    fn sizes_and_durations_read_naturally() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(3 * 3600 + 120), "3 h 2 min");
        assert_eq!(duration(2 * 86_400 + 3600), "2 d 1 h");
    }
}
