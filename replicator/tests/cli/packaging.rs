//! What the Debian package ships from the binary itself: `--version`, and
//! man pages and shell completions that match the command line.

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use crate::support::lab::BIN;

fn stdout(args: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn version_names_the_version_the_commit_and_the_build_date() {
    let version = stdout(&["--version"]);
    let rest = version
        .trim()
        .strip_prefix(&format!(
            "ews-calendar-replicator {} (commit ",
            env!("CARGO_PKG_VERSION")
        ))
        .unwrap_or_else(|| panic!("{version}"));
    let (commit, date) = rest
        .strip_suffix(')')
        .and_then(|r| r.split_once(", built "))
        .unwrap_or_else(|| panic!("{version}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );
    assert!(
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(),
        "{version}"
    );
}

/// The subcommands `--help` lists under "Commands:" (without `help`).
fn subcommands(args: &[&str]) -> BTreeSet<String> {
    let help = stdout(&[args, &["--help"]].concat());
    help.split("Commands:")
        .nth(1)
        .unwrap_or_else(|| panic!("no Commands: in {help}"))
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn man_pages_and_completions_cover_every_command_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&["generate-docs", "--out-dir", dir.path().to_str().unwrap()]);
    let bash =
        fs::read_to_string(dir.path().join("completions/ews-calendar-replicator.bash")).unwrap();
    let zsh = fs::read_to_string(dir.path().join("completions/_ews-calendar-replicator")).unwrap();
    let fish =
        fs::read_to_string(dir.path().join("completions/ews-calendar-replicator.fish")).unwrap();
    let main_page = fs::read_to_string(dir.path().join("man/ews-calendar-replicator.1")).unwrap();

    let top = subcommands(&[]);
    for expected in ["run", "once", "check", "status", "config", "demo", "sim"] {
        assert!(top.contains(expected), "{expected} not in --help: {top:?}");
    }
    let mut pages = Vec::new();
    for command in &top {
        pages.push(command.clone());
        if ["config", "sim"].contains(&command.as_str()) {
            for sub in subcommands(&[command]) {
                pages.push(format!("{command}-{sub}"));
                for shell in [&bash, &zsh, &fish] {
                    assert!(shell.contains(&sub), "{command} {sub} not completed");
                }
            }
        }
        assert!(
            main_page.contains(command.as_str()),
            "{command} not in the man page"
        );
        for shell in [&bash, &zsh, &fish] {
            assert!(shell.contains(command.as_str()), "{command} not completed");
        }
    }
    assert!(pages.contains(&"sim-lab".to_owned()), "{pages:?}");
    assert!(pages.contains(&"config-init".to_owned()), "{pages:?}");
    for page in &pages {
        let path = dir
            .path()
            .join(format!("man/ews-calendar-replicator-{page}.1"));
        assert!(path.is_file(), "no man page {}", path.display());
    }
    // Options: what `check --help` offers, the page and completions offer.
    let check_page =
        fs::read_to_string(dir.path().join("man/ews-calendar-replicator-check.1")).unwrap();
    for option in ["--config", "--json", "--mailbox"] {
        assert!(stdout(&["check", "--help"]).contains(option));
        // roff escapes the dashes: \-\-json
        assert!(
            check_page.contains(&option.replace('-', "\\-")),
            "{option} not in the check page"
        );
        assert!(bash.contains(option), "{option} not in the bash completion");
    }
    // The hidden generator is neither documented nor completed.
    assert!(
        !main_page.contains("generate\\-docs"),
        "generate-docs in the man page"
    );
    assert!(!bash.contains("generate-docs"), "generate-docs completed");
}
