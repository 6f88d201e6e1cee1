//! phonetree: an IVR engine for the 8x8 Voice Callflows API.
//!
//! # Layout
//! - `machine`: machine files (TOML/JSON) → `Definition` → compiled `Machine` on a petgraph graph,
//!   with every problem reported as a `Diagnostic` (file:line:col, node, field, hint).
//! - `engine`: the pure core — `step(machine, state, event, now) -> (state, reply)` and the 8x8
//!   callflow model with 8x8's own rules. No I/O, no clock.
//! - `webhook`: 8x8's JSON in and out; the only module that knows the wire format.
//! - `explore`: the offline proof of a machine — every state and input class through the engine.
//! - `catalog`: reads machine files from disk, compiles and proves them, keeps them by name.
//! - `simulate`: plays a call offline and writes a transcript.
//! - `store`: per-call state in sled as versioned MessagePack records, fsync'd by group commit.
//! - `server`: the durable webhook node (registry of machine versions, the persistence loop).
//!
//! # Data path
//! machine file → `machine::compile` → `Machine` → `explore` (proof);
//! webhook → `webhook::inbound` → `engine::Event` → `engine::step` → state committed and fsync'd
//! by `store` → `Callflow` → `webhook::wire` JSON → 200.

pub mod callflow;
pub mod engine;
pub mod http;
pub mod machine;
pub mod node;
pub mod proof;
pub mod store;
pub mod webhook;
