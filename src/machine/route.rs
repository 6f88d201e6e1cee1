//! Route and set nodes: the compiled rules of a `route` (time windows, dates, tests on call
//! variables), how a rule is decided against a call's clock and variables, and the `set` node's
//! values and counters.
//!
//! Time is the engine's `now`, read as civil time in the machine's `timezone` through jiff's
//! bundled tz database: the same instant gives the same local time on every host, DST included.
//! A window that crosses midnight (`22:00-06:00`) belongs to the day it started: Friday's
//! `22:00-06:00` holds from Friday 22:00 to Saturday 06:00, and `days` and `dates` test Friday.

use std::fmt;

use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;

use super::template::Template;

/// Most rules in one route: a route longer than this is a table better kept in the business's API.
pub const RULES_MAX: usize = 64;
/// Most dates or `one_of` values in one rule: a year of holidays fits.
pub const RULE_VALUES_MAX: usize = 366;
/// Largest magnitude of a counter: far above any attempt count, and its text stays within the
/// engine's per-variable bound. `add` stops at it instead of overflowing.
pub const COUNTER_MAX: i64 = 999_999_999;
/// Minutes in a day: `hours` run from 00:00 to 24:00.
pub const DAY_MINUTES: u16 = 24 * 60;

/// A compiled `route` node.
#[derive(Debug, Clone)]
pub struct Route {
    pub rules: Vec<Rule>,
}

/// One rule: all its conditions hold, or it does not fire.
#[derive(Debug, Clone)]
pub struct Rule {
    pub days: Option<Days>,
    pub hours: Option<Hours>,
    pub dates: Option<Vec<Date>>,
    /// Tests on one call variable: (name, tests).
    pub var: Option<(String, Vec<VarTest>)>,
    /// What the rule says, as written (`mon-fri 09:00-18:00`): the edge's label.
    pub label: String,
}

/// Weekdays, Monday first: bit 0 is Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days(pub u8);

/// A local time window in minutes from midnight, `from` included, `to` excluded; `to <= from`
/// crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hours {
    pub from: u16,
    pub to: u16,
}

/// A test on a call variable's value.
#[derive(Debug, Clone)]
pub enum VarTest {
    Equals(String),
    OneOf(Vec<String>),
    /// Anchored.
    Matches(regex::Regex),
    Prefix(String),
    AtLeast(i64),
    AtMost(i64),
}

/// A compiled `set` node: templates to store, then counters to add to.
#[derive(Debug, Clone)]
pub struct SetVars {
    pub values: Vec<(String, Template)>,
    pub add: Vec<(String, Addend)>,
}

/// What a counter adds: a whole number, or the value of a call variable, which must be a number
/// (`number`) when the call passes the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addend {
    Constant(i64),
    /// `name`'s value. `numeric`: the compiler proved it always a number (a counter, or an input
    /// of at most 9 digit keys), so the node has no `not_number` edge; `digits`: always a number
    /// of digit keys, so never below 0.
    Var {
        name: String,
        numeric: bool,
        digits: bool,
    },
}

impl Addend {
    /// Whether it never lowers a counter (a counter only such `add`s write never shrinks).
    pub fn never_lowers(&self) -> bool {
        match self {
            Addend::Constant(n) => *n > 0,
            Addend::Var { digits, .. } => *digits,
        }
    }

    /// The variable it reads.
    pub fn var(&self) -> Option<&str> {
        match self {
            Addend::Var { name, .. } => Some(name),
            Addend::Constant(_) => None,
        }
    }
}

impl fmt::Display for Addend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addend::Constant(n) => write!(f, "{n}"),
            Addend::Var { name, .. } => write!(f, "{{{name}}}"),
        }
    }
}

/// A call variable's value as `add` reads it: an integer (as `integer` reads one) within
/// ±`COUNTER_MAX`; `None` for anything else, an unset variable included.
pub fn number(value: Option<&str>) -> Option<i64> {
    value.and_then(|v| integer(Some(v))).filter(|n| (-COUNTER_MAX..=COUNTER_MAX).contains(n))
}

impl Days {
    pub fn has(self, day: Weekday) -> bool {
        self.0 & (1 << (day.to_monday_zero_offset() as u8)) != 0
    }

    /// Whether every day of `self` is one of `other`'s.
    pub fn within(self, other: Days) -> bool {
        self.0 & !other.0 == 0
    }

    /// `mon-fri`, `sat`, `sat,sun`, `fri-mon` (wrapping); `None` when not days.
    pub fn parse(text: &str) -> Option<Days> {
        let mut bits = 0u8;
        for part in text.split(',') {
            let part = part.trim();
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b) = (day_index(a.trim())?, day_index(b.trim())?);
            let mut d = a;
            loop {
                bits |= 1 << d;
                if d == b {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        Some(Days(bits))
    }
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(name: &str) -> Option<u8> {
    DAY_NAMES.iter().position(|d| d.eq_ignore_ascii_case(name)).map(|i| i as u8)
}

impl Hours {
    pub fn crosses_midnight(self) -> bool {
        self.to <= self.from
    }

    /// `09:00-18:00` (`24:00` may end a window); `None` when not a window of two times.
    pub fn parse(text: &str) -> Option<Hours> {
        let (a, b) = text.split_once('-')?;
        let minutes = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
        };
        let (from, to) = (minutes(a)?, minutes(b)?);
        (from < DAY_MINUTES).then_some(Hours { from, to })
    }

    /// Whether minute `m` of a day is in the window, and if so whether it is in the part after
    /// midnight (which belongs to the day before).
    fn holds(self, m: u16) -> Option<bool> {
        if !self.crosses_midnight() {
            return (self.from <= m && m < self.to).then_some(false);
        }
        if m >= self.from {
            Some(false)
        } else if m < self.to {
            Some(true)
        } else {
            None
        }
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, b) = (self.from, self.to);
        write!(f, "{:02}:{:02}-{:02}:{:02}", a / 60, a % 60, b / 60, b % 60)
    }
}

/// A counter's value: its text as an integer; unset counts as 0, any other text is `None`.
pub fn integer(value: Option<&str>) -> Option<i64> {
    match value {
        None => Some(0),
        Some(v) => v.trim().parse().ok(),
    }
}

impl VarTest {
    /// Whether the test holds for `value` (`None`: the variable is unset, which only the numeric
    /// tests accept, as 0).
    pub fn holds(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (VarTest::AtLeast(n), v) => integer(v).is_some_and(|v| v >= *n),
            (VarTest::AtMost(n), v) => integer(v).is_some_and(|v| v <= *n),
            (_, None) => false,
            (VarTest::Equals(e), Some(v)) => v == e,
            (VarTest::OneOf(set), Some(v)) => set.iter().any(|e| e == v),
            (VarTest::Matches(re), Some(v)) => re.is_match(v),
            (VarTest::Prefix(p), Some(v)) => v.starts_with(p.as_str()),
        }
    }
}

impl Rule {
    pub fn uses_time(&self) -> bool {
        self.days.is_some() || self.hours.is_some() || self.dates.is_some()
    }

    /// Whether the rule's time conditions hold at local time `at` (true when it has none).
    pub fn time_holds(&self, at: DateTime) -> bool {
        let minute = at.hour() as u16 * 60 + at.minute() as u16;
        let after_midnight = match self.hours {
            None => false,
            Some(h) => match h.holds(minute) {
                None => return false,
                Some(after) => after,
            },
        };
        let day = if after_midnight { at.date().yesterday().ok() } else { Some(at.date()) };
        let Some(day) = day else { return false };
        self.days.is_none_or(|d| d.has(day.weekday()))
            && self.dates.as_ref().is_none_or(|dates| dates.contains(&day))
    }

    /// Whether the rule's variable tests hold, the call's variables read with `var`.
    pub fn vars_hold<'v>(&self, var: impl Fn(&str) -> Option<&'v str>) -> bool {
        self.var.as_ref().is_none_or(|(name, tests)| {
            let value = var(name);
            tests.iter().all(|t| t.holds(value))
        })
    }
}

impl Route {
    /// The index of the first rule that holds at `now_ms` (local time in `tz`) for the call's
    /// variables; `None`: the `else`. A rule on time without a zone (the compiler forbids it)
    /// does not hold.
    pub fn pick<'v>(
        &self,
        tz: Option<&TimeZone>,
        now_ms: u64,
        var: impl Fn(&str) -> Option<&'v str>,
    ) -> Option<usize> {
        let local = tz.and_then(|tz| local_time(tz, now_ms));
        self.rules
            .iter()
            .position(|r| (!r.uses_time() || local.is_some_and(|at| r.time_holds(at))) && r.vars_hold(&var))
    }
}

/// `now_ms` (milliseconds since the Unix epoch) as civil time in `tz`.
pub fn local_time(tz: &TimeZone, now_ms: u64) -> Option<DateTime> {
    let ms = i64::try_from(now_ms).ok()?;
    Some(tz.to_datetime(jiff::Timestamp::from_millisecond(ms).ok()?))
}

/// The zone of an IANA name, from the tz database bundled in the binary (never the host's).
pub fn time_zone(name: &str) -> Option<TimeZone> {
    jiff::tz::TimeZoneDatabase::bundled().get(name).ok()
}

/// The IANA names the bundled database knows (for a "did you mean").
pub fn time_zone_names() -> Vec<String> {
    jiff::tz::TimeZoneDatabase::bundled().available().map(|n| n.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(days: Option<&str>, hours: Option<&str>) -> Rule {
        Rule {
            days: days.and_then(Days::parse),
            hours: hours.and_then(Hours::parse),
            dates: None,
            var: None,
            label: String::new(),
        }
    }

    fn ms(rfc3339: &str) -> u64 {
        rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64
    }

    #[test]
    fn days_parse_ranges_lists_and_wrapping() {
        assert_eq!(Days::parse("mon-fri"), Some(Days(0b0011111)));
        assert_eq!(Days::parse("sat,sun"), Some(Days(0b1100000)));
        assert_eq!(Days::parse("fri-mon"), Some(Days(0b1110001)));
        assert_eq!(Days::parse("Sat"), Some(Days(0b0100000)));
        assert_eq!(Days::parse("someday"), None);
    }

    #[test]
    fn hours_parse_and_cross_midnight() {
        assert_eq!(Hours::parse("09:00-18:00"), Some(Hours { from: 540, to: 1080 }));
        assert_eq!(Hours::parse("22:00-24:00"), Some(Hours { from: 1320, to: 1440 }));
        assert_eq!(Hours::parse("9:00-18:00"), None);
        assert_eq!(Hours::parse("24:00-06:00"), None);
        assert!(Hours::parse("22:00-06:00").unwrap().crosses_midnight());
    }

    #[test]
    fn the_part_after_midnight_belongs_to_the_day_the_window_started() {
        let tz = time_zone("Asia/Singapore").unwrap();
        let night = rule(Some("fri"), Some("22:00-06:00"));
        let at = |t: &str| local_time(&tz, ms(t)).unwrap();
        // 2026-11-27 is a Friday.
        assert!(night.time_holds(at("2026-11-27T23:00:00+08:00")));
        assert!(night.time_holds(at("2026-11-28T05:59:00+08:00")));
        assert!(!night.time_holds(at("2026-11-28T06:00:00+08:00")));
        assert!(!night.time_holds(at("2026-11-27T05:00:00+08:00")), "Friday morning is Thursday's night");
    }

    #[test]
    fn local_time_is_dst_correct() {
        // America/New_York moves from EST (-5) to EDT (-4) at 2026-03-08 02:00 local.
        let tz = time_zone("America/New_York").unwrap();
        let open = rule(Some("mon-sun"), Some("09:00-10:00"));
        let before = local_time(&tz, ms("2026-03-07T14:30:00Z")).unwrap();
        let after = local_time(&tz, ms("2026-03-09T13:30:00Z")).unwrap();
        assert_eq!((before.hour(), before.minute()), (9, 30));
        assert_eq!((after.hour(), after.minute()), (9, 30));
        assert!(open.time_holds(before) && open.time_holds(after));
        // The same UTC time of day is an hour later in local time after the change.
        let later = local_time(&tz, ms("2026-03-09T14:30:00Z")).unwrap();
        assert!(!open.time_holds(later));
    }

    #[test]
    fn unset_variables_hold_only_numeric_tests_as_zero() {
        assert!(VarTest::AtMost(0).holds(None));
        assert!(!VarTest::AtLeast(1).holds(None));
        assert!(!VarTest::Equals(String::new()).holds(None));
        assert!(!VarTest::AtLeast(0).holds(Some("abc")));
        assert!(VarTest::Prefix("+65".into()).holds(Some("+6591234567")));
    }
}
