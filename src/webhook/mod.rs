//! 8x8's JSON: webhook bodies in (`inbound`), callflow JSON out (`wire`), and the Send Callflow
//! API (`outbound`). Only this module knows 8x8's JSON; the HTTP routes that carry it are `http`'s.

pub mod inbound;
pub mod outbound;
pub mod wire;
