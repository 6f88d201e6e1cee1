//! The 8x8 side: callflow JSON out (`wire`). Only this module knows 8x8's JSON.

pub mod wire;
