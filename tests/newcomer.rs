//! What a newcomer reads and runs first must be true: the README names the toolchain the crate
//! needs, links nothing outside the repository, and says which of the cluster plugins are still
//! to come; `.ci/setup` installs every external tool the tests run.

use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn the_readme_names_the_toolchain_cargo_toml_asks_for() {
    let manifest = read("Cargo.toml");
    let field = |name: &str| {
        let line = manifest.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in Cargo.toml"));
        line.split('"').nth(1).unwrap().to_string()
    };
    let (edition, rust) = (field("edition"), field("rust-version"));
    let readme = read("README.md");
    assert!(readme.contains(&format!("Rust {rust} or newer")), "README does not say Rust {rust}");
    assert!(readme.contains(&format!("edition {edition}")), "README does not name edition {edition}");
    assert!(readme.contains("rustup"), "README does not say how to get the toolchain");
}

#[test]
fn docs_link_nothing_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![root.join("README.md"), root.join("bench/README.md"), root.join("docs/DESIGN.md")];
    for e in std::fs::read_dir(root.join("src/plugins")).unwrap() {
        let p = e.unwrap().path().join("README.md");
        if p.exists() {
            docs.push(p);
        }
    }
    assert!(docs.len() > 10, "{docs:?}");
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (n, line) in text.lines().enumerate() {
            assert!(!line.contains("../shared"), "{}:{}: points outside the repository: {line}", doc.display(), n + 1);
        }
        // Every relative link resolves to a file in the checkout.
        for piece in text.split("](").skip(1) {
            let target = piece.split(')').next().unwrap().split('#').next().unwrap();
            if target.is_empty() || target.contains("://") {
                continue;
            }
            let path = doc.parent().unwrap().join(target);
            assert!(path.exists(), "{}: link to {target}, which the repository does not have", doc.display());
        }
    }
}

/// The plugins of the kube-dns ConfigMap that clusterdns is still to implement: the README says so
/// while they are missing, and must stop saying so when one lands (this fails until it does).
#[test]
fn the_readme_says_which_cluster_plugins_are_still_to_come() {
    let readme = read("README.md");
    let to_come =
        readme.split("Still to come:").nth(1).expect("a 'Still to come:' paragraph").split("\n\n").next().unwrap();
    for plugin in ["kubernetes", "forward", "cache", "loop"] {
        let registered = clusterdns::plugins::ALL.lookup(plugin).is_some();
        let said = to_come.contains(&format!("*{plugin}*"));
        assert_eq!(said, !registered, "{plugin}: registered {registered}, README says it is to come: {said}");
    }
}

/// Every external command the tests run is one `.ci/setup` installs when missing.
#[test]
fn ci_setup_installs_every_tool_the_tests_run() {
    let setup = read(".ci/setup");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut sources = String::new();
    let mut dirs = vec![root];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("newcomer.rs") {
                sources += &std::fs::read_to_string(&p).unwrap();
            }
        }
    }
    for (tool, package) in [
        ("dig", "bind9-dnsutils"),
        ("kdig", "knot-dnsutils"),
        ("promtool", "prometheus"),
        ("ip", "iproute2"),
        ("curl", "curl"),
        ("kubectl", "kubernetes-client"),
        ("nslookup", "bind9-dnsutils"),
        ("getent", "libc-bin"),
        ("nsenter", "util-linux"),
    ] {
        assert!(sources.contains(&format!("\"{tool}\"")), "no test runs {tool}: drop it from this table");
        let line = format!("command -v {tool} >/dev/null || need+=({package})");
        assert!(setup.contains(&line), ".ci/setup does not install {tool}: want `{line}`");
    }
}
