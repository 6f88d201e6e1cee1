//! Property tests over every machine in `machines/` (adding a machine adds it here):
//! - random event sequences against the pure engine: never an error or a panic, every reply valid,
//!   the call state's invariants hold after every step, every state survives the store's encoding;
//! - a model test of the durable node: webhooks, duplicate deliveries, concurrent deliveries,
//!   summaries and restarts applied to the real persistence loop on every store backend
//!   (`common::backends`), and to an in-memory model driven by the pure engine; they must agree
//!   after every operation.

use crate::common;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use common::backends::{Backend, backends};
use phonetree::callflow::ClientActionId;
use phonetree::callflow::{Use, validate};
use phonetree::engine::{self, CallInfo, CallState, Direction, Event, Phase};
use phonetree::machine::{Edge, Machine, NodeKind};
use phonetree::node::calls::{self, Answered};
use phonetree::node::catalog::Catalog;
use phonetree::node::{App, Config};
use phonetree::store::{EVENT_IDS_KEPT, REPLIES_KEPT};
use phonetree::webhook::{inbound, wire};
use proptest::prelude::*;

/// Every branch key of a machine, and every `input` node's example.
fn keys(m: &Machine) -> Vec<String> {
    let mut keys: Vec<String> = m
        .graph()
        .edge_weights()
        .filter_map(|e| if let Edge::Key(k) = e { Some(k.clone()) } else { None })
        .chain(m.graph().node_weights().filter_map(|n| match &n.kind {
            NodeKind::Input(input) => Some(input.example.clone()),
            _ => None,
        }))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// What can happen to a call: a branch key (index into the machine's keys), keypad junk (possibly
/// with `#`), `#` alone, no input, a repeated start, a summary.
#[derive(Debug, Clone)]
enum Input {
    Key(usize, bool),
    Junk(String),
    Hash,
    Nothing,
    Start,
    Summary,
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        6 => (0..64usize, any::<bool>()).prop_map(|(i, hash)| Input::Key(i, hash)),
        2 => "[0-9*#]{1,40}".prop_map(Input::Junk),
        1 => Just(Input::Hash),
        2 => Just(Input::Nothing),
        1 => Just(Input::Start),
        1 => Just(Input::Summary),
    ]
}

fn event(m: &Machine, i: &Input) -> Event {
    let keys = keys(m);
    match i {
        Input::Key(k, hash) => {
            let key = &keys[k % keys.len()];
            Event::Digits(if *hash { format!("{key}#") } else { key.clone() })
        }
        Input::Junk(j) => Event::Digits(j.clone()),
        Input::Hash => Event::Digits("#".into()),
        Input::Nothing => Event::NoInput,
        Input::Start => Event::CallStarted,
        Input::Summary => Event::SessionEnded { status: "COMPLETED".into() },
    }
}

/// Answers a script's API may give.
const ANSWERS: &[(u16, &str)] = &[
    (200, r#"{"data": {"code": 1, "eta": "on Friday"}}"#),
    (200, r#"{"data": {"code": "2", "eta": "today"}}"#),
    (200, r#"{"data": {"code": 3, "eta": ""}}"#),
    (200, r#"{"data": {"code": 42, "eta": "never"}}"#),
    (200, r#"{"data": {"eta": "no code"}}"#),
    (200, r#"{"data": {"code": 1}}"#),
    (200, "<html>not json</html>"),
    (500, r#"{"error": "down"}"#),
    (0, "connection refused"),
];

fn answer(i: usize) -> engine::Answer {
    match ANSWERS[i] {
        (0, reason) => engine::Answer::Failed { reason: reason.into() },
        (status, body) => engine::Answer::Http { status, body: body.as_bytes().to_vec() },
    }
}

/// The invariants of a call state after a step from `before`.
fn check_step(m: &Machine, before: &CallState, event: &Event, step: &engine::Step) -> Result<(), String> {
    let after = &step.state;
    match &step.reply {
        Some(flow) => {
            let v = validate(flow, Use::WebhookReply);
            if !v.is_empty() {
                return Err(format!("invalid reply {v:?}"));
            }
            let waiting = matches!(after.phase, Phase::AwaitingInput | Phase::Bridged);
            match (&flow.client_action_id, waiting) {
                (Some(id), true) => {
                    let id = ClientActionId::parse(id).ok_or("unparsable clientActionId")?;
                    let node = &m.node(after.node).unwrap().name;
                    if (&id.node, id.seq) != (node, after.seq) {
                        return Err(format!(
                            "clientActionId {id} does not name the state {node}/{}",
                            after.seq
                        ));
                    }
                }
                (None, false) => {}
                (id, waiting) => return Err(format!("clientActionId {id:?} while waiting={waiting}")),
            }
        }
        None if matches!(event, Event::SessionEnded { .. }) => {}
        None => return Err("no reply".into()),
    }
    if let Some(limit) = m.node(after.node).and_then(|n| n.kind.capture()).map(|c| c.tries)
        && after.phase == Phase::AwaitingInput
        && after.tries >= limit
    {
        return Err(format!("tries {} at a node of {limit}", after.tries));
    }
    if after.seq < before.seq {
        return Err("seq went backwards".into());
    }
    if (before.phase == Phase::Ended && after.phase != Phase::Ended) || (before.closed && !after.closed) {
        return Err("an ended call came back".into());
    }
    if after.phase == Phase::Ended && after.outcome.is_none() {
        return Err("ended without an outcome".into());
    }
    if after.path.len() > engine::PATH_LEN_MAX
        || after.keypress.as_ref().is_some_and(|k| k.len() > engine::KEYPRESS_CHARS_MAX)
    {
        return Err("unbounded state".into());
    }
    let stored = phonetree::store::encode_session(after).map_err(|e| e.to_string())?;
    if stored.len() > 256 {
        return Err(format!("stored state of {} bytes", stored.len()));
    }
    let decoded =
        phonetree::store::decode_session(&after.call.session_id, &stored).map_err(|e| e.to_string())?;
    if decoded != *after {
        return Err("the stored state decodes differently".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_calls_keep_every_invariant(
        inputs in prop::collection::vec(input(), 0..60),
        inbound in any::<bool>(),
        answers in prop::collection::vec(0..ANSWERS.len(), 1..80),
    ) {
        let mut answers = answers.iter().cycle();
        for m in common::bundled_machines() {
            let number = m.numbers().first().cloned().unwrap_or_default();
            let (direction, source, destination) = if inbound {
                (Direction::Inbound, "+6591178965".to_string(), number)
            } else {
                (Direction::Outbound, number, "+6591178965".to_string())
            };
            let call = CallInfo { session_id: "6f1c2a7e-5d0b-4c1e-9a43-0e2b8f6d1c55".into(), direction, source, destination, call_id: None };
            let mut state = CallState::new(&m, call, 0);
            for (i, input) in std::iter::once(&Input::Start).chain(&inputs).enumerate() {
                let e = event(&m, input);
                // Script requests get answers of every kind: branch values, other values, missing
                // keys, not JSON, errors, no answer.
                let mut given = Vec::new();
                let step = loop {
                    match engine::step_with(&m, &state, &e, i as u64, &given) {
                        Ok(engine::Stepped::Done(step)) => break Ok(*step),
                        Ok(engine::Stepped::Needs(_)) => given.push(answer(*answers.next().unwrap())),
                        Err(err) => break Err(err),
                    }
                };
                let step = step.map_err(|err| TestCaseError::fail(format!("{}: step {i} ({e}): {err}", m.name())))?;
                check_step(&m, &state, &e, &step)
                    .map_err(|err| TestCaseError::fail(format!("{}: step {i} ({e}): {err}", m.name())))?;
                state = step.state;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The durable node against its model.

const SESSIONS: usize = 3;
const NUMBER: &str = "+6568888888";
const CALLER: &str = "+6591178965";

#[derive(Debug, Clone)]
enum Op {
    /// The caller answers the current prompt of a session (or, first, dials in).
    Webhook(usize, Input),
    /// A webhook answering the prompt before the current one.
    Stale(usize, Input),
    /// A webhook delivered before, delivered again.
    Duplicate(usize),
    /// Two different webhooks answering the same prompt, at once.
    Concurrent(usize, Input, Input),
    Summary(usize),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..SESSIONS;
    prop_oneof![
        8 => (s.clone(), input()).prop_map(|(s, i)| Op::Webhook(s, i)),
        1 => (s.clone(), input()).prop_map(|(s, i)| Op::Stale(s, i)),
        2 => any::<usize>().prop_map(Op::Duplicate),
        2 => (s.clone(), input(), input()).prop_map(|(s, a, b)| Op::Concurrent(s, a, b)),
        1 => s.prop_map(Op::Summary),
        1 => Just(Op::Restart),
    ]
}

/// What a session's journal holds: the latest replies with their bytes, older event ids alone.
#[derive(Clone, Default, PartialEq)]
struct Journal {
    replies: VecDeque<(String, Vec<u8>)>,
    older: VecDeque<String>,
}

impl Journal {
    fn add(&mut self, event: &str, body: &[u8]) {
        self.replies.push_back((event.to_string(), body.to_vec()));
        if self.replies.len() > REPLIES_KEPT {
            let (old, _) = self.replies.pop_front().unwrap();
            self.older.push_back(old);
        }
        if self.older.len() > EVENT_IDS_KEPT {
            self.older.pop_front();
        }
    }
}

/// The model: the node's rules, restated over the pure engine and two maps.
#[derive(Clone)]
struct Model {
    m: Arc<Machine>,
    states: HashMap<String, CallState>,
    journals: HashMap<String, Journal>,
}

impl Model {
    /// The current prompt again (a hangup once the call is over).
    fn repeat(&self, st: &CallState) -> Vec<u8> {
        let flow = if matches!(st.phase, Phase::AwaitingInput | Phase::Bridged) {
            engine::current_reply(&self.m, st).unwrap()
        } else {
            phonetree::callflow::Callflow::hangup()
        };
        wire::encode(&common::signed(&common::action_key(), &st.call.session_id, flow)).unwrap()
    }

    fn call_action(&mut self, ca: &inbound::CallAction) -> (Vec<u8>, Answered) {
        let journal = self.journals.get(&ca.session_id).cloned().unwrap_or_default();
        if let Some((_, body)) = journal.replies.iter().find(|(e, _)| *e == ca.event_id) {
            return (body.clone(), Answered::Duplicate);
        }
        if journal.older.contains(&ca.event_id) {
            return (self.repeat(&self.states[&ca.session_id]), Answered::Stale);
        }
        let id = ca.client_action_id.as_deref().and_then(ClientActionId::parse);
        let (state, event) = match self.states.get(&ca.session_id) {
            // A webhook after the call ended: a hangup, nothing applied.
            Some(st) if st.phase == Phase::Ended => return (self.repeat(st), Answered::Stale),
            Some(st) => {
                let waiting = matches!(st.phase, Phase::AwaitingInput | Phase::Bridged);
                if let Some(id) = id
                    && waiting
                    && id.seq != st.seq
                {
                    return (self.repeat(st), Answered::Stale);
                }
                (st.clone(), ca.event())
            }
            None => {
                let call = CallInfo {
                    session_id: ca.session_id.clone(),
                    direction: Direction::Inbound,
                    source: ca.source.clone(),
                    destination: ca.destination.clone(),
                    call_id: ca.call_id.clone(),
                };
                // Every call here is inbound: with no state (and no id the node would resume
                // from), any first webhook starts the call.
                (CallState::new(&self.m, call, 0), Event::CallStarted)
            }
        };
        let step = engine::step(&self.m, &state, &event, 0).unwrap();
        let reply = step.reply.unwrap_or_else(phonetree::callflow::Callflow::hangup);
        let body = wire::encode(&common::signed(&common::action_key(), &ca.session_id, reply)).unwrap();
        self.states.insert(ca.session_id.clone(), step.state);
        self.journals.entry(ca.session_id.clone()).or_default().add(&ca.event_id, &body);
        (body, Answered::Applied)
    }

    /// Whether two models hold the same calls and journals (older event ids as a set: their order
    /// matters only `EVENT_IDS_KEPT` replies later).
    fn same(&self, other: &Model) -> bool {
        let older = |j: &Journal| {
            let mut o: Vec<String> = j.older.iter().cloned().collect();
            o.sort();
            o
        };
        self.states == other.states
            && self.journals.len() == other.journals.len()
            && self.journals.iter().all(|(s, j)| {
                other.journals.get(s).is_some_and(|k| j.replies == k.replies && older(j) == older(k))
            })
    }

    fn summary(&mut self, session: &str) {
        if let Some(st) = self.states.get(session).filter(|s| !s.closed) {
            let ended = Event::SessionEnded { status: "COMPLETED".into() };
            let step = engine::step(&self.m, st, &ended, 0).unwrap();
            self.states.insert(session.to_string(), step.state);
        }
    }

    /// The prompt a session waits on, as 8x8 would echo it.
    fn client_action_id(&self, session: &str) -> Option<String> {
        let st = self.states.get(session)?;
        matches!(st.phase, Phase::AwaitingInput | Phase::Bridged)
            .then(|| common::signed_id(&common::action_key(), &self.m, st))
    }
}

/// A state without its clock readings, for comparing the node's with the model's.
fn timeless(mut s: CallState) -> CallState {
    s.started_ms = 0;
    s.updated_ms = 0;
    s
}

struct Harness {
    backend: Backend,
    dir: tempfile::TempDir,
    app: Option<App>,
    model: Model,
    /// Other models that explain every answer so far: when either order of two concurrent
    /// webhooks explains their answers, the journal's order stays open until a later answer (a
    /// duplicate's) tells which it was.
    others: Vec<Model>,
    /// Every webhook sent: (session, body).
    sent: Vec<(String, Vec<u8>)>,
    /// Per session, every clientActionId it was given.
    ids: HashMap<String, Vec<String>>,
    next_event: usize,
}

impl Harness {
    async fn new(backend: Backend) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        common::machines_dir(dir.path());
        let app = open(dir.path(), backend).await;
        let m = app.registry.current("abc_restaurant").unwrap().clone();
        Harness {
            backend,
            dir,
            app: Some(app),
            model: Model { m, states: HashMap::new(), journals: HashMap::new() },
            others: Vec::new(),
            sent: Vec::new(),
            ids: HashMap::new(),
            next_event: 0,
        }
    }

    fn app(&self) -> &App {
        self.app.as_ref().unwrap()
    }

    /// A CALL_ACTION body for `session` carrying `input` and `client_action_id`.
    fn webhook(&mut self, session: &str, input: &Input, client_action_id: Option<String>) -> Vec<u8> {
        self.next_event += 1;
        let event = format!("e{}", self.next_event);
        let e = event_for(&self.model.m, input);
        let (status, dtmf) = match &e {
            Event::CallStarted => ("CALL_RECEIVED", None),
            Event::Digits(d) => ("DTMF_RECEIVED", Some(d.clone())),
            _ => ("DTMF_RECEIVED", None),
        };
        let v = common::Vca {
            session,
            event: &event,
            dtmf: dtmf.as_deref(),
            client_action_id: if status == "CALL_RECEIVED" { None } else { client_action_id.as_deref() },
            status,
            direction: "INBOUND",
            source: CALLER,
            destination: NUMBER,
            event_data: self.next_event.is_multiple_of(2),
        };
        v.body().into_bytes()
    }

    async fn send(&mut self, session: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
        let ca = inbound::call_action(&body).unwrap();
        let (raw, how) = calls::call_action(self.app(), &ca).await;
        // The id's expiry and MAC depend on when it was signed: compared without them (and kept
        // as signed, to be echoed later).
        let got = common::unexpired(&raw);
        // The models that answer as the node did stay; the first is reported when none does.
        let mut kept = Vec::new();
        let mut missed = None;
        for mut model in std::iter::once(self.model.clone()).chain(self.others.drain(..)) {
            let (want, want_how) = model.call_action(&ca);
            if (Some(want_how), &want) == (how, &got) {
                kept.push(model);
            } else if missed.is_none() {
                missed = Some((want, want_how));
            }
        }
        if kept.is_empty() {
            let (want, want_how) = missed.unwrap();
            prop_assert_eq!(Some(want_how), how, "how {} was answered", String::from_utf8_lossy(&body));
            prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
        }
        self.model = kept.remove(0);
        self.others = kept;
        self.record(session, body, &raw);
        Ok(())
    }

    fn record(&mut self, session: &str, body: Vec<u8>, reply: &[u8]) {
        if let Some(id) = wire::decode(reply).unwrap().client_action_id {
            self.ids.entry(session.to_string()).or_default().push(id);
        }
        self.sent.push((session.to_string(), body));
    }

    async fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Webhook(s, input) => {
                let session = format!("s{s}");
                let id = self.model.client_action_id(&session);
                let body = self.webhook(&session, input, id);
                self.send(&session, body).await?;
            }
            Op::Stale(s, input) => {
                let session = format!("s{s}");
                let ids = self.ids.get(&session).cloned().unwrap_or_default();
                let old = ids.len().checked_sub(2).map(|i| ids[i].clone());
                let body =
                    self.webhook(&session, input, old.or_else(|| self.model.client_action_id(&session)));
                self.send(&session, body).await?;
            }
            Op::Duplicate(i) => {
                if !self.sent.is_empty() {
                    let (session, body) = self.sent[i % self.sent.len()].clone();
                    self.send(&session, body).await?;
                }
            }
            Op::Concurrent(s, a, b) => {
                let session = format!("s{s}");
                let id = self.model.client_action_id(&session);
                // An ended call applies nothing more: both are answered with a hangup.
                let ended = self.model.states.get(&session).is_some_and(|st| st.phase == Phase::Ended);
                let (body_a, body_b) = (self.webhook(&session, a, id.clone()), self.webhook(&session, b, id));
                let (ca_a, ca_b) =
                    (inbound::call_action(&body_a).unwrap(), inbound::call_action(&body_b).unwrap());
                let app = self.app();
                let (got_a, got_b) =
                    tokio::join!(calls::call_action(app, &ca_a), calls::call_action(app, &ca_b));
                // Compared without the ids' expiry and MAC, recorded as signed (see `send`).
                let (raw_a, raw_b) = (got_a.0.clone(), got_b.0.clone());
                let got_a = (common::unexpired(&got_a.0), got_a.1);
                let got_b = (common::unexpired(&got_b.0), got_b.1);
                // Either order may have won; a model must explain the answers in one of them. When
                // both orders do, both models are kept: the journal's order is not known yet.
                let mut explained: Vec<Model> = Vec::new();
                for candidate in std::iter::once(&self.model).chain(&self.others) {
                    for (first, second) in
                        [((&ca_a, &got_a), (&ca_b, &got_b)), ((&ca_b, &got_b), (&ca_a, &got_a))]
                    {
                        let mut model = candidate.clone();
                        let one = model.call_action(first.0);
                        let two = model.call_action(second.0);
                        if (Some(one.1), &one.0) == (first.1.1, &first.1.0)
                            && (Some(two.1), &two.0) == (second.1.1, &second.1.0)
                            && !explained.iter().any(|m| m.same(&model))
                        {
                            explained.push(model);
                        }
                    }
                }
                let mut explained = explained.into_iter();
                let model = explained.next().ok_or_else(|| {
                    TestCaseError::fail(format!(
                        "no order explains concurrent answers {:?} {} / {:?} {}",
                        got_a.1,
                        String::from_utf8_lossy(&got_a.0),
                        got_b.1,
                        String::from_utf8_lossy(&got_b.0)
                    ))
                })?;
                let applied = [got_a.1, got_b.1].iter().filter(|h| **h == Some(Answered::Applied)).count();
                prop_assert!(applied >= 1 || ended, "one of two concurrent webhooks applies");
                self.model = model;
                self.others = explained.collect();
                self.record(&session, body_a, &raw_a);
                self.record(&session, body_b, &raw_b);
            }
            Op::Summary(s) => {
                let session = format!("s{s}");
                let summary =
                    inbound::session_summary(common::vss(&session, "COMPLETED").as_bytes()).unwrap();
                calls::session_summary(self.app(), &summary)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                for model in std::iter::once(&mut self.model).chain(&mut self.others) {
                    model.summary(&session);
                }
            }
            Op::Restart => {
                drop(self.app.take());
                self.app = Some(open(self.dir.path(), self.backend).await);
            }
        }
        // After every operation the node's store and the model agree on every session.
        let mut stored = HashMap::new();
        for s in 0..SESSIONS {
            let session = format!("s{s}");
            let state =
                self.app().store.load(&session, None).await.unwrap().session.map(|l| timeless(l.state));
            stored.insert(session, state);
        }
        let agrees = |m: &Model| stored.iter().all(|(s, st)| m.states.get(s).cloned().map(timeless) == *st);
        self.others.retain(|m| agrees(m));
        if !agrees(&self.model) && !self.others.is_empty() {
            self.model = self.others.remove(0);
        }
        for s in 0..SESSIONS {
            let session = format!("s{s}");
            let modelled = self.model.states.get(&session).cloned().map(timeless);
            prop_assert_eq!(stored[&session].clone(), modelled, "session {} after {:?}", session, op);
        }
        Ok(())
    }
}

fn event_for(m: &Machine, input: &Input) -> Event {
    match event(m, input) {
        // A summary is its own operation; as a webhook input it is no input.
        Event::SessionEnded { .. } => Event::NoInput,
        e => e,
    }
}

async fn open(dir: &std::path::Path, backend: Backend) -> App {
    let config = Config {
        machines: dir.join("machines"),
        store: format!("sled:{}", dir.join("data").display()),
        listen: "127.0.0.1:0".parse().unwrap(),
        session_ttl: std::time::Duration::from_secs(3600),
        retention: std::time::Duration::from_secs(3600),
        action_key: Some(phonetree::secret::Secret::new(common::ACTION_KEY)),
        ..Config::default()
    };
    let catalog = Catalog::load(std::slice::from_ref(&config.machines));
    App::with_store(config, catalog, (backend.open)(dir).await).await.unwrap()
}

fn run_model(ops: &[Op]) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        for backend in backends() {
            let mut h = Harness::new(backend).await;
            for op in ops {
                h.apply(op).await.map_err(|e| TestCaseError::fail(format!("{}: {e}", backend.name)))?;
            }
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_durable_node_agrees_with_its_model(ops in prop::collection::vec(op(), 1..40)) {
        run_model(&ops)?;
    }
}
