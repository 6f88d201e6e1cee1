//! phonetree: an IVR engine for the 8x8 Voice Callflows API.
//!
//! # Layout
//! Each layer uses only the layers above it in this list; nothing points back up, and no two
//! files use each other in a circle. `tests/layers.rs` enforces it (its `LAYERS` table ranks them:
//! `engine` and `export` are peers, so are `proof`, `store` and `webhook`, and `http` and
//! `loadtest`), and checks that `callflow`, `machine`, `engine`, `proof` and `export` name no I/O
//! crate, file, socket or clock.
//! - `secret`: a leaf beside them all: secrets that never show in logs, `Debug` or errors.
//! - `callflow`: the bottom layer, 8x8's model — callflow actions and 8x8's rules and limits for
//!   them, the `clientActionId` phonetree puts on every reply, the session summary. No JSON.
//! - `machine`: machine files (TOML/JSON) → compiled `Machine` on a petgraph graph, with every
//!   problem reported as a `Diagnostic` (file:line:col, node, field, hint).
//! - `engine`: the pure core — `step(machine, state, event, now) -> (state, reply)`, call state
//!   (also a call resumed from a `clientActionId`), script requests as effects, and the call
//!   transcript (`engine::transcript`) the store keeps. No I/O, no clock.
//! - `proof`: the offline proof of a machine (`explore`: every state and input class through the
//!   engine), offline calls (`simulate`), sharing one replay-token syntax, and the replay of a
//!   recorded transcript through another machine version (`proof::history`).
//! - `export`: a compiled machine's graph as Graphviz DOT, Mermaid, VoiceXML 2.1 and JSON; reads
//!   only `machine` (pure text out).
//! - `store`: the `Store` trait the node keeps calls in, and its backends (`sled`, `postgres`);
//!   the only module that knows sled, PostgreSQL or MessagePack. Keeps engine state and
//!   transcripts; knows nothing of the prover.
//! - `webhook`: 8x8's JSON in and out (VCA/VSS bodies, callflow replies, the Send Callflow API);
//!   the only module that knows 8x8's JSON.
//! - `node`: the durable webhook node — the persistence loop of a webhook, sweeps, outbound calls,
//!   the machine registry and catalog, script fetches.
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
