//! phonetree: an IVR engine for the 8x8 Voice Callflows API.
//!
//! # Layout
//! Each layer uses only the layers above it in this list; nothing points back up, and no two
//! files use each other in a circle. `tests/layers.rs` enforces it (its `LAYERS` table ranks them:
//! `engine` and `export` are peers, so are `proof`, `store` and `webhook`, and `http` and
//! `loadtest`), and checks that `callflow`, `machine`, `engine`, `proof` and `export` name no I/O
//! crate, file, socket or clock, that only `store` names sled, PostgreSQL's crates or MessagePack,
//! and that only `webhook` and `callflow` spell 8x8's JSON keys.
//! - `secret`: a leaf beside them all: secrets that never show in logs, `Debug` or errors.
//! - `callflow`: the bottom layer, 8x8's model — callflow actions and 8x8's rules and limits for
//!   them, the `clientActionId` phonetree puts on every reply, the session summary. No JSON.
//! - `machine`: machine files (TOML/JSON) → compiled `Machine` on a petgraph graph, with every
//!   problem reported as a `Diagnostic` (file:line:col, node, field, hint).
//! - `engine`: the pure core — `step(machine, state, event, now) -> (state, reply)`, call state
//!   (also a call resumed from a `clientActionId`), script requests as effects, and the call
//!   transcript (`engine::transcript`) the store keeps. No I/O, no clock.
//! - `proof`: the offline proof of a machine (`explore`: every state and input class through the
//!   engine; on its states and transitions, the policies (`proof::policy`) and the outputs its
//!   modules promise (`proof::outputs`)), offline calls (`simulate`), sharing one replay-token syntax, the replay of a
//!   recorded transcript through another machine version (`proof::history`), scenario files
//!   with golden transcripts (`proof::scenario`, `phonetree test`), the comparison of two
//!   versions by structure, behaviour and recorded calls (`proof::diff`), and what a machine
//!   depends on outside itself with the verdicts of `phonetree doctor` on it (`proof::doctor`:
//!   the CLI asks the network, this judges).
//! - `export`: a compiled machine's graph as Graphviz DOT, Mermaid, VoiceXML 2.1 and JSON; reads
//!   only `machine` (pure text out).
//! - `store`: the `Store` trait the node keeps calls in, and its backends (`sled`, `postgres`);
//!   the only module that knows sled, PostgreSQL or MessagePack. Keeps engine state and
//!   transcripts; knows nothing of the prover.
//! - `webhook`: 8x8's JSON in and out (VCA/VSS bodies, callflow replies, the Send Callflow API);
//!   the only module that knows 8x8's JSON.
//! - `node`: the durable webhook node — the persistence loop of a webhook, sweeps, outbound calls,
//!   the callbacks of unanswered transfers and their scheduler, the machine registry and catalog,
//!   script fetches.
//! - `http`: the two listeners (public: webhooks and health; admin: operator routes) served on
//!   hyper with their limits, warp routes over the node, every error a JSON body, and `run`.
//! - `loadtest`: a client of running nodes beside the CLI (8x8's webhooks out, each reply
//!   checked against the engine); nothing else uses it.
//!
//! The CLI (`src/main.rs`) sits on top of all of them.
//!
//! # Data path
//! machine file → `machine::compile` → `Machine` → `proof::explore` (proof);
//! webhook → `webhook::inbound` → `engine::Event` → `store.load` → `engine::step` →
//! `store.commit` (state and reply, durable) → `webhook::wire` JSON → 200.
//!
//! # A webhook's path, in detail
//! ```text
//! 8x8 ─► http::conn (allow-list at accept: 403; connection cap and unauthenticated budget: 503;
//!                   header/body timeouts; allow-list per request through a trusted proxy)
//!   ─► http::routes (webhook secret or JWT: 401; body read; in-flight cap: 503)
//!   ─► webhook::inbound (parse, 4xx on bad input)
//!   ─► node::calls:  the same event being answered on this node? ─► wait, its bytes (duplicate)
//!                    one snapshot of the loaded machines (a reload swaps them between webhooks)
//!                    store.load(session, eventId): the state, and the journal's answer for eventId
//!                    journal has the reply? ─► the stored bytes (duplicate)
//!                    journal knows an older eventId? ─► the current prompt, nothing applied (stale)
//!                    clientActionId without a valid MAC for this session? ─► treated as none
//!                    stale clientActionId? ─► the current prompt, nothing applied
//!                    the call ended? ─► a hangup, nothing applied (stale)
//!                    no session? ─► new call bound by number, or resumed from a signed clientActionId
//!   ─► engine::step(machine, state, event, now) ─► (state', callflow)       pure
//!                    (script requests: claimed in the store, performed by node::fetch within the
//!                    webhook's deadline, answers journaled durably, then stepped again)
//!   ─► node::calls:  sign the reply's clientActionId; webhook::wire (callflow ─► JSON bytes);
//!                    the call's transcript entry (pure)
//!   ─► store.commit: state', the reply and the transcript entry in one write, only if the session
//!                    is still at the revision loaded (else reload and decide again); durable on return
//!   ─► node::metrics, 200 with the bytes
//! ```
//!
//! # The store
//! The `Store` trait (`store/mod.rs`) is the node's whole view of storage: `load`, `commit`
//! (compare-and-swap on an opaque revision, durable on return), script `answers`, `claim`s and the
//! `cached` answers, `summary`, `machine` by version and by short hash, paged `scan`, a call's
//! `transcript`, `export`/`import` (for `store copy`), the `action_key`, the call rates'
//! `take_tokens`, `remove_session`, `expire_cache`, `expire_rates`, callers' interrupted calls
//! (`unfinished`, `put_unfinished`, `remove_unfinished`, `expire_unfinished`: a machine's
//! `[resume]`, which the node reads and hands the engine as data), the callbacks of unanswered
//! transfers (`put_scheduled`, `claim_scheduled`, `scheduled`, `cancel_scheduled`,
//! `expire_scheduled`), `session_count`, `probe`, `flush`. One conformance suite
//! (`tests/store.rs`) and the node's model test (`tests/properties.rs`) run against every backend
//! listed in `tests/common/backends.rs`.
//!
//! The sled backend keeps one record per session: the state, a journal of its latest replies
//! (`REPLIES_KEPT` = 2 with their bytes, and the 64-bit hashes of up to `EVENT_IDS_KEPT` = 32
//! older event ids) and the call's transcript, written with one `compare_and_swap` per webhook. A
//! write is durable once the store's fsync thread has flushed after it: every request waiting
//! meanwhile shares that one fsync (group commit), and sled's own periodic flusher is off. Script
//! answers, claims, the script cache, summaries, machine sources, call rates, callers' interrupted
//! calls and scheduled callbacks are trees of their own. The
//! PostgreSQL backend writes the same in one transaction per webhook.
//!
//! # Invariants
//! - The engine does no I/O and reads no clock: time is a parameter, so every step is replayable.
//! - No layer imports one below it in the list above; only `store` names sled, PostgreSQL or
//!   MessagePack, only `webhook` 8x8's JSON.
//! - A machine with any error does not load; every callflow a machine can send passed 8x8's rules
//!   at compile time, and every reply is checked again before it leaves the engine.
//! - A machine with `languages` is compiled once per language (the same graph; each node's texts
//!   and voice in that language), and the explorer holds the call's language in its states: every
//!   text exists, and every reply is proven, in each language.
//! - A machine's version is the SHA-256 of its source text; a call's state names the version it
//!   runs on.
//! - A reply leaves only after the state it implies is durable. A state and its reply are one
//!   write, so a crash keeps both or neither; the retried webhook then finds the reply (and gets
//!   the same bytes) or finds the old state (and is applied once).
//! - Two webhooks of one session never both apply: the commit is a compare-and-swap on the
//!   revision loaded; the loser reloads (at most `COMMIT_ATTEMPTS_MAX` times). An event is never
//!   applied twice: a duplicate of one of the latest `REPLIES_KEPT` events gets the same bytes, an
//!   older one (known by its hash) the current prompt.
//! - Every stored record carries its format version; a record of an unknown version is an error
//!   naming it, never a guess. Format 2 added call variables; format 3 moved the reply journal
//!   into the session record; format 4 keeps a transfer's summary status with its outcome; format
//!   5 records a placed call never answered as `unanswered`; format 6 writes session records as
//!   MessagePack arrays; format 7 keeps a machine's module texts with it; format 8 keeps a sled
//!   session record's transcript as the bytes of its entries, appended to without decoding the
//!   entries before (`store::record::Transcript`). Older records still
//!   load (a format 2 store is migrated when a newer phonetree first opens it). Transcript
//!   entries, rate records, interrupted calls and scheduled callbacks have formats of their own.
//! - The clock is an input: route rules read the `now` each step is given, in the machine's time
//!   zone, from the time zone database compiled into the binary, so a replayed or simulated call
//!   takes the same rules on any host.
//! - A script's request is an effect: `engine::step_with` stops and returns the request, the node
//!   claims it in the store (durably), performs it, journals the answer under (session, eventId),
//!   durably, then steps again with the answer. A retried webhook reuses the journaled answers; if
//!   the node died after its claim and before an answer was journaled, the retried webhook does
//!   not ask again: the script takes its failure branch. At most `SCRIPTS_PER_STEP_MAX` (4)
//!   requests per webhook, each within its `timeout_ms` (at most 5 s), all within the webhook's
//!   `SCRIPTS_DEADLINE` (5 s).
//! - The caller never hears silence: a store or engine fault answers with the machine's
//!   `fallback` (default: an apology, then hangup), logged at error (rate-limited).
//! - Sweeps walk the store in pages of `SWEEP_PAGE` (256) sessions and yield between pages.
//!   Nothing an outsider can post is kept longer than the retention: summaries of calls never seen
//!   are swept too.
//! - Anything reachable from the network is authenticated or deliberately public: the public
//!   listener serves webhooks and `/healthz` and `/readyz`; everything an operator does is on the
//!   admin listener, behind its token. Every clientActionId phonetree issues is signed. Script
//!   requests reach only allowed hosts at allowed addresses.
//! - Every limit is a named constant with a doc comment giving its reason (`CHAIN_ACTIONS_MAX`,
//!   `PATH_LEN_MAX`, `NODES_MAX`, `BODY_BYTES_MAX`, `COMMIT_ATTEMPTS_MAX`, `REPLIES_KEPT`,
//!   `SHUTDOWN_GRACE`, ...).

pub mod callflow;
pub mod engine;
pub mod export;
pub mod http;
pub mod loadtest;
pub mod machine;
pub mod node;
pub mod proof;
pub mod secret;
pub mod store;
pub mod webhook;
