//! One call of a load test: 8x8's webhooks for a planned path sent to the nodes, each reply
//! checked against the oracle (the pure engine, given the call's history and the stub's answers)
//! and 8x8's callflow rules; duplicates, stale answers and early summaries on the way.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::plan::{Path, Rng, Turn, script_of};
use super::stub::Stub;
use super::{Kind, Mismatch, Stats, now_ms};
use crate::callflow::{self, Action, ActionKey, Callflow, ClientActionId, Issued, Use};
use crate::engine::transcript::{self, Entry, Said};
use crate::engine::{self, Answer, CallInfo, CallState, Direction, Event, Outcome, Phase, Step, Stepped};
use crate::machine::{Edge, Machine, NodeId};
use crate::secret::Secret;
use crate::store::REPLIES_KEPT;
use crate::webhook::emit::{self, Delivery, Dtmf};
use crate::webhook::wire;

/// How long one webhook is retried when its connection fails or the node is overloaded (503), as
/// 8x8 retries: long enough for a killed node to restart.
pub const RETRY_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between retries of a webhook (doubling up to `RETRY_PAUSE_MAX`).
const RETRY_PAUSE_MIN: Duration = Duration::from_millis(20);
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(500);
/// Characters of a clientActionId's MAC (12 bytes in base64url): what the oracle cannot sign.
const MAC_CHARS: usize = 16;
/// The status 8x8's summaries of the load test's calls carry.
const SUMMARY_STATUS: &str = "COMPLETED";
/// The status of a transfer's summary whose bridged leg the run says was not answered (the node
/// schedules the transfer's `on_unanswered` callback).
const UNANSWERED_STATUS: &str = "NO_ANSWER";
/// Why the oracle's script request failed when a kill cut it (the node's reason is for its log:
/// the reply does not carry it).
const CUT_REASON: &str = "the node was killed while the request was in flight";

/// What every call of a run shares.
pub struct Shared {
    pub client: reqwest::Client,
    /// The nodes' base URLs (`http://127.0.0.1:8080`), without a trailing `/`.
    pub targets: Vec<String>,
    pub secret: Option<Secret>,
    /// The nodes' action key, when given: every reply's MAC is checked too.
    pub action_key: Option<ActionKey>,
    pub stub: std::sync::Arc<Stub>,
    pub machines: Vec<Machine>,
    pub seed: u64,
    /// This run's id (its start, in ms): in every session id, and it shifts the callers' numbers,
    /// so that no request meets an answer a node cached in an earlier run.
    pub run: u64,
    pub duplicates_pct: u8,
    pub stale_pct: u8,
    pub early_summary_pct: u8,
    pub next_target: AtomicUsize,
    pub stats: Mutex<Stats>,
    /// What the run added to the nodes' clocks (`--clock-control`), added to the oracle's too.
    pub offset_ms: AtomicI64,
    /// The admin listeners outbound calls are placed through, in turn.
    pub admins: Vec<String>,
    pub admin_token: Option<Secret>,
    /// Percent of the calls to machines with numbers placed outbound.
    pub outbound_pct: u8,
    /// Percent of the inbound calls whose CALL_RECEIVED is lost (the first webhook another).
    pub lost_start_pct: u8,
    /// Percent of the calls interrupted at a menu of a machine with `[resume]` called again.
    pub resume_pct: u8,
    /// Percent of the transfers with `on_unanswered` whose summary says NO_ANSWER.
    pub unanswered_pct: u8,
    /// The stand-in Send Callflow API, when the run places calls.
    pub callflow: Option<std::sync::Arc<super::api::Api>>,
}

/// A node's answer.
struct Got {
    status: u16,
    how: Option<String>,
    body: Vec<u8>,
    /// An earlier attempt was sent and lost its connection before the answer: the node may have
    /// stopped (been killed) while it handled the webhook.
    cut: bool,
}

impl Shared {
    /// The clock the nodes read: the real one plus the run's offset.
    pub fn now(&self) -> u64 {
        now_ms().saturating_add_signed(self.offset_ms.load(Ordering::Relaxed))
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Posts `body` to `route` of the next node, retried (on another node, after a pause) while
    /// the connection fails or the node answers 503, within `RETRY_DEADLINE`.
    async fn deliver(&self, route: &str, body: &[u8], kind: Kind) -> Result<Got, String> {
        let started = Instant::now();
        let mut pause = RETRY_PAUSE_MIN;
        let mut cut = false;
        loop {
            let k = self.next_target.fetch_add(1, Ordering::Relaxed) % self.targets.len().max(1);
            let url = format!("{}{route}", self.targets[k]);
            let mut req =
                self.client.post(&url).header("content-type", "application/json").body(body.to_vec());
            if let Some(s) = &self.secret {
                req = req.header("authorization", s.expose());
            }
            let sent = Instant::now();
            let outcome = match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let how = r
                        .headers()
                        .get("x-phonetree-answer")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    match r.bytes().await {
                        Ok(b) if status != 503 => Ok(Got { status, how, body: b.to_vec(), cut }),
                        Ok(_) => Err(format!("{url}: 503")),
                        Err(e) => {
                            cut = true;
                            Err(format!("{url}: {e}"))
                        }
                    }
                }
                Err(e) => {
                    // Refused: the node was down before the webhook reached it; else cut.
                    cut |= !e.is_connect();
                    Err(format!("{url}: {e}"))
                }
            };
            match outcome {
                Ok(got) => {
                    self.stats().latency(kind, sent.elapsed());
                    return Ok(got);
                }
                Err(why) if started.elapsed() >= RETRY_DEADLINE => {
                    return Err(format!("no answer within {} s: {why}", RETRY_DEADLINE.as_secs()));
                }
                Err(_) => {
                    self.stats().retries += 1;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_PAUSE_MAX);
                }
            }
        }
    }
}

/// The oracle's view of one call.
struct Call<'a> {
    sh: &'a Shared,
    m: &'a Machine,
    machine: usize,
    session: String,
    call_id: String,
    caller: String,
    number: String,
    state: CallState,
    /// The transcript as the oracle played it (the replay file of a mismatch).
    entries: Vec<Entry>,
    /// The signed ids of the replies that waited, latest last.
    ids: Vec<String>,
    edges: HashSet<(NodeId, Edge)>,
    /// The call's first webhook is a CALL_ACTION (8x8's CALL_RECEIVED lost).
    lost_start: bool,
    /// The call's CALL_RECEIVED must get the machine's resume offer (its caller's last call was
    /// interrupted within the window).
    offered: bool,
    /// Where the caller's interrupted call stopped, which the offer's `1` goes on at.
    unfinished: Option<engine::Unfinished>,
    /// The caller's interrupted call as the node keeps it once this call is over (a machine with
    /// `[resume]`), as `node::resume` keeps it: set when the call ends waiting for keys, gone when
    /// it ends otherwise or the offer is answered.
    kept: Option<Kept>,
}

/// A caller's interrupted call, as the node keeps it for a resume offer, and when it ended (the
/// oracle's clock).
#[derive(Clone)]
struct Kept {
    unfinished: engine::Unfinished,
    ended_ms: u64,
}

/// The oracle's step for a webhook and the answers it met, or why there is none.
type Expected = Result<(Step, Vec<Answer>), String>;

/// Why a call stopped early: a mismatch (recorded) or a node that never answered.
struct Stop;

impl<'a> Call<'a> {
    fn delivery<'d>(&'d self, event_id: &'d str, id: Option<&'d str>) -> Delivery<'d> {
        // A placed call: 8x8's webhooks come from the machine's number to the callee.
        let (source, destination) = match self.state.call.direction {
            Direction::Inbound => (&self.caller, &self.number),
            Direction::Outbound => (&self.number, &self.caller),
        };
        Delivery {
            event_id,
            session_id: &self.session,
            call_id: &self.call_id,
            direction: self.state.call.direction,
            source,
            destination,
            client_action_id: id,
        }
    }

    /// Places the call through a node's `POST /calls` (the callee: the call's caller number) and
    /// checks the callflow the stand-in Send Callflow API received against the engine's opening
    /// (`engine::start_outbound`, its scripts answered by the stub); the oracle then holds the
    /// placed call, whose first webhook answers the opening's prompt.
    async fn place(&mut self, tokens: &[String]) -> Result<(), Stop> {
        let Some(api) = self.sh.callflow.clone() else { return Ok(()) };
        let label = "the outbound opening (POST /calls)";
        let info = CallInfo {
            session_id: String::new(),
            direction: Direction::Outbound,
            source: self.number.clone(),
            destination: self.caller.clone(),
            call_id: None,
        };
        let now = self.sh.now();
        let vars: std::collections::BTreeMap<String, String> = self.m.variables().clone();
        let mut answers = Vec::new();
        let step = loop {
            match engine::start_outbound(self.m, info.clone(), &vars, now, &answers) {
                Ok(Stepped::Done(step)) => break *step,
                Ok(Stepped::Needs(request)) if answers.len() < engine::SCRIPTS_PER_STEP_MAX => {
                    let Some(script) = script_of(self.m, &request.node) else {
                        return Err(self.mismatch(label, None, "engine: a request of no script".into(), b""));
                    };
                    match self.sh.stub.answer(&request, script, tokens.get(answers.len()).map(String::as_str))
                    {
                        Ok(a) => answers.push(a),
                        Err(e) => return Err(self.mismatch(label, None, e.to_string(), b"")),
                    }
                }
                Ok(Stepped::Needs(request)) => {
                    return Err(self.mismatch(
                        label,
                        None,
                        format!("engine: too many requests at `{}`", request.node),
                        b"",
                    ));
                }
                Err(e) => return Err(self.mismatch(label, None, format!("engine: {e}"), b"")),
            }
        };
        let want = step.reply.as_ref().and_then(|f| wire::encode(f).ok()).unwrap_or_default();
        let k = self.sh.next_target.fetch_add(1, Ordering::Relaxed) % self.sh.admins.len().max(1);
        let Some(admin) = self.sh.admins.get(k) else { return Ok(()) };
        let mut body = serde_json::json!({"machine": self.m.name(), "to": self.caller, "from": self.number});
        if !vars.is_empty() {
            body["variables"] = serde_json::json!(vars);
        }
        let mut req = self.sh.client.post(format!("{admin}/calls")).json(&body);
        if let Some(t) = &self.sh.admin_token {
            req = req.bearer_auth(t.expose());
        }
        let placed = match req.send().await {
            Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok(),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                return Err(self.mismatch(
                    label,
                    None,
                    "201 and a session".into(),
                    format!("{status}: {text}").as_bytes(),
                ));
            }
            Err(e) => {
                return Err(self.mismatch(label, None, "201 and a session".into(), e.to_string().as_bytes()));
            }
        };
        let Some(session) = placed.as_ref().and_then(|v| v["sessionId"].as_str()).map(str::to_string) else {
            return Err(self.mismatch(label, None, "a sessionId".into(), b""));
        };
        let sent = api.take(&session).unwrap_or_default();
        if sent != want {
            return Err(self.mismatch(label, None, String::from_utf8_lossy(&want).into_owned(), &sent));
        }
        self.session = session.clone();
        self.call_id = format!("{session}-leg");
        let mut before = CallState::new(self.m, info, now);
        before.call.session_id.clone_from(&session);
        let mut entry = Entry::of(self.m, &before, &Event::CallStarted, &step, &answers);
        entry.at_ms = now;
        self.entries.push(entry);
        self.edges.extend(step.edges.iter().map(|(f, e, _)| (*f, e.clone())));
        for request in &step.requests {
            self.sh.stub.expect(request);
        }
        self.state = step.state;
        self.state.call.session_id = session;
        self.state.call.call_id = Some(self.call_id.clone());
        self.sh.stats().outbound += 1;
        Ok(())
    }

    /// The engine's step for `event` at `now`, the requests after the `given` answers answered
    /// by the stub (its answer fixed now, before the node asks).
    fn oracle(&self, event: &Event, tokens: &[String], now: u64, given: Vec<Answer>) -> Expected {
        // A caller interrupted within the window hears the resume offer instead of the start.
        if self.offered && *event == Event::CallStarted && self.state.phase == Phase::New {
            let step = engine::offer(self.m, &self.state, now).map_err(|e| format!("engine: {e}"))?;
            return Ok((step, given));
        }
        let unfinished = self.unfinished.as_ref().filter(|_| self.state.offering());
        let mut answers = given;
        loop {
            match engine::step_resuming(self.m, &self.state, event, now, &answers, unfinished)
                .map_err(|e| format!("engine: {e}"))?
            {
                Stepped::Done(step) => return Ok((*step, answers)),
                Stepped::Needs(request) => {
                    if answers.len() > engine::SCRIPTS_PER_STEP_MAX {
                        return Err(format!("engine: too many requests at `{}`", request.node));
                    }
                    let script = script_of(self.m, &request.node).ok_or("engine: a request of no script")?;
                    let token = tokens.get(answers.len()).map(String::as_str);
                    answers.push(self.sh.stub.answer(&request, script, token).map_err(|e| e.to_string())?);
                }
            }
        }
    }

    /// Records a mismatch (and the call as the node played it, for `phonetree replay`).
    fn mismatch(
        &mut self,
        webhook: &str,
        event: Option<(&Event, &Step, &[Answer])>,
        expected: String,
        got: &[u8],
    ) -> Stop {
        let mut entries = self.entries.clone();
        if let Some((event, step, answers)) = event {
            let mut entry = Entry::of(self.m, &self.state, event, step, answers);
            if let Ok(flow) = wire::decode(got) {
                let node_of = |i: usize| entry.said.get(i).map(|s| s.node.clone());
                entry.said = flow
                    .actions
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let (action, text) = said(a);
                        Said {
                            node: node_of(i).unwrap_or_else(|| entry.entered.clone()),
                            action: action.into(),
                            text,
                        }
                    })
                    .collect();
                if let Some(id) = flow.client_action_id.as_deref().and_then(ClientActionId::parse) {
                    entry.entered = id.node;
                }
            }
            entries.push(entry);
        }
        let call = transcript::Call::of(&self.state, &self.node_name(), entries, None);
        let got = String::from_utf8_lossy(got).into_owned();
        self.sh.stats().mismatch(Mismatch {
            session: self.session.clone(),
            machine: self.m.name().to_string(),
            machine_index: self.machine,
            webhook: webhook.to_string(),
            expected,
            got,
            call,
        });
        Stop
    }

    /// The action key, session and who started the call (a call the node placed is signed as
    /// such) a reply's MAC is checked against, when the run has the key.
    fn mac(&self) -> Option<Signer<'_>> {
        let issued = match self.state.call.direction {
            Direction::Inbound => Issued::Answered,
            Direction::Outbound => Issued::Placed,
        };
        self.sh.action_key.as_ref().map(|k| (k, self.session.as_str(), issued))
    }

    /// The same caller calling the machine again, at once: a new session whose CALL_RECEIVED gets
    /// the resume offer when this call was kept as interrupted within the window.
    fn again(&self) -> Call<'a> {
        let session = format!("{}-again", self.session);
        let call_id = format!("{session}-leg");
        let info = CallInfo {
            session_id: session.clone(),
            direction: Direction::Inbound,
            source: self.caller.clone(),
            destination: self.number.clone(),
            call_id: Some(call_id.clone()),
        };
        let now = self.sh.now();
        let within =
            |k: &&Kept| self.m.resume().is_some_and(|r| now.saturating_sub(k.ended_ms) <= r.within_ms);
        let offer = self.kept.as_ref().filter(within);
        Call {
            sh: self.sh,
            m: self.m,
            machine: self.machine,
            session,
            call_id,
            caller: self.caller.clone(),
            number: self.number.clone(),
            state: CallState::new(self.m, info, now),
            entries: Vec::new(),
            ids: Vec::new(),
            edges: HashSet::new(),
            lost_start: false,
            offered: offer.is_some(),
            unfinished: offer.map(|k| k.unfinished.clone()),
            kept: self.kept.clone(),
        }
    }

    fn node_name(&self) -> String {
        self.m.node(self.state.node).map_or_else(String::new, |n| n.name.clone())
    }

    /// Sends one caller event (and its duplicates), checks the reply and moves the oracle on.
    /// Answers the body sent and the reply acknowledged.
    async fn event(
        &mut self,
        k: usize,
        event: &Event,
        tokens: &[String],
        rng: &mut Rng,
    ) -> Result<(Vec<u8>, Vec<u8>), Stop> {
        let event_id = format!("{}-e{k}", self.session);
        let keys;
        let body = match event {
            // A call whose CALL_RECEIVED was lost: its first webhook is a CALL_ACTION with no id,
            // which starts the call at the start node as CALL_RECEIVED would.
            Event::CallStarted if self.lost_start => {
                self.sh.stats().lost_starts += 1;
                emit::call_action(&self.delivery(&event_id, None), Dtmf::Payload("1"))
            }
            Event::CallStarted => emit::call_received(&self.delivery(&event_id, None)),
            Event::Digits(d) => {
                keys = d.clone();
                // Each shape 8x8 sends: `eventData.dtmf`, `payload.dtmf`, and a number when the
                // keys read as one.
                let dtmf = match (rng.below(3), Dtmf::number(&keys)) {
                    (0, _) => Dtmf::EventData(&keys),
                    (1, _) => Dtmf::Payload(&keys),
                    (_, Some(number)) => number,
                    (_, None) => Dtmf::EventData(&keys),
                };
                emit::call_action(&self.delivery(&event_id, self.ids.last().map(String::as_str)), dtmf)
            }
            _ => {
                emit::call_action(&self.delivery(&event_id, self.ids.last().map(String::as_str)), Dtmf::Null)
            }
        };
        let kind = if *event == Event::CallStarted { Kind::CallReceived } else { Kind::CallAction };
        let now0 = self.sh.now();
        let expected = self.oracle(event, tokens, now0, Vec::new());
        // A node killed while the step's request `r` is in flight answers the retry with that
        // script's failure branch and never makes the request again (the earlier answers come
        // from its journal): each such step, fixed now too, for a delivery that was cut.
        let cut_steps: Vec<Expected> = match &expected {
            Ok((step, answers)) => (0..step.requests.len())
                .map(|r| {
                    let mut given = answers[..r.min(answers.len())].to_vec();
                    given.push(Answer::Failed { reason: CUT_REASON.into() });
                    self.oracle(event, tokens, now0, given)
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        // A webhook after the call ended (the summary came first) is not applied: answered stale.
        let after_end = self.state.phase == Phase::Ended;
        let twice = rng.percent(self.sh.duplicates_pct);
        let (first, second) = if twice {
            let (a, b) = tokio::join!(
                self.sh.deliver("/webhooks/vca", &body, kind),
                self.sh.deliver("/webhooks/vca", &body, Kind::Duplicate)
            );
            (a, Some(b))
        } else {
            (self.sh.deliver("/webhooks/vca", &body, kind).await, None)
        };
        let label = format!("{event} (eventId {event_id})");
        let got = match first {
            Ok(g) => g,
            Err(why) => return Err(self.mismatch(&label, None, "a reply".into(), why.as_bytes())),
        };
        // The route decision of a call on a clock edge: the node's clock may be past it.
        let expected = match expected {
            Ok((step, answers)) if check(&step, &got, self.mac()).is_err() => {
                match self.oracle(event, tokens, self.sh.now(), Vec::new()) {
                    Ok(later) if check(&later.0, &got, self.mac()).is_ok() => Ok(later),
                    _ => Ok((step, answers)),
                }
            }
            other => other,
        };
        // The failure branch of a request the node was killed in (claimed, maybe made, never
        // answered): only when a delivery of this event lost its connection to the node.
        let cut = got.cut || matches!(&second, Some(Ok(g)) if g.cut);
        let expected = match expected {
            Ok((step, answers)) if cut && check(&step, &got, self.mac()).is_err() => {
                let cut = cut_steps.into_iter().find_map(|alt| match alt {
                    Ok(alt) if check(&alt.0, &got, self.mac()).is_ok() => Some(alt),
                    _ => None,
                });
                match cut {
                    Some(alt) => {
                        self.sh.stats().cut_requests += 1;
                        Ok(alt)
                    }
                    None => Ok((step, answers)),
                }
            }
            other => other,
        };
        let (step, answers) = match expected {
            Ok(x) => x,
            Err(why) => return Err(self.mismatch(&label, None, why, &got.body)),
        };
        if let Err(why) = check(&step, &got, self.mac()) {
            return Err(self.mismatch(&label, Some((event, &step, &answers)), why, &got.body));
        }
        if after_end && got.how.as_deref() != Some("stale") {
            return Err(self.mismatch(
                &label,
                Some((event, &step, &answers)),
                format!("a webhook after the call ended labelled stale, not {:?}", got.how),
                &got.body,
            ));
        }
        if let Some(second) = second {
            let same = matches!(&second, Ok(g) if g.status == got.status && g.body == got.body);
            self.sh.stats().duplicate(same);
            if !same {
                let other = second.map_or_else(|e| e.into_bytes(), |g| g.body);
                return Err(self.mismatch(
                    &format!("{label}, delivered twice at once"),
                    Some((event, &step, &answers)),
                    "the same bytes twice".into(),
                    &other,
                ));
            }
        }
        let signed = wire::decode(&got.body).ok().and_then(|f| f.client_action_id);
        self.apply(event, step, &answers, now0, signed);
        Ok((body, got.body))
    }

    /// Moves the oracle on by `step`; `signed` is the node's id for its reply (`check` saw it is
    /// the engine's, signed).
    fn apply(&mut self, event: &Event, step: Step, answers: &[Answer], now: u64, signed: Option<String>) {
        let (was_offering, offering) = (self.state.offering(), step.state.offering());
        if !was_offering && offering {
            self.sh.stats().resume_offers += 1;
        }
        if was_offering && !offering {
            // The offer answered: the node forgets the interrupted call.
            self.kept = None;
            let mut stats = self.sh.stats();
            match step.resumed {
                Some(_) => stats.resumed += 1,
                None => stats.started_again += 1,
            }
        }
        let mut entry = Entry::of(self.m, &self.state, event, &step, answers);
        entry.at_ms = now;
        self.entries.push(entry);
        self.edges.extend(step.edges.iter().map(|(f, e, _)| (*f, e.clone())));
        for request in &step.requests {
            self.sh.stub.expect(request);
        }
        if let Some(id) = signed {
            self.ids.push(id);
        }
        self.state = step.state;
    }

    /// A webhook answering an older prompt (its id from two prompts ago): the node repeats the
    /// current prompt, signed again, and applies nothing.
    async fn stale(&mut self, k: usize) -> Result<(), Stop> {
        let (Some(old), Some(current)) = (self.ids.iter().rev().nth(1).cloned(), self.ids.last().cloned())
        else {
            return Ok(());
        };
        let waiting = matches!(self.state.phase, Phase::AwaitingInput | Phase::Bridged) && !self.state.closed;
        if !waiting {
            return Ok(());
        }
        let event_id = format!("{}-stale{k}", self.session);
        let body = emit::call_action(&self.delivery(&event_id, Some(&old)), Dtmf::Payload("1"));
        let label = format!("stale answer (eventId {event_id})");
        let got = match self.sh.deliver("/webhooks/vca", &body, Kind::Stale).await {
            Ok(g) => g,
            Err(why) => return Err(self.mismatch(&label, None, "a reply".into(), why.as_bytes())),
        };
        // Signed again, the current prompt's id carries a later expiry (so another MAC): the
        // node's is taken when it says the same and, with the key known, is the key's.
        let again = wire::decode(&got.body).ok().and_then(|f| f.client_action_id);
        let resigned = again.filter(|g| {
            ClientActionId::parse(g).is_some_and(|id| Some(&id) == ClientActionId::parse(&current).as_ref())
                && self.mac().is_none_or(|(key, session, issued)| {
                    ClientActionId::verify(g, key, session, 0).is_ok_and(|(_, how)| how == issued)
                })
        });
        let expected = engine::current_reply(self.m, &self.state).map(|mut flow| {
            flow.client_action_id = Some(resigned.unwrap_or_else(|| current.clone()));
            wire::encode(&flow).unwrap_or_default()
        });
        let ok = matches!(&expected, Ok(bytes) if *bytes == got.body) && got.how.as_deref() == Some("stale");
        self.sh.stats().stale(ok);
        if !ok {
            let want = expected
                .map_or_else(|e| format!("engine: {e}"), |b| String::from_utf8_lossy(&b).into_owned());
            return Err(self.mismatch(
                &label,
                None,
                format!("the current prompt again, labelled stale: {want}"),
                &got.body,
            ));
        }
        Ok(())
    }

    /// 8x8's summary: recorded, and the oracle's call closed. `unanswered`: a call bridged at a
    /// transfer with `on_unanswered` is summarised NO_ANSWER, and (with the admin listeners) the
    /// callback the node schedules is checked.
    async fn summary(&mut self, unanswered: bool) -> Result<(), Stop> {
        let callback = self
            .m
            .on_unanswered(self.state.node)
            .filter(|_| unanswered && self.state.phase == Phase::Bridged && !self.sh.admins.is_empty())
            .filter(|_| self.state.call.direction == Direction::Inbound)
            .cloned();
        let status = if callback.is_some() { UNANSWERED_STATUS } else { SUMMARY_STATUS };
        let sent_ms = self.sh.now();
        let body = emit::session_summary(&self.delivery("", None), status);
        let got = match self.sh.deliver("/webhooks/vss", &body, Kind::Summary).await {
            Ok(g) => g,
            Err(why) => return Err(self.mismatch("session summary", None, "a reply".into(), why.as_bytes())),
        };
        let recorded = serde_json::from_slice::<serde_json::Value>(&got.body)
            .is_ok_and(|v| v.get("status").and_then(|s| s.as_str()) == Some("recorded"));
        if got.status != 200 || !recorded {
            return Err(self.mismatch(
                "session summary",
                None,
                "200 {\"status\":\"recorded\"}".into(),
                &got.body,
            ));
        }
        let event = Event::SessionEnded { status: status.into() };
        let now = self.sh.now();
        match engine::step(self.m, &self.state, &event, now) {
            Ok(step) => {
                self.keep(&step.state, now);
                self.apply(&event, step, &[], now, None);
            }
            Err(e) => return Err(self.mismatch("session summary", None, format!("engine: {e}"), &got.body)),
        }
        if let Some(cb) = callback {
            self.scheduled(&cb, (sent_ms, now)).await?;
        }
        Ok(())
    }

    /// What the node keeps of the call for a resume offer once the summary ends it at `after`
    /// (as `node::resume::stepped`): where it waited for keys when the caller left, else nothing;
    /// a call that ends at the offer itself leaves the interrupted one kept.
    fn keep(&mut self, after: &CallState, now: u64) {
        let before = &self.state;
        if self.m.resume().is_none()
            || before.outcome.is_some()
            || after.outcome.is_none()
            || before.offering()
        {
            return;
        }
        let waits = self.m.node(before.node).is_some_and(|n| n.kind.capture().is_some());
        self.kept = (matches!(after.outcome, Some(Outcome::CallerLeft { .. }))
            && before.phase == Phase::AwaitingInput
            && waits)
            .then(|| {
                let vars = before.vars.iter().filter(|(k, _)| !self.m.sensitive().contains(*k));
                let vars = vars.map(|(k, v)| (k.clone(), v.clone())).collect();
                Kept { unfinished: engine::Unfinished { node: before.node, vars }, ended_ms: now }
            });
    }

    /// The callback a NO_ANSWER summary (sent at `sent_ms`, recorded by `now`) scheduled, as the
    /// admin API lists it: for this caller, running `cb`'s machine, `cb`'s attempts, due at the
    /// transfer's window's next opening after `after_minutes` (between those two instants).
    async fn scheduled(
        &mut self,
        cb: &crate::machine::callback::OnUnanswered,
        (sent_ms, now): (u64, u64),
    ) -> Result<(), Stop> {
        let label = "GET /calls?scheduled=true after a NO_ANSWER summary";
        let k = self.sh.next_target.fetch_add(1, Ordering::Relaxed) % self.sh.admins.len().max(1);
        let Some(admin) = self.sh.admins.get(k) else { return Ok(()) };
        let mut req = self.sh.client.get(format!("{admin}/calls?scheduled=true"));
        if let Some(t) = &self.sh.admin_token {
            req = req.bearer_auth(t.expose());
        }
        let listed = match req.send().await {
            Ok(r) if r.status().is_success() => {
                r.json::<serde_json::Value>().await.map_err(|e| e.to_string())
            }
            Ok(r) => Err(format!("{}: {}", r.status(), r.text().await.unwrap_or_default())),
            Err(e) => Err(e.to_string()),
        };
        let listed = match listed {
            Ok(v) => v["scheduled"].as_array().cloned().unwrap_or_default(),
            Err(why) => {
                return Err(self.mismatch(label, None, "200 and the callbacks".into(), why.as_bytes()));
            }
        };
        let id = format!("cb-{}", self.session);
        let Some(found) = listed.iter().find(|c| c["id"] == id.as_str()) else {
            // A full page may have left it out.
            if listed.len() >= crate::store::SCHEDULED_LIST_MAX {
                return Ok(());
            }
            return Err(self.mismatch(label, None, format!("callback `{id}` listed"), b"not listed"));
        };
        let tz = self.m.timezone();
        let due = |at: u64| cb.due(tz, at).map(|(d, _)| d);
        let due_ok = match (due(sent_ms), due(now), found["dueMs"].as_u64()) {
            (Some(lo), Some(hi), Some(d)) => lo <= d && d <= hi,
            _ => false,
        };
        let ok = found["to"] == self.caller.as_str()
            && found["machine"] == cb.machine.as_str()
            && found["attempts"].as_u64() == Some(u64::from(cb.attempts))
            && found["transfer"]["machine"] == self.m.name()
            && due_ok;
        if !ok {
            let want = format!(
                "callback `{id}` to {} running `{}`, {} attempt(s), due between {:?} and {:?}",
                self.caller,
                cb.machine,
                cb.attempts,
                due(sent_ms),
                due(now)
            );
            return Err(self.mismatch(label, None, want, found.to_string().as_bytes()));
        }
        self.sh.stats().callbacks_checked += 1;
        Ok(())
    }
}

/// Whether the node's reply is the oracle's: 8x8's rules hold, the id is the engine's with a MAC
/// added, and the bytes are the engine's reply signed with that id.
/// What a reply's MAC is checked against: the nodes' key, the session, who started the call.
type Signer<'a> = (&'a ActionKey, &'a str, Issued);

fn check(step: &Step, got: &Got, signer: Option<Signer<'_>>) -> Result<(), String> {
    let want = step.reply.clone().unwrap_or_else(Callflow::hangup);
    if got.status != 200 {
        return Err(format!("status 200, not {}", got.status));
    }
    if got.how.as_deref() == Some("fallback") {
        return Err("a reply, not the fallback".into());
    }
    let flow = wire::decode(&got.body).map_err(|e| format!("a callflow ({e})"))?;
    if let Some(v) = callflow::validate(&flow, Use::WebhookReply).first() {
        return Err(format!("a reply 8x8 accepts, not one it refuses: {v}"));
    }
    match (&want.client_action_id, &flow.client_action_id) {
        (None, None) => {}
        (Some(unsigned), Some(signed)) => {
            let rest = signed.strip_prefix(unsigned.as_str()).and_then(|rest| rest.strip_prefix('.'));
            let expires_mac = rest.and_then(|r| r.split_once('.'));
            let is_mac = expires_mac.is_some_and(|(e, m)| {
                !e.is_empty()
                    && e.bytes().all(|b| b.is_ascii_digit())
                    && m.len() == MAC_CHARS
                    && m.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
            if !is_mac {
                return Err(format!("clientActionId `{unsigned}`, an expiry and a MAC, not `{signed}`"));
            }
            // The MAC only: when an id expires is the node's to say (at time 0 none has).
            if let Some((key, session, issued)) = signer
                && ClientActionId::verify(signed, key, session, 0)
                    != Ok((ClientActionId::parse(signed).ok_or("an id")?, issued))
            {
                return Err(format!(
                    "clientActionId `{signed}` signed with the action key for session {session}"
                ));
            }
        }
        (want, got) => return Err(format!("clientActionId {want:?}, not {got:?}")),
    }
    let mut signed = want;
    signed.client_action_id = flow.client_action_id;
    let bytes = wire::encode(&signed).map_err(|e| e.to_string())?;
    if bytes != got.body {
        return Err(String::from_utf8_lossy(&bytes).into_owned());
    }
    Ok(())
}

fn said(a: &Action) -> (&'static str, String) {
    match a {
        Action::Say(s) => ("say", s.text.clone()),
        Action::SayAndCapture(c) => ("sayAndCapture", c.prompt_message.clone()),
        Action::PlayFile(p) => ("playFile", p.file_url.clone()),
        Action::MakeCall(c) => ("makeCall", c.destination.clone()),
        Action::Hangup => ("hangup", String::new()),
    }
}

/// Plays call `index` along `path`; the edges its matching replies took go to the stats.
/// `early`: the summary may come before the last webhook (not on a call of the edge cover, whose
/// last step must be taken as planned).
pub async fn run(sh: &Shared, index: u64, path: &Path, number: &str, early_allowed: bool) {
    let m = &sh.machines[path.machine];
    let session = format!("lt-{:x}-{:x}-{index}", sh.seed, sh.run);
    let caller = path.caller_for(sh.run.wrapping_mul(7919).wrapping_add(index));
    let info = CallInfo {
        session_id: session.clone(),
        direction: Direction::Inbound,
        source: caller.clone(),
        destination: number.to_string(),
        call_id: Some(format!("{session}-leg")),
    };
    let mut call = Call {
        sh,
        m,
        machine: path.machine,
        call_id: format!("{session}-leg"),
        session,
        caller,
        number: number.to_string(),
        state: CallState::new(m, info, sh.now()),
        entries: Vec::new(),
        ids: Vec::new(),
        edges: HashSet::new(),
        lost_start: false,
        offered: false,
        unfinished: None,
        kept: None,
    };
    let mut rng = Rng::new(sh.seed, index);
    let early = early_allowed && path.turns.len() > 1 && rng.percent(sh.early_summary_pct);
    // Placed outbound: the machine has a number to call from, and the seed draws it.
    // (The callee is the call's own number: not a path whose caller a route rule names. A number
    // not in E.164, as tech_support's tutorial placeholder, is no caller ID `POST /calls` takes.)
    // On the real clock only: a path at a clock class is played inbound.
    let placed = sh.callflow.is_some()
        && !path.again
        && path.at.is_none()
        && m.numbers().first().is_some_and(|n| n.starts_with('+'))
        && path.caller.is_none()
        && rng.percent(sh.outbound_pct);
    call.lost_start = !placed && rng.percent(sh.lost_start_pct);
    // On a machine with `[resume]`, a drawn caller (not of the edge cover) hangs up after a few
    // answers, mid-menu more often than not, and calls again at once: the node must offer to go
    // on, and the offer's answer (drawn) go on or start again as the engine does. So does a drawn
    // share of the callers whose path itself ends waiting for keys.
    let hang_up = early_allowed
        && !placed
        && m.resume().is_some()
        && path.turns.len() > 2
        && rng.percent(sh.resume_pct);
    let turns = match hang_up {
        true => &path.turns[..2 + usize::try_from(rng.below(path.turns.len() as u64 - 2)).unwrap_or(0)],
        false => &path.turns[..],
    };
    let result = play(&mut call, turns, &mut rng, early, placed).await;
    let mut done = result.is_ok();
    let mut edges = std::mem::take(&mut call.edges);
    if done && !placed && call.kept.is_some() && (path.again || hang_up || rng.percent(sh.resume_pct)) {
        sh.stats().called_again += 1;
        let mut again = call.again();
        let answer = match rng.below(4) {
            0 | 1 => Event::Digits(engine::RESUME_KEY.into()),
            2 => Event::Digits("2".into()),
            _ => Event::NoInput,
        };
        let turns = [
            Turn { event: Event::CallStarted, answers: Vec::new() },
            Turn { event: answer, answers: Vec::new() },
        ];
        done = play(&mut again, &turns, &mut rng, false, false).await.is_ok();
        edges.extend(again.edges);
    }
    let mut stats = sh.stats();
    stats.calls += 1;
    if done {
        stats.edges[path.machine].extend(edges);
    }
}

/// Plays `turns` as 8x8 would for `call` (stale answers, duplicates, its summary; `early`: before
/// the last webhook; `placed`: its start placed through `POST /calls`), each reply checked.
async fn play(
    call: &mut Call<'_>,
    turns: &[Turn],
    rng: &mut Rng,
    early: bool,
    placed: bool,
) -> Result<(), Stop> {
    let sh = call.sh;
    // The acknowledged webhooks (body, reply, label), for deliveries again later.
    let mut acked: Vec<(Vec<u8>, Vec<u8>, String)> = Vec::new();
    let mut summarised = false;
    for (k, turn) in turns.iter().enumerate() {
        if early && k + 1 == turns.len() {
            call.summary(false).await?;
            summarised = true;
        }
        if k > 0 && rng.percent(sh.stale_pct) {
            call.stale(k).await?;
        }
        if call.state.phase == Phase::Ended && !call.state.closed && k > 0 && turn.event != Event::CallStarted
        {
            // A hung-up call gets no more webhooks from 8x8 but its summary.
            break;
        }
        if placed && k == 0 {
            call.place(&turn.answers).await?;
            continue;
        }
        let (body, reply) = call.event(k, &turn.event, &turn.answers, rng).await?;
        acked.push((body, reply, format!("{} (eventId {}-e{k})", turn.event, call.session)));
        // The delivery before this one, again: the node keeps its last `REPLIES_KEPT` replies
        // (this one and the one before).
        if REPLIES_KEPT >= 2 && acked.len() >= 2 && rng.percent(sh.duplicates_pct) {
            redeliver(call, &acked[acked.len() - 2]).await?;
        }
    }
    // The call's last webhook, again (no later one pushed it out of the journal).
    if let Some(last) = acked.last()
        && rng.percent(sh.duplicates_pct)
    {
        redeliver(call, last).await?;
    }
    if !summarised {
        let unanswered = rng.percent(sh.unanswered_pct);
        call.summary(unanswered).await?;
    }
    Ok(())
}

/// Delivers an acknowledged webhook again, later (after the next one): the same bytes must come
/// back.
async fn redeliver(call: &mut Call<'_>, acked: &(Vec<u8>, Vec<u8>, String)) -> Result<(), Stop> {
    let (body, reply, label) = acked;
    let got = call.sh.deliver("/webhooks/vca", body, Kind::Duplicate).await;
    let same = matches!(&got, Ok(g) if g.body == *reply);
    call.sh.stats().duplicate(same);
    if !same {
        let other = got.map_or_else(|e| e.into_bytes(), |g| g.body);
        return Err(call.mismatch(
            &format!("{label}, delivered again later"),
            None,
            String::from_utf8_lossy(reply).into_owned(),
            &other,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Source;

    fn menu() -> (Machine, CallState) {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("machines/tech_support.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let m = crate::machine::compile(&Source::new("tech_support.toml", text)).machine.unwrap();
        let info = CallInfo {
            session_id: "s1".into(),
            direction: Direction::Inbound,
            source: "+15550000001".into(),
            destination: "+15550000002".into(),
            call_id: None,
        };
        let state = CallState::new(&m, info, 0);
        (m, state)
    }

    fn got(flow: &Callflow) -> Got {
        Got { status: 200, how: Some("applied".into()), body: wire::encode(flow).unwrap(), cut: false }
    }

    #[test]
    fn a_reply_is_the_engines_signed_and_nothing_else() {
        let (m, state) = menu();
        let step = engine::step(&m, &state, &Event::CallStarted, 0).unwrap();
        let key = ActionKey::new([7; 32]);
        let mut signed = step.reply.clone().unwrap();
        callflow::sign(&mut signed, &key, "s1", Issued::Answered, 1_800_000_000);
        assert_eq!(check(&step, &got(&signed), Some((&key, "s1", Issued::Answered))), Ok(()));
        assert_eq!(check(&step, &got(&signed), None), Ok(()));
        // Another key, another session, or who placed the call: the MAC is not the nodes'.
        assert!(
            check(&step, &got(&signed), Some((&ActionKey::new([8; 32]), "s1", Issued::Answered))).is_err()
        );
        assert!(check(&step, &got(&signed), Some((&key, "s2", Issued::Answered))).is_err());
        let mut placed = step.reply.clone().unwrap();
        callflow::sign(&mut placed, &key, "s1", Issued::Placed, 1_800_000_000);
        assert!(check(&step, &got(&placed), Some((&key, "s1", Issued::Answered))).is_err());
        assert_eq!(check(&step, &got(&placed), Some((&key, "s1", Issued::Placed))), Ok(()));
        // No MAC, another seq, another text, the fallback, another status.
        let unsigned = step.reply.clone().unwrap();
        assert!(check(&step, &got(&unsigned), None).is_err());
        let mut seq = signed.clone();
        seq.client_action_id = seq.client_action_id.map(|id| id.replacen(".1.", ".2.", 1));
        assert!(check(&step, &got(&seq), None).is_err());
        let mut text = signed.clone();
        if let Some(Action::SayAndCapture(c)) = text.actions.first_mut() {
            c.prompt_message = c.prompt_message.replace("Dear customer", "Dear caller");
        }
        assert!(check(&step, &got(&text), None).unwrap_err().contains("Dear customer"));
        let fallback = Got { how: Some("fallback".into()), ..got(&signed) };
        assert!(check(&step, &fallback, None).is_err());
        let status = Got { status: 500, ..got(&signed) };
        assert!(check(&step, &status, None).is_err());
    }
}
