//! Instants as the `Date#toISOString` text that connect-session-knex keeps in SQLite. There is no
//! "now" here on purpose: the JS clock is the clock (every request carries JS's `Date.now()`).

/// `new Date(ms).toISOString()` for years 0..=9999: `2026-11-27T14:50:21.025Z`. Fixed width, so
/// these strings order the same way as the instants they name.
pub fn iso_from_ms(ms: f64) -> String {
  let ms = ms.clamp(0.0, 253_402_300_799_999.0) as i64;
  let days = ms.div_euclid(86_400_000);
  let in_day = ms.rem_euclid(86_400_000);
  let (y, m, d) = civil_from_days(days);
  format!(
    "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
    in_day / 3_600_000,
    in_day / 60_000 % 60,
    in_day / 1000 % 60,
    in_day % 1000
  )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
  let z = days + 719_468;
  let era = z.div_euclid(146_097);
  let doe = z.rem_euclid(146_097);
  let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
  let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  let mp = (5 * doy + 2) / 153;
  let d = doy - (153 * mp + 2) / 5 + 1;
  let m = if mp < 10 { mp + 3 } else { mp - 9 };
  (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn formats_like_date_to_iso_string() {
    assert_eq!(iso_from_ms(0.0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso_from_ms(1_764_255_021_025.0), "2025-11-27T14:50:21.025Z");
    assert_eq!(iso_from_ms(951_782_400_000.0), "2000-02-29T00:00:00.000Z");
    assert_eq!(iso_from_ms(4_102_444_799_999.0), "2099-12-31T23:59:59.999Z");
  }
}
