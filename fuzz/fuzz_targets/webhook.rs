#![no_main]
//! libFuzzer target `webhook`: see `fuzz/targets.rs`.

include!("../targets.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| webhook(data));
