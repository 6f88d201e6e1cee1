//! phonetree: an IVR engine for the 8x8 Voice Callflows API.
//!
//! # Layout
//! - `machine`: machine files (TOML/JSON) → `Definition` → compiled `Machine` on a petgraph graph,
//!   with every problem reported as a `Diagnostic` (file:line:col, node, field, hint).
//! - `engine`: the pure core — `step(machine, state, event, now) -> (state, reply)` and the 8x8
//!   callflow model with 8x8's own rules. No I/O, no clock.
//! - `webhook`: 8x8's JSON in and out; the only module that knows the wire format.
//! - `catalog`: reads machine files from disk and keeps the compiled machines by name.
//! - `simulate`: plays a call offline and writes a transcript.
//!
//! # Data path
//! machine file → `machine::compile` → `Machine`;
//! caller input → `engine::Event` → `engine::step` → `Callflow` → `webhook::wire` JSON.

pub mod catalog;
pub mod engine;
pub mod explore;
pub mod machine;
pub mod server;
pub mod simulate;
pub mod store;
pub mod webhook;
