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

/// The instant `Date#toISOString` text names (`2026-11-27T14:50:21.025Z`), or `None` for any
/// other shape (a row written by another program is read, not trusted).
pub fn ms_from_iso(text: &str) -> Option<f64> {
  let b = text.as_bytes();
  if b.len() != 24
    || b[4] != b'-'
    || b[7] != b'-'
    || b[10] != b'T'
    || b[13] != b':'
    || b[16] != b':'
    || b[19] != b'.'
    || b[23] != b'Z'
  {
    return None;
  }
  let num = |from: usize, to: usize| -> Option<i64> { text.get(from..to)?.parse().ok() };
  let (y, m, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
  let (h, min, s, ms) = (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
  if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || min > 59 || s > 59 {
    return None;
  }
  let days = days_from_civil(y, m, d);
  Some((((days * 24 + h) * 60 + min) * 60 + s) as f64 * 1000.0 + ms as f64)
}

/// connect-session-knex's MySQL `datetime` text: `toISOString().slice(0, 19).replace("T", " ")`,
/// the UTC wall clock floored to the second (`2026-11-27 14:50:21`).
pub fn datetime_from_ms(ms: f64) -> String {
  iso_from_ms(ms)[..19].replacen('T', " ", 1)
}

/// The instant a UTC wall-clock date and time name, in epoch ms.
pub fn ms_from_utc(y: i64, m: i64, d: i64, h: i64, min: i64, s: i64, micros: i64) -> f64 {
  let days = days_from_civil(y, m, d);
  (((days * 24 + h) * 60 + min) * 60 + s) as f64 * 1000.0 + (micros / 1000) as f64
}

/// (year, month, day) to days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
  let y = if m <= 2 { y - 1 } else { y };
  let era = y.div_euclid(400);
  let yoe = y.rem_euclid(400);
  let mp = (m + 9) % 12;
  let doy = (153 * mp + 2) / 5 + d - 1;
  let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  era * 146_097 + doe - 719_468
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

  #[test]
  fn reads_back_what_it_writes() {
    for ms in [
      0.0,
      951_782_400_000.0,
      1_764_255_021_025.0,
      4_102_444_799_999.0,
      253_402_300_799_999.0,
    ] {
      assert_eq!(ms_from_iso(&iso_from_ms(ms)), Some(ms));
    }
    assert_eq!(ms_from_iso("2026-11-27 14:50:21"), None);
    assert_eq!(datetime_from_ms(1_764_255_021_999.0), "2025-11-27 14:50:21");
    assert_eq!(ms_from_utc(2025, 11, 27, 14, 50, 21, 25_000), 1_764_255_021_025.0);
    assert_eq!(ms_from_iso("not a date at all, really"), None);
  }
}
