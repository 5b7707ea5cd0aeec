//! `status`: the last cycles and the users whose last attempt failed, from
//! the state database (read only; it is not created when missing).

use std::path::Path;
use std::process::ExitCode;

use ews_calendar_replicator::replication::StateStore;
use ews_calendar_replicator::state::SqliteStateStore;
use serde_json::json;

use super::load_config;

pub fn status(path: &Path, as_json: bool, cycles: usize) -> Result<ExitCode, String> {
    let config = load_config(path)?;
    if !config.state_path.exists() {
        return Err(format!(
            "there is no state database at {}: the service has not completed a cycle yet, or `state.path` points elsewhere",
            config.state_path.display()
        ));
    }
    let state = SqliteStateStore::open(&config.state_path).map_err(|e| e.to_string())?;
    let recent = state.recent_cycles(cycles).map_err(|e| e.to_string())?;
    let users = state.users().map_err(|e| e.to_string())?;
    let failing: Vec<_> = users.iter().filter(|u| u.last_error.is_some()).collect();
    if as_json {
        let value = json!({
            "state": config.state_path.display().to_string(),
            "cycles": recent.iter().map(|c| json!({
                "started_at": c.started_at,
                "finished_at": c.finished_at,
                "duration_ms": (c.finished_at - c.started_at).num_milliseconds(),
                "users_listed": c.users_listed,
                "written": c.written,
                "unchanged": c.unchanged,
                "skipped": c.skipped,
                "failed": c.failed.iter().map(|f| json!({"user": f.user_name, "reason": f.reason})).collect::<Vec<_>>(),
                "overran": c.overran,
                "error": c.error,
            })).collect::<Vec<_>>(),
            "users_known": users.len(),
            "users_failing": failing.iter().map(|u| json!({
                "user": u.user_name,
                "error": u.last_error,
                "at": u.last_error_at,
                "last_written_at": u.written_at,
            })).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("state: {}", config.state_path.display());
    if recent.is_empty() {
        println!("no cycles recorded yet");
    }
    println!(
        "{:<20} {:>9} {:>6} {:>8} {:>9} {:>8} {:>7}  note",
        "started (UTC)", "duration", "users", "written", "unchanged", "skipped", "failed"
    );
    for c in &recent {
        let mut note = Vec::new();
        if c.overran {
            note.push("longer than the interval".to_owned());
        }
        if let Some(e) = &c.error {
            note.push(e.clone());
        }
        println!(
            "{:<20} {:>8.1}s {:>6} {:>8} {:>9} {:>8} {:>7}  {}",
            c.started_at.format("%Y-%m-%d %H:%M:%S"),
            (c.finished_at - c.started_at).num_milliseconds() as f64 / 1000.0,
            c.users_listed,
            c.written,
            c.unchanged,
            c.skipped,
            c.failed.len(),
            note.join("; ")
        );
    }
    println!(
        "{} users known, {} failing at their last attempt",
        users.len(),
        failing.len()
    );
    for u in failing {
        println!(
            "  {:<24} {}  {}",
            u.user_name,
            u.last_error_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            u.last_error.as_deref().unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
