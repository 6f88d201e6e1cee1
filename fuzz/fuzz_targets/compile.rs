#![no_main]
//! libFuzzer target `compile`: see `fuzz/targets.rs`.

include!("../targets.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| compile_machine(data));
