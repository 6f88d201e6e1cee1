//! The call transcript: one entry per event applied, built from the engine's step (so the node,
//! an offline replay and the load test build it alike). Pure: the node builds entries, the store
//! keeps them, HTTP and the command line show them; `proof::history::replay` plays them again.

use serde::{Deserialize, Serialize};

use super::{Answer, CallState, Direction, Event, Outcome, Phase, Step, sensitive};
use crate::callflow::Action;
use crate::machine::{Edge, Machine};

/// Most entries a call's transcript keeps (the first ones: what a replay needs is the start).
/// A caller walking a menu makes a webhook every few seconds; 64 covers minutes of menus.
pub const ENTRIES_MAX: usize = 64;
/// Most bytes the texts of one entry take (what was said, URLs, answer bodies); past it the
/// answer bodies, then the texts, are cut.
pub const ENTRY_BYTES_MAX: usize = 4096;
/// Longest text kept of one prompt.
pub const TEXT_CHARS_MAX: usize = 400;
/// Most keys kept of one input: more than any capture takes (8x8's `maxDigits` is at most
/// `callflow::DIGITS_MAX`, 25), so keys cut here are refused by the same rule as the whole input
/// and a replay takes the same course.
pub const KEYS_CHARS_MAX: usize = 64;
/// Longest name kept of a node, and of a summary's status, in an entry.
pub const NAME_CHARS_MAX: usize = 64;
/// Most split variants kept in one entry: a step passes few splits, and with node names at
/// `NAME_CHARS_MAX` and variants at `machine::split::VARIANT_CHARS_MAX` these take 1.5 KiB at most.
pub const VARIANTS_KEPT_MAX: usize = 16;
/// Most bytes of a script answer's body kept (enough for the small JSON answers scripts route on).
pub const BODY_BYTES_MAX: usize = 768;

/// What happened to the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Happened {
    CallStarted,
    Keys {
        keys: String,
    },
    NoInput,
    SessionEnded {
        status: String,
    },
    /// The outbound guard refused the number a templated transfer was filled with.
    DialRefused,
    /// Keys at a sensitive input: never recorded (`engine::sensitive`).
    Masked,
}

impl Happened {
    /// The event as history keeps it: keys cut at `KEYS_CHARS_MAX`, a status at `NAME_CHARS_MAX`.
    pub fn of(event: &Event) -> Happened {
        match event {
            Event::CallStarted => Happened::CallStarted,
            Event::Digits(keys) => Happened::Keys { keys: cut_chars(keys, KEYS_CHARS_MAX) },
            Event::NoInput => Happened::NoInput,
            Event::SessionEnded { status } => {
                Happened::SessionEnded { status: cut_chars(status, NAME_CHARS_MAX) }
            }
            Event::DialRefused => Happened::DialRefused,
        }
    }

    pub fn event(&self) -> Event {
        match self {
            Happened::CallStarted => Event::CallStarted,
            Happened::Keys { keys } => Event::Digits(keys.clone()),
            Happened::NoInput => Event::NoInput,
            Happened::SessionEnded { status } => Event::SessionEnded { status: status.clone() },
            Happened::DialRefused => Event::DialRefused,
            // The keys are not known: a replay plays `sensitive::stand_in` instead.
            Happened::Masked => Event::Digits(String::new()),
        }
    }
}

/// One action of a reply as the caller met it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Said {
    /// The node the action comes from.
    pub node: String,
    /// `say`, `sayAndCapture`, `playFile`, `makeCall` or `hangup`.
    pub action: String,
    /// The text said, the file played or the number dialled (empty for a hangup).
    pub text: String,
}

/// One script request and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Asked {
    pub node: String,
    pub method: String,
    /// The URL without its query.
    pub url: String,
    /// The answer's HTTP status; `None` when there was no answer.
    pub status: Option<u16>,
    /// Why there was no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The answer's body (as text, at most `BODY_BYTES_MAX` bytes).
    #[serde(default)]
    pub body: String,
    /// The body was cut.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
}

impl Asked {
    /// The answer as the engine is fed it again.
    pub fn answer(&self) -> Answer {
        match self.status {
            Some(status) => Answer::Http { status, body: self.body.clone().into_bytes() },
            None => Answer::Failed { reason: self.failure.clone().unwrap_or_default() },
        }
    }
}

/// One event applied to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// When it was applied (ms since the Unix epoch).
    pub at_ms: u64,
    pub event: Happened,
    /// The node the call left (empty when the call had not started).
    pub left: String,
    /// The node the call is at after it.
    pub entered: String,
    /// What the reply made the caller hear, in order.
    #[serde(default)]
    pub said: Vec<Said>,
    /// The script requests made on the way, in order.
    #[serde(default)]
    pub requests: Vec<Asked>,
    /// The splits passed on the way and the variant each gave, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
    /// The machine's resume offer in this entry: its reply was the offer, or the call went on
    /// where the caller's interrupted call stopped (`entered`), with the variables restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resumption>,
}

/// What an entry did with the machine's resume offer (`[resume]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Resumption {
    /// The call opened with the offer.
    Offered,
    /// The offer's `1`: the call went on with these variables (never a sensitive one), which a
    /// replay restores.
    WentOn { vars: std::collections::BTreeMap<String, String> },
}

/// A split passed, and the variant it gave the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Variant {
    pub node: String,
    pub variant: String,
}

impl Entry {
    /// The entry for a step: `before` the state the event was applied to, `answers` those the
    /// step was given (one per request, in order).
    pub fn of(m: &Machine, before: &CallState, event: &Event, step: &Step, answers: &[Answer]) -> Entry {
        let name = |id| m.node(id).map_or_else(String::new, |n| n.name.clone());
        let said = step.reply.as_ref().map_or_else(Vec::new, |flow| {
            flow.actions
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let node = name(step.actors.get(i).copied().unwrap_or(step.state.node));
                    let (action, text) = match a {
                        Action::Say(s) => ("say", s.text.clone()),
                        Action::SayAndCapture(c) => ("sayAndCapture", c.prompt_message.clone()),
                        Action::PlayFile(p) => ("playFile", p.file_url.clone()),
                        Action::MakeCall(c) => ("makeCall", c.destination.clone()),
                        Action::Hangup => ("hangup", String::new()),
                    };
                    Said { node, action: action.into(), text: cut_chars(&text, TEXT_CHARS_MAX) }
                })
                .collect()
        });
        let requests = step
            .requests
            .iter()
            .zip(answers)
            .map(|(r, a)| {
                let (status, failure, body) = match a {
                    Answer::Http { status, body } => (Some(*status), None, body.as_slice()),
                    Answer::Failed { reason } => (None, Some(cut_chars(reason, TEXT_CHARS_MAX)), &[][..]),
                };
                let masked = sensitive::masked_body(m, &r.node, body);
                let (body, cut) = cut_bytes(masked.as_deref().unwrap_or(body), BODY_BYTES_MAX);
                Asked {
                    node: r.node.clone(),
                    method: r.method.to_string(),
                    url: without_query(&r.url),
                    status,
                    failure,
                    body,
                    cut,
                }
            })
            .collect();
        let variants = step
            .edges
            .iter()
            .filter_map(|(from, edge, _)| match edge {
                Edge::Variant(v) => Some(Variant { node: name(*from), variant: v.clone() }),
                _ => None,
            })
            .take(VARIANTS_KEPT_MAX)
            .collect();
        let left = if before.phase == Phase::New { String::new() } else { name(before.node) };
        let resume = match step.resumed {
            Some(_) => Some(Resumption::WentOn { vars: step.state.vars.clone() }),
            None if step.state.offering() && step.reply.is_some() => Some(Resumption::Offered),
            None => None,
        };
        let mut entry = Entry {
            resume,
            at_ms: step.state.updated_ms,
            event: if sensitive::masks(m, before, event) { Happened::Masked } else { Happened::of(event) },
            left,
            entered: name(step.state.node),
            said,
            requests,
            variants,
        };
        entry.bound();
        entry
    }

    /// The entry as `calls show` prints it (without its time): the event and the nodes, then a
    /// line per split, request and thing said.
    pub fn lines(&self) -> Vec<String> {
        let from = if self.left.is_empty() { String::new() } else { format!(" at `{}`", self.left) };
        let mut out = vec![format!("{}{from} -> `{}`", describe(&self.event), self.entered)];
        match &self.resume {
            Some(Resumption::Offered) => out.push("    [resume] the caller is offered to go on".into()),
            Some(Resumption::WentOn { .. }) => {
                out.push(format!(
                    "    [resume] the call goes on at `{}`, where it was interrupted",
                    self.entered
                ));
            }
            None => {}
        }
        for v in &self.variants {
            out.push(format!("    [{}] split: variant {}", v.node, v.variant));
        }
        for a in &self.requests {
            let answer = match (a.status, &a.failure) {
                (Some(status), _) => format!("HTTP {status} {}{}", a.body, if a.cut { "…" } else { "" }),
                (None, why) => format!("no answer ({})", why.as_deref().unwrap_or("")),
            };
            out.push(format!("    [{}] asks {} {} -> {answer}", a.node, a.method, a.url));
        }
        for s in &self.said {
            out.push(format!("    [{}] {}", s.node, said_line(s)));
        }
        out
    }

    /// Bytes the entry's texts take.
    pub fn text_bytes(&self) -> usize {
        let said: usize = self.said.iter().map(|s| s.node.len() + s.action.len() + s.text.len()).sum();
        let variants: usize = self.variants.iter().map(|v| v.node.len() + v.variant.len()).sum();
        let asked: usize = self
            .requests
            .iter()
            .map(|a| a.node.len() + a.url.len() + a.body.len() + a.failure.as_ref().map_or(0, String::len))
            .sum();
        let event = match &self.event {
            Happened::Keys { keys: s } | Happened::SessionEnded { status: s } => s.len(),
            _ => 0,
        };
        let restored: usize = match &self.resume {
            Some(Resumption::WentOn { vars }) => vars.iter().map(|(k, v)| k.len() + v.len()).sum(),
            _ => 0,
        };
        said + asked + event + variants + restored + self.left.len() + self.entered.len()
    }

    /// Keeps the entry within `ENTRY_BYTES_MAX`: answer bodies go first, then the texts.
    pub fn bound(&mut self) {
        while self.text_bytes() > ENTRY_BYTES_MAX {
            if let Some(a) = self.requests.iter_mut().rev().find(|a| !a.body.is_empty()) {
                a.body.clear();
                a.cut = true;
            } else if let Some(s) = self.said.iter_mut().rev().find(|s| !s.text.is_empty()) {
                s.text.clear();
            } else if let Some(Resumption::WentOn { vars }) = &mut self.resume
                && !vars.is_empty()
            {
                // A replay of the entry then goes on without them (and says where it differs).
                vars.clear();
            } else {
                for a in &mut self.requests {
                    a.url.clear();
                    a.node = cut_chars(&a.node, NAME_CHARS_MAX);
                    a.failure = a.failure.as_ref().map(|f| cut_chars(f, NAME_CHARS_MAX));
                }
                for s in &mut self.said {
                    s.node = cut_chars(&s.node, NAME_CHARS_MAX);
                }
                for v in &mut self.variants {
                    v.node = cut_chars(&v.node, NAME_CHARS_MAX);
                }
                self.left = cut_chars(&self.left, NAME_CHARS_MAX);
                self.entered = cut_chars(&self.entered, NAME_CHARS_MAX);
                break;
            }
        }
    }
}

/// A call's summary as history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ended {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// One call as history shows it (and as `phonetree calls export` writes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    pub session: String,
    pub machine: String,
    /// The machine version the call began on (`Version::short`).
    pub version: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    pub source: String,
    pub destination: String,
    pub started_ms: u64,
    pub updated_ms: u64,
    /// `inProgress`, `hungUp`, `transferred`, `callerLeft` or `unanswered`.
    pub outcome: String,
    /// A transfer's end as its session summary reports it (`COMPLETED`, `BUSY`, `NO_ANSWER`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_status: Option<String>,
    /// A placed call never answered: its session summary's status (`NO_ANSWER`, `BUSY`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unanswered_status: Option<String>,
    /// The node the call is (or ended) at.
    pub node: String,
    /// (Absent from a listed call.)
    #[serde(default)]
    pub entries: Vec<Entry>,
    /// Entries past `ENTRIES_MAX` were not kept.
    #[serde(default)]
    pub cut: bool,
    /// 8x8's session summary, once it arrived.
    #[serde(default)]
    pub summary: Option<Ended>,
}

/// The outcome names `Call::outcome` uses (and `GET /calls?outcome=` filters on).
pub const OUTCOMES: &[&str] = &["inProgress", "hungUp", "transferred", "callerLeft", "unanswered"];

/// The name of a call's outcome.
pub fn outcome(state: &CallState) -> &'static str {
    match (&state.phase, &state.outcome) {
        (Phase::Ended, Some(Outcome::Transferred { .. })) => "transferred",
        (Phase::Ended, Some(Outcome::CallerLeft { .. })) => "callerLeft",
        (Phase::Ended, Some(Outcome::Unanswered { .. })) => "unanswered",
        (Phase::Ended, _) => "hungUp",
        _ => "inProgress",
    }
}

impl Call {
    /// A stored call: its state, node name, transcript and summary.
    pub fn of(state: &CallState, node: &str, entries: Vec<Entry>, summary: Option<Ended>) -> Call {
        Call {
            session: state.call.session_id.clone(),
            machine: state.machine.clone(),
            version: state.version.short(),
            direction: match state.call.direction {
                Direction::Inbound => "inbound".into(),
                Direction::Outbound => "outbound".into(),
            },
            source: state.call.source.clone(),
            destination: state.call.destination.clone(),
            started_ms: state.started_ms,
            updated_ms: state.updated_ms,
            outcome: outcome(state).into(),
            transfer_status: match &state.outcome {
                Some(Outcome::Transferred { status, .. }) => status.clone(),
                _ => None,
            },
            unanswered_status: match &state.outcome {
                Some(Outcome::Unanswered { status }) => Some(status.clone()),
                _ => None,
            },
            node: node.into(),
            cut: entries.len() >= ENTRIES_MAX,
            entries,
            summary,
        }
    }

    /// The transcript, a line per thing that happened.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!("session {} on machine `{}` version {}", self.session, self.machine, self.version),
            format!("{} call from {} to {}", self.direction, self.source, self.destination),
        ];
        for e in &self.entries {
            let at = e.at_ms.saturating_sub(self.started_ms);
            let mut lines = e.lines().into_iter();
            let head = lines.next().unwrap_or_default();
            out.push(format!("+{}.{:03}s {head}", at / 1000, at % 1000));
            out.extend(lines);
        }
        if self.cut {
            out.push(format!("(entries past the first {ENTRIES_MAX} were not kept)"));
        }
        let ended = match &self.summary {
            Some(s) => {
                let error = match (&s.error_code, &s.error_message) {
                    (None, None) => String::new(),
                    (code, message) => format!(
                        ", 8x8 error {}{}",
                        code.map_or_else(String::new, |c| c.to_string()),
                        message.as_deref().map_or_else(String::new, |m| format!(" {m}"))
                    ),
                };
                format!("summary: {}{error}", s.status)
            }
            None => "summary: none yet".into(),
        };
        let status = self.transfer_status.as_ref().or(self.unanswered_status.as_ref());
        let transfer = status.map_or_else(String::new, |s| format!(" ({s})"));
        out.push(format!("outcome: {}{transfer} at `{}`; {ended}", self.outcome, self.node));
        out
    }
}

pub(crate) fn describe(h: &Happened) -> String {
    match h {
        Happened::CallStarted => "call started".into(),
        Happened::Keys { keys } => format!("keys {keys}"),
        Happened::NoInput => "no input".into(),
        Happened::SessionEnded { status } => format!("session ended ({status})"),
        Happened::DialRefused => "dial refused by the outbound guard".into(),
        Happened::Masked => format!("keys {} (sensitive input)", sensitive::MASK),
    }
}

pub(crate) fn said_line(s: &Said) -> String {
    match s.action.as_str() {
        "say" => format!("says \"{}\"", s.text),
        "sayAndCapture" => format!("asks \"{}\"", s.text),
        "playFile" => format!("plays {}", s.text),
        "makeCall" => format!("transfers to {}", s.text),
        other => other.to_string(),
    }
}

fn without_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or("").to_string()
}

fn cut_chars(s: &str, max: usize) -> String {
    // A text of at most `max` bytes has at most `max` characters: whole, without counting them.
    if s.len() <= max {
        return s.to_string();
    }
    // The byte where character `max` starts; the whole text (one copy, not a char at a time) when
    // it is shorter.
    let end = s.char_indices().nth(max).map_or(s.len(), |(i, _)| i);
    s[..end].to_string()
}

fn cut_bytes(body: &[u8], max: usize) -> (String, bool) {
    let text = String::from_utf8_lossy(body);
    if text.len() <= max {
        return (text.into_owned(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_string(), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SCRIPTS_PER_STEP_MAX;

    #[test]
    fn queries_are_cut_from_urls_and_bodies_to_their_bound_() {
        assert_eq!(without_query("https://api.example/orders?id=1#x"), "https://api.example/orders");
        let (body, cut) = cut_bytes("é".repeat(BODY_BYTES_MAX).as_bytes(), BODY_BYTES_MAX);
        assert!(cut && body.len() <= BODY_BYTES_MAX);
    }

    #[test]
    fn an_entry_is_kept_within_its_bytes() {
        let asked = Asked {
            node: "n".into(),
            method: "GET".into(),
            url: "u".into(),
            status: Some(200),
            failure: None,
            body: "x".repeat(BODY_BYTES_MAX),
            cut: false,
        };
        let said = Said { node: "n".into(), action: "say".into(), text: "y".repeat(TEXT_CHARS_MAX) };
        let mut e = Entry {
            at_ms: 0,
            event: Happened::NoInput,
            left: "a".into(),
            entered: "b".into(),
            said: vec![said; 16],
            requests: vec![asked; SCRIPTS_PER_STEP_MAX],
            variants: Vec::new(),
            resume: None,
        };
        e.bound();
        assert!(e.text_bytes() <= ENTRY_BYTES_MAX, "{}", e.text_bytes());
    }
}
