//! `config init` on the command line: the path as `-c PATH` and as a
//! positional argument, including the command the missing-configuration
//! error suggests.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::lab::BIN;

/// Runs the binary with `input` on stdin.
fn run(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `config init` took `path` as its target: it announces it and then stops
/// at the end of the (empty) input, writing nothing.
fn assert_init_started_for(output: &Output, path: &Path) {
    let text = text(output);
    assert!(
        text.contains(&format!("Writing a configuration to {}", path.display())),
        "{text}"
    );
    assert!(text.contains("the input ended"), "{text}");
    assert!(!path.exists());
}

#[test]
fn config_init_takes_the_path_as_c_and_as_a_positional_argument() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("config.toml");
    let target_arg = target.to_str().unwrap();
    for args in [
        ["config", "init", "-c", target_arg],
        ["config", "init", "--config", target_arg],
    ] {
        assert_init_started_for(&run(&args, ""), &target);
    }
    assert_init_started_for(&run(&["config", "init", target_arg], ""), &target);
    let both = run(&["config", "init", "-c", target_arg, target_arg], "");
    assert!(!both.status.success(), "{}", text(&both));
}

#[test]
fn the_command_the_missing_configuration_error_suggests_works() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("missing/config.toml");
    let output = run(&["check", "-c", target.to_str().unwrap()], "");
    let message = text(&output);
    let suggested = message
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in backquotes: {message}"));
    let mut words = suggested.split_whitespace();
    assert_eq!(words.next(), Some("ews-calendar-replicator"), "{message}");
    let args: Vec<&str> = words.collect();
    assert_init_started_for(&run(&args, ""), &target);
}

#[test]
fn demo_takes_the_privacy_mode_in_the_files_spelling_and_the_old_one() {
    for spelling in ["times_only", "times-only"] {
        let output = run(
            &[
                "demo",
                "--users",
                "4",
                "--events",
                "2",
                "--changed",
                "1",
                "--show-users",
                "1",
                "--push-seconds",
                "0",
                "--private-appointments",
                spelling,
            ],
            "",
        );
        let text = text(&output);
        assert!(output.status.success(), "{spelling}: {text}");
        assert!(text.contains("Private appointments: TimesOnly"), "{text}");
    }
}
