//! The 8x8 side: webhook bodies in (`inbound`), callflow JSON out (`wire`), the Send Callflow API
//! (`outbound`), and the HTTP routes (`routes`). Only this module knows 8x8's JSON.

pub mod inbound;
pub mod outbound;
pub mod wire;
