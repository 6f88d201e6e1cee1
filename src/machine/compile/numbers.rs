//! Numbers: every integer a machine file gives (an i64, any i64) checked against its field's bounds
//! before it is narrowed or computed with, so that none panics, wraps or is silently dropped; each
//! value out of bounds is a diagnostic at its field with a hint.

use super::super::definition::NodeDef;
use super::nodes::TRIES_MAX;
use super::scripts::SCRIPT_TIMEOUT_MAX_MS;
use super::{At, Compiler};
use crate::callflow::{DIGITS_MAX, NO_OF_TRIES_MAX, REPETITION_MAX, TIMEOUT_MS_MAX};

/// The bounds of an integer field: the values phonetree (or 8x8, for the fields it takes) accepts,
/// and how to choose one.
struct Bounds {
    field: &'static str,
    min: i64,
    max: i64,
    hint: &'static str,
}

const fn bounds(field: &'static str, min: i64, max: i64, hint: &'static str) -> Bounds {
    Bounds { field, min, max, hint }
}

/// Every integer field of a machine file. 8x8's own ranges are checked again, with its status
/// codes, by `callflow::validate` for each value that fits its type; these bounds catch the rest.
const BOUNDS: &[Bounds] = &[
    bounds("tries", 1, TRIES_MAX as i64, "phonetree's tries at a menu before `invalid`: 3 is usual"),
    bounds("repetition", 1, REPETITION_MAX as i64, "8x8 says a prompt 1 to 3 times"),
    bounds("min_digits", 1, DIGITS_MAX as i64, "8x8 captures 1 to 25 digits"),
    bounds("max_digits", 1, DIGITS_MAX as i64, "8x8 captures 1 to 25 digits"),
    bounds("digit_timeout_ms", 1, TIMEOUT_MS_MAX as i64, "8x8 waits up to 600000 ms (10 minutes) for a key"),
    bounds(
        "overall_timeout_ms",
        1,
        TIMEOUT_MS_MAX as i64,
        "8x8 waits up to 600000 ms (10 minutes) for the keys",
    ),
    bounds("no_of_tries", 1, NO_OF_TRIES_MAX as i64, "8x8 replays a capture 1 to 10 times"),
    bounds("timeout_ms", 100, SCRIPT_TIMEOUT_MAX_MS, "8x8 waits for the reply while the API answers"),
    bounds("cache_minutes", 1, 999, "the widget caches answers for 1 to 999 minutes"),
    bounds("digit_gap_ms", 1, TIMEOUT_MS_MAX as i64, "the wait for each key, 4000 ms by default"),
    bounds("repeat", 0, TRIES_MAX as i64 - 1, "the prompt is repeated 0 to 8 times when nothing is keyed"),
];

/// Each integer field's name and bounds, for the JSON Schema: (field, min, max, how to choose).
pub(crate) fn integer_bounds() -> impl Iterator<Item = (&'static str, i64, i64, &'static str)> {
    BOUNDS.iter().map(|b| (b.field, b.min, b.max, b.hint))
}

fn bounds_of(field: &str) -> &'static Bounds {
    BOUNDS.iter().find(|b| b.field == field).expect("every integer field has bounds")
}

impl Compiler<'_> {
    /// An integer field narrowed to the type it is sent as: a value that does not fit is an error
    /// at the field (or at `[defaults]`, when inherited), never a wrap.
    pub(super) fn int<T: TryFrom<i64>>(&mut self, name: &str, field: &str, value: Option<i64>) -> Option<T> {
        let v = value?;
        let narrowed = T::try_from(v).ok();
        if narrowed.is_none() {
            self.out_of_bounds(name, field, v);
        }
        narrowed
    }

    /// An integer field within its bounds (the default when it is not set); `None` and an error
    /// when it is outside them.
    pub(super) fn bounded(
        &mut self,
        name: &str,
        field: &str,
        value: Option<i64>,
        default: i64,
    ) -> Option<i64> {
        let v = value.unwrap_or(default);
        let b = bounds_of(field);
        if (b.min..=b.max).contains(&v) {
            Some(v)
        } else {
            self.out_of_bounds(name, field, v);
            None
        }
    }

    fn out_of_bounds(&mut self, name: &str, field: &str, v: i64) {
        let b = bounds_of(field);
        let message = format!("{field} {v} is outside {}..{}", b.min, b.max);
        self.error(At::Node(name, field), message, Some(b.hint.into()));
    }

    /// A script's keypress waits: 8x8's digitTimeout is the gap, its overallTimeout the gap for
    /// each of `max_digits` keys; both within 8x8's limit.
    pub(super) fn keypress_waits(&mut self, name: &str, n: &NodeDef, max_digits: u8) -> Option<(u32, u32)> {
        let gap = self.bounded(name, "digit_gap_ms", n.digit_gap_ms, super::scripts::DIGIT_GAP_DEFAULT_MS)?;
        let overall = gap.checked_mul(i64::from(max_digits)).filter(|o| *o <= i64::from(TIMEOUT_MS_MAX));
        let Some(overall) = overall else {
            self.error(
                At::Node(name, "digit_gap_ms"),
                format!(
                    "digit_gap_ms {gap} for each of {max_digits} digits waits longer than 8x8's limit of {TIMEOUT_MS_MAX} ms"
                ),
                Some("lower `digit_gap_ms` or `max_digits`: the whole wait is their product".into()),
            );
            return None;
        };
        Some((u32::try_from(gap).ok()?, u32::try_from(overall).ok()?))
    }
}
