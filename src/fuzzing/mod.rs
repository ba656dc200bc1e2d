//! Entry points for fuzzing, shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and the
//! stable test suite (`tests/fuzz_corpus.rs`), so an input that breaks one breaks the other.
//!
//! * [`fuzz_corefile`]: bytes → [`parse_str_with`] (imports from a fixed set of files in memory,
//!   a fixed environment) → [`plan`]. Must never panic, and every error must name a position.
//! * [`QueryHarness`]: bytes → [`ZoneTable::handle`](crate::server::dispatch::ZoneTable::handle)
//!   of a zone table built from a real Corefile by the server's own build step, over UDP and
//!   TCP, exactly as the listeners call it. Must never panic; a packet the decoder does not drop
//!   gets exactly one reply, which must be well formed, carry the query's ID and echo its
//!   question byte for byte.
//! * [`fuzz_message`]: bytes → [`decode_message`](crate::dns::decode_message), as a forwarder
//!   reads an upstream's answer. Must never panic; whatever it accepts, passed on to a client
//!   ([`pass_on`]), must decode again to the same records, rcode, flags and EDNS options.
//!   hickory-proto's reader is the independent oracle, where hickory is a dependency
//!   (`fuzz/oracle/hickory.rs`, shared by the cargo-fuzz target and `tests/fuzz_corpus.rs`).
//! * [`seeds`]: the seed corpora, extracted from the source tree when asked (README examples,
//!   Corefiles in the tests) plus built-in queries and responses; nothing derived is committed.
//! * [`Mutator`]: the mutations of the bounded pseudo-random run of the stable suite.
//!
//! A broken invariant panics with the input in hex, which is what a fuzzer reports as a crash.

use std::collections::HashMap;

use crate::corefile::{Errors, MemoryFiles, parse_str_with};
use crate::server::config::{Plan, plan};

mod message;
mod mutate;
mod query;
pub mod seeds;

pub use message::{MessageOutcome, WireMessage, fuzz_message, pass_on, pointer, wire_name};
pub use mutate::Mutator;
pub use query::{Expected, QueryHarness, QueryOutcome, WireQuestion};

/// The name the fuzzed Corefile is parsed under; imports resolve against [`fuzz_files`].
pub const FUZZ_COREFILE: &str = "/fuzz/Corefile";

/// The files a fuzzed Corefile may import: a snippet-like file, a directory for globs, a file
/// importing another, and one importing itself.
pub fn fuzz_files() -> MemoryFiles {
    MemoryFiles::new()
        .with("/fuzz/common", "whoami\n")
        .with("/fuzz/conf.d/a.conf", "a.example {\n    whoami\n}\n")
        .with("/fuzz/conf.d/b.conf", "b.example:1053 {\n    import ../common\n}\n")
        .with("/fuzz/binds", "bind 127.0.0.1 {\n    except ::1\n}\n")
        .with("/fuzz/loop", "import loop\n")
        .with("/fuzz/unterminated", "\"open\n")
}

/// The environment a fuzzed Corefile sees: ordinary values, and values that look like syntax.
pub fn fuzz_env(name: &str) -> Option<String> {
    let v = match name {
        "ZONE" => "example.org",
        "PORT" => "1053",
        "EMPTY" => "",
        "OPEN" => "{",
        "CLOSE" => "}",
        "SPACE" => "a b",
        "QUOTE" => "\"",
        "HASH" => "#",
        "NEWLINE" => "\n",
        "NESTED" => "{$ZONE}",
        _ => return None,
    };
    Some(v.to_string())
}

/// Parses and plans `data` as a Corefile. Panics only when an invariant breaks: an error
/// without a position or pointing outside the text, or a plan whose blocks have no keys or zones.
pub fn fuzz_corefile(data: &[u8]) -> Result<Plan, Errors> {
    let text = String::from_utf8_lossy(data);
    let files = fuzz_files();
    let result = parse_str_with(FUZZ_COREFILE, &text, &fuzz_env, &files)
        .map_err(Errors::from)
        .and_then(|corefile| plan(&corefile, 53));
    match &result {
        Ok(p) => {
            for b in &p.blocks {
                assert!(!b.keys.is_empty() && !b.zones.is_empty(), "a planned block without zones: {}", hex(data));
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an empty error list: {}", hex(data));
            for e in &errors.0 {
                assert!(e.pos.line >= 1 && e.pos.col >= 1, "error without a position: {e}\ninput: {}", hex(data));
                assert!(!e.message.is_empty(), "error without a message at {}\ninput: {}", e.pos, hex(data));
                // A position in the fuzzed file lies on one of its lines, at most just past its end.
                if &*e.pos.file == FUZZ_COREFILE {
                    let line = text.split('\n').nth(e.pos.line as usize - 1);
                    let width = line.map(|l| l.trim_start_matches('\u{feff}').chars().count() as u32);
                    assert!(
                        width.is_some_and(|w| e.pos.col <= w + 1),
                        "error outside the text: {e}\ninput: {}",
                        hex(data)
                    );
                }
            }
        }
    }
    result
}

/// A short description of what a Corefile input did, for steering the stable run towards new
/// behaviour: `ok N` or the first error's kind (its message up to the first quoted word, without
/// numbers), so that `unknown directive 'a'` and `unknown directive 'b'` count once.
pub fn corefile_signature(result: &Result<Plan, Errors>) -> String {
    match result {
        Ok(p) => format!("ok {}", p.blocks.len()),
        Err(e) => {
            let first = &e.0[0];
            let kind: String = first
                .message
                .split(['\'', '/'])
                .next()
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_ascii_digit())
                .collect();
            format!("{} {kind}", first.plugin.unwrap_or("syntax"))
        }
    }
}

/// `data` in hex, to paste into a regression test.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`hex`].
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Runs `run` over the seeds and then `iterations` mutations of them (seeded, so a failure
/// repeats), keeping a mutation as a new seed when `signature` says it did something not seen
/// before. Returns how many distinct signatures were seen.
pub fn explore<T>(
    seeds: &[Vec<u8>],
    iterations: usize,
    rng_seed: u64,
    dictionary: &[&[u8]],
    mut run: impl FnMut(&[u8]) -> T,
    signature: impl Fn(&T) -> String,
) -> usize {
    let mut pool: Vec<Vec<u8>> = seeds.to_vec();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for s in seeds {
        *seen.entry(signature(&run(s))).or_default() += 1;
    }
    let mut mutator = Mutator::new(rng_seed, dictionary);
    for _ in 0..iterations {
        let input = mutator.mutate(&pool);
        let sig = signature(&run(&input));
        let count = seen.entry(sig).or_default();
        *count += 1;
        // New behaviour is worth mutating further; cap the pool so the run stays bounded.
        if *count == 1 && pool.len() < seeds.len() + 2000 {
            pool.push(input);
        }
    }
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 1, 0xab, 0xff])), Some(vec![0, 1, 0xab, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn corefile_entry_point_parses_and_plans() {
        let p = fuzz_corefile(b"import conf.d/*\n{$ZONE}:{$PORT} {\n    import common\n}\n").unwrap();
        let zones: Vec<String> = p.blocks.iter().map(|b| b.zones[0].to_string()).collect();
        assert_eq!(zones, ["a.example.", "b.example.", "example.org."]);
        let e = fuzz_corefile(b". {\n    import loop\n}\n").unwrap_err();
        assert_eq!(e.to_string(), "/fuzz/loop:1:1: import cycle: /fuzz/Corefile -> /fuzz/loop -> /fuzz/loop");
    }
}
