//! A one-line progress bar on stderr for long cycles, drawn only when stderr
//! is a terminal (never in logs, pipes or `--json` output).

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use ews_calendar_replicator::replication::{Progress, ProgressFn};

/// The progress callback, or `None` when stderr is not a terminal.
pub fn terminal_bar() -> Option<ProgressFn> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(Arc::new(|step: &Progress| {
        let line = match step {
            Progress::UsersListed { listed, selected } => {
                format!("{listed} users listed, {selected} selected")
            }
            Progress::ReadingCalendars { mailboxes } => {
                format!("reading {mailboxes} calendars from Exchange")
            }
            Progress::UserDone { done, total, .. } => {
                let width = 30;
                let filled = if *total == 0 {
                    width
                } else {
                    done * width / total
                };
                format!(
                    "[{}{}] {done}/{total} users",
                    "#".repeat(filled),
                    " ".repeat(width - filled)
                )
            }
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        if matches!(step, Progress::UserDone { done, total, .. } if done == total) {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }))
}
