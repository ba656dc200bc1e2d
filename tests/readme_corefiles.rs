//! The docs are tests: every `corefile` block of every plugin README starts as-is.

mod common;

use std::path::Path;

use common::*;

/// The Corefiles of a README: the bodies of blocks fenced with ```` ```corefile ```` or
/// `~~~ corefile`.
fn corefile_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let fence = line.trim_start();
        let marker = if fence.starts_with("```") {
            "```"
        } else if fence.starts_with("~~~") {
            "~~~"
        } else {
            continue;
        };
        if fence[3..].trim() != "corefile" {
            continue;
        }
        let body: Vec<&str> = lines.by_ref().take_while(|l| !l.trim_start().starts_with(marker)).collect();
        blocks.push(body.join("\n") + "\n");
    }
    blocks
}

#[test]
fn every_readme_corefile_starts() {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/plugins");
    let mut started = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(&plugins).unwrap().map(|e| e.unwrap().path()).collect();
    dirs.sort();
    for dir in dirs {
        let Ok(readme) = std::fs::read_to_string(dir.join("README.md")) else { continue };
        for corefile in corefile_blocks(&readme) {
            if let Err(e) = TestServer::try_start(&corefile) {
                panic!("{}/README.md: this Corefile does not start:\n{corefile}\n{e}", dir.display());
            }
            started += 1;
        }
    }
    assert!(started >= 10, "only {started} README Corefiles found");
}

#[test]
fn fences_are_found() {
    let md = "a\n~~~ corefile\n. {\n whoami\n}\n~~~\n```txt\nx\n```\n``` corefile\nb {\n}\n```\n";
    assert_eq!(corefile_blocks(md), [". {\n whoami\n}\n", "b {\n}\n"]);
}
