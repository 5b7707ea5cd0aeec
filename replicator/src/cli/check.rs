//! `check`: prints each step with PASS/WARN/FAIL/SKIP, what was found and
//! the fix.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use ews_calendar_replicator::app::check::{self, CheckReport};

use super::load_config;
use super::output::print_stdout;

pub async fn check(path: &Path, json: bool, mailbox: Option<String>) -> Result<ExitCode, String> {
    let config = match load_config(path) {
        Ok(c) => c,
        Err(message) => {
            // A configuration error is the first failed step.
            if json {
                let value = serde_json::json!({ "steps": [{
                    "area": "configuration", "name": "file", "outcome": "fail",
                    "detail": message, "fix": "correct the key named, see config.example.toml"
                }]});
                print_stdout(|out| writeln!(out, "{value}"))?;
                return Ok(ExitCode::from(1));
            }
            return Err(message);
        }
    };
    let report = check::run(&config, mailbox).await;
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        print_stdout(|out| writeln!(out, "{text}"))?;
    } else {
        print_stdout(|out| print(out, &report))?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print(out: &mut dyn Write, report: &CheckReport) -> std::io::Result<()> {
    for step in &report.steps {
        writeln!(
            out,
            "[{}] {:<13} {:<20} {}",
            step.outcome.label(),
            step.area,
            step.name,
            step.detail
        )?;
        if let Some(fix) = &step.fix {
            writeln!(out, "       fix: {fix}")?;
        }
    }
    let failed = report
        .steps
        .iter()
        .filter(|s| s.outcome == check::Outcome::Fail)
        .count();
    if failed == 0 {
        writeln!(out, "all checks passed")
    } else {
        writeln!(out, "{failed} check(s) failed")
    }
}
