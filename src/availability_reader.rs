//! Availability of any number of mailboxes over any window, read from one
//! Exchange server the way it wants to be read: at most 100 mailboxes and 42
//! days per `GetUserAvailability`, halving a request the server finds too
//! big, sending again the mailboxes it was busy for, and keeping each
//! mailbox's own error on that mailbox. Pacing and retrying (the busy pause,
//! the concurrency limit, transient failures) are the client's, as for every
//! operation: see [`crate::resilience`].
//!
//! A mailbox that could not be read always comes back with an error, never
//! with an empty calendar: the caller must not mistake a failure for "no
//! appointments".

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::availability::{
    AvailabilityView, CalendarEvent, MailboxAvailability, MailboxError, MAX_MAILBOXES_PER_REQUEST,
    MAX_WINDOW_DAYS,
};
use super::client::{EwsClient, EwsError};
use super::resilience::Attempts;
use super::transport::TransportError;

/// The code of the error a mailbox gets when its request failed as a whole
/// without an Exchange response code (connection, HTTP, invalid answer); the
/// message says what happened.
pub const REQUEST_FAILED: &str = "ClientRequestFailed";

const SERVER_BUSY: &str = "ErrorServerBusy";
const DATA_ARRAY_TOO_BIG: &str = "ErrorMailboxDataArrayTooBig";

/// How the reader splits its requests; [`Default`] suits a production
/// Exchange. How they are paced and retried is the client's
/// ([`EwsClient::with_resilience`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityReaderConfig {
    /// Mailboxes per request, 1 to 100.
    pub max_mailboxes_per_request: usize,
    pub view: AvailabilityView,
    /// Ask for each mailbox as that mailbox (`ExchangeImpersonation`; the
    /// account needs the ApplicationImpersonation role): one mailbox per
    /// request, and the owner's view of its calendar, private items
    /// included. Costs one request per mailbox instead of per 100.
    pub impersonate_each_mailbox: bool,
}

impl Default for AvailabilityReaderConfig {
    fn default() -> Self {
        AvailabilityReaderConfig {
            max_mailboxes_per_request: MAX_MAILBOXES_PER_REQUEST,
            view: AvailabilityView::Detailed,
            impersonate_each_mailbox: false,
        }
    }
}

impl AvailabilityReaderConfig {
    fn validate(&self) -> Result<(), EwsError> {
        if !(1..=MAX_MAILBOXES_PER_REQUEST).contains(&self.max_mailboxes_per_request) {
            return Err(EwsError::Config(format!(
                "mailboxes per request is {}; set it between 1 and {MAX_MAILBOXES_PER_REQUEST} (Exchange's limit)",
                self.max_mailboxes_per_request
            )));
        }
        Ok(())
    }
}

/// Counters for diagnostics and benchmarks: the client's (every request it
/// sent, whatever the operation; a reader normally has its client to itself)
/// and the reader's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AvailabilityStats {
    /// Requests sent (retries included).
    pub requests_sent: u64,
    /// Requests sent again (after busy, connection-limit or transient failures).
    pub retries: u64,
    /// Busy answers: SOAP fault, per-mailbox error or HTTP 503.
    pub busy_answers: u64,
    /// Requests split in two after `ErrorMailboxDataArrayTooBig`.
    pub chunk_splits: u64,
    /// The current limit of requests in flight (lowered by
    /// `ErrorExceededConnectionCount`).
    pub concurrency: usize,
    /// The most requests that were in flight at once.
    pub peak_in_flight: usize,
    /// Time spent waiting because the server was busy or counted too many
    /// connections (every pause, summed).
    pub back_off: Duration,
}

/// Consecutive sub-windows of at most 42 days covering `[start, end)`.
pub fn split_window(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let step = chrono::Duration::days(MAX_WINDOW_DAYS);
    let mut windows = Vec::new();
    let mut from = start;
    while from < end {
        let to = (from + step).min(end);
        windows.push((from, to));
        from = to;
    }
    windows
}

/// The mailboxes in request-sized chunks, duplicates dropped.
pub fn chunk_mailboxes(mailboxes: &[String], per_request: usize) -> Vec<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<String> = mailboxes
        .iter()
        .filter(|m| seen.insert(m.as_str()))
        .cloned()
        .collect();
    unique
        .chunks(per_request.max(1))
        .map(<[String]>::to_vec)
        .collect()
}

/// Reads availability from the server of one [`EwsClient`], whose concurrency
/// limit and back-off (learnt from the server's answers) it uses.
pub struct AvailabilityReader {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AvailabilityReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvailabilityReader")
            .field("client", &self.shared.client)
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

struct Shared {
    client: Arc<EwsClient>,
    config: AvailabilityReaderConfig,
    chunk_splits: AtomicU64,
}

/// One request to make: a chunk of mailboxes and one sub-window.
#[derive(Debug, Clone)]
struct Task {
    mailboxes: Vec<String>,
    window: usize,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

type MailboxResult = Result<Vec<CalendarEvent>, MailboxError>;

enum Outcome {
    /// Every mailbox of the task has its result.
    Done {
        window: usize,
        results: Vec<(String, MailboxResult)>,
    },
    /// The server wants smaller requests: these mailboxes go again in two.
    Split {
        window: usize,
        results: Vec<(String, MailboxResult)>,
        halves: [Task; 2],
    },
    /// Nothing further can succeed (authentication, TLS, configuration).
    Fatal(EwsError),
}

impl AvailabilityReader {
    /// A reader of `client`'s server (an observer of its requests is the
    /// client's: [`EwsClient::with_observer`]).
    pub fn new(
        client: Arc<EwsClient>,
        config: AvailabilityReaderConfig,
    ) -> Result<AvailabilityReader, EwsError> {
        config.validate()?;
        Ok(AvailabilityReader {
            shared: Arc::new(Shared {
                client,
                config,
                chunk_splits: AtomicU64::new(0),
            }),
        })
    }

    pub fn client(&self) -> &Arc<EwsClient> {
        &self.shared.client
    }

    pub fn config(&self) -> &AvailabilityReaderConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> AvailabilityStats {
        let client = self.shared.client.stats();
        AvailabilityStats {
            requests_sent: client.requests_sent,
            retries: client.retries,
            busy_answers: client.busy_answers,
            chunk_splits: self.shared.chunk_splits.load(Ordering::Relaxed),
            concurrency: client.concurrency,
            peak_in_flight: client.peak_in_flight,
            back_off: client.back_off,
        }
    }

    /// One entry per distinct mailbox, in the order given, with the events
    /// overlapping `[start, end)` or the mailbox's error. `Err` only when no
    /// mailbox can be read at all (authentication refused, TLS not trusted,
    /// server unreachable after the retries, configuration), with the reason.
    pub async fn read(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MailboxAvailability>, EwsError> {
        let mut answers = Vec::with_capacity(mailboxes.len());
        self.read_each(mailboxes, start, end, |answer| answers.push(answer))
            .await?;
        let position: HashMap<&str, usize> = mailboxes
            .iter()
            .enumerate()
            .rev()
            .map(|(i, m)| (m.as_str(), i))
            .collect();
        answers.sort_by_key(|a| position.get(a.mailbox.as_str()).copied());
        Ok(answers)
    }

    /// Like [`Self::read`], but hands each distinct mailbox's answer to
    /// `ready` as soon as every request covering it has answered (in no
    /// particular order), so a caller can act on the first hundred calendars
    /// while the rest are still being read. On `Err`, the mailboxes not
    /// handed over yet were not read; those handed over are complete.
    pub async fn read_each<F>(
        &self,
        mailboxes: &[String],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        mut ready: F,
    ) -> Result<(), EwsError>
    where
        F: FnMut(MailboxAvailability) + Send,
    {
        if start >= end {
            return Err(EwsError::Config(format!(
                "the availability window starts at {start} but ends at {end}; the start must be before the end"
            )));
        }
        let windows = split_window(start, end);
        let per_request = if self.shared.config.impersonate_each_mailbox {
            1
        } else {
            self.shared.config.max_mailboxes_per_request
        };
        let chunks = chunk_mailboxes(mailboxes, per_request);
        // Each mailbox's answer per sub-window, until all have arrived.
        let mut by_mailbox: HashMap<String, Vec<Option<MailboxResult>>> = chunks
            .iter()
            .flatten()
            .map(|m| (m.clone(), vec![None; windows.len()]))
            .collect();

        let mut running = JoinSet::new();
        for chunk in &chunks {
            for (window, &(from, to)) in windows.iter().enumerate() {
                let task = Task {
                    mailboxes: chunk.clone(),
                    window,
                    start: from,
                    end: to,
                };
                running.spawn(run_task(self.shared.clone(), task));
            }
        }
        drop(chunks);
        let mut store = |window: usize, results: Vec<(String, MailboxResult)>| {
            for (mailbox, result) in results {
                let Some(slots) = by_mailbox.get_mut(&mailbox) else {
                    continue;
                };
                slots[window] = Some(result);
                if slots.iter().all(Option::is_some) {
                    let slots = by_mailbox.remove(&mailbox).unwrap_or_default();
                    let result = merge_windows(&windows, slots);
                    ready(MailboxAvailability { mailbox, result });
                }
            }
        };
        while let Some(joined) = running.join_next().await {
            let outcome = joined.map_err(|e| {
                EwsError::Config(format!("an availability request task failed: {e}"))
            })?;
            match outcome {
                Outcome::Done { window, results } => store(window, results),
                Outcome::Split {
                    window,
                    results,
                    halves,
                } => {
                    store(window, results);
                    for half in halves {
                        running.spawn(run_task(self.shared.clone(), half));
                    }
                }
                Outcome::Fatal(error) => {
                    running.abort_all();
                    return Err(error);
                }
            }
        }
        // Every request answered; a mailbox an answer left out gets the
        // "no answer" error of its missing window.
        for (mailbox, slots) in by_mailbox {
            let result = merge_windows(&windows, slots);
            ready(MailboxAvailability { mailbox, result });
        }
        Ok(())
    }
}

/// One mailbox's sub-window results as one: the first error if any window
/// failed (a partial calendar must not look complete), else the events in
/// window order. An event crossing a boundary is reported by both windows;
/// it is kept from the earlier one (a later window drops events starting
/// before it).
fn merge_windows(
    windows: &[(DateTime<Utc>, DateTime<Utc>)],
    slots: Vec<Option<MailboxResult>>,
) -> MailboxResult {
    let mut events = Vec::new();
    for (index, slot) in slots.into_iter().enumerate() {
        let window_events = match slot {
            Some(Ok(window_events)) => window_events,
            Some(Err(error)) => return Err(error),
            None => {
                return Err(MailboxError {
                    code: REQUEST_FAILED.to_owned(),
                    message: Some("no answer was received for this mailbox".to_owned()),
                    back_off: None,
                })
            }
        };
        let window_start = windows[index].0;
        events.extend(
            window_events
                .into_iter()
                .filter(|event| index == 0 || event.start >= window_start),
        );
    }
    Ok(events)
}

fn mailbox_error(error: &EwsError) -> MailboxError {
    MailboxError {
        code: error.fault_code().unwrap_or(REQUEST_FAILED).to_owned(),
        message: Some(error.to_string()),
        back_off: None,
    }
}

fn fail_all(mailboxes: Vec<String>, error: &MailboxError) -> Vec<(String, MailboxResult)> {
    mailboxes
        .into_iter()
        .map(|m| (m, Err(error.clone())))
        .collect()
}

/// Parses an answer on tokio's blocking pool: a full answer takes
/// milliseconds of CPU, and on a runtime worker it would also hold back the
/// task that just got the freed request slot (tokio runs a task woken by the
/// current one on the same worker, after it).
async fn parse_off_runtime(
    client: &Arc<EwsClient>,
    mailboxes: Vec<String>,
    body: bytes::Bytes,
) -> (Vec<String>, Result<Vec<MailboxAvailability>, EwsError>) {
    let client = client.clone();
    let parse = tokio::task::spawn_blocking(move || {
        let parsed = client.parse_user_availability(&mailboxes, &body);
        (mailboxes, parsed)
    });
    match parse.await {
        Ok(done) => done,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only a runtime shutting down cancels it, which drops this task too.
        Err(e) => panic!("the availability parse was cancelled: {e}"),
    }
}

async fn run_task(shared: Arc<Shared>, task: Task) -> Outcome {
    let Task {
        mailboxes,
        window,
        start,
        end,
    } = task;
    let client = &shared.client;
    let config = &shared.config;
    let mut pending = mailboxes;
    let mut results: Vec<(String, MailboxResult)> = Vec::new();
    // Busy answers inside an answer draw on the same budget as the client's
    // own retries of this request.
    let mut attempts = Attempts::default();
    loop {
        // Impersonation acts as the one mailbox of the request.
        let acting_as = if config.impersonate_each_mailbox {
            pending.first().map(String::as_str)
        } else {
            client.impersonation()
        };
        let sent = client
            .send_user_availability_as(&pending, start, end, config.view, acting_as, &mut attempts)
            .await;
        // The server is done with the request once its answer is here: the
        // next request goes while this one is parsed.
        let answer = match sent {
            Ok(body) => {
                let parsed;
                (pending, parsed) = parse_off_runtime(client, pending, body).await;
                parsed
            }
            Err(error) => Err(error),
        };
        let error = match answer {
            Ok(answers) => {
                // Mailboxes the server was too busy for go again; the
                // others (answered or with their own error) are done.
                let mut busy = Vec::new();
                let mut asked: Option<Duration> = None;
                for answer in answers {
                    match &answer.result {
                        Err(e) if e.code == SERVER_BUSY => {
                            asked = asked.max(e.back_off);
                            busy.push((answer.mailbox, e.clone()));
                        }
                        _ => results.push((answer.mailbox, answer.result)),
                    }
                }
                if busy.is_empty() {
                    client.answered_calmly();
                    return Outcome::Done { window, results };
                }
                let Some(pause) = client.busy_inside_answer(&mut attempts, asked) else {
                    results.extend(busy.into_iter().map(|(m, e)| (m, Err(e))));
                    return Outcome::Done { window, results };
                };
                tracing::warn!(
                    server = client.server(),
                    mailboxes = busy.len(),
                    pause_ms = pause.as_millis() as u64,
                    "Exchange is busy for some mailboxes (ErrorServerBusy); pausing all requests"
                );
                pending = busy.into_iter().map(|(m, _)| m).collect();
                continue;
            }
            Err(error) => error,
        };

        // The client has retried what may be retried.
        if error.affects_every_request() {
            return Outcome::Fatal(error);
        }
        tracing::debug!(server = client.server(), mailboxes = pending.len(), %error, "GetUserAvailability failed");
        if error.fault_code() == Some(DATA_ARRAY_TOO_BIG) && pending.len() > 1 {
            shared.chunk_splits.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(server = client.server(), mailboxes = pending.len(),
                "Exchange refused the request as too big (ErrorMailboxDataArrayTooBig); splitting it in two");
            let second = pending.split_off(pending.len() / 2);
            let half = |mailboxes| Task {
                mailboxes,
                window,
                start,
                end,
            };
            return Outcome::Split {
                window,
                results,
                halves: [half(pending), half(second)],
            };
        }
        if is_unreachable(&error) {
            // Connecting failed every time: the server is down or the URL
            // is wrong, which no other mailbox escapes either.
            return Outcome::Fatal(error);
        }
        tracing::warn!(server = client.server(), mailboxes = pending.len(), %error,
            "giving up on these mailboxes for this read");
        results.extend(fail_all(pending, &mailbox_error(&error)));
        return Outcome::Done { window, results };
    }
}

fn is_unreachable(error: &EwsError) -> bool {
    matches!(error.transport(), Some(TransportError::Connect { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::availability::BusyType;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn event(start: &str, end: &str) -> CalendarEvent {
        CalendarEvent {
            start: at(start),
            end: at(end),
            busy_type: BusyType::Busy,
            details: None,
        }
    }

    #[test]
    fn a_long_window_becomes_consecutive_42_day_windows() {
        let start = at("2026-01-01T00:00:00Z");
        let windows = split_window(start, start + chrono::Duration::days(60));
        assert_eq!(windows.len(), 2);
        assert_eq!(windows[0], (start, start + chrono::Duration::days(42)));
        assert_eq!(
            windows[1],
            (
                start + chrono::Duration::days(42),
                start + chrono::Duration::days(60)
            )
        );
        assert_eq!(
            split_window(start, start + chrono::Duration::days(42)).len(),
            1
        );
        assert_eq!(
            split_window(start, start + chrono::Duration::days(85)).len(),
            3
        );
        assert!(split_window(start, start).is_empty());
    }

    #[test]
    fn mailboxes_go_in_chunks_without_duplicates() {
        let mailboxes: Vec<String> = (0..250).map(|i| format!("user{i}@contoso.com")).collect();
        let chunks = chunk_mailboxes(&mailboxes, 100);
        assert_eq!(
            chunks.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        let twice = [mailboxes[..3].to_vec(), mailboxes[..3].to_vec()].concat();
        assert_eq!(chunk_mailboxes(&twice, 100), [mailboxes[..3].to_vec()]);
        assert_eq!(chunk_mailboxes(&mailboxes[..5], 2).len(), 3);
    }

    #[test]
    fn an_event_across_a_window_boundary_is_kept_once() {
        let start = at("2026-01-01T00:00:00Z");
        let windows = split_window(start, start + chrono::Duration::days(60));
        let crossing = event("2026-02-11T23:00:00Z", "2026-02-12T01:00:00Z");
        let first = vec![
            event("2026-01-02T09:00:00Z", "2026-01-02T10:00:00Z"),
            crossing.clone(),
        ];
        let second = vec![
            crossing.clone(),
            event("2026-02-20T09:00:00Z", "2026-02-20T10:00:00Z"),
        ];
        let merged = merge_windows(&windows, vec![Some(Ok(first)), Some(Ok(second))]).unwrap();
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.iter().filter(|e| **e == crossing).count(), 1);
    }

    #[test]
    fn a_failed_window_fails_the_mailbox() {
        let start = at("2026-01-01T00:00:00Z");
        let windows = split_window(start, start + chrono::Duration::days(60));
        let error = MailboxError {
            code: "ErrorServerBusy".into(),
            message: None,
            back_off: None,
        };
        let merged = merge_windows(&windows, vec![Some(Ok(vec![])), Some(Err(error.clone()))]);
        assert_eq!(merged, Err(error));
        let missing = merge_windows(&windows, vec![Some(Ok(vec![])), None]).unwrap_err();
        assert_eq!(missing.code, REQUEST_FAILED);
    }

    #[test]
    fn config_limits_are_checked() {
        let too_many = AvailabilityReaderConfig {
            max_mailboxes_per_request: 101,
            ..Default::default()
        };
        let err = too_many.validate().unwrap_err();
        assert!(err.to_string().contains("between 1 and 100"), "{err}");
        let none = AvailabilityReaderConfig {
            max_mailboxes_per_request: 0,
            ..Default::default()
        };
        assert!(none.validate().is_err());
        assert!(AvailabilityReaderConfig::default().validate().is_ok());
    }
}
