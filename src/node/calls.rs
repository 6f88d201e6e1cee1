//! The persistence loop of a webhook: load → step → commit (state and reply at once, durable) →
//! reply, retried a bounded number of times when another request changed the session.
//!
//! Decisions made here, not in the engine, because they need the store: duplicate deliveries
//! (answered from the reply journal, or, while the first is still being answered on this node,
//! with the bytes it answers once it has), stale webhooks (answered with the current prompt, not
//! applied), calls with no stored state (started, or resumed from their `clientActionId`).
//!
//! A script request is an effect made at most once per event: it is claimed in the store
//! (`Store::claim`) before it is made. A delivery that finds the claim another's waits for that
//! one's journaled answer (or reply); one that finds it lapsed (its claimant stopped
//! mid-request, or gave up) takes the script's failure branch without a request.
//!
//! `clientActionId`s: the engine issues them unsigned; every reply leaves through `encode_reply`,
//! which signs its id with the node's key for the session it answers (`callflow::sign`). An
//! echoed id is used only once `ClientActionId::verify` accepts it for the webhook's session; any
//! other (tampered, forged, unsigned, another session's or another key's) is treated as no id,
//! counted in `App::refused_ids` and logged. With stored state a valid id only tells a stale
//! webhook (its seq); without, it resumes the call, but only on the exact machine version it
//! names, and only on the machine bound to the call's number unless it was issued on an outbound
//! call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use tracing::{debug, error, warn};

use super::{App, fetch, metrics};
use crate::callflow::{self, Callflow, ClientActionId, Issued, SessionSummary};
use crate::engine::transcript;
use crate::engine::{self, Answer, CallInfo, CallState, Direction, Event, Phase, StepError, Stepped};
use crate::machine::Machine;
use crate::machine::compile::SCRIPT_TIMEOUT_MAX_MS;
use crate::node::registry::{MachineSet, RegistryError};
use crate::node::throttle::{Throttle, Verdict, warn_limited};
use crate::store::{Claim, Commit, Committed, Journaled, Loaded, StoreError};
use crate::webhook::inbound::CallAction;
use crate::webhook::wire::{self, EncodeError};

/// Attempts at committing one webhook when concurrent requests for the same session keep winning;
/// 8x8 sends one webhook per prompt, so more than a few conflicts means something is looping.
pub const COMMIT_ATTEMPTS_MAX: usize = 8;

/// How long the script requests of one webhook may take together; past it the remaining scripts
/// take their failure branch without a request. Its commit, too, may wait for the database until
/// then (at least the store's own bound, `store::OPERATION_TIMEOUT` on PostgreSQL). 8x8's reference documents name no timeout for a
/// webhook's reply (`SHUTDOWN_GRACE` assumes it waits a few seconds), and webhook
/// senders commonly give up after 5 to 10 s, while the caller hears silence: 5 s stays under the
/// shortest common limit, and leaves half of `SHUTDOWN_GRACE` (10 s) for a webhook in flight at
/// SIGTERM to commit and reply.
pub const SCRIPTS_DEADLINE: Duration = Duration::from_secs(5);
const _: () = assert!(SCRIPTS_DEADLINE.as_secs() < super::SHUTDOWN_GRACE.as_secs());
// A script's own `timeout_ms` fits in the deadline: the compiler refuses longer ones.
const _: () = assert!(SCRIPT_TIMEOUT_MAX_MS as u128 <= SCRIPTS_DEADLINE.as_millis());
/// Least time left worth a request (the shortest `timeout_ms` a script may set): with less, the
/// script takes its failure branch at once.
const SCRIPT_BUDGET_MIN: Duration = Duration::from_millis(100);

/// Events this node answers at once whose duplicates wait here for their first delivery's bytes:
/// more than the webhooks a node answers at once (the HTTP layer's in-flight cap, 256 unless
/// `--max-in-flight` says otherwise). Past it a duplicate goes on to the store without waiting
/// here, where the claim on each script request still keeps its requests to one.
pub const IN_FLIGHT_EVENTS_MAX: usize = 4096;
/// How often a delivery whose script request another delivery (on another node) claimed looks
/// for that one's answer in the store: a few looks within a script's shortest `timeout_ms`.
const CLAIM_POLL: Duration = Duration::from_millis(25);

/// Fault lines: a caller (or anyone who reaches the port) can repeat a fault with every webhook.
static FAULT_LOG: Throttle = Throttle::new();

/// What went wrong inside phonetree; the caller still gets the machine's fallback callflow.
#[derive(Debug, thiserror::Error)]
pub enum Fault {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("engine: {0}")]
    Engine(#[from] StepError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Not a fault of the node's: a call to a number (an outbound call from a caller ID) that no
    /// loaded machine lists. The caller's number is not named: logs carry no caller.
    #[error(
        "no machine answers calls {direction} {number} and there is no default machine (add the number to a \
         machine's `numbers`, or serve with `--default-machine`)"
    )]
    NoMachine { direction: &'static str, number: String },
    #[error("clientActionId names node `{node}`, which machine `{machine}` does not have")]
    UnknownNode { machine: String, node: String },
    #[error("session kept changing under {COMMIT_ATTEMPTS_MAX} attempts")]
    Contention,
}

/// How a webhook was answered (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// The event moved the call on; its state is durable.
    Applied,
    /// The event was answered before: the same bytes again.
    Duplicate,
    /// The webhook answers an older prompt, repeats an event older than the reply journal, or
    /// comes after the call ended: the current prompt again (a hangup for an ended call), nothing
    /// applied.
    Stale,
}

/// A reply as it is published to the duplicates waiting for it.
type Published = Option<(Arc<[u8]>, Answered)>;

/// The events being answered on this node, each with where its reply is published: a second
/// delivery of one waits for the first's bytes instead of answering it again (and asking its
/// scripts again). Bounded by `IN_FLIGHT_EVENTS_MAX`.
#[derive(Default)]
pub struct InFlight(Mutex<HashMap<(String, String), watch::Receiver<Published>>>);

/// A delivery's place in `InFlight`.
enum Place<'a> {
    /// The first delivery of its event here: it answers, then publishes its reply.
    First(Slot<'a>),
    /// Another delivery of the event is being answered here: wait for its reply.
    Behind(watch::Receiver<Published>),
    /// The registry is full: answer without it.
    Unlisted,
}

/// The first delivery's entry; dropped (the reply published or not), it leaves the registry, and
/// those waiting on an unpublished one answer by themselves.
struct Slot<'a> {
    set: &'a InFlight,
    key: (String, String),
    tx: watch::Sender<Published>,
}

impl InFlight {
    fn enter(&self, session: &str, event_id: &str) -> Place<'_> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (session.to_string(), event_id.to_string());
        if let Some(rx) = map.get(&key) {
            return Place::Behind(rx.clone());
        }
        if map.len() >= IN_FLIGHT_EVENTS_MAX {
            return Place::Unlisted;
        }
        let (tx, rx) = watch::channel(None);
        map.insert(key.clone(), rx);
        Place::First(Slot { set: self, key, tx })
    }
}

impl Slot<'_> {
    /// Publishes the reply to the duplicates waiting for it; with none (the registry's receiver
    /// is the only one) there is nothing to copy. A duplicate that enters after this check finds
    /// nothing published when the slot drops, and answers from the store's journal instead.
    fn publish(&self, body: &[u8], how: Answered) {
        if self.tx.receiver_count() > 1 {
            self.tx.send_replace(Some((Arc::from(body), how)));
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.set.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
    }
}

/// What to do with a webhook, decided from the stored session.
enum Plan {
    /// `opened`: the step that started a call placed elsewhere, whose first webhook this is (for
    /// metrics: the nodes it entered).
    /// `unfinished`: where the caller's interrupted call stopped, for a call at a resume offer.
    Apply {
        machine: Arc<Machine>,
        state: Box<CallState>,
        event: Event,
        opened: Option<Box<engine::Step>>,
        unfinished: Option<Box<engine::Unfinished>>,
    },
    Answer(Vec<u8>, Answered),
}

/// Answers a CALL_ACTION webhook. Never fails: internal faults answer with the fallback callflow.
pub async fn call_action(app: &App, ca: &CallAction) -> (Vec<u8>, Option<Answered>) {
    let deadline = Instant::now().checked_add(SCRIPTS_DEADLINE).unwrap_or_else(Instant::now);
    let place = app.in_flight.enter(&ca.session_id, &ca.event_id);
    if let Place::Behind(first) = &place {
        let mut first = first.clone();
        debug!("a duplicate of a webhook being answered: waiting for its reply");
        // The first delivery's bytes, once it has answered (within this webhook's deadline);
        // else (it failed, or is too slow) this one is answered as any other.
        let waited = tokio::time::timeout_at(deadline, first.wait_for(Option::is_some)).await;
        if let Ok(Ok(published)) = waited
            && let Some((body, how)) = published.as_ref()
        {
            let how = if *how == Answered::Applied { Answered::Duplicate } else { *how };
            return (body.to_vec(), Some(how));
        }
    }
    // One set of machines for the whole webhook, whatever reload happens meanwhile.
    let current = app.registry.snapshot();
    match apply(app, &current, ca, deadline).await {
        Ok((body, how)) => {
            if let Place::First(slot) = &place {
                slot.publish(&body, how);
            }
            (body, Some(how))
        }
        Err(fault) => {
            let failed = matches!(&fault, Fault::Store(e) if app.note_store_error(e));
            if failed {
                // Logged once, when the store failed; the node is stopping.
                debug!(error = %fault, "the store has failed; the caller hears the fallback");
            } else if let Verdict::Log { suppressed } = FAULT_LOG.check(super::now_ms()) {
                if matches!(fault, Fault::NoMachine { .. }) {
                    warn!(error = %fault, suppressed, "the caller hears the fallback");
                } else {
                    error!(error = %fault, suppressed, "internal fault; the caller hears the fallback");
                }
            }
            // A store that just failed is not asked again which machine the call is on.
            let ask_store = !matches!(fault, Fault::Store(_));
            let fallback = fallback_for(app, &current, ca, ask_store).await;
            (wire::encode_or_hang_up(&fallback), None)
        }
    }
}

async fn apply(
    app: &App,
    current: &MachineSet,
    ca: &CallAction,
    deadline: Instant,
) -> Result<(Vec<u8>, Answered), Fault> {
    for _ in 0..COMMIT_ATTEMPTS_MAX {
        let lookup = app.store.load(&ca.session_id, Some(&ca.event_id)).await?;
        let loaded = lookup.session;
        let now = super::now_ms();
        let (machine, state, event, opened, unfinished) = match lookup.replied {
            Some(Journaled::Reply(body)) => {
                debug!("duplicate delivery: replaying the reply given before");
                return Ok((body, Answered::Duplicate));
            }
            Some(Journaled::Forgotten) => {
                let st = loaded.as_ref().map(|l| &l.state);
                warn_limited!("a very late duplicate: repeating the current prompt");
                return Ok((repeat_current(app, &ca.session_id, st).await?, Answered::Stale));
            }
            None => match plan(app, current, ca, loaded.as_ref(), now).await? {
                Plan::Apply { machine, state, event, opened, unfinished } => {
                    (machine, state, event, opened, unfinished)
                }
                Plan::Answer(body, how) => return Ok((body, how)),
            },
        };
        let ran = run_step(app, ca, (&machine, &state, &event), unfinished.as_deref(), now, deadline).await?;
        let (step, answers) = match ran {
            Ran::Stepped(step, answers) => (step, answers),
            Ran::Replied => continue,
        };
        let mut entries = vec![transcript::Entry::of(&machine, &state, &event, &step, &answers)];
        // A transfer to a number the outbound guard refuses is never sent: its `failure` is.
        let refused = refused_dials(app, &machine, &step, now).await?;
        let mut before = &step.state;
        for (next, answers) in &refused {
            entries.push(transcript::Entry::of(&machine, before, &Event::DialRefused, next, answers));
            before = &next.state;
        }
        let last = refused.last().map_or(&*step, |(next, _)| next);
        let reply = last.reply.clone().unwrap_or_else(Callflow::hangup);
        let body = encode_reply(app, reply, &ca.session_id, &last.state)?;
        let commit = Commit {
            session: &ca.session_id,
            expected: loaded.as_ref().map(|l| &l.rev),
            state: &last.state,
            reply: Some((&ca.event_id, &body)),
            entries: &entries,
            schedule: None,
            summary: None,
            // The commit may wait on the session's row while another delivery of the event (on a
            // slow node) commits: it waits what is left of the webhook's deadline, not less than
            // the store's own bound, so a duplicate hears the first delivery's bytes, not the
            // fallback.
            wait: Some(deadline.saturating_duration_since(Instant::now())),
        };
        match app.store.commit(commit).await? {
            Committed::Done => {
                log_transition(&machine, &state, &event, &step);
                if let Some(opened) = &opened {
                    metrics::step(app, &machine, &opened.state, &Event::CallStarted, opened);
                }
                metrics::step(app, &machine, &state, &event, &step);
                let mut before = &step.state;
                for (next, _) in &refused {
                    log_transition(&machine, before, &Event::DialRefused, next);
                    metrics::step(app, &machine, before, &Event::DialRefused, next);
                    before = &next.state;
                }
                if let Some(node) = step.resumed {
                    metrics::resumed(app, &machine, node);
                }
                super::resume::stepped(app, &machine, (&state, &last.state), now).await?;
                return Ok((body, Answered::Applied));
            }
            Committed::Changed => {
                metrics::commit_retried();
                debug!("session changed under us; again");
            }
        }
    }
    Err(Fault::Contention)
}

/// Logs a durable transition once, at debug (a line per webhook would be the log's bulk at info;
/// nothing is formatted unless debug is on).
fn log_transition(machine: &Machine, before: &CallState, event: &Event, step: &engine::Step) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let name = |id| machine.node(id).map_or("?", |n| n.name.as_str());
    let event = engine::sensitive::shown(machine, before, event);
    debug!(
        machine = machine.name(),
        event = %event,
        from = name(before.node),
        to = name(step.state.node),
        edges = ?step.edges.iter().map(|(_, e, _)| e.to_string()).collect::<Vec<_>>(),
        "transition"
    );
}

/// The prompt a call waits on, again (or a hangup for a call that is over).
async fn repeat_current(app: &App, session: &str, state: Option<&CallState>) -> Result<Vec<u8>, Fault> {
    match state {
        Some(st) if matches!(st.phase, Phase::AwaitingInput | Phase::Bridged) => {
            let machine = app.registry.version(app.store.as_ref(), &st.machine, st.version).await?;
            encode_reply(app, engine::current_reply(&machine, st)?, session, st)
        }
        _ => Ok(wire::encode(&Callflow::hangup())?),
    }
}

/// The bytes of a reply to a webhook of `session`, its `clientActionId` signed: every reply that
/// carries an id leaves through here. An id issued on an outbound call says so (in its MAC), so
/// that it resumes whatever the number's machine is.
fn encode_reply(app: &App, mut flow: Callflow, session: &str, state: &CallState) -> Result<Vec<u8>, Fault> {
    let issued = if state.call.direction == Direction::Outbound { Issued::Placed } else { Issued::Answered };
    let lifetime = action_id_lifetime(app.config.session_ttl, app.config.retention).as_secs();
    let expires = (super::now_ms() / 1000).saturating_add(lifetime);
    callflow::sign(&mut flow, &app.action_key, session, issued, expires);
    Ok(wire::encode(&flow)?)
}

/// The longest a `clientActionId` is honoured, whatever the TTL and retention: a day (the default
/// retention). An id answers a prompt of a live call; no prompt waits that long.
const ACTION_ID_LIFETIME_MAX: Duration = Duration::from_secs(24 * 3600);

/// How long an id the node signs now is honoured: the session TTL or the retention, whichever is
/// shorter, at most `ACTION_ID_LIFETIME_MAX`. A session gets a webhook within the TTL or is
/// closed; a closed one is deleted after the retention, which starts after the id was issued: so
/// once retention has deleted a session, no id issued on it resumes anything (a captured one
/// would otherwise resume the deleted call past its PIN), and a live call never needs an older id.
fn action_id_lifetime(session_ttl: Duration, retention: Duration) -> Duration {
    session_ttl.min(retention).min(ACTION_ID_LIFETIME_MAX)
}

/// The echoed id, if it is one this node signed for the webhook's session; any other is refused
/// (counted, logged) and treated as none.
fn verified(app: &App, ca: &CallAction) -> Option<(ClientActionId, Issued)> {
    let raw = ca.client_action_id.as_deref()?;
    match ClientActionId::verify(raw, &app.action_key, &ca.session_id, super::now_ms() / 1000) {
        Ok(id) => Some(id),
        Err(why) => {
            app.refuse_id(raw, &why);
            None
        }
    }
}

/// The machine (exact version) and id a call with no stored state resumes at: the id must be valid
/// for this session, name a version loaded or stored, and (unless issued on an outbound call)
/// name the machine the call's number is bound to. `None`: the call is not resumable.
async fn resumable(
    app: &App,
    current: &MachineSet,
    ca: &CallAction,
    id: ClientActionId,
    issued: Issued,
) -> Result<Option<(Arc<Machine>, ClientActionId)>, Fault> {
    let raw = ca.client_action_id.as_deref().unwrap_or("");
    let Some(machine) = app.registry.by_short(app.store.as_ref(), &id.machine, &id.version).await? else {
        app.refuse_id(
            raw,
            &format_args!("machine `{}` version {} is neither loaded nor stored", id.machine, id.version),
        );
        return Ok(None);
    };
    if issued == Issued::Answered {
        let bound = current.bind(ca.direction, &ca.source, &ca.destination);
        if bound.as_ref().map(|m| m.name()) != Some(machine.name()) {
            let bound = bound.as_ref().map_or("none", |m| m.name());
            app.refuse_id(
                raw,
                &format_args!(
                    "it names machine `{}`, but the call's number is bound to `{bound}`",
                    id.machine
                ),
            );
            return Ok(None);
        }
    }
    Ok(Some((machine, id)))
}

/// How `run_step` ended.
enum Ran {
    /// The step, with the script answers it used.
    Stepped(Box<engine::Step>, Vec<Answer>),
    /// Another delivery of the event committed its reply meanwhile: load again, and replay it.
    Replied,
}

/// What a delivery waiting on another's claim found.
enum Waited {
    /// The answers journaled for the event, the one claimed among them.
    Answers(Vec<Answer>),
    /// The event's reply, committed.
    Replied,
    /// Neither, within the claim's time or this webhook's deadline.
    Nothing,
}

/// Steps the engine, performing the requests of the script nodes it reaches. Each answer is
/// journaled (durably) before the engine applies it, so a retried webhook, after a crash or a
/// lost reply, reuses the answers its first delivery got instead of asking the API again. An
/// answer comes from the cache when the script caches and an identical request was answered
/// within its `cache_minutes`. The requests share the webhook's `deadline` (`SCRIPTS_DEADLINE`):
/// each waits at most what is left of it, and once it is spent the scripts fail without a request.
/// A request is claimed in the store before it is made (`ask`), so it is made at most once.
async fn run_step(
    app: &App,
    ca: &CallAction,
    (machine, state, event): (&Machine, &CallState, &Event),
    unfinished: Option<&engine::Unfinished>,
    now: u64,
    deadline: Instant,
) -> Result<Ran, Fault> {
    let mut answers = Vec::new();
    // The journal is read at the first request only: most steps reach no script.
    let mut journal_read = false;
    let mut in_memory_only = false;
    loop {
        let request = match engine::step_resuming(machine, state, event, now, &answers, unfinished)? {
            Stepped::Done(step) => {
                log_scripts(machine, &step);
                return Ok(Ran::Stepped(step, answers));
            }
            Stepped::Needs(request) => request,
        };
        if !journal_read {
            journal_read = true;
            let journaled = app.store.answers(&ca.session_id, &ca.event_id).await?;
            if !journaled.is_empty() {
                debug!(answers = journaled.len(), "reusing the script answers journaled for this webhook");
                answers = journaled;
                continue;
            }
        }
        let answer = match cached(app, machine, &request, now).await? {
            Some(cached) => cached,
            None => {
                match ask(app, (&ca.session_id, &ca.event_id), machine, &request, answers.len(), deadline)
                    .await?
                {
                    Asked::Answer(answer) => answer,
                    Asked::Journaled(journaled) => {
                        answers = journaled;
                        continue;
                    }
                    Asked::Replied => return Ok(Ran::Replied),
                }
            }
        };
        // An answer that may hold a sensitive stored value is kept in memory only: after a crash
        // before the commit its request is not made again (its claim stays), and the retry takes
        // the script's failure branch, as after a crash during the request.
        // Once one is, the later answers of the webhook are not journaled either (the journal
        // holds the webhook's answers so far, all of them).
        in_memory_only |= machine.answers_are_sensitive(&request.node);
        answers.push(answer);
        if !in_memory_only {
            app.store.put_answers(&ca.session_id, &ca.event_id, &answers).await?;
        }
    }
}

/// Logs what a step's scripts did that the caller may notice: failure branches, cut values.
pub(super) fn log_scripts(machine: &Machine, step: &engine::Step) {
    for (node, why) in &step.script_failures {
        warn_limited!(%node, reason = %why, "script took its failure branch");
    }
    for c in &step.cuts {
        warn_limited!(
            machine = %machine.name(),
            node = %c.node,
            variable = %c.var,
            chars = c.chars,
            kept = c.kept,
            "stored value cut to its max_chars"
        );
    }
}

/// The answer to one script request outside a webhook (an outbound opening, which has no event to
/// claim): from the cache when the script caches and an identical request was answered within its
/// `cache_minutes`, else from the API within what is left of `deadline`.
pub(super) async fn perform(
    app: &App,
    machine: &Machine,
    request: &engine::Request,
    now: u64,
    deadline: Instant,
) -> Result<Answer, Fault> {
    if let Some(cached) = cached(app, machine, request, now).await? {
        return Ok(cached);
    }
    match budget(app, machine, request, deadline) {
        Ok(timeout) => request_once(app, machine, request, timeout, now).await,
        Err(spent) => Ok(spent),
    }
}

/// The cached answer to `request`, when its script caches and an identical request was answered
/// within its `cache_minutes`.
async fn cached(
    app: &App,
    machine: &Machine,
    request: &engine::Request,
    now: u64,
) -> Result<Option<Answer>, Fault> {
    let cached = app.store.cached(request, now).await?;
    if cached.is_some() {
        debug!(node = %request.node, url = %fetch::shown(&request.url), "script answered from the cache");
        metrics::script(app, machine, &request.node, "cache_hit", None);
    }
    Ok(cached)
}

/// How long `request` may take: its `timeout_ms` within what is left of `deadline`; with less
/// than `SCRIPT_BUDGET_MIN` left, the failure answer to take at once, without a request.
fn budget(
    app: &App,
    machine: &Machine,
    request: &engine::Request,
    deadline: Instant,
) -> Result<Duration, Answer> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < SCRIPT_BUDGET_MIN {
        metrics::script(app, machine, &request.node, "out_of_time", None);
        return Err(app.scripts.spent(request, SCRIPTS_DEADLINE));
    }
    Ok(Duration::from_millis(u64::from(request.timeout_ms)).min(left))
}

/// Makes `request` within `timeout`; a 2xx answer of a caching script is cached (failures are
/// asked again).
async fn request_once(
    app: &App,
    machine: &Machine,
    request: &engine::Request,
    timeout: Duration,
    now: u64,
) -> Result<Answer, Fault> {
    let sent = Instant::now();
    let answer = app.scripts.perform(machine, request, timeout).await;
    metrics::script(app, machine, &request.node, fetch::result(&answer), Some(sent.elapsed()));
    if matches!(&answer, Answer::Http { status, .. } if (200..300).contains(status)) {
        app.store.put_cached(request, &answer, now).await?;
    }
    Ok(answer)
}

/// What became of a script request `ask` was given.
enum Asked {
    /// Its answer (the API's, or a failure the script routes on), to journal.
    Answer(Answer),
    /// Another delivery of the event journaled the answers so far, this one among them.
    Journaled(Vec<Answer>),
    /// Another delivery of the event committed its reply.
    Replied,
}

/// Script request number `rank` of the webhook: claimed in the store, then made (and cached when
/// it may be); or, when another delivery of the event holds the claim, that one's answer (or
/// reply) awaited; or, when the claim lapsed with no answer journaled (its claimant stopped
/// mid-request, or gave up), a failure without a request: the request may have reached the API,
/// and is never made twice.
async fn ask(
    app: &App,
    (session, event_id): (&str, &str),
    machine: &Machine,
    request: &engine::Request,
    rank: usize,
    deadline: Instant,
) -> Result<Asked, Fault> {
    let timeout = match budget(app, machine, request, deadline) {
        Ok(timeout) => timeout,
        Err(spent) => return Ok(Asked::Answer(spent)),
    };
    let now = super::now_ms();
    let until = now.saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
    let rank32 = u32::try_from(rank).unwrap_or(u32::MAX);
    let claimed = app.store.claim(session, event_id, rank32, until, now).await?;
    let lapsed = match claimed {
        Claim::Won => return Ok(Asked::Answer(request_once(app, machine, request, timeout, now).await?)),
        Claim::Held { until_ms } => {
            debug!(node = %request.node, "another delivery of this webhook is making the script's request: waiting for its answer");
            match await_claimed(app, (session, event_id), rank, until_ms, deadline).await? {
                Waited::Answers(journaled) => {
                    metrics::script(app, machine, &request.node, "claimed", None);
                    return Ok(Asked::Journaled(journaled));
                }
                Waited::Replied => return Ok(Asked::Replied),
                Waited::Nothing => "the delivery that made the request gave no answer in time",
            }
        }
        Claim::Lapsed => {
            // Its claimant may have journaled the answer since this webhook read the journal.
            let journaled = app.store.answers(session, event_id).await?;
            if journaled.len() > rank {
                metrics::script(app, machine, &request.node, "claimed", None);
                return Ok(Asked::Journaled(journaled));
            }
            "an earlier delivery of this webhook made the request and stopped before its answer"
        }
    };
    warn_limited!(node = %request.node, reason = lapsed, "the script's request was claimed and not answered: not made again");
    metrics::script(app, machine, &request.node, "lapsed", None);
    Ok(Asked::Answer(Answer::Failed { reason: format!("{lapsed}; not made again") }))
}

/// Waits for the answer to script request `rank` of the webhook that another delivery claimed
/// (until `until_ms`), or for the event's reply, looking every `CLAIM_POLL`, at most until the
/// claim's time or this webhook's `deadline`.
async fn await_claimed(
    app: &App,
    (session, event_id): (&str, &str),
    rank: usize,
    until_ms: u64,
    deadline: Instant,
) -> Result<Waited, Fault> {
    loop {
        let journaled = app.store.answers(session, event_id).await?;
        if journaled.len() > rank {
            return Ok(Waited::Answers(journaled));
        }
        if app.store.load(session, Some(event_id)).await?.replied.is_some() {
            return Ok(Waited::Replied);
        }
        if super::now_ms() >= until_ms || Instant::now().checked_add(CLAIM_POLL).is_none_or(|t| t >= deadline)
        {
            return Ok(Waited::Nothing);
        }
        tokio::time::sleep(CLAIM_POLL).await;
    }
}

async fn plan(
    app: &App,
    current: &MachineSet,
    ca: &CallAction,
    loaded: Option<&Loaded>,
    now: u64,
) -> Result<Plan, Fault> {
    // A call received has no id to check; any other webhook's id is checked once, here.
    let id = if ca.is_call_received() { None } else { verified(app, ca) };
    if let Some(loaded) = loaded {
        let st = &loaded.state;
        // A webhook that answers another prompt than the one the call waits on is not applied.
        let waiting = matches!(st.phase, Phase::AwaitingInput | Phase::Bridged);
        if let Some((id, _)) = &id
            && waiting
            && id.machine == st.machine
            && id.seq != st.seq
        {
            warn_limited!(got = %ca.client_action_id.as_deref().unwrap_or(""), want_seq = st.seq, "stale webhook: repeating the current prompt");
            return Ok(Plan::Answer(repeat_current(app, &ca.session_id, Some(st)).await?, Answered::Stale));
        }
        // The call is over for phonetree: whatever 8x8 asks now, the answer is to hang up, and
        // nothing is applied.
        if st.phase == Phase::Ended {
            debug!("a webhook after the call ended: hanging up, nothing applied");
            return Ok(Plan::Answer(repeat_current(app, &ca.session_id, Some(st)).await?, Answered::Stale));
        }
        let machine = app.registry.version(app.store.as_ref(), &st.machine, st.version).await?;
        let mut state = st.clone();
        // A call phonetree placed learns its call id from 8x8's first webhook.
        if state.call.call_id.is_none() {
            state.call.call_id.clone_from(&ca.call_id);
        }
        // The answer to a resume offer: where the interrupted call stopped, if it still can go on.
        let unfinished = match st.offering() {
            true => super::resume::pending(app, &machine, st.call.caller(), now).await?.map(Box::new),
            false => None,
        };
        let state = Box::new(state);
        return Ok(Plan::Apply { machine, state, event: ca.event(), opened: None, unfinished });
    }
    let call = CallInfo {
        session_id: ca.session_id.clone(),
        direction: ca.direction.unwrap_or(if ca.is_call_received() {
            Direction::Inbound
        } else {
            Direction::Outbound
        }),
        source: ca.source.clone(),
        destination: ca.destination.clone(),
        call_id: ca.call_id.clone(),
    };
    // No stored state, but 8x8 echoes one of our ids: resume the call at that node.
    if let Some((id, issued)) = id
        && let Some((machine, id)) = resumable(app, current, ca, id, issued).await?
    {
        return resume(machine, call, &id, ca, now);
    }
    let machine =
        current.bind(ca.direction, &ca.source, &ca.destination).ok_or_else(|| match call.direction {
            Direction::Inbound => Fault::NoMachine { direction: "to", number: ca.destination.clone() },
            Direction::Outbound => Fault::NoMachine { direction: "from", number: ca.source.clone() },
        })?;
    let fresh = CallState::new(&machine, call, now);
    // A call received starts at the start node; so does an inbound call whose first webhook this
    // node sees is another (its CALL_RECEIVED lost, or its state gone): with no id to say which
    // prompt it answers, the caller hears the start node's prompt, not an answer to a prompt
    // never played.
    if ca.is_call_received() || ca.direction == Some(Direction::Inbound) {
        // A caller whose last call on the machine was interrupted within its `[resume]` window
        // hears the offer first (the call waits at it; a start at it says it again).
        if ca.is_call_received()
            && super::resume::pending(app, &machine, fresh.call.caller(), now).await?.is_some()
        {
            let offered = engine::offer(&machine, &fresh, now)?;
            let state = Box::new(offered.state);
            return Ok(Plan::Apply {
                machine,
                state,
                event: Event::CallStarted,
                opened: None,
                unfinished: None,
            });
        }
        let state = Box::new(fresh);
        return Ok(Plan::Apply { machine, state, event: Event::CallStarted, opened: None, unfinished: None });
    }
    // The first webhook of a call placed elsewhere (8x8's Send Callflow played the start node):
    // it is the answer to the start node.
    let opened = engine::step(&machine, &fresh, &Event::CallStarted, now)?;
    let started = Box::new(opened.state.clone());
    Ok(Plan::Apply {
        machine,
        state: started,
        event: ca.event(),
        opened: Some(Box::new(opened)),
        unfinished: None,
    })
}

/// A call with no stored state, at the node its `clientActionId` names.
fn resume(
    machine: Arc<Machine>,
    call: CallInfo,
    id: &ClientActionId,
    ca: &CallAction,
    now: u64,
) -> Result<Plan, Fault> {
    let node = machine
        .node_id(&id.node)
        .ok_or_else(|| Fault::UnknownNode { machine: id.machine.clone(), node: id.node.clone() })?;
    let state = CallState::resumed(&machine, call, node, id.seq, now);
    warn_limited!(machine = machine.name(), node = %id.node, "no stored state: resuming from the clientActionId");
    Ok(Plan::Apply { machine, state: Box::new(state), event: ca.event(), opened: None, unfinished: None })
}

/// The fallback of the machine version the call is (or would be) on, else phonetree's default.
async fn fallback_for(app: &App, current: &MachineSet, ca: &CallAction, ask_store: bool) -> Callflow {
    let (stored, vars) = if ask_store {
        // The version the call is pinned to: a reload may have changed or removed its machine.
        match app.store.load(&ca.session_id, None).await.ok().and_then(|l| l.session) {
            Some(l) => (
                app.registry.version(app.store.as_ref(), &l.state.machine, l.state.version).await.ok(),
                l.state.vars,
            ),
            None => (None, Default::default()),
        }
    } else {
        (None, Default::default())
    };
    // In the call's language when its state says it (else the machine's first).
    stored
        .or_else(|| current.bind(ca.direction, &ca.source, &ca.destination))
        .map(|m| m.fallback_in(m.language_of(|v| vars.get(v).map(String::as_str))).clone())
        .unwrap_or_else(super::default_fallback)
}

/// Records a session summary and closes the session it ends.
pub async fn session_summary(app: &App, s: &SessionSummary) -> Result<(), Fault> {
    let done = record_summary(app, s).await;
    if let Err(Fault::Store(e)) = &done {
        app.note_store_error(e);
    }
    done
}

async fn record_summary(app: &App, s: &SessionSummary) -> Result<(), Fault> {
    if let Some(code) = s.error_code {
        metrics::error_8x8(code);
    }
    let received_ms = super::now_ms();
    match close_session(app, s, received_ms).await {
        Ok(Kept::WithTheClose) => Ok(()),
        Ok(Kept::NotYet) => Ok(app.store.put_summary(s, received_ms).await?),
        // The summary is kept even when the session cannot be closed (8x8 sends it again).
        Err(fault) => {
            app.store.put_summary(s, received_ms).await?;
            Err(fault)
        }
    }
}

/// Whether `close_session` kept the summary in the commit that closed the session.
enum Kept {
    WithTheClose,
    /// No open session to close: the summary is still to be kept.
    NotYet,
}

/// Closes the session a summary ends, keeping the summary in the same durable write.
async fn close_session(app: &App, s: &SessionSummary, received_ms: u64) -> Result<Kept, Fault> {
    let event = Event::SessionEnded { status: s.status.clone() };
    for _ in 0..COMMIT_ATTEMPTS_MAX {
        let Some(loaded) = app.store.load(&s.session_id, None).await?.session else {
            debug!(status = %s.status, "summary for a session phonetree never saw; stored");
            return Ok(Kept::NotYet);
        };
        if loaded.state.closed {
            return Ok(Kept::NotYet);
        }
        let machine =
            app.registry.version(app.store.as_ref(), &loaded.state.machine, loaded.state.version).await?;
        let now = super::now_ms();
        let step = engine::step(&machine, &loaded.state, &event, now)?;
        // The caller's interrupted call is durable before the summary is answered, and before the
        // call is closed: a retried summary finds the call open, and keeps it again.
        super::resume::stepped(app, &machine, (&loaded.state, &step.state), now).await?;
        let entry = transcript::Entry::of(&machine, &loaded.state, &event, &step, &[]);
        let schedule =
            super::callbacks::after_summary(app, &machine, &loaded.state, &step.state, super::now_ms())
                .await?;
        let commit = Commit {
            session: &s.session_id,
            expected: Some(&loaded.rev),
            state: &step.state,
            reply: None,
            entries: std::slice::from_ref(&entry),
            schedule: schedule.as_ref().map(|(call, _)| call),
            summary: Some((s, received_ms)),
            wait: None,
        };
        if app.store.commit(commit).await? == Committed::Done {
            debug!(machine = machine.name(), status = %s.status, outcome = ?step.state.outcome, "session closed");
            metrics::ended(app, &machine, &loaded.state, &step.state, false);
            if let Some((call, event)) = &schedule {
                metrics::callback(app, &call.machine, event);
            }
            return Ok(Kept::WithTheClose);
        }
        metrics::commit_retried();
    }
    Err(Fault::Contention)
}

/// When `step` ends at a transfer whose templated destination the guard refuses (see `dial`): the
/// steps that follow it, the engine told `Event::DialRefused` (the transfer's `failure` edge)
/// each time, with the answers of the script nodes each passes (asked as an outbound opening's,
/// within `SCRIPTS_DEADLINE`), until one ends anywhere but at a refused transfer. Empty: the step
/// dials nothing templated, or the guard lets it through.
pub(super) async fn refused_dials(
    app: &App,
    m: &crate::machine::Machine,
    step: &engine::Step,
    now: u64,
) -> Result<Vec<(engine::Step, Vec<engine::Answer>)>, Fault> {
    let deadline = Instant::now().checked_add(SCRIPTS_DEADLINE).unwrap_or_else(Instant::now);
    let mut steps: Vec<(engine::Step, Vec<engine::Answer>)> = Vec::new();
    loop {
        let last = steps.last().map_or(step, |(s, _)| s);
        let Some(to) = engine::templated_dial(m, last) else { return Ok(steps) };
        let node = m.node(last.state.node).map_or("", |n| n.name.as_str());
        if super::dial::dial(app, m, node, to).await?.is_ok() {
            return Ok(steps);
        }
        if steps.len() >= engine::DIALS_REFUSED_PER_STEP_MAX {
            return Err(engine::StepError::TooManyRefusedDials { node: node.to_string() }.into());
        }
        let mut answers = Vec::new();
        let next = loop {
            match engine::step_with(m, &last.state, &Event::DialRefused, now, &answers)? {
                Stepped::Done(next) => break *next,
                Stepped::Needs(request) => {
                    answers.push(perform(app, m, &request, now, deadline).await?);
                }
            }
        };
        log_scripts(m, &next);
        steps.push((next, answers));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second delivery of an event being answered waits for the first's bytes; the first's
    /// entry leaves the registry when it is done, published or not, and the registry is bounded.
    #[tokio::test]
    async fn duplicates_in_flight_wait_for_the_first_reply() {
        let set = InFlight::default();
        let Place::First(first) = set.enter("s", "e1") else { panic!("the first delivery") };
        let Place::Behind(mut twin) = set.enter("s", "e1") else { panic!("a duplicate") };
        assert!(matches!(set.enter("s", "e2"), Place::First(_)), "another event");
        first.publish(b"reply", Answered::Applied);
        let got = twin.wait_for(Option::is_some).await.unwrap().clone();
        assert_eq!(got.map(|(b, how)| (b.to_vec(), how)), Some((b"reply".to_vec(), Answered::Applied)));
        drop(first);
        let Place::First(again) = set.enter("s", "e1") else { panic!("the entry left with its delivery") };
        let Place::Behind(mut orphan) = set.enter("s", "e1") else { panic!("a duplicate") };
        drop(again);
        assert!(orphan.wait_for(Option::is_some).await.is_err(), "nothing published: answer by itself");
        let slots: Vec<_> = (0..IN_FLIGHT_EVENTS_MAX).map(|i| set.enter("s", &format!("x{i}"))).collect();
        assert!(slots.iter().all(|p| matches!(p, Place::First(_))));
        assert!(matches!(set.enter("s", "one more"), Place::Unlisted), "bounded");
    }
}
