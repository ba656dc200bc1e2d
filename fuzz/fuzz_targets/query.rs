//! Raw packets through the server's dispatch path (`clusterdns::fuzzing::QueryHarness`): must
//! never panic, and every packet gets the reply hickory-proto's reading says it deserves
//! (`oracle/query.rs`: drop, an error with its rcode, or an answer), well formed.
#![no_main]

#[path = "../oracle/query.rs"]
mod query_oracle;

use clusterdns::fuzzing::QueryHarness;

thread_local! {
    // Per thread (libFuzzer runs one): the harness's built table holds plugin state that is
    // Send but not Sync, so it cannot be a shared static.
    static HARNESS: QueryHarness = QueryHarness::new();
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    HARNESS.with(|h| {
        h.run(data, &query_oracle::verdict(data));
    });
});
