//! Writes the fuzz targets' seed corpora, extracted from the source tree as the stable test
//! `tests/fuzz_corpus.rs` extracts them, into `fuzz/corpus/<target>/generated-*` (ignored by
//! git: they are derived). Run before `cargo fuzz run`:
//!
//! ```text
//! cargo run --example fuzz_seeds
//! ```

use std::path::Path;

use clusterdns::fuzzing::seeds::{Seed, corefile_seeds, query_seeds};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (target, seeds) in [("corefile", corefile_seeds(root)), ("query", query_seeds())] {
        let dir = root.join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        for old in std::fs::read_dir(&dir)?.filter_map(Result::ok) {
            if old.file_name().to_string_lossy().starts_with("generated-") {
                std::fs::remove_file(old.path())?;
            }
        }
        for (i, Seed { name, data }) in seeds.iter().enumerate() {
            let file: String =
                name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
            std::fs::write(dir.join(format!("generated-{i:03}-{file}")), data)?;
        }
        println!("{}: {} seeds", dir.display(), seeds.len());
    }
    Ok(())
}
