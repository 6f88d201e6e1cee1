//! The offline proof of a machine: `explore` walks every state and input class through the engine,
//! `simulate` plays one call and writes its transcript; both speak the same replay tokens (`tokens`:
//! a path's flags);
//! `policy` proves a machine's policies on the states and transitions `explore` found, and
//! `outputs` the outputs its modules promise; `scenario`
//! reads scenario files and judges the calls `simulate` plays from them; `doctor` lists what a
//! machine depends on outside itself and judges what `phonetree doctor` found there; `diff`
//! compares two versions of a machine by structure, by behaviour (through both) and by the
//! recorded calls `history` replays.

pub mod diff;
pub mod doctor;
pub mod explore;
pub mod history;
mod outputs;
mod policy;
pub mod scenario;
pub mod simulate;
mod tokens;
