//! 8x8's JSON: webhook bodies in (`inbound`) and, for `loadtest`, out (`emit`), callflow JSON out (`wire`), the Send Callflow
//! API (`outbound`), the Webhooks API (`webhooks_api`) and the speech-profiles API (`voices_api`). Only this module knows 8x8's JSON; the
//! HTTP routes that carry it are `http`'s.

pub mod emit;
pub mod inbound;
pub mod outbound;
pub mod voices_api;
pub mod webhooks_api;
pub mod wire;
