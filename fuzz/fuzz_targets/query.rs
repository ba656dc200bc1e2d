//! Raw packets through the server's dispatch path (`clusterdns::fuzzing::QueryHarness`): must
//! never panic, and every packet gets the reply hickory-proto's reading says it deserves
//! (`oracle/query.rs`: drop, an error with its rcode, or an answer), well formed.
#![no_main]

#[path = "../oracle/query.rs"]
mod query_oracle;

use std::sync::OnceLock;

use clusterdns::fuzzing::QueryHarness;

fn harness() -> &'static QueryHarness {
    static HARNESS: OnceLock<QueryHarness> = OnceLock::new();
    HARNESS.get_or_init(QueryHarness::new)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness().run(data, &query_oracle::verdict(data));
});
