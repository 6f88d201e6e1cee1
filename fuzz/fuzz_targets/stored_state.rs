#![no_main]
//! libFuzzer target `stored_state`: see `fuzz/targets.rs`.

include!("../targets.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| stored_state(data));
