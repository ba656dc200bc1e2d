//! Upstream responses through `clusterdns::fuzzing::fuzz_message`: decoding must never panic;
//! whatever decodes, passed on to a client, must decode again to the same records; and
//! hickory-proto's reading of the input must agree with ours, but for the documented
//! differences (`oracle/hickory.rs`).
#![no_main]

#[path = "../oracle/hickory.rs"]
mod hickory_oracle;

use clusterdns::fuzzing::{fuzz_message, hex};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let out = fuzz_message(data);
    if let Err(e) = hickory_oracle::compare(data, &out.decoded) {
        panic!("hickory and we disagree: {e}\ninput: {}", hex(data));
    }
});
