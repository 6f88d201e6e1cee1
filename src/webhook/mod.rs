//! 8x8's JSON: webhook bodies in (`inbound`), callflow JSON out (`wire`), the Send Callflow
//! API (`outbound`) and the Webhooks API (`webhooks_api`). Only this module knows 8x8's JSON; the
//! HTTP routes that carry it are `http`'s.

pub mod inbound;
pub mod outbound;
pub mod webhooks_api;
pub mod wire;
