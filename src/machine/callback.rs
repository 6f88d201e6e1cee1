//! A transfer's `on_unanswered`: the callback a node schedules when the bridged leg is busy, not
//! answered or failed, and the calling window it is placed in (`mon-fri 09:00-18:00`, read in the
//! machine's `timezone` as route rules are).

use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::route::{DAY_MINUTES, Days, Hours};

/// The longest wait before a callback: a week. A caller waiting longer has moved on, and a
/// window's next opening is within a week anyway.
pub const AFTER_MINUTES_MAX: u32 = 7 * 24 * 60;
/// Most callbacks placed for one unanswered transfer: a few tries; more is harassment.
pub const ATTEMPTS_MAX: u8 = 5;
/// Days looked ahead for a window's next opening: a week holds every weekday, plus the day a
/// window crossing midnight started.
const WINDOW_DAYS_AHEAD: i64 = 8;

/// The 8x8 statuses of the bridged leg that schedule a callback.
pub const UNANSWERED_STATUSES: &[&str] = &["BUSY", "NO_ANSWER", "FAILED"];

/// A compiled `on_unanswered`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnUnanswered {
    /// Minutes after the summary before the first callback (and between attempts).
    pub after_minutes: u32,
    /// Callbacks placed at most, the first included (1 to `ATTEMPTS_MAX`).
    pub attempts: u8,
    /// The machine the callback runs (its first number calls).
    pub machine: String,
    /// When calls may be placed; `None`: any time.
    pub window: Option<Window>,
}

/// A calling window: weekdays and local hours, either optional (not both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub days: Option<Days>,
    pub hours: Option<Hours>,
}

impl Window {
    /// `mon-fri 09:00-18:00`, `sat,sun`, `09:00-18:00`; `None` when it is none of these.
    pub fn parse(text: &str) -> Option<Window> {
        let mut window = Window { days: None, hours: None };
        for part in text.split_whitespace() {
            if window.hours.is_none()
                && let Some(h) = Hours::parse(part)
            {
                window.hours = Some(h);
            } else if window.days.is_none()
                && let Some(d) = Days::parse(part)
            {
                window.days = Some(d);
            } else {
                return None;
            }
        }
        (window.days.is_some() || window.hours.is_some()).then_some(window)
    }

    /// The first time at or after `from_ms` the window is open, in `tz`, and when that opening
    /// ends: (open, close) in milliseconds since the epoch. `None` only for a window that never
    /// opens (no days) or a time out of range.
    pub fn next_opening(&self, tz: &TimeZone, from_ms: u64) -> Option<(u64, u64)> {
        let local = super::route::local_time(tz, from_ms)?;
        let (from, to) = self.hours.map_or((0, DAY_MINUTES), |h| {
            (h.from, if h.crosses_midnight() { h.to.saturating_add(DAY_MINUTES) } else { h.to })
        });
        // From the day before: an opening crossing midnight belongs to the day it started.
        let first = local.date().yesterday().ok()?;
        for offset in 0..=WINDOW_DAYS_AHEAD {
            let day = first.checked_add(jiff::Span::new().days(offset)).ok()?;
            if self.days.is_some_and(|d| !d.has(day.weekday())) {
                continue;
            }
            let (open, close) = (at_minute(tz, day, from)?, at_minute(tz, day, to)?);
            if close > from_ms {
                return Some((open.max(from_ms), close));
            }
        }
        None
    }
}

/// Milliseconds since the epoch of `minutes` past midnight of `day` in `tz` (past 24:00: the
/// next days).
fn at_minute(tz: &TimeZone, day: Date, minutes: u16) -> Option<u64> {
    let start = day.to_datetime(jiff::civil::Time::midnight());
    let at = start.checked_add(jiff::Span::new().minutes(i64::from(minutes))).ok()?;
    let ms = tz.to_ambiguous_timestamp(at).compatible().ok()?.as_millisecond();
    u64::try_from(ms).ok()
}

impl OnUnanswered {
    /// When a callback asked for at `now_ms` is due, and until when 8x8 may place it
    /// (`validUntil`): `now + after_minutes`, moved to the window's next opening, valid to that
    /// opening's end (without a window: valid for `after_minutes`' own span, at least an hour).
    pub fn due(&self, tz: Option<&TimeZone>, now_ms: u64) -> Option<(u64, u64)> {
        let earliest = now_ms.checked_add(u64::from(self.after_minutes).checked_mul(60_000)?)?;
        match (&self.window, tz) {
            (Some(w), Some(tz)) => w.next_opening(tz, earliest),
            (Some(_), None) => None,
            (None, _) => Some((earliest, earliest.checked_add(UNWINDOWED_VALID_MS)?)),
        }
    }
}

/// How long a callback with no window stays valid at 8x8 once sent: an hour.
pub const UNWINDOWED_VALID_MS: u64 = 3_600_000;

#[cfg(test)]
mod tests {
    use super::*;

    /// `2026-12-04T17:00:00` in Singapore, in ms since the epoch.
    fn ms(text: &str) -> u64 {
        let tz = crate::machine::route::time_zone("Asia/Singapore").unwrap();
        let at: jiff::civil::DateTime = text.parse().unwrap();
        tz.to_ambiguous_timestamp(at).compatible().unwrap().as_millisecond() as u64
    }

    #[test]
    fn windows_parse_and_refuse() {
        assert!(Window::parse("mon-fri 09:00-18:00").is_some());
        assert!(Window::parse("09:00-18:00").is_some());
        assert!(Window::parse("sat,sun").is_some());
        assert!(Window::parse("").is_none());
        assert!(Window::parse("mon-fri 9-18").is_none());
        assert!(Window::parse("weekdays").is_none());
    }

    #[test]
    fn the_next_opening_is_the_window_s() {
        let tz = crate::machine::route::time_zone("Asia/Singapore").unwrap();
        let w = Window::parse("mon-fri 09:00-18:00").unwrap();
        // Friday 17:00: open now, until 18:00.
        let fri = ms("2026-12-04T17:00:00");
        assert_eq!(w.next_opening(&tz, fri), Some((fri, ms("2026-12-04T18:00:00"))));
        // Friday 19:00: Monday 09:00 to 18:00.
        let late = ms("2026-12-04T19:00:00");
        assert_eq!(w.next_opening(&tz, late), Some((ms("2026-12-07T09:00:00"), ms("2026-12-07T18:00:00"))));
        // A window crossing midnight, at 01:00 on Saturday, is Friday's, open until 06:00.
        let night = Window::parse("fri 22:00-06:00").unwrap();
        let sat = ms("2026-12-05T01:00:00");
        assert_eq!(night.next_opening(&tz, sat), Some((sat, ms("2026-12-05T06:00:00"))));
        let cb = OnUnanswered { after_minutes: 90, attempts: 2, machine: "m".into(), window: Some(w) };
        assert_eq!(cb.due(Some(&tz), fri).map(|d| d.0), Some(ms("2026-12-07T09:00:00")));
        assert_eq!(cb.due(None, fri), None);
    }
}
