//! Raw packets through the server's dispatch path (`clusterdns::fuzzing::QueryHarness`): must
//! never panic, and every packet the decoder does not drop gets exactly one well-formed reply.
#![no_main]

use std::sync::OnceLock;

use clusterdns::fuzzing::QueryHarness;

fn harness() -> &'static QueryHarness {
    static HARNESS: OnceLock<QueryHarness> = OnceLock::new();
    HARNESS.get_or_init(QueryHarness::new)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness().run(data);
});
