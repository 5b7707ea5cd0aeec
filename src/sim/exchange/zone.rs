//! The time zone a `GetUserAvailability` request names (`SerializableTimeZone`:
//! a bias and yearly standard/daylight transitions): Exchange reads the
//! window in it and answers with naive times in it.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday,
};

use crate::response_message::wire;
use crate::types;

/// One yearly transition: the `day_order`-th (5 = last) `weekday` of
/// `month`, at `time` local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Transition {
    /// Minutes added to the base bias while this period lasts.
    bias: i32,
    time: NaiveTime,
    day_order: u32,
    month: u32,
    weekday: Weekday,
}

/// A request's time zone; UTC = local + bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestZone {
    bias: i32,
    standard: Option<Transition>,
    daylight: Option<Transition>,
}

impl RequestZone {
    pub const UTC: RequestZone = RequestZone {
        bias: 0,
        standard: None,
        daylight: None,
    };

    /// Reads the request's zone; `Err` names what is invalid.
    pub fn from_request(zone: &types::SerializableTimeZone) -> Result<RequestZone, String> {
        let transition = |t: &types::SerializableTimeZoneTime,
                          what: &str|
         -> Result<Option<Transition>, String> {
            if t.month == 0 {
                return Ok(None);
            }
            if !(1..=12).contains(&t.month) || !(1..=5).contains(&t.day_order) {
                return Err(format!(
                    "TimeZone {what}: Month {} / DayOrder {} out of range",
                    t.month, t.day_order
                ));
            }
            let time = NaiveTime::parse_from_str(&t.time, "%H:%M:%S")
                .map_err(|_| format!("TimeZone {what}: invalid Time {:?}", t.time))?;
            let weekday = wire(&t.day_of_week)
                .parse::<Weekday>()
                .map_err(|_| format!("TimeZone {what}: invalid DayOfWeek"))?;
            Ok(Some(Transition {
                bias: t.bias,
                time,
                day_order: t.day_order as u32,
                month: t.month as u32,
                weekday,
            }))
        };
        let standard = transition(&zone.standard_time, "StandardTime")?;
        let daylight = transition(&zone.daylight_time, "DaylightTime")?;
        Ok(RequestZone {
            bias: zone.bias,
            // Daylight saving needs both transitions.
            standard: standard.filter(|_| daylight.is_some()),
            daylight: daylight.filter(|_| standard.is_some()),
        })
    }

    fn standard_bias(&self) -> i32 {
        self.bias + self.standard.map_or(0, |t| t.bias)
    }

    /// Minutes to add to local time to get UTC, at `instant`.
    fn bias_at(&self, instant: DateTime<Utc>) -> i32 {
        let (Some(standard), Some(daylight)) = (self.standard, self.daylight) else {
            return self.bias;
        };
        let year = instant.year();
        let dst_bias = self.bias + daylight.bias;
        // Daylight time starts at its local standard time and ends at its
        // local daylight time.
        let starts = transition_utc(year, &daylight, self.standard_bias());
        let ends = transition_utc(year, &standard, dst_bias);
        let in_dst = match (starts, ends) {
            (Some(s), Some(e)) if s < e => instant >= s && instant < e,
            (Some(s), Some(e)) => instant >= s || instant < e,
            _ => false,
        };
        if in_dst {
            dst_bias
        } else {
            self.standard_bias()
        }
    }

    /// A local (naive) time of this zone as UTC.
    pub fn to_utc(self, local: NaiveDateTime) -> DateTime<Utc> {
        let guess =
            Utc.from_utc_datetime(&(local + Duration::minutes(self.standard_bias() as i64)));
        let bias = self.bias_at(guess);
        Utc.from_utc_datetime(&(local + Duration::minutes(bias as i64)))
    }

    /// UTC as a naive local time of this zone.
    pub fn to_local(self, instant: DateTime<Utc>) -> NaiveDateTime {
        instant.naive_utc() - Duration::minutes(self.bias_at(instant) as i64)
    }
}

fn transition_utc(year: i32, t: &Transition, bias_before: i32) -> Option<DateTime<Utc>> {
    let first = NaiveDate::from_ymd_opt(year, t.month, 1)?;
    let shift = (7 + t.weekday.num_days_from_monday() - first.weekday().num_days_from_monday()) % 7;
    let mut day = first + Duration::days(shift as i64 + 7 * (t.day_order as i64 - 1));
    // DayOrder 5 means the last one in the month.
    while day.month() != t.month {
        day -= Duration::days(7);
    }
    let local = day.and_time(t.time);
    Some(Utc.from_utc_datetime(&(local + Duration::minutes(bias_before as i64))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn central_europe() -> RequestZone {
        let time = |bias, time: &str, month| types::SerializableTimeZoneTime {
            bias,
            time: time.into(),
            day_order: 5,
            month,
            day_of_week: types::DayOfWeekType::String("Sunday".into()),
            year: None,
        };
        RequestZone::from_request(&types::SerializableTimeZone {
            bias: -60,
            standard_time: time(0, "03:00:00", 10),
            daylight_time: time(-60, "02:00:00", 3),
        })
        .unwrap()
    }

    #[test]
    fn central_european_times_convert_with_and_without_daylight_saving() {
        let zone = central_europe();
        let winter = NaiveDate::from_ymd_opt(2026, 2, 10)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        assert_eq!(
            zone.to_utc(winter),
            Utc.with_ymd_and_hms(2026, 2, 10, 8, 0, 0).unwrap()
        );
        let summer = NaiveDate::from_ymd_opt(2026, 7, 10)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap();
        let utc = zone.to_utc(summer);
        assert_eq!(utc, Utc.with_ymd_and_hms(2026, 7, 10, 7, 0, 0).unwrap());
        assert_eq!(zone.to_local(utc), summer);
        // 2026-03-29 is the last Sunday of March: 01:00 UTC switches.
        assert_eq!(
            zone.to_local(Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).unwrap()),
            NaiveDate::from_ymd_opt(2026, 3, 29)
                .unwrap()
                .and_hms_opt(3, 30, 0)
                .unwrap()
        );
    }
}
