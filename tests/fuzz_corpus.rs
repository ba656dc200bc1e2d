//! The fuzz targets' functions on stable Rust: each over its whole seed corpus, then over a
//! bounded pseudo-random run of mutations (fixed seed, so a failure repeats). This is what
//! `cargo fuzz run corefile` and `cargo fuzz run query` explore for hours, checked in seconds on
//! every test run; a crash either finds gets a regression test here named after it.

use std::path::Path;
use std::time::Instant;

use clusterdns::fuzzing::seeds::{
    COREFILE_DICTIONARY, QUERY_DICTIONARY, corefile_seeds, query_seeds, readme_corefiles,
};
use clusterdns::fuzzing::{QueryHarness, corefile_signature, explore, fuzz_corefile, unhex};

/// Mutations of Corefiles (about a second in a debug build) and of queries (cheaper, so more).
const COREFILE_ITERATIONS: usize = 20_000;
const QUERY_ITERATIONS: usize = 100_000;
const RNG_SEED: u64 = 0x00c0_ffee_d15c_0001;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn corefile_corpus_parses_without_panicking() {
    let seeds = corefile_seeds(root());
    let readmes = readme_corefiles(root());
    assert!(readmes.len() >= 3, "README corefile blocks found: {}", readmes.len());
    assert!(seeds.len() > readmes.len() + 10, "seeds found: {}", seeds.len());
    for s in &seeds {
        let _ = fuzz_corefile(&s.data);
    }
    // README examples are whole, valid Corefiles (tests/readme_corefiles.rs starts them).
    for s in &readmes {
        if let Err(e) = fuzz_corefile(&s.data) {
            panic!("{}: does not plan:\n{e}", s.name);
        }
    }
}

#[test]
fn corefile_mutations_never_panic() {
    let seeds: Vec<Vec<u8>> = corefile_seeds(root()).into_iter().map(|s| s.data).collect();
    let start = Instant::now();
    let distinct =
        explore(&seeds, COREFILE_ITERATIONS, RNG_SEED, COREFILE_DICTIONARY, fuzz_corefile, corefile_signature);
    eprintln!("corefile: {COREFILE_ITERATIONS} mutations in {:?}, {distinct} distinct outcomes", start.elapsed());
    // The run reaches many different errors, not one wall it keeps hitting.
    assert!(distinct > 25, "only {distinct} distinct outcomes");
}

#[test]
fn query_corpus_gets_checked_replies() {
    let h = QueryHarness::new();
    let seeds = query_seeds();
    let mut answered = 0;
    for s in &seeds {
        let out = h.run(&s.data);
        // A second, independent reader of every reply: hickory's.
        for reply in [&out.udp, &out.tcp].into_iter().flatten() {
            answered += 1;
            if let Err(e) = hickory_proto::op::Message::from_vec(reply) {
                panic!("{}: hickory cannot read the reply: {e}", s.name);
            }
        }
    }
    assert!(answered > seeds.len(), "{answered} replies to {} seeds", seeds.len());
}

#[test]
fn query_mutations_never_panic_and_always_answer() {
    let h = QueryHarness::new();
    let seeds: Vec<Vec<u8>> = query_seeds().into_iter().map(|s| s.data).collect();
    let start = Instant::now();
    let distinct = explore(&seeds, QUERY_ITERATIONS, RNG_SEED, QUERY_DICTIONARY, |d| h.run(d), |o| o.signature());
    eprintln!("query: {QUERY_ITERATIONS} mutations in {:?}, {distinct} distinct outcomes", start.elapsed());
    assert!(distinct > 8, "only {distinct} distinct outcomes");
}

/// Inputs in hex that once broke a target, one per line (`name hex`), run through it again.
#[test]
fn hex_regressions() {
    let h = QueryHarness::new();
    for (name, hex) in QUERY_REGRESSIONS {
        h.run(&unhex(hex).unwrap_or_else(|| panic!("{name}: bad hex")));
    }
    for (name, hex) in COREFILE_REGRESSIONS {
        let _ = fuzz_corefile(&unhex(hex).unwrap_or_else(|| panic!("{name}: bad hex")));
    }
}

const QUERY_REGRESSIONS: &[(&str, &str)] = &[];
const COREFILE_REGRESSIONS: &[(&str, &str)] = &[];
