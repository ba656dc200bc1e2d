//! The fuzz targets' functions on stable Rust: each over its whole seed corpus, then over a
//! bounded pseudo-random run of mutations (fixed seed, so a failure repeats). This is what
//! `cargo fuzz run corefile`, `query` and `message` explore for hours, checked in seconds on
//! every test run; a crash any finds gets a regression test here named after it.

#[path = "../fuzz/oracle/hickory.rs"]
mod hickory_oracle;
#[path = "../fuzz/oracle/query.rs"]
mod query_oracle;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use clusterdns::fuzzing::seeds::{
    COREFILE_DICTIONARY, MESSAGE_DICTIONARY, QUERY_DICTIONARY, corefile_seeds, message_seeds, query_seeds,
    readme_corefiles,
};
use clusterdns::fuzzing::{
    Expected, MessageOutcome, QueryHarness, corefile_signature, explore, fuzz_corefile, fuzz_message, hex, unhex,
};
use hickory_oracle::Agreement;

/// Mutations of Corefiles (about a second in a debug build), of queries (cheaper, so more) and
/// of responses (each decoded, passed on, decoded again and read by hickory: two to three
/// seconds).
const COREFILE_ITERATIONS: usize = 20_000;
const QUERY_ITERATIONS: usize = 100_000;
const MESSAGE_ITERATIONS: usize = 100_000;
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
        let out = h.run(&s.data, &query_oracle::verdict(&s.data));
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
    let distinct = explore(
        &seeds,
        QUERY_ITERATIONS,
        RNG_SEED,
        QUERY_DICTIONARY,
        |d| h.run(d, &query_oracle::verdict(d)),
        |o| o.signature(),
    );
    eprintln!("query: {QUERY_ITERATIONS} mutations in {:?}, {distinct} distinct outcomes", start.elapsed());
    assert!(distinct > 8, "only {distinct} distinct outcomes");
}

/// The message target as the cargo-fuzz target runs it: our decoder and the pass-on checks of
/// `fuzz_message`, then hickory's reading compared with ours. Panics on a disagreement that is
/// not a documented one.
fn message(data: &[u8]) -> (MessageOutcome, Agreement) {
    let out = fuzz_message(data);
    match hickory_oracle::compare(data, &out.decoded) {
        Ok(agreement) => (out, agreement),
        Err(e) => panic!("hickory and we disagree: {e}\ninput: {}", hex(data)),
    }
}

#[test]
fn message_corpus_decodes_passes_on_and_agrees_with_hickory() {
    let seeds = message_seeds();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for s in &seeds {
        let (_, agreement) = message(&s.data);
        *seen.entry(format!("{agreement:?}")).or_default() += 1;
    }
    eprintln!("message seeds: {seen:?}");
    // Most seeds are answers both read the same way; the malformed ones both reject.
    assert!(seen.get("Same").is_some_and(|&n| n > 20), "{seen:?}");
    assert!(seen.get("BothRejected").is_some_and(|&n| n > 8), "{seen:?}");
}

#[test]
fn message_mutations_never_panic_and_agree_with_hickory() {
    let seeds: Vec<Vec<u8>> = message_seeds().into_iter().map(|s| s.data).collect();
    let start = Instant::now();
    let mut agreements: BTreeMap<String, usize> = BTreeMap::new();
    let run = |data: &[u8]| {
        let (out, agreement) = message(data);
        *agreements.entry(format!("{agreement:?}")).or_default() += 1;
        out
    };
    let distinct = explore(&seeds, MESSAGE_ITERATIONS, RNG_SEED, MESSAGE_DICTIONARY, run, MessageOutcome::signature);
    eprintln!("message: {MESSAGE_ITERATIONS} mutations in {:?}, {distinct} distinct outcomes", start.elapsed());
    eprintln!("message: hickory {agreements:?}");
    assert!(distinct > 100, "only {distinct} distinct outcomes");
    // The run reaches messages both readers accept, not only errors.
    assert!(agreements.get("Same").is_some_and(|&n| n > MESSAGE_ITERATIONS / 50), "{agreements:?}");
}

/// The committed regression inputs (`tests/data/fuzz/<target>/*.hex`, each named after what it
/// found) and whatever cargo-fuzz left in this checkout (its grown corpus and crash artifacts,
/// gitignored: absent in CI), replayed through their target's checks, so a crash found locally
/// reproduces as a failing test. The committed ones are counted: an empty or unreadable
/// directory fails here rather than passing with nothing checked.
#[test]
fn committed_and_local_fuzz_inputs_replay() {
    let h = QueryHarness::new();
    let corefile = |d: &[u8]| drop(fuzz_corefile(d));
    let query = |d: &[u8]| drop(h.run(d, &query_oracle::verdict(d)));
    let message = |d: &[u8]| drop(message(d));
    type Run<'a> = &'a dyn Fn(&[u8]);
    let targets: [(&str, Run); 3] = [("corefile", &corefile), ("query", &query), ("message", &message)];
    let files = |dir: &Path| -> Vec<std::path::PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        files
    };
    let mut committed = BTreeMap::new();
    for (target, run) in targets {
        for f in files(&root().join("tests/data/fuzz").join(target)) {
            let text = std::fs::read_to_string(&f).unwrap();
            let data = unhex(text.trim()).unwrap_or_else(|| panic!("{}: not hex", f.display()));
            run(&data);
            *committed.entry(target).or_insert(0) += 1;
        }
        for dir in ["corpus", "artifacts"] {
            for f in files(&root().join("fuzz").join(dir).join(target)).iter().take(5000) {
                if let Ok(data) = std::fs::read(f) {
                    eprintln!("{}", f.display());
                    run(&data);
                }
            }
        }
    }
    for target in ["corefile", "query", "message"] {
        assert!(committed.get(target).is_some_and(|&n| n > 0), "no committed {target} inputs replayed: {committed:?}");
    }
}

// Regressions: inputs that once broke a target, each named after the bug it found.

/// A quoted key spanning lines with a comma inside: its pieces were given columns past the end
/// of the line. Found in the corpus grown by `cargo fuzz run corefile` once the position check
/// was added; the minimal form is `corefile::parse::tests::key_positions_stay_on_their_line`.
#[test]
fn key_position_past_line_end() {
    let input = unhex(
        "2e205c22202120202020286c6f67202271756f746501000026000000120a2c202020bfff7d7b6f747422222e302f313220610a2020d7d76c6f756f746564205c2d222000f6202020286c6f67202271756f746501000026000000120a2c202020bfff7d7b6f747422226e01010d0a696d706f7274202222212222220dffff20205a4f4e00",
    )
    .unwrap();
    let errors = fuzz_corefile(&input).unwrap_err();
    assert!(errors.to_string().contains("is already served by the server block at"), "{errors}");
}

/// An EDNS client subnet option with no data: hickory parses the option and rejects it, we pass
/// options on as bytes. The oracle took any error of hickory's in an OPT record for a length
/// error; found by `cargo fuzz run message` within seconds.
#[test]
fn empty_client_subnet_option_is_hickorys_to_reject() {
    let input = unhex(
        "42428180000100030000000103777777076578616d706c65036f72670000010001c00c000500010000012c000603776562c010c02d000100010000003c0004c0000201c02d000100010000003c0004c000020200002904d0000000000022000a0000000000000000000000000000000800000000000000000000000f00020003000000000018636c69656e74636b737276636f6f6b69000600016530323436393132000f00020003",
    )
    .unwrap();
    let (out, agreement) = message(&input);
    assert!(out.decoded.is_ok());
    assert_eq!(agreement, Agreement::Known(hickory_oracle::Known::HickoryParsesOption));
}

/// A MINFO record (a type hickory keeps raw) whose name runs, after a pointer, into the bytes
/// that pointed there: both readers accept the message, but the oracle's decompression of the
/// name with hickory's reader fails, which it reported as a disagreement rather than the known
/// overlapping-labels difference. Found by `cargo fuzz run message` after 360,000 runs.
#[test]
fn overlapping_labels_in_a_type_hickory_keeps_raw() {
    let input = unhex(
        "4242fe0000010001000000000a00ff11020304050607080003777777076578616d706c65340000000000000000000000000000000000000000000000000000000a00ff11020304050607080003777777076578616d706c0001c00c000e00010000003c0007c04c026e73c006",
    )
    .unwrap();
    let (out, agreement) = message(&input);
    assert!(out.decoded.is_ok());
    assert_eq!(agreement, Agreement::Known(hickory_oracle::Known::OverlappingLabels));
}

/// A query whose answer section has an owner name that is a pointer past the end of the
/// message. hickory's reader follows it and fails; a server reads only the names it uses, so
/// the record is whole and the query is answered. Found by the stable run once the verdict came
/// from hickory rather than from the decoder under test.
#[test]
fn pointer_past_the_end_in_a_skipped_record_is_answered() {
    let input = unhex(
        &std::fs::read_to_string(root().join("tests/data/fuzz/query/pointer-past-the-end-in-a-skipped-record.hex"))
            .unwrap(),
    );
    let input = input.unwrap();
    let expected = query_oracle::verdict(&input);
    assert!(
        matches!(&expected, Expected::Answer { question, .. } if question.0 == b"\x07example\x03\x00\xffg\x00"),
        "{expected:?}"
    );
    let out = QueryHarness::new().run(&input, &expected);
    assert!(out.udp.is_some() && out.tcp.is_some());
}

/// A question whose name is a pointer into the header, whose bytes then run as labels over the
/// pointer itself: hickory refuses to read it (overlapping labels), our decoder reads it, and
/// the oracle reads it as RFC 1035 allows; the records after it are not whole, so: FORMERR with
/// that question echoed.
#[test]
fn question_through_a_pointer_into_the_header_gets_formerr() {
    let input = unhex(
        &std::fs::read_to_string(root().join("tests/data/fuzz/query/question-through-a-pointer-into-the-header.hex"))
            .unwrap(),
    );
    let input = input.unwrap();
    let expected = query_oracle::verdict(&input);
    assert!(matches!(&expected, Expected::Error { rcode: 1, question: Some(_), .. }), "{expected:?}");
    QueryHarness::new().run(&input, &expected);
}
