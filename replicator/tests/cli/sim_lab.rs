//! `sim lab --dir DIR`: the simulators it starts and the configuration it
//! writes work with `check`, `once` and `status` as they are, and Ctrl-C
//! stops it.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::lab::BIN;

fn run(args: &[&str], config: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Kills the lab if the test fails before stopping it.
struct Lab(std::process::Child);

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sim_lab_serves_check_once_and_status_from_the_config_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let lab_dir = dir.path().join("lab");
    let printed = dir.path().join("lab.out");
    let mut lab = Lab(Command::new(BIN)
        .args(["sim", "lab", "--users", "8", "--dir"])
        .arg(&lab_dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&printed).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sim lab starts"));

    // The commands to try are printed once the configuration is written.
    let config = lab_dir.join("config.toml");
    let started = Instant::now();
    while !fs::read_to_string(&printed)
        .unwrap()
        .contains("press Ctrl-C")
    {
        // A guard against a hang only.
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "sim lab printed no commands: {}",
            fs::read_to_string(&printed).unwrap()
        );
        assert!(lab.0.try_wait().unwrap().is_none(), "sim lab exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    let banner = fs::read_to_string(&printed).unwrap();
    for command in ["check -c", "once -c", "--dry-run", "run -c", "status -c"] {
        assert!(banner.contains(command), "{command} not printed: {banner}");
    }
    assert!(banner.contains(&config.display().to_string()), "{banner}");
    for secret in ["ucserver.password", "exchange.password", "config.toml"] {
        let mode = fs::metadata(lab_dir.join(secret))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{secret} mode {:o}", mode & 0o777);
    }
    let config_text = fs::read_to_string(&config).unwrap();
    assert!(config_text.contains("kind = \"static\""), "{config_text}");
    assert!(config_text.contains("ca_file"), "{config_text}");
    assert!(
        !config_text.contains("password ="),
        "a password in the file: {config_text}"
    );

    let check = run(&["check"], &config);
    let check_text = text(&check);
    assert!(check.status.success(), "check failed:\n{check_text}");
    assert!(check_text.contains("PASS"), "{check_text}");
    assert!(!check_text.contains("FAIL"), "{check_text}");

    let dry_run = run(&["once", "--dry-run"], &config);
    let dry_text = text(&dry_run);
    assert!(
        dry_run.status.success(),
        "once --dry-run failed:\n{dry_text}"
    );
    assert!(dry_text.contains("would write"), "{dry_text}");

    let once = run(&["once"], &config);
    let once_text = text(&once);
    assert!(once.status.success(), "once failed:\n{once_text}");
    assert!(once_text.contains(" written "), "{once_text}");
    assert!(!once_text.contains("FAILED"), "{once_text}");

    let status = run(&["status"], &config);
    assert!(status.status.success(), "status failed:\n{}", text(&status));

    // Ctrl-C: SIGINT to the lab, which reports the writes it received.
    let pid = lab.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = lab.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "sim lab did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "sim lab exited with {exit}");
    let printed = fs::read_to_string(&printed).unwrap();
    let writes: usize = printed
        .split("stopped after ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no write count: {printed}"));
    assert!(writes > 0, "{printed}");
}
