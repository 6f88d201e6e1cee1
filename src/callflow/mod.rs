//! 8x8's callflow model, the bottom layer: actions as plain Rust values, 8x8's own rules and limits
//! for them, and the `clientActionId` phonetree puts on every reply that waits.
//!
//! The same `validate` runs in the compiler (on every reply a machine can produce) and on every reply
//! the engine renders, so a callflow 8x8 would reject never reaches the wire. The JSON encoding lives in
//! `webhook::wire`; nothing here knows JSON.

mod action_id;
pub mod barred;
mod summary;

use std::fmt;

pub use action_id::{
    ACTION_ID_NAMES_CHARS_MAX, ACTION_KEY_CHARS_MIN, ACTION_MAC_BYTES, ActionKey, ActionKeyTooShort,
    ClientActionId, Issued, Refused, sign,
};
pub use summary::{Leg, SESSION_STATUSES, SessionSummary};

/// 8x8: "Maximum voice message length is 3000 characters" (say `text`, sayAndCapture `promptMessage`).
pub const TEXT_CHARS_MAX: usize = 3000;
/// 8x8: `repetition` accepts 1, 2 or 3.
pub const REPETITION_MAX: u8 = 3;
/// 8x8: `speed` ranges from 0.5 to 2.0; held in hundredths.
pub const SPEED_HUNDREDTHS_MIN: u16 = 50;
pub const SPEED_HUNDREDTHS_MAX: u16 = 200;
/// 8x8: `maxDigits` "must be provided and > 0 and < 26".
pub const DIGITS_MAX: u8 = 25;
/// 8x8: "the maximum allowed makeCall actions in a callflow is 2" (no conferencing).
pub const MAKE_CALLS_MAX: usize = 2;
/// phonetree's bound on 8x8's `noOfTries`: a caller replayed the same prompt ten times has left.
pub const NO_OF_TRIES_MAX: u8 = 10;
/// phonetree's bound on capture timeouts: 8x8 gives none; ten minutes of silence is not a caller.
pub const TIMEOUT_MS_MAX: u32 = 600_000;
/// Longest session or event id accepted: 8x8's are UUIDs (36 characters).
pub const ID_BYTES_MAX: usize = 128;
/// ITU-T E.164: a phone number has at most 15 digits, country code included.
pub const E164_DIGITS_MAX: usize = 15;
/// The fewest digits of a number phonetree dials or answers on: shorter ones are short codes
/// (emergency and carrier services), never a callee or a virtual number.
pub const E164_DIGITS_MIN: usize = 8;
/// The longest phone number as text: `+` and 15 digits (what `check` counts a `{caller}` as).
pub const NUMBER_CHARS_MAX: usize = E164_DIGITS_MAX + 1;
/// 8x8's playFile: "API only accepts file that is smaller than 5MB". Read as 5 000 000 bytes, the
/// stricter of 5 MB and 5 MiB, so a file `phonetree doctor` passes is never one 8x8 refuses.
pub const FILE_BYTES_MAX: u64 = 5_000_000;
/// 8x8's playFile: the file types it plays, by the URL's path (".wav and mp3").
pub const FILE_EXTENSIONS: &[&str] = &[".wav", ".mp3"];
/// 8x8's playFile: "Downloaded voice files are cached for 1 hour": a file changed behind the same
/// URL is not heard for up to this long (what `phonetree doctor` warns of).
pub const FILE_CACHE_MINUTES: u32 = 60;

/// Speech speed in hundredths (100 = 1.0); integral so that states and actions compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Speed(pub u16);

impl Speed {
    /// The value 8x8 documents, e.g. `1.0` or `0.75`.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

/// One 8x8 callflow action. `T` is the text type: `String` on the wire, a template in a compiled machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<T = String> {
    Say(Say<T>),
    SayAndCapture(SayAndCapture<T>),
    PlayFile(PlayFile<T>),
    MakeCall(MakeCall<T>),
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Say<T = String> {
    pub text: T,
    pub voice_profile: String,
    pub repetition: Option<u8>,
    pub speed: Option<Speed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SayAndCapture<T = String> {
    pub prompt_message: T,
    pub voice_profile: String,
    pub repetition: Option<u8>,
    pub speed: Option<Speed>,
    pub min_digits: Option<u8>,
    pub max_digits: Option<u8>,
    pub digit_timeout_ms: Option<u32>,
    pub overall_timeout_ms: Option<u32>,
    pub complete_on_hash: Option<bool>,
    pub no_of_tries: Option<u8>,
    pub success_message: Option<T>,
    pub failure_message: Option<T>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayFile<T = String> {
    pub file_url: T,
    pub repetition: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeCall<T = String> {
    pub source: T,
    pub destination: T,
    pub call_recording: Option<bool>,
}

impl<T> Action<T> {
    /// The action's name as 8x8 spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Say(_) => "say",
            Action::SayAndCapture(_) => "sayAndCapture",
            Action::PlayFile(_) => "playFile",
            Action::MakeCall(_) => "makeCall",
            Action::Hangup => "hangup",
        }
    }
}

/// One reply: the actions 8x8 runs in order, and the id 8x8 echoes back in the next webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callflow {
    pub client_action_id: Option<String>,
    pub actions: Vec<Action>,
}

impl Callflow {
    pub fn hangup() -> Self {
        Callflow { client_action_id: None, actions: vec![Action::Hangup] }
    }
}

/// One broken 8x8 rule: which action, which parameter, 8x8's status code, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Index of the action in the callflow (`$.callflow[i]`).
    pub action: usize,
    /// The 8x8 parameter name, e.g. `maxDigits`.
    pub param: &'static str,
    /// The status code 8x8 answers with for this mistake (voice-status-codes), e.g. -1003.
    pub status_code: i32,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$.callflow[{}].params.{}: {} (8x8 status {})",
            self.action, self.param, self.message, self.status_code
        )
    }
}

/// Where a callflow is sent: a webhook reply, or the opening request of an outbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    WebhookReply,
    /// Send Callflow API: must open with `makeCall` (8x8 -1013).
    OutboundRequest,
}

/// Checks a callflow against every rule 8x8 enforces when it receives one. Empty means valid.
pub fn validate(flow: &Callflow, usage: Use) -> Vec<Violation> {
    let mut v = Vec::new();
    let mut push = |action: usize, param: &'static str, status_code: i32, message: String| {
        v.push(Violation { action, param, status_code, message })
    };
    if flow.actions.is_empty() {
        push(0, "action", -1009, "a callflow needs at least one action".into());
    }
    if usage == Use::OutboundRequest && !matches!(flow.actions.first(), Some(Action::MakeCall(_))) {
        push(0, "action", -1013, "an outbound callflow must start with makeCall".into());
    }
    let make_calls = flow.actions.iter().filter(|a| matches!(a, Action::MakeCall(_))).count();
    if make_calls > MAKE_CALLS_MAX {
        push(
            0,
            "action",
            -1010,
            format!("{make_calls} makeCall actions in one callflow; 8x8 allows {MAKE_CALLS_MAX}"),
        );
    }
    let last = flow.actions.len().saturating_sub(1);
    for (i, action) in flow.actions.iter().enumerate() {
        match action {
            Action::Hangup if i != last => {
                push(i, "action", -1012, "hangup must be the last action of a callflow".into())
            }
            Action::Hangup => {}
            Action::Say(s) => {
                check_text(i, "text", &s.text, &mut push);
                check_speech(i, &s.voice_profile, s.repetition, s.speed, &mut push);
            }
            Action::SayAndCapture(c) => {
                check_text(i, "promptMessage", &c.prompt_message, &mut push);
                check_speech(i, &c.voice_profile, c.repetition, c.speed, &mut push);
                check_capture(i, c, &mut push);
            }
            Action::PlayFile(p) => {
                if let Err(why) = check_file_url(&p.file_url) {
                    push(i, "fileUrl", -1009, why);
                }
                check_repetition(i, p.repetition, &mut push);
            }
            Action::MakeCall(m) => {
                for (param, number) in [("source", &m.source), ("destination", &m.destination)] {
                    if let Err(why) = check_number(number) {
                        push(i, param, -1017, why);
                    }
                }
            }
        }
    }
    v
}

type Push<'a> = dyn FnMut(usize, &'static str, i32, String) + 'a;

fn check_text(i: usize, param: &'static str, text: &str, push: &mut Push<'_>) {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        push(i, param, -1009, "text is empty".into());
    } else if chars > TEXT_CHARS_MAX {
        push(i, param, -1009, format!("text is {chars} characters; 8x8 allows {TEXT_CHARS_MAX}"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        push(i, param, -1016, "text contains control characters".into());
    }
}

fn check_speech(i: usize, voice: &str, repetition: Option<u8>, speed: Option<Speed>, push: &mut Push<'_>) {
    if voice.trim().is_empty() {
        push(i, "voiceProfile", -1002, "voiceProfile is required".into());
    }
    check_repetition(i, repetition, push);
    if let Some(Speed(s)) = speed
        && !(SPEED_HUNDREDTHS_MIN..=SPEED_HUNDREDTHS_MAX).contains(&s)
    {
        push(i, "speed", -1009, format!("speed {} is outside 0.5..2.0", Speed(s).as_f64()));
    }
}

fn check_repetition(i: usize, repetition: Option<u8>, push: &mut Push<'_>) {
    if let Some(r) = repetition
        && !(1..=REPETITION_MAX).contains(&r)
    {
        push(i, "repetition", -1009, format!("repetition {r} is outside 1..{REPETITION_MAX}"));
    }
}

fn check_capture(i: usize, c: &SayAndCapture, push: &mut Push<'_>) {
    if let Some(min) = c.min_digits {
        if c.max_digits.is_none() {
            push(i, "maxDigits", -1003, "maxDigits is required when minDigits is set".into());
        }
        if min == 0 {
            push(i, "minDigits", -1009, "minDigits must be at least 1".into());
        }
    }
    if let Some(max) = c.max_digits {
        if !(1..=DIGITS_MAX).contains(&max) {
            push(i, "maxDigits", -1009, format!("maxDigits {max} is outside 1..{DIGITS_MAX}"));
        }
        if let Some(min) = c.min_digits
            && min > max
        {
            push(i, "minDigits", -1009, format!("minDigits {min} is above maxDigits {max}"));
        }
    }
    if c.complete_on_hash == Some(false) && c.max_digits.is_none() {
        push(i, "maxDigits", -1008, "maxDigits is required when completeOnHash is false".into());
    }
    if let Some(d) = c.digit_timeout_ms {
        match c.overall_timeout_ms {
            None => {
                push(i, "overallTimeout", -1005, "overallTimeout is required when digitTimeout is set".into())
            }
            Some(o) if o < d => push(
                i,
                "overallTimeout",
                -1006,
                format!("overallTimeout {o} ms is smaller than digitTimeout {d} ms"),
            ),
            Some(_) => {}
        }
    }
    for (param, t) in [("digitTimeout", c.digit_timeout_ms), ("overallTimeout", c.overall_timeout_ms)] {
        if let Some(t) = t
            && !(1..=TIMEOUT_MS_MAX).contains(&t)
        {
            push(i, param, -1009, format!("{param} {t} ms is outside 1..{TIMEOUT_MS_MAX} ms"));
        }
    }
    if let Some(n) = c.no_of_tries
        && !(1..=NO_OF_TRIES_MAX).contains(&n)
    {
        push(i, "noOfTries", -1009, format!("noOfTries {n} is outside 1..{NO_OF_TRIES_MAX}"));
    }
    for (param, m) in [("successMessage", &c.success_message), ("failureMessage", &c.failure_message)] {
        if let Some(m) = m {
            check_text(i, param, m, push);
        }
    }
}

/// 8x8 downloads `fileUrl` itself: it must be an absolute http(s) URL with a host.
pub fn check_file_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("file URL `{url}` is not http(s)"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("file URL `{url}` has no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("file URL `{url}` contains white space"));
    }
    Ok(())
}

/// A phone number as a reply may carry it: digits after an optional `+`, at most E.164's 15. What
/// the engine checks on every reply; a number a machine writes is held to `check_e164` too.
pub fn check_number(number: &str) -> Result<(), String> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{number}` is not a phone number (expected digits, optionally after +)"));
    }
    if digits.len() > E164_DIGITS_MAX {
        return Err(format!(
            "`{number}` has {} digits; an E.164 number has at most {E164_DIGITS_MAX}",
            digits.len()
        ));
    }
    Ok(())
}

/// A phone number written in a machine (its `numbers`, a transfer's literal `destination` or
/// `source`): E.164 — 8 to 15 digits, country code first (never 0) — after a `+` that 8x8's own
/// tutorials sometimes leave out (`6561115777`).
pub fn check_e164(number: &str) -> Result<(), String> {
    check_number(number)?;
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.len() < E164_DIGITS_MIN {
        return Err(format!(
            "`{number}` has {} digits; an E.164 number has {E164_DIGITS_MIN} to {E164_DIGITS_MAX}",
            digits.len()
        ));
    }
    if digits.starts_with('0') {
        return Err(format!("`{number}` starts with 0: an E.164 number starts with its country code"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn say(text: &str) -> Action {
        Action::Say(Say {
            text: text.into(),
            voice_profile: "en-US-BenjaminRUS".into(),
            repetition: None,
            speed: None,
        })
    }

    fn dial() -> Action {
        Action::MakeCall(MakeCall {
            source: "+6500000001".into(),
            destination: "+6500000002".into(),
            call_recording: None,
        })
    }

    fn codes(actions: Vec<Action>, usage: Use) -> Vec<i32> {
        validate(&Callflow { client_action_id: None, actions }, usage).iter().map(|v| v.status_code).collect()
    }

    #[test]
    fn structural_rules_carry_8x8_status_codes() {
        assert_eq!(codes(vec![say("hi"), Action::Hangup], Use::WebhookReply), Vec::<i32>::new());
        assert_eq!(codes(vec![Action::Hangup, say("hi")], Use::WebhookReply), [-1012]);
        assert_eq!(codes(vec![dial(), dial(), dial()], Use::WebhookReply), [-1010]);
        assert_eq!(codes(vec![dial(), dial()], Use::OutboundRequest), Vec::<i32>::new());
        assert_eq!(codes(vec![say("hi")], Use::OutboundRequest), [-1013]);
        assert_eq!(codes(vec![], Use::WebhookReply), [-1009]);
    }

    #[test]
    fn parameter_rules() {
        let capture = |f: &dyn Fn(&mut SayAndCapture)| {
            let mut c = SayAndCapture {
                prompt_message: "Press 1".into(),
                voice_profile: "en-US-BenjaminRUS".into(),
                repetition: None,
                speed: None,
                min_digits: None,
                max_digits: None,
                digit_timeout_ms: None,
                overall_timeout_ms: None,
                complete_on_hash: None,
                no_of_tries: None,
                success_message: None,
                failure_message: None,
            };
            f(&mut c);
            codes(vec![Action::SayAndCapture(c)], Use::WebhookReply)
        };
        assert_eq!(capture(&|_| {}), Vec::<i32>::new());
        assert_eq!(capture(&|c| c.min_digits = Some(2)), [-1003]);
        assert_eq!(capture(&|c| c.digit_timeout_ms = Some(5000)), [-1005]);
        assert_eq!(
            capture(&|c| (c.digit_timeout_ms, c.overall_timeout_ms) = (Some(5000), Some(4000))),
            [-1006]
        );
        assert_eq!(
            capture(&|c| (c.digit_timeout_ms, c.overall_timeout_ms) = (Some(5000), Some(5000))),
            Vec::<i32>::new()
        );
        assert_eq!(capture(&|c| c.complete_on_hash = Some(false)), [-1008]);
        assert_eq!(capture(&|c| c.voice_profile.clear()), [-1002]);
        assert_eq!(capture(&|c| c.prompt_message = "x".repeat(TEXT_CHARS_MAX + 1)), [-1009]);
        assert_eq!(capture(&|c| c.prompt_message = "x".repeat(TEXT_CHARS_MAX)), Vec::<i32>::new());
        assert_eq!(capture(&|c| c.speed = Some(Speed(49))), [-1009]);
        assert_eq!(capture(&|c| c.speed = Some(Speed(200))), Vec::<i32>::new());
    }

    #[test]
    fn file_urls_and_numbers() {
        assert!(check_file_url("https://example.com/a.mp3").is_ok());
        assert!(check_file_url("http://example.com:8080/a.wav?x=1").is_ok());
        assert!(check_file_url("ftp://example.com/a.mp3").is_err());
        assert!(check_file_url("https:///a.mp3").is_err());
        assert!(check_file_url("https://exa mple.com/a.mp3").is_err());
        assert!(check_number("+6568888888").is_ok());
        assert!(check_number("6561115777").is_ok());
        assert!(check_number("+65 6888").is_err());
        assert!(check_number("+").is_err());
        assert!(check_number("+123456789012345").is_ok());
        assert!(check_number("+1234567890123456").is_err(), "16 digits");
        assert!(check_e164("6561115777").is_ok(), "8x8's tutorial leaves out the +");
        assert!(check_e164("+6568888").is_err(), "7 digits: a short code");
        assert!(check_e164("065688888888").is_err(), "a national trunk prefix");
        assert!(check_e164("+1234567890123456").is_err());
    }
}
