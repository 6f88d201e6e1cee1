//! The offline proof of a machine: `explore` walks every state and input class through the engine,
//! `simulate` plays one call and writes its transcript; both speak the same replay tokens.

pub mod explore;
pub mod history;
pub mod simulate;
