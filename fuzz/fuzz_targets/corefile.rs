//! Corefile bytes through the parser and the planner (`clusterdns::fuzzing::fuzz_corefile`):
//! must never panic, and every error must name a position.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = clusterdns::fuzzing::fuzz_corefile(data);
});
