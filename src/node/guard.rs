//! The outbound guard: every number phonetree dials, checked before 8x8 is asked. Calls placed
//! (`POST /calls`) and transfers whose destination a template fills (caller input, a stored or API
//! value) pass the same check: E.164, in the operator's `--call-allow-prefix`, never in an
//! emergency or premium range, and rate-limited per destination and overall. A transfer to a
//! literal destination is checked once, when its machine loads (E.164, not barred): the operator
//! wrote the number, so it counts as allowed and is not rate-limited (an agent line takes many
//! callers a minute). The caller ID of a placed call is one of the machine's own numbers. Pure
//! functions over a `CallPolicy`, and one `Limiter` the node keeps.

use std::time::Duration;

use crate::store::{Bucket, Store, StoreError};

use crate::callflow::E164_DIGITS_MAX;

/// Calls per destination per minute unless `--call-rate-per-destination` says otherwise: an IVR
/// calls a callee back once, not in a loop (the attacker's probe placed 100 calls in 0.58 s).
pub const RATE_PER_DESTINATION_DEFAULT: u32 = 1;
/// Calls per minute, all destinations together, unless `--call-rate-overall` says otherwise: a
/// campaign's pace, far below what a stolen key could run up in a minute.
pub const RATE_OVERALL_DEFAULT: u32 = 10;
/// The most calls per minute a flag may allow (per destination or overall): a limit above it is
/// no limit, and keeps the arithmetic far from overflow.
pub const RATE_MAX: u32 = 10_000;
/// The window the rates are per.
pub const RATE_PERIOD: Duration = Duration::from_secs(60);

/// Which calls the node may place and how fast: from `--call-allow-prefix`,
/// `--call-rate-per-destination` and `--call-rate-overall`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPolicy {
    /// Destination prefixes calls may go to (`+` allows every number not barred); empty: none.
    pub allow_prefixes: Vec<String>,
    /// Calls per destination per `RATE_PERIOD`.
    pub per_destination: u32,
    /// Calls per `RATE_PERIOD`, all destinations together.
    pub overall: u32,
}

impl Default for CallPolicy {
    /// No destination allowed until configured; the default rates.
    fn default() -> CallPolicy {
        CallPolicy {
            allow_prefixes: Vec::new(),
            per_destination: RATE_PER_DESTINATION_DEFAULT,
            overall: RATE_OVERALL_DEFAULT,
        }
    }
}

/// A `CallPolicy` the node cannot run with.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "--call-allow-prefix `{0}` is not a prefix of E.164 numbers: give `+` then up to 15 digits, e.g. +1,+44"
    )]
    Prefix(String),
    #[error("--call-rate-{which} {value} is out of range: give 1 to {RATE_MAX} calls per minute")]
    Rate { which: &'static str, value: u32 },
}

impl CallPolicy {
    /// Checks every prefix and rate; prefixes lose their spaces (`+44 20` is `+4420`).
    pub fn checked(mut self) -> Result<CallPolicy, PolicyError> {
        for p in &mut self.allow_prefixes {
            let compact: String = p.chars().filter(|c| !c.is_whitespace()).collect();
            let digits = compact.strip_prefix('+').ok_or_else(|| PolicyError::Prefix(p.clone()))?;
            if digits.len() > E164_DIGITS_MAX || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PolicyError::Prefix(p.clone()));
            }
            *p = compact;
        }
        for (which, value) in [("per-destination", self.per_destination), ("overall", self.overall)] {
            if !(1..=RATE_MAX).contains(&value) {
                return Err(PolicyError::Rate { which, value });
            }
        }
        Ok(self)
    }
}

/// Why the guard refused a call. Nothing was sent to 8x8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("`{0}` is not an E.164 number: give `+` then 8 to 15 digits, the first not 0, e.g. +6598888888")]
    NotE164(&'static str),
    #[error(
        "no destination is allowed yet: start the node with --call-allow-prefix (or PHONETREE_CALL_ALLOW_PREFIX) listing the prefixes it may call, e.g. +65,+44"
    )]
    NothingAllowed,
    #[error("`to` {0} is not in a prefix --call-allow-prefix allows")]
    NotAllowed(String),
    #[error("`to` {to} is {why}: phonetree never calls it, whatever --call-allow-prefix says")]
    Barred { to: String, why: &'static str },
    #[error(
        "`from` {from} is not a number of machine `{machine}`: give one of its numbers, or leave `from` out"
    )]
    ForeignCallerId { from: String, machine: String },
    #[error("too many calls {scope}: try again in {} s", retry_after.as_secs())]
    RateLimited { scope: &'static str, retry_after: Duration },
}

impl Refused {
    /// The metric label and log word of a refusal: never the number (it may be the caller's).
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Refused::NotE164(_) => "not_e164",
            Refused::NothingAllowed => "nothing_allowed",
            Refused::NotAllowed(_) => "not_allowed",
            Refused::Barred { .. } => "barred",
            Refused::ForeignCallerId { .. } => "foreign_caller_id",
            Refused::RateLimited { .. } => "rate_limited",
        }
    }
}

/// A number as logs may show it: `+` and its length, no digit (a dialled number may be what the
/// caller keyed).
pub(super) fn masked(number: &str) -> String {
    let digits = number.chars().filter(char::is_ascii_digit).count();
    format!("+{}", "*".repeat(digits.min(E164_DIGITS_MAX)))
}

/// Whether `number` is E.164 as phonetree dials it: `+`, then what `callflow::check_e164` accepts
/// (8 to 15 digits, the first not 0): the one check of every number phonetree dials.
pub fn is_e164(number: &str) -> bool {
    number.starts_with('+') && crate::callflow::check_e164(number).is_ok()
}

/// Why `to` (E.164) is in a range phonetree never calls, if it is: the one place the guard asks.
fn barred_reason(to: &str) -> Option<&'static str> {
    crate::callflow::barred::barred(to)
}

/// Checks a transfer's literal destination, once, when its machine loads: E.164 and not barred.
/// The operator wrote it, so `--call-allow-prefix` need not list it and no rate applies.
/// Machine files may leave out the `+` (8x8's tutorials do): the number is read as if it had one.
pub(super) fn check_static(to: &str) -> Result<(), Refused> {
    if crate::callflow::check_e164(to).is_err() {
        return Err(Refused::NotE164("destination"));
    }
    let e164 = format!("+{}", to.strip_prefix('+').unwrap_or(to));
    match barred_reason(&e164) {
        Some(why) => Err(Refused::Barred { to: e164, why }),
        None => Ok(()),
    }
}

/// Checks a destination: E.164, not barred, in an allowed prefix.
pub fn check_destination(policy: &CallPolicy, to: &str) -> Result<(), Refused> {
    if !is_e164(to) {
        return Err(Refused::NotE164("to"));
    }
    if let Some(why) = barred_reason(to) {
        return Err(Refused::Barred { to: to.to_string(), why });
    }
    if policy.allow_prefixes.is_empty() {
        return Err(Refused::NothingAllowed);
    }
    if !policy.allow_prefixes.iter().any(|p| to.starts_with(p.as_str())) {
        return Err(Refused::NotAllowed(to.to_string()));
    }
    Ok(())
}

/// The caller ID of a call on `machine` with `numbers`: `from` when it is E.164 and one of them
/// (machine files may leave out the `+`; the number is sent as the machine declares it), else
/// the machine's first number; `Ok(None)` when the machine has none and `from` is not given.
pub fn caller_id(machine: &str, numbers: &[String], from: Option<&str>) -> Result<Option<String>, Refused> {
    let Some(from) = from else { return Ok(numbers.first().cloned()) };
    if !is_e164(from) {
        return Err(Refused::NotE164("from"));
    }
    let digits = &from[1..];
    numbers
        .iter()
        .find(|n| n.strip_prefix('+').unwrap_or(n) == digits)
        .cloned()
        .map(Some)
        .ok_or_else(|| Refused::ForeignCallerId { from: from.to_string(), machine: machine.to_string() })
}

/// A rate as a token bucket kept as its "theoretical arrival time" (GCRA, `store::Bucket`): the
/// bucket is full once the time is past; each call moves it one interval later; a call is refused
/// while it is more than `burst - 1` intervals ahead of now.
#[derive(Debug, Clone, Copy)]
struct Rate {
    /// Milliseconds one token takes to come back.
    interval_ms: u64,
    /// How far ahead of now the bucket may run before it is empty: `(burst - 1)` intervals.
    tolerance_ms: u64,
}

impl Rate {
    /// `per_period` calls per `RATE_PERIOD`, all of them at once if none were made for a while.
    fn new(per_period: u32) -> Rate {
        let period = u64::try_from(RATE_PERIOD.as_millis()).unwrap_or(u64::MAX);
        let per_period = u64::from(per_period.max(1));
        let interval_ms = period.checked_div(per_period).unwrap_or(period).max(1);
        Rate { interval_ms, tolerance_ms: interval_ms.saturating_mul(per_period.saturating_sub(1)) }
    }

    fn bucket(self, key: &str) -> Bucket<'_> {
        Bucket { key, interval_ms: self.interval_ms, tolerance_ms: self.tolerance_ms }
    }
}

/// The store key of the overall bucket.
const OVERALL_KEY: &str = "overall";

/// The rate limits of the calls and templated transfers the nodes of a store place: one bucket
/// overall, one per destination, kept in the store (`Store::take_tokens`), so that every node of a
/// PostgreSQL store shares them and a restart does not refill them. A bucket's record lasts at
/// most `RATE_PERIOD` past its last call (the sweep deletes full buckets), and a record is written
/// only for a call the overall rate lets through: the records stay bounded.
#[derive(Debug)]
pub struct Limiter {
    overall: Rate,
    per_destination: Rate,
}

impl Limiter {
    pub fn new(policy: &CallPolicy) -> Limiter {
        Limiter { overall: Rate::new(policy.overall), per_destination: Rate::new(policy.per_destination) }
    }

    /// Takes a token from both buckets for a call to `to` at `now_ms` (the wall clock every node
    /// shares), or from neither and says how long to wait (rounded up to whole seconds, at least
    /// one). The store's error when it cannot tell.
    pub async fn admit(
        &self,
        store: &dyn Store,
        to: &str,
        now_ms: u64,
    ) -> Result<Result<(), Refused>, StoreError> {
        let destination = format!("to:{to}");
        let buckets = [self.per_destination.bucket(&destination), self.overall.bucket(OVERALL_KEY)];
        Ok(store.take_tokens(&buckets, now_ms).await?.map_err(|(i, wait)| {
            let scope = if i == 0 { "to this destination" } else { "overall" };
            let secs = wait.div_ceil(1000).max(1);
            Refused::RateLimited { scope, retry_after: Duration::from_secs(secs) }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(prefixes: &[&str]) -> CallPolicy {
        CallPolicy {
            allow_prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            ..CallPolicy::default()
        }
        .checked()
        .unwrap()
    }

    #[test]
    fn e164_is_a_plus_then_8_to_15_digits_not_starting_with_0() {
        for ok in ["+6598888888", "+12025550123", "+123456789012345", "+12345678"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "",
            "+",
            "911",
            "112",
            "+911",
            "6598888888",
            "+0598888888",
            "+1234567",
            "+1234567890123456",
            "+65 9888 8888",
            "+65-98888888",
            "++6598888888",
            "+６598888888",
            "+6598888888\n",
        ] {
            assert!(!is_e164(bad), "{bad:?}");
        }
    }

    #[test]
    fn nothing_is_allowed_until_prefixes_are_configured() {
        assert_eq!(check_destination(&CallPolicy::default(), "+6598888888"), Err(Refused::NothingAllowed));
        assert_eq!(check_destination(&policy(&["+65"]), "+6598888888"), Ok(()));
        assert_eq!(
            check_destination(&policy(&["+1", "+44"]), "+6598888888"),
            Err(Refused::NotAllowed("+6598888888".into()))
        );
        assert_eq!(check_destination(&policy(&["+44 20"]), "+442071234567"), Ok(()));
    }

    #[test]
    fn barred_ranges_are_refused_even_when_every_prefix_is_allowed() {
        let all = policy(&["+"]);
        for to in [
            "+19005551234",
            "+19765551234",
            "+449012345678",
            "+88112345678",
            "+88212345678",
            "+88312345678",
            "+97912345678",
            "+80812345678",
            "+870773112345",
        ] {
            assert!(matches!(check_destination(&all, to), Err(Refused::Barred { .. })), "{to}");
        }
        for to in ["911", "112", "999", "000", "110", "119", "+999", "+112"] {
            assert_eq!(check_destination(&all, to), Err(Refused::NotE164("to")), "{to}");
        }
        assert_eq!(check_destination(&all, "+12025550123"), Ok(()));
    }

    #[test]
    fn bad_policies_are_refused_with_the_flag_named() {
        let bad = |p: CallPolicy| p.checked().unwrap_err().to_string();
        let prefixes = |p: &str| CallPolicy { allow_prefixes: vec![p.into()], ..CallPolicy::default() };
        assert!(bad(prefixes("65")).contains("--call-allow-prefix `65`"));
        assert!(bad(prefixes("+6a")).contains("--call-allow-prefix"));
        assert!(bad(CallPolicy { overall: 0, ..CallPolicy::default() }).contains("--call-rate-overall 0"));
        assert!(
            bad(CallPolicy { per_destination: RATE_MAX + 1, ..CallPolicy::default() })
                .contains("--call-rate-per-destination")
        );
    }

    #[test]
    fn caller_id_is_one_of_the_machines_numbers() {
        let numbers = ["6561115777".to_string(), "+6568888888".to_string()];
        assert_eq!(caller_id("m", &numbers, None), Ok(Some("6561115777".into())));
        assert_eq!(caller_id("m", &numbers, Some("+6561115777")), Ok(Some("6561115777".into())));
        assert_eq!(caller_id("m", &numbers, Some("+6568888888")), Ok(Some("+6568888888".into())));
        assert_eq!(caller_id("m", &numbers, Some("6568888888")), Err(Refused::NotE164("from")));
        assert_eq!(
            caller_id("m", &numbers, Some("+6599999999")),
            Err(Refused::ForeignCallerId { from: "+6599999999".into(), machine: "m".into() })
        );
        assert_eq!(caller_id("m", &[], None), Ok(None));
    }

    /// The rates as the store keeps them: shared by two openings of one store (a restart), and
    /// the records of full buckets swept.
    #[tokio::test]
    async fn one_call_per_destination_per_minute_and_the_overall_rate() {
        let dir = tempfile::tempdir().unwrap();
        let l = Limiter::new(&CallPolicy { overall: 3, ..CallPolicy::default() });
        let t0 = 1_000_000;
        {
            let store = crate::store::SledStore::open(dir.path()).unwrap();
            assert_eq!(l.admit(&store, "+6511111111", t0).await.unwrap(), Ok(()));
        }
        // Another opening of the store (a restart): the bucket is still empty.
        let store = crate::store::SledStore::open(dir.path()).unwrap();
        let Err(Refused::RateLimited { scope, retry_after }) =
            l.admit(&store, "+6511111111", t0 + 1_000).await.unwrap()
        else {
            panic!("a second call to the same number within the minute")
        };
        assert_eq!((scope, retry_after), ("to this destination", Duration::from_secs(59)));
        assert_eq!(l.admit(&store, "+6522222222", t0).await.unwrap(), Ok(()));
        assert_eq!(l.admit(&store, "+6533333333", t0).await.unwrap(), Ok(()));
        // The overall bucket (3 a minute) is empty; a refused call takes no token.
        let Err(Refused::RateLimited { scope, retry_after }) =
            l.admit(&store, "+6544444444", t0).await.unwrap()
        else {
            panic!("a fourth call in the same instant")
        };
        assert_eq!((scope, retry_after), ("overall", Duration::from_secs(20)));
        assert_eq!(l.admit(&store, "+6544444444", t0 + 20_000).await.unwrap(), Ok(()));
        assert_eq!(l.admit(&store, "+6511111111", t0 + 60_000).await.unwrap(), Ok(()));
        // Every bucket is full again a period after its last call: nothing is left to keep.
        assert_eq!(
            store.expire_rates(t0 + 60_000).await.unwrap(),
            2,
            "the two destinations called at t0 only"
        );
        assert_eq!(store.expire_rates(t0 + 200_000).await.unwrap(), 3);
        assert_eq!(store.expire_rates(t0 + 200_000).await.unwrap(), 0);
    }
}
