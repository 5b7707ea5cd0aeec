//! `status`: the last cycles and the users whose last attempt failed, from
//! the state database (read only; it is not created when missing). Needs no
//! password: only `[state] path` is taken from the configuration.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use ews_calendar_replicator::config::{self, LoadContext};
use ews_calendar_replicator::replication::{CycleRecord, FeedRecord, StateStore, UserRecord};
use ews_calendar_replicator::state::SqliteStateStore;
use serde_json::{json, Value};

use super::output::print_stdout;

/// Names shown per group of identical failures in the text output.
const NAMES_PER_GROUP: usize = 5;

/// `status`; with `as_json` every outcome is JSON on stdout, an error as
/// `{"error": "..."}` with exit code 1.
pub fn status(path: &Path, as_json: bool, cycles: usize) -> Result<ExitCode, String> {
    let result = read(path, cycles);
    if !as_json {
        return result.and_then(|view| {
            print_stdout(|out| print_text(out, &view))?;
            Ok(ExitCode::SUCCESS)
        });
    }
    let (value, code) = match result {
        Ok(view) => (to_json(&view), ExitCode::SUCCESS),
        Err(message) => (json!({ "error": message }), ExitCode::FAILURE),
    };
    let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
    print_stdout(|out| writeln!(out, "{text}"))?;
    Ok(code)
}

/// What `status` shows.
struct View {
    state_path: String,
    recent: Vec<CycleRecord>,
    /// The newest cycle that handled users, when the newest rows are
    /// failed starts.
    last_ran: Option<CycleRecord>,
    users: Vec<UserRecord>,
    /// Exchange's change notifications as the service last recorded them.
    feed: Option<FeedRecord>,
}

impl View {
    /// The newest row, when it says that no cycle could run.
    fn not_running(&self) -> Option<&CycleRecord> {
        self.recent.first().filter(|c| c.could_not_run)
    }

    fn failing(&self) -> Vec<&UserRecord> {
        self.users
            .iter()
            .filter(|u| u.last_error.is_some())
            .collect()
    }

    /// Users failing with the same reason, most users first.
    fn failures_by_reason(&self) -> Vec<(&str, Vec<&UserRecord>)> {
        let mut groups: BTreeMap<&str, Vec<&UserRecord>> = BTreeMap::new();
        for user in self.failing() {
            let reason = user.last_error.as_deref().unwrap_or_default();
            groups.entry(reason).or_default().push(user);
        }
        let mut groups: Vec<_> = groups.into_iter().collect();
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        groups
    }
}

fn read(path: &Path, cycles: usize) -> Result<View, String> {
    let state_path =
        config::load_state_path(path, &LoadContext::from_process()).map_err(|e| e.to_string())?;
    if !state_path.exists() {
        return Err(format!(
            "there is no state database at {}: the service has not completed a cycle yet, or `state.path` points elsewhere",
            state_path.display()
        ));
    }
    let state = SqliteStateStore::open(&state_path).map_err(|e| e.to_string())?;
    let recent = state.recent_cycles(cycles).map_err(|e| e.to_string())?;
    let last_ran = match recent.first() {
        Some(newest) if newest.could_not_run => {
            state.last_cycle_that_ran().map_err(|e| e.to_string())?
        }
        _ => None,
    };
    let users = state.users().map_err(|e| e.to_string())?;
    let feed = state.feed_status().map_err(|e| e.to_string())?;
    Ok(View {
        state_path: state_path.display().to_string(),
        recent,
        last_ran,
        users,
        feed,
    })
}

fn reason_of(row: &CycleRecord) -> &str {
    let error = row.error.as_deref().unwrap_or("the cycle could not run");
    error.strip_prefix("could not run: ").unwrap_or(error)
}

fn minute(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// "no cycle since 09:12: UCServer unreachable ..." when the newest rows
/// are failed starts.
fn not_running_line(view: &View) -> Option<String> {
    let row = view.not_running()?;
    let since = match &view.last_ran {
        Some(last) => format!("no cycle since {}", minute(last.finished_at)),
        None => "no cycle has run yet".to_owned(),
    };
    let tries = if row.attempts > 1 {
        format!(
            " ({} attempts from {} to {})",
            row.attempts,
            minute(row.started_at),
            minute(row.finished_at)
        )
    } else {
        format!(" (at {})", minute(row.finished_at))
    };
    Some(format!("{since}: {}{tries}", reason_of(row)))
}

fn second(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Polled mailboxes by reason, most mailboxes first.
fn polled_by_reason(feed: &FeedRecord) -> Vec<(&str, Vec<&str>)> {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (mailbox, reason) in &feed.feed.polled {
        groups.entry(reason).or_default().push(mailbox);
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    groups
}

/// The change notification lines: subscribed and polled mailboxes, the
/// last event, what the push refreshes did.
fn print_feed(out: &mut dyn Write, feed: Option<&FeedRecord>) -> std::io::Result<()> {
    let Some(record) = feed else {
        return writeln!(
            out,
            "change notifications: none recorded (exchange.notifications off, or the service has not run with them yet); calendars are read by the cycle"
        );
    };
    let f = &record.feed;
    writeln!(
        out,
        "change notifications (as of {}): {} mailboxes subscribed, {} polled by the cycle only, {} event connections, last event {}",
        second(record.recorded_at),
        f.subscribed,
        record.polled_total,
        f.connections,
        f.last_event_at.map(second).unwrap_or_else(|| "none yet".to_owned()),
    )?;
    writeln!(
        out,
        "  {} change events ({} resyncs), {} push refreshes wrote {} lists, {} subscriptions made again",
        record.changes, record.resyncs, record.refreshes, record.written, f.resubscribed
    )?;
    for (reason, mailboxes) in polled_by_reason(record) {
        let more = mailboxes.len().saturating_sub(NAMES_PER_GROUP);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        let names: Vec<&str> = mailboxes.iter().take(NAMES_PER_GROUP).copied().collect();
        writeln!(out, "  polled, {} mailboxes: {reason}", mailboxes.len())?;
        writeln!(out, "      {}{more}", names.join(", "))?;
    }
    if record.polled_total > f.polled.len() {
        writeln!(
            out,
            "  ({} polled mailboxes not listed: the state database keeps the first {})",
            record.polled_total - f.polled.len(),
            f.polled.len()
        )?;
    }
    Ok(())
}

fn print_text(out: &mut dyn Write, view: &View) -> std::io::Result<()> {
    writeln!(out, "state: {}", view.state_path)?;
    if let Some(line) = not_running_line(view) {
        writeln!(out, "{line}")?;
    }
    if view.recent.is_empty() {
        writeln!(out, "no cycles recorded yet")?;
    }
    writeln!(
        out,
        "{:<20} {:>9} {:>6} {:>8} {:>9} {:>8} {:>7}  note",
        "started (UTC)", "duration", "users", "written", "unchanged", "skipped", "failed"
    )?;
    for c in &view.recent {
        let mut note = Vec::new();
        if c.partial {
            note.push("partial: only the users named by once --user".to_owned());
        }
        if c.overran {
            note.push("longer than the interval".to_owned());
        }
        if let Some(e) = &c.error {
            note.push(e.clone());
        }
        if c.attempts > 1 {
            note.push(format!(
                "{} attempts, the last at {}",
                c.attempts,
                c.finished_at.format("%Y-%m-%d %H:%M:%S")
            ));
        }
        let duration = if c.could_not_run && c.attempts > 1 {
            "-".to_owned()
        } else {
            format!(
                "{:.1}s",
                (c.finished_at - c.started_at).num_milliseconds() as f64 / 1000.0
            )
        };
        writeln!(
            out,
            "{:<20} {:>9} {:>6} {:>8} {:>9} {:>8} {:>7}  {}",
            c.started_at.format("%Y-%m-%d %H:%M:%S"),
            duration,
            c.users_listed,
            c.written,
            c.unchanged,
            c.skipped,
            c.failed.len(),
            note.join("; ")
        )?;
    }
    print_feed(out, view.feed.as_ref())?;
    writeln!(
        out,
        "{} users known, {} failing at their last attempt",
        view.users.len(),
        view.failing().len()
    )?;
    for (reason, users) in view.failures_by_reason() {
        let latest = users.iter().filter_map(|u| u.last_error_at).max();
        let at = latest
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        if let [user] = users.as_slice() {
            writeln!(out, "  {:<24} {at}  {reason}", user.user_name)?;
            continue;
        }
        let mut names: Vec<&str> = users
            .iter()
            .take(NAMES_PER_GROUP)
            .map(|u| u.user_name.as_str())
            .collect();
        let more = users.len().saturating_sub(NAMES_PER_GROUP);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        names.sort_unstable();
        writeln!(out, "  {} users, last at {at}: {reason}", users.len())?;
        writeln!(out, "      {}{more}", names.join(", "))?;
    }
    Ok(())
}

fn to_json(view: &View) -> Value {
    let failing = view.failing();
    json!({
        "state": view.state_path,
        "not_running": view.not_running().map(|row| json!({
            "reason": reason_of(row),
            "attempts": row.attempts,
            "first_attempt_at": row.started_at,
            "last_attempt_at": row.finished_at,
            "last_cycle_finished_at": view.last_ran.as_ref().map(|c| c.finished_at),
            "summary": not_running_line(view),
        })),
        "cycles": view.recent.iter().map(|c| json!({
            "started_at": c.started_at,
            "finished_at": c.finished_at,
            "duration_ms": (c.finished_at - c.started_at).num_milliseconds(),
            "users_listed": c.users_listed,
            "written": c.written,
            "unchanged": c.unchanged,
            "skipped": c.skipped,
            "failed": c.failed.iter().map(|f| json!({"user": f.user_name, "reason": f.reason})).collect::<Vec<_>>(),
            "overran": c.overran,
            "partial": c.partial,
            "could_not_run": c.could_not_run,
            "attempts": c.attempts,
            "error": c.error,
        })).collect::<Vec<_>>(),
        "notifications": view.feed.as_ref().map(|r| json!({
            "recorded_at": r.recorded_at,
            "subscribed": r.feed.subscribed,
            "polled_total": r.polled_total,
            "polled": r.feed.polled.iter().map(|(mailbox, reason)| json!({"mailbox": mailbox, "reason": reason})).collect::<Vec<_>>(),
            "connections": r.feed.connections,
            "last_event_at": r.feed.last_event_at,
            "resubscribed": r.feed.resubscribed,
            "changes": r.changes,
            "resyncs": r.resyncs,
            "push_refreshes": r.refreshes,
            "push_written": r.written,
        })),
        "users_known": view.users.len(),
        "users_failing": failing.iter().map(|u| json!({
            "user": u.user_name,
            "error": u.last_error,
            "at": u.last_error_at,
            "last_written_at": u.written_at,
        })).collect::<Vec<_>>(),
        "failures_by_reason": view.failures_by_reason().iter().map(|(reason, users)| json!({
            "reason": reason,
            "count": users.len(),
            "users": users.iter().map(|u| u.user_name.as_str()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use ews_calendar_replicator::replication::FeedStatus;

    fn view(feed: Option<FeedRecord>) -> View {
        View {
            state_path: "/var/lib/x/state.sqlite".into(),
            recent: Vec::new(),
            last_ran: None,
            users: Vec::new(),
            feed,
        }
    }

    fn text(view: &View) -> String {
        let mut out = Vec::new();
        print_text(&mut out, view).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_recorded_feed_status_is_printed_with_the_polled_mailboxes_by_reason() {
        let at = Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap();
        let polled: Vec<(String, String)> = (0..7)
            .map(|n| (format!("m{n}@example.com"), "access denied".to_owned()))
            .chain([("x@example.com".to_owned(), "subscription limit".to_owned())])
            .collect();
        let record = FeedRecord {
            recorded_at: at,
            feed: FeedStatus {
                subscribed: 990,
                polled,
                connections: 5,
                last_event_at: Some(at),
                resubscribed: 3,
            },
            changes: 120,
            resyncs: 2,
            refreshes: 40,
            written: 38,
            polled_total: 10,
        };
        let printed = text(&view(Some(record.clone())));
        assert!(printed.contains(
            "change notifications (as of 2026-12-05 12:00:00 UTC): 990 mailboxes subscribed, 10 polled by the cycle only, 5 event connections, last event 2026-12-05 12:00:00 UTC"
        ), "{printed}");
        assert!(printed.contains(
            "120 change events (2 resyncs), 40 push refreshes wrote 38 lists, 3 subscriptions made again"
        ), "{printed}");
        assert!(
            printed.contains("polled, 7 mailboxes: access denied"),
            "{printed}"
        );
        assert!(printed.contains("and 2 more"), "{printed}");
        assert!(
            printed.contains("(2 polled mailboxes not listed"),
            "{printed}"
        );
        let json = to_json(&view(Some(record)));
        assert_eq!(json["notifications"]["subscribed"], 990);
        assert_eq!(json["notifications"]["polled_total"], 10);
        assert_eq!(json["notifications"]["push_written"], 38);
        assert_eq!(
            json["notifications"]["polled"][7]["reason"],
            "subscription limit"
        );

        let off = text(&view(None));
        assert!(off.contains("change notifications: none recorded"), "{off}");
        assert!(to_json(&view(None))["notifications"].is_null());
    }
}
