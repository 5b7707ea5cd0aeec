//! The data flow stays one way: the engine, the directory and the UCServer
//! client know nothing of the composition root or the command line, the
//! directory knows nothing of EWS autodiscover, and the engine builds no
//! concrete client. Read from the source tree, so a new `use` that breaks
//! it fails here, naming the file and the line.

use std::path::{Path, PathBuf};

/// Paths no module of `area` may name, and why.
struct Rule {
    area: &'static str,
    forbidden: &'static [&'static str],
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        area: "directory",
        forbidden: &["crate::app", "crate::cli", "ews_toolkit::autodiscover"],
        why: "the directory finds plain entries; `app` turns them into autodiscover input",
    },
    Rule {
        area: "replication",
        forbidden: &[
            "crate::app",
            "crate::cli",
            "SqliteStateStore",
            "UcServerClient",
            "AdDirectory",
            "StaticDirectory",
            "AnyDirectory",
            "ews_toolkit::client",
            "ews_toolkit::transport",
            "ews_toolkit::autodiscover",
            "ews_toolkit::availability_reader",
            "ews_toolkit::AvailabilityReader",
            "ews_toolkit::EwsClient",
        ],
        why: "the engine talks through its ports; the adapters for concrete clients live in `app`",
    },
    Rule {
        area: "ucserver",
        forbidden: &["crate::app", "crate::cli", "crate::replication"],
        why: "the UCServer client is a client; `app` makes it the engine's port",
    },
];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `file:line: text` for each line of code (comments left out) under
/// `src/<area>` naming a path of `forbidden`.
fn violations(src: &Path, rule: &Rule) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&src.join(rule.area), &mut files);
    let area_file = src.join(format!("{}.rs", rule.area));
    if area_file.exists() {
        files.push(area_file);
    }
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if let Some(path) = rule.forbidden.iter().find(|p| code.contains(*p)) {
                found.push(format!(
                    "{}:{}: names {path}: {}",
                    file.strip_prefix(src).unwrap_or(&file).display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn the_engine_the_directory_and_the_ucserver_client_import_nothing_from_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut report = Vec::new();
    for rule in RULES {
        let found = violations(&src, rule);
        if !found.is_empty() {
            report.push(format!(
                "{} ({}):\n  {}",
                rule.area,
                rule.why,
                found.join("\n  ")
            ));
        }
    }
    assert!(
        report.is_empty(),
        "imports against the data flow:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_rules_catch_a_forbidden_import() {
    let dir = tempfile::tempdir().unwrap();
    let area = dir.path().join("directory");
    std::fs::create_dir(&area).unwrap();
    std::fs::write(
        area.join("scp.rs"),
        "// ews_toolkit::autodiscover in a comment is fine\nuse ews_toolkit::autodiscover::ScpSource;\n",
    )
    .unwrap();
    let found = violations(dir.path(), &RULES[0]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("directory/scp.rs:2: names ews_toolkit::autodiscover"),
        "{}",
        found[0]
    );
}
