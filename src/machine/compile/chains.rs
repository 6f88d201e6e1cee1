//! Callflows: each node's 8x8 action checked with `callflow::validate`, and every callflow a
//! webhook can be answered with — the chain of nodes entered without input from each node, and the
//! opening request of an outbound call.

use super::super::template::{Part, Template};
use super::super::{CHAIN_ACTIONS_MAX, ChainError, Machine, NodeId, NodeKind, Script, chain_until};
use super::{At, Compiler};
use crate::callflow::{
    self, Action, Callflow, ClientActionId, MakeCall, PlayFile, Say, SayAndCapture, Use, Violation,
};

/// How to choose a speed: 8x8's words for its range and steps.
pub(super) const SPEED_HINT: &str = "8x8 speaks at 0.5 to 2.0 times the normal speed, in steps of 0.01";

impl Compiler<'_> {
    /// Runs 8x8's rules on a node's action, with sample values for call variables.
    pub(super) fn check_action(&mut self, name: &str, action: ActionOf<'_>) {
        let flow = Callflow { client_action_id: None, actions: vec![sample(action)] };
        for v in callflow::validate(&flow, Use::WebhookReply) {
            self.violation(name, &v);
        }
    }

    /// `check_action` for a part of a multi-part prompt at `field` (`prompt.1`): what 8x8 would
    /// reject is reported at the part.
    pub(super) fn check_part(&mut self, name: &str, field: &str, say: &Say<Template>) {
        let flow = Callflow { client_action_id: None, actions: vec![sample(ActionOf::Say(say))] };
        for v in callflow::validate(&flow, Use::WebhookReply) {
            let at = match v.param {
                "speed" | "voiceProfile" | "repetition" => format!("{field}.{}", field_of_param(v.param)),
                _ => field.to_string(),
            };
            self.violation_at(name, &at, &v);
        }
    }

    fn violation(&mut self, name: &str, v: &Violation) {
        self.violation_at(name, field_of_param(v.param), v);
    }

    fn violation_at(&mut self, name: &str, field: &str, v: &Violation) {
        self.error(
            At::Node(name, field),
            format!("{} (8x8 would answer status {})", v.message, v.status_code),
            hint_of(v).map(str::to_string),
        );
    }

    /// Every callflow phonetree can send: the chain from each node a webhook can lead to, and the
    /// opening request of an outbound call (when the start exists). A chain that reaches a node
    /// that did not compile ends there, unchecked: what it sends is not known.
    pub(super) fn check_chains(&mut self, m: &Machine, failed: &[bool], has_start: bool) {
        let version = m.version.short();
        for id in m.graph.node_indices() {
            let name = &m.graph[id].name;
            match chain_until(m, id, |n| failed[n.index()]) {
                Err(ChainError::Loop | ChainError::RouteLoop) => {
                    self.error(
                        At::NodeKey(name),
                        "say/play nodes from here loop back without waiting for the caller".into(),
                        Some("break the loop with a `menu`, `transfer` or `hangup`".into()),
                    );
                }
                Err(ChainError::TooLong(n)) => {
                    self.error(
                        At::NodeKey(name),
                        format!("entering this node sends {n} actions in one callflow; the limit is {CHAIN_ACTIONS_MAX}"),
                        Some("split the chain of say/play nodes with a menu".into()),
                    );
                }
                Ok(nodes) => match replies(m, nodes, failed) {
                    Err(ChainError::RouteLoop) => self.error(
                        At::NodeKey(name),
                        "route/set nodes from here can loop back without waiting for the caller".into(),
                        Some("break the loop with a `menu`, `input`, `transfer` or `hangup`".into()),
                    ),
                    Err(ChainError::TooLong(n)) => self.error(
                        At::NodeKey(name),
                        format!("entering this node can send {n} actions in one callflow; the limit is {CHAIN_ACTIONS_MAX}"),
                        Some("split the chain of say/play nodes with a menu".into()),
                    ),
                    Err(ChainError::Loop) => {}
                    Ok(replies) if replies.len() > REPLIES_MAX => self.error(
                        At::NodeKey(name),
                        format!("the routes from here make more than {REPLIES_MAX} different replies"),
                        Some("put a node that waits (a menu) between chains of routes".into()),
                    ),
                    Ok(replies) => {
                        for nodes in replies {
                            self.check_chain(m, (id, has_start && id == m.start), &nodes, failed, &version);
                        }
                    }
                },
            }
        }
    }

    /// One reply a chain can make: checked unless it reaches a node that did not compile.
    fn check_chain(
        &mut self,
        m: &Machine,
        at: (NodeId, bool),
        nodes: &[NodeId],
        failed: &[bool],
        version: &str,
    ) {
        match nodes {
            _ if nodes.iter().any(|n| failed[n.index()]) => {}
            // One action makes a callflow of the right shape; its parameters were checked with
            // its node. (The start's is also an outbound call's opening request.)
            [_] if !at.1 => {}
            _ => self.check_reply(m, at, nodes, version),
        }
    }

    /// The reply made of a chain's actions is a valid callflow, and so is the opening request of an
    /// outbound call when the chain is the start's.
    fn check_reply(&mut self, m: &Machine, (id, start): (NodeId, bool), nodes: &[NodeId], version: &str) {
        // A chain that reaches a script goes on with whatever the answer picks: the whole reply is
        // only known then, and `explore` checks each one.
        let last = nodes.last().map(|&n| &m.graph[n].kind);
        if matches!(last, Some(NodeKind::Script(Script { capture: None, .. }))) {
            return;
        }
        let name = &m.graph[id].name;
        let action_id =
            ClientActionId { machine: m.name.clone(), node: name.clone(), seq: 1, version: version.into() };
        let mut flow = Callflow {
            client_action_id: Some(action_id.to_string()),
            actions: nodes.iter().flat_map(|&n| actions_of(m, n)).map(sample).collect(),
        };
        // A prompt's parts are actions too: the chain's nodes fit, its actions may not.
        if flow.actions.len() > CHAIN_ACTIONS_MAX {
            self.error(
                At::NodeKey(name),
                format!(
                    "entering this node sends {} actions in one callflow (with the parts of its prompts); the limit is {CHAIN_ACTIONS_MAX}",
                    flow.actions.len()
                ),
                Some("join prompt parts of one voice, or split the chain with a menu".into()),
            );
        }
        // Each action's own parameters were checked with its node; here, the callflow's shape.
        for v in callflow::validate(&flow, Use::WebhookReply).iter().filter(|v| v.param == "action") {
            self.violation(name, v);
        }
        if start {
            let call = MakeCall {
                source: "+15550000001".into(),
                destination: "+15550000002".into(),
                call_recording: None,
            };
            flow.actions.insert(0, Action::MakeCall(call));
            for v in callflow::validate(&flow, Use::OutboundRequest).iter().filter(|v| v.param == "action") {
                let message = format!("the outbound call's first callflow is invalid: {v}");
                self.error(At::Machine("start"), message, None);
            }
        }
    }
}

/// A node's action, borrowed from it: what `sample` turns into a callflow action to check.
#[derive(Clone, Copy)]
pub(super) enum ActionOf<'a> {
    Say(&'a Say<Template>),
    Capture(&'a SayAndCapture<Template>),
    Play(&'a PlayFile<Template>),
    Call(&'a MakeCall<Template>),
    Hangup,
}

/// The action a node sends, with its templates (a script that says nothing sends none).
fn action_of(m: &Machine, id: NodeId) -> Option<ActionOf<'_>> {
    Some(match &m.graph[id].kind {
        NodeKind::Say(s) => ActionOf::Say(s),
        NodeKind::Play(p) => ActionOf::Play(p),
        NodeKind::Menu(menu) => ActionOf::Capture(&menu.capture),
        NodeKind::Input(input) => ActionOf::Capture(&input.prompt.capture),
        NodeKind::Transfer(t) => ActionOf::Call(t),
        NodeKind::Script(s) => match (&s.capture, &s.say) {
            (Some(c), _) => ActionOf::Capture(&c.capture),
            (None, Some(say)) => ActionOf::Say(say),
            (None, None) => return None,
        },
        NodeKind::Hangup => ActionOf::Hangup,
        NodeKind::Route(_) | NodeKind::Set(_) | NodeKind::Split(_) => return None,
    })
}

/// Most replies the routes of one chain are enumerated into: each is checked, and a chain that
/// branches further than this is a machine no one can reason about.
const REPLIES_MAX: usize = 1024;

/// Every reply a chain can make: through each rule (and the `else`) of a route it ends at, the
/// chain from there, and so on; a chain that comes back to one of its own nodes without waiting
/// is `RouteLoop`. A chain ending at a node that did not compile ends there.
fn replies(m: &Machine, nodes: Vec<NodeId>, failed: &[bool]) -> Result<Vec<Vec<NodeId>>, ChainError> {
    let mut done = Vec::new();
    let mut pending = vec![nodes];
    while let Some(nodes) = pending.pop() {
        let last = nodes.last().copied();
        let Some(last) = last.filter(|l| {
            !failed[l.index()]
                && (matches!(m.graph[*l].kind, NodeKind::Route(_) | NodeKind::Split(_))
                    || m.target(*l, &crate::machine::Edge::NotNumber).is_some())
        }) else {
            done.push(nodes);
            if done.len() > REPLIES_MAX {
                break;
            }
            continue;
        };
        for to in m.graph.neighbors_directed(last, petgraph::Direction::Outgoing) {
            let more = chain_until(m, to, |n| failed[n.index()])?;
            if more.iter().any(|n| nodes.contains(n)) {
                return Err(ChainError::RouteLoop);
            }
            let mut longer = nodes.clone();
            longer.extend(more);
            let actions: usize = longer.iter().map(|&n| actions_of(m, n).len()).sum();
            if actions > CHAIN_ACTIONS_MAX {
                return Err(ChainError::TooLong(actions));
            }
            pending.push(longer);
        }
    }
    Ok(done)
}

/// A node's actions: the parts of a multi-part prompt before its capture, then `action_of`.
fn actions_of(m: &Machine, id: NodeId) -> Vec<ActionOf<'_>> {
    let lead = m.graph[id].kind.capture().map_or(&[][..], |c| c.lead.as_slice());
    lead.iter().map(ActionOf::Say).chain(action_of(m, id)).collect()
}

/// A template with each call variable replaced by a plausible value, for checking 8x8's rules.
pub(super) fn sample_text(t: &Template) -> String {
    t.render(|v| Some(if matches!(v, "caller" | "called" | "virtual_number") { "+15550000000" } else { "0" }))
        .unwrap_or_default()
}

/// A phone number's template with its variables filled by digits, as few as make the shortest
/// E.164 number: what is checked is the written part (digits, a `+`, a country code); how long
/// the filled number can be is `lengths`' check.
fn sample_number(t: &Template) -> String {
    let written: usize = t
        .parts()
        .iter()
        .map(|p| if let Part::Lit(s) = p { s.bytes().filter(u8::is_ascii_digit).count() } else { 0 })
        .sum();
    let mut fill = callflow::E164_DIGITS_MIN.saturating_sub(written).max(1);
    let mut out = String::new();
    for (i, part) in t.parts().iter().enumerate() {
        match part {
            Part::Lit(s) => out.push_str(s),
            Part::Var(v) | Part::Say(v) | Part::Play(v)
                if i == 0 && matches!(v.as_str(), "caller" | "virtual_number") =>
            {
                out.push_str("+15550000000");
            }
            _ => out.push_str(&"5".repeat(std::mem::replace(&mut fill, 1))),
        }
    }
    out
}

/// The action as 8x8 would get it, with sample values for call variables.
fn sample(action: ActionOf<'_>) -> Action {
    let opt = |t: &Option<Template>| t.as_ref().map(sample_text);
    match action {
        ActionOf::Say(s) => Action::Say(Say {
            text: sample_text(&s.text),
            voice_profile: s.voice_profile.clone(),
            repetition: s.repetition,
            speed: s.speed,
        }),
        ActionOf::Capture(c) => Action::SayAndCapture(SayAndCapture {
            prompt_message: sample_text(&c.prompt_message),
            voice_profile: c.voice_profile.clone(),
            repetition: c.repetition,
            speed: c.speed,
            min_digits: c.min_digits,
            max_digits: c.max_digits,
            digit_timeout_ms: c.digit_timeout_ms,
            overall_timeout_ms: c.overall_timeout_ms,
            complete_on_hash: c.complete_on_hash,
            no_of_tries: c.no_of_tries,
            success_message: opt(&c.success_message),
            failure_message: opt(&c.failure_message),
        }),
        ActionOf::Play(p) => {
            Action::PlayFile(PlayFile { file_url: sample_text(&p.file_url), repetition: p.repetition })
        }
        ActionOf::Call(m) => Action::MakeCall(MakeCall {
            source: sample_number(&m.source),
            destination: sample_number(&m.destination),
            call_recording: m.call_recording,
        }),
        ActionOf::Hangup => Action::Hangup,
    }
}

/// How to fix what 8x8 would reject, by its status code and parameter.
fn hint_of(v: &Violation) -> Option<&'static str> {
    Some(match (v.status_code, v.param) {
        (-1002, _) => "set `voice_profile` under `[defaults]` or on the node, e.g. \"en-US-BenjaminRUS\"",
        (-1003, _) => "set `max_digits` too, at least `min_digits` and at most 25",
        (-1005, _) => {
            "set `overall_timeout_ms` too: the whole wait for the keys, at least `digit_timeout_ms`"
        }
        (-1006, _) => {
            "`overall_timeout_ms` is the whole wait for the keys and `digit_timeout_ms` the wait for each: raise `overall_timeout_ms` to at least `digit_timeout_ms`"
        }
        (-1008, _) => "set `max_digits`, or leave `complete_on_hash` true so that `#` ends the input",
        (-1010, _) => "at most 2 transfers in one callflow: put a menu between them",
        (-1012, _) => "a hangup ends the call: nothing can follow it in a callflow",
        (-1016, _) => "remove control characters from the text",
        (-1017, _) => "write phone numbers in E.164: `+`, the country code, then the number (`+6568888888`)",
        (_, "text" | "promptMessage" | "successMessage" | "failureMessage") => {
            "8x8 says texts of 1 to 3000 characters"
        }
        (_, "speed") => SPEED_HINT,
        (_, "repetition") => "8x8 says a prompt 1 to 3 times",
        (_, "minDigits" | "maxDigits") => "8x8 captures 1 to 25 digits, `min_digits` at most `max_digits`",
        (_, "digitTimeout" | "overallTimeout") => "8x8 waits 1 to 600000 ms (10 minutes)",
        (_, "noOfTries") => "8x8 replays a capture 1 to 10 times",
        (_, "fileUrl") => "8x8 fetches the file itself: give an http:// or https:// URL",
        _ => return None,
    })
}

/// The machine-file field an 8x8 parameter comes from.
fn field_of_param(param: &str) -> &'static str {
    match param {
        "text" => "text",
        "promptMessage" => "prompt",
        "voiceProfile" => "voice_profile",
        "repetition" => "repetition",
        "speed" => "speed",
        "minDigits" => "min_digits",
        "maxDigits" => "max_digits",
        "digitTimeout" => "digit_timeout_ms",
        "overallTimeout" => "overall_timeout_ms",
        "noOfTries" => "no_of_tries",
        "successMessage" => "success_message",
        "failureMessage" => "failure_message",
        "fileUrl" => "file_url",
        "source" => "source",
        "destination" => "destination",
        _ => "kind",
    }
}
