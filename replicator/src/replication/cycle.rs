//! One replication cycle: UCServer users -> directory users -> one calendar
//! read for all mailboxes -> mapping and privacy -> write the lists that
//! changed.
//!
//! Failure rules: a UCServer listing, directory or state-database read
//! failure stops the cycle before anything is written. A user whose
//! calendar could not be read keeps the list the UCServer has (a failed
//! read never becomes an empty calendar). A failed write keeps the old
//! hash, so the next cycle writes again. Writes are per user and recorded
//! per user, so a cycle abandoned at shutdown leaves no half-written state.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, watch};

use crate::directory::{UserDirectory, UserIndex};
use crate::ucserver::{Appointment, UserFilter};
use ews_toolkit::availability::MailboxAvailability;

use super::diff::{list_hash, needs_write};
use super::mapping::map_calendar;
use super::matching::match_user;
use super::ports::{
    CalendarSource, CycleObserver, NoObserver, Server, SourceError, StateError, StateStore,
    UcServerPort, UserRecord, WriteError,
};
use super::report::{
    CycleReport, Durations, PlannedAppointment, Progress, ProgressFn, UserOutcome, UserReport,
};
use super::settings::ReplicationSettings;

/// How a cycle runs.
#[derive(Clone, Default)]
pub struct CycleOptions {
    /// Write nothing to the UCServer or the state; report what would be
    /// written (the lists are kept in the report).
    pub dry_run: bool,
    /// Handle only these UCServer users (case-insensitive); empty: all.
    pub only_users: Vec<String>,
    /// Keep each user's computed list in the report even when not a dry run.
    pub keep_appointments: bool,
    pub progress: Option<ProgressFn>,
    /// When it turns true the cycle stops at the next safe point (before
    /// the calendar read completes, or between two users' writes).
    pub shutdown: Option<watch::Receiver<bool>>,
}

impl std::fmt::Debug for CycleOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CycleOptions")
            .field("dry_run", &self.dry_run)
            .field("only_users", &self.only_users)
            .field("keep_appointments", &self.keep_appointments)
            .field("progress", &self.progress.is_some())
            .field("shutdown", &self.shutdown.is_some())
            .finish()
    }
}

impl CycleOptions {
    fn shutdown_requested(&self) -> bool {
        self.shutdown.as_ref().is_some_and(|rx| *rx.borrow())
    }

    fn report_progress(&self, step: Progress) {
        if let Some(progress) = &self.progress {
            progress(&step);
        }
    }
}

/// Resolves when shutdown is requested; never when there is no signal.
async fn shutdown_signal(shutdown: Option<watch::Receiver<bool>>) {
    match shutdown {
        Some(mut rx) => {
            let sender_gone = rx.wait_for(|stop| *stop).await.is_err();
            if sender_gone {
                // The sender is gone: no shutdown can be requested any more.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// A changed list on its way to the UCServer.
/// Why a list did not reach the UCServer: the two need different fixes.
enum SendFailure {
    /// The state database refused the before-send record; nothing was sent.
    NotRecorded(StateError),
    /// Sent, and the UCServer refused it or did not answer.
    Refused(WriteError),
}

struct WriteJob {
    /// Index into `report.users`.
    slot: usize,
    user_name: String,
    list: Vec<Appointment>,
    hash: String,
    /// Already sent once and failed with a retryable error.
    retried: bool,
}

/// Mailbox addresses compare case-insensitively.
fn mailbox_key(mailbox: &str) -> String {
    mailbox.trim().to_lowercase()
}

/// A user matched to a mailbox, waiting for its calendar.
struct Pending {
    /// Index into `report.users`.
    slot: usize,
    mailbox: String,
}

/// The replication engine: the UCServer, the directory, the calendar source
/// and the state store, with the `[replication]` settings; an observer
/// (none by default) is told what happens.
pub struct Engine<U, D, C, S> {
    ucserver: U,
    directory: D,
    calendars: C,
    state: S,
    settings: ReplicationSettings,
    observer: Arc<dyn CycleObserver>,
    /// The directory as the last full read found it, for push refreshes.
    directory_index: std::sync::Mutex<Option<Arc<UserIndex>>>,
}

fn millis(since: Instant) -> u64 {
    since.elapsed().as_millis().try_into().unwrap_or(u64::MAX)
}

impl<U, D, C, S> Engine<U, D, C, S>
where
    U: UcServerPort,
    D: UserDirectory,
    C: CalendarSource,
    S: StateStore,
{
    pub fn new(
        ucserver: U,
        directory: D,
        calendars: C,
        state: S,
        settings: ReplicationSettings,
    ) -> Self {
        Engine {
            ucserver,
            directory,
            calendars,
            state,
            settings,
            observer: Arc::new(NoObserver),
            directory_index: std::sync::Mutex::new(None),
        }
    }

    /// Tells `observer` about every cycle that is not a dry run.
    pub fn with_observer(mut self, observer: Arc<dyn CycleObserver>) -> Self {
        self.observer = observer;
        self
    }

    pub fn settings(&self) -> &ReplicationSettings {
        &self.settings
    }

    pub fn ucserver(&self) -> &U {
        &self.ucserver
    }

    pub fn directory(&self) -> &D {
        &self.directory
    }

    pub fn calendars(&self) -> &C {
        &self.calendars
    }

    pub fn state(&self) -> &S {
        &self.state
    }

    pub fn observer(&self) -> &Arc<dyn CycleObserver> {
        &self.observer
    }

    /// Runs one cycle with the calendar window `[now, now + window_days)`.
    /// Never fails as a whole: a cycle-wide failure is `report.error`.
    /// Unless a dry run, the cycle's summary is recorded in the state store.
    pub async fn run_cycle(&self, now: DateTime<Utc>, options: &CycleOptions) -> CycleReport {
        self.run(now, options, None).await
    }

    /// The cycle's own pipeline (the UCServer's users, the directory, one
    /// calendar read, mapping, privacy, diff, writes of changed lists only)
    /// for the users of `mailboxes` alone (compared case-insensitively).
    /// The directory is read by the first refresh and then kept from the
    /// last full read (each cycle's) instead of read again per refresh:
    /// what the push loop runs for mailboxes an event named. Users not
    /// listed by the UCServer (logged on, with `only_offline_users`) are
    /// not written, as in the cycle. The report lists only those users and
    /// is `partial`.
    ///
    /// Not recorded in the cycle history: a busy site has thousands of
    /// these a day, and a row each would push the periodic cycles, which an
    /// administrator looks for in `status`, out of sight. Their counts go to
    /// the observer ([`CycleObserver::push_refresh_finished`]) instead; each
    /// user's outcome is recorded per user as in a cycle.
    ///
    /// Like a cycle it takes nothing of this engine to be in flight when it
    /// starts: never run it beside a cycle or another refresh (the push
    /// loop and the scheduler share a [`WriterLock`](super::WriterLock)).
    pub async fn refresh_mailboxes(
        &self,
        now: DateTime<Utc>,
        mailboxes: &[String],
        options: &CycleOptions,
    ) -> CycleReport {
        let scope = mailboxes.iter().map(|m| mailbox_key(m)).collect();
        self.run(now, options, Some(&scope)).await
    }

    async fn run(
        &self,
        now: DateTime<Utc>,
        options: &CycleOptions,
        mailboxes: Option<&HashSet<String>>,
    ) -> CycleReport {
        let clock = Instant::now();
        let window_end = now + ChronoDuration::days(i64::from(self.settings.window_days));
        let mut report = CycleReport {
            started_at: Utc::now(),
            finished_at: Utc::now(),
            window_start: now,
            window_end,
            dry_run: options.dry_run,
            partial: !options.only_users.is_empty() || mailboxes.is_some(),
            counters: Default::default(),
            durations: Durations::default(),
            overran: false,
            abandoned: false,
            error: None,
            warnings: Vec::new(),
            users: Vec::new(),
        };
        let refresh = mailboxes.is_some();
        if !options.dry_run && !refresh {
            self.observer.cycle_started(report.started_at);
        }
        if let Err(error) = self
            .replicate(now, window_end, options, mailboxes, &mut report)
            .await
        {
            if refresh {
                tracing::error!("push refresh failed, nothing was written: {error}");
            } else {
                tracing::error!("replication cycle failed, nothing was written: {error}");
            }
            report.error = Some(error);
        }
        self.finish(clock, &mut report, refresh);
        report
    }

    async fn replicate(
        &self,
        window_start: DateTime<Utc>,
        window_end: DateTime<Utc>,
        options: &CycleOptions,
        only_mailboxes: Option<&HashSet<String>>,
        report: &mut CycleReport,
    ) -> Result<(), String> {
        if !options.dry_run {
            // Nothing of this engine is in flight between cycles (nor
            // between push refreshes: one writer at a time), so a send
            // still recorded got no answer: its list may have been stored,
            // or may be stored late, by the UCServer. Each such user is
            // written this cycle and settled by a later write.
            match self.state.settle_unanswered_sends() {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    users = n,
                    "writes sent earlier got no answer (the process stopped or the connection dropped); those users are written again, and once more next cycle if their list changed meanwhile"
                ),
                Err(e) => return Err(format!("the state database cannot be updated: {e}")),
            }
        }
        let records: HashMap<String, UserRecord> = self
            .state
            .users()
            .map_err(|e| format!("the state database cannot be read: {e}"))?
            .into_iter()
            .map(|r| (r.user_name.to_lowercase(), r))
            .collect();

        // 1. The UCServer's users.
        let step = Instant::now();
        let filter = if self.settings.only_offline_users {
            UserFilter::OfflineOnly
        } else {
            UserFilter::All
        };
        let listed = self.ucserver.list_users(filter).await;
        let listed = self
            .observe_server(Server::UcServer, listed, options)
            .map_err(|e| format!("the UCServer did not list its users: {e}"))?;
        report.durations.list_users_ms = millis(step);
        report.counters.listed = listed.len();
        let wanted: Vec<String> = options
            .only_users
            .iter()
            .map(|n| n.trim().to_lowercase())
            .collect();
        let selected: Vec<_> = listed
            .iter()
            .filter(|p| wanted.is_empty() || wanted.contains(&p.user_name.to_lowercase()))
            .collect();
        options.report_progress(Progress::UsersListed {
            listed: listed.len(),
            selected: selected.len(),
        });

        // 2. Their directory users and mailboxes.
        let step = Instant::now();
        let kept = self
            .directory_index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let index = match (only_mailboxes, kept) {
            // A push refresh matches with the index of the last full read:
            // reading the whole directory (tens of thousands of LDAP
            // entries) for every few changed mailboxes would cost more than
            // the refresh itself. A directory change reaches refreshes with
            // the next cycle, as it reaches the watched mailboxes.
            (Some(_), Some(index)) => index,
            (_, kept) => {
                let directory_users = self.directory.users().await;
                let directory_users = self
                    .observe_server(Server::Directory, directory_users, options)
                    .map_err(|e| format!("the directory could not be read: {e}"))?;
                let index = Arc::new(UserIndex::new(directory_users));
                // Kept only once push refreshes run: an engine without them
                // does not hold the directory between cycles.
                if only_mailboxes.is_some() || kept.is_some() {
                    *self
                        .directory_index
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(index.clone());
                }
                index
            }
        };
        report.durations.directory_ms = millis(step);

        let mut pending = Vec::new();
        for profile in &selected {
            let matched = match_user(profile, &index);
            if let Some(scope) = only_mailboxes {
                // A refresh handles the users of its mailboxes and no other.
                let mailbox = matched
                    .as_ref()
                    .ok()
                    .and_then(|(d, _)| d.primary_smtp.as_ref());
                if !mailbox.is_some_and(|m| scope.contains(&mailbox_key(m))) {
                    continue;
                }
            }
            let mut user = UserReport {
                user_name: profile.user_name.clone(),
                mailbox: None,
                matched_by: None,
                outcome: UserOutcome::Abandoned,
                appointment_count: None,
                appointments: None,
            };
            match matched {
                Err(reason) => user.outcome = UserOutcome::Skipped { reason },
                Ok((directory_user, by)) => {
                    user.matched_by = Some(by);
                    match &directory_user.primary_smtp {
                        None => {
                            user.outcome = UserOutcome::Skipped {
                                reason: format!(
                                    "the directory user {} has no mailbox (no primary SMTP address in proxyAddresses or mail)",
                                    directory_user.dn
                                ),
                            }
                        }
                        Some(mailbox) => {
                            user.mailbox = Some(mailbox.clone());
                            pending.push(Pending {
                                slot: report.users.len(),
                                mailbox: mailbox.clone(),
                            });
                        }
                    }
                }
            }
            if let UserOutcome::Skipped { reason } = &user.outcome {
                tracing::debug!(user = %user.user_name, "not replicated: {reason}");
            }
            report.users.push(user);
        }
        for name in &options.only_users {
            let key = name.trim().to_lowercase();
            if !listed.iter().any(|p| p.user_name.to_lowercase() == key) {
                let why = if self.settings.only_offline_users {
                    "the UCServer did not list this user: no such user, or the user is logged on (only offline users are replicated)"
                } else {
                    "the UCServer did not list this user: no such user"
                };
                report.users.push(UserReport {
                    user_name: name.trim().to_owned(),
                    mailbox: None,
                    matched_by: None,
                    outcome: UserOutcome::Skipped {
                        reason: why.to_owned(),
                    },
                    appointment_count: None,
                    appointments: None,
                });
            }
        }
        if pending.is_empty() {
            return Ok(());
        }

        // 3.-6. Read, map, compare, write. Each calendar is mapped as soon
        // as its request answers, and its write overlaps the reads still
        // running, so a cycle takes about as long as its Exchange reads and
        // holds only the calendars not written yet.
        let mut waiting: HashMap<String, Vec<usize>> = HashMap::new();
        let mut mailboxes: Vec<String> = Vec::new();
        for (index, p) in pending.iter().enumerate() {
            let users = waiting.entry(mailbox_key(&p.mailbox)).or_default();
            if users.is_empty() {
                mailboxes.push(p.mailbox.clone());
            }
            users.push(index);
        }
        options.report_progress(Progress::ReadingCalendars {
            mailboxes: mailboxes.len(),
        });
        if options.shutdown_requested() {
            report.abandoned = true;
            return Ok(());
        }
        let step = Instant::now();
        let total = pending.len();
        let mut done = 0usize;
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let reading =
            self.calendars
                .read_calendars_each(&mailboxes, window_start, window_end, ready_tx);
        tokio::pin!(reading);
        let shutdown = shutdown_signal(options.shutdown.clone());
        tokio::pin!(shutdown);
        let mut read_result: Option<Result<(), SourceError>> = None;
        let mut answers_open = true;
        let mut stopping = false;
        let mut queued: VecDeque<WriteJob> = VecDeque::new();
        let mut writing = FuturesUnordered::new();
        loop {
            if !stopping && options.shutdown_requested() {
                stopping = true;
                report.abandoned = true;
            }
            while !stopping && writing.len() < self.settings.write_concurrency.max(1) {
                let Some(job) = queued.pop_front() else { break };
                writing.push(self.write(job));
            }
            let reads_finished = read_result.is_some() && !answers_open;
            if writing.is_empty() && (stopping || (reads_finished && queued.is_empty())) {
                break;
            }
            tokio::select! {
                result = &mut reading, if read_result.is_none() && !stopping => {
                    report.durations.read_calendars_ms = millis(step);
                    read_result = Some(self.observe_server(Server::Exchange, result, options));
                }
                answer = ready_rx.recv(), if answers_open && !stopping => {
                    let Some(answer) = answer else {
                        answers_open = false;
                        continue;
                    };
                    let users = waiting.remove(&mailbox_key(&answer.mailbox)).unwrap_or_default();
                    for index in users {
                        let p = &pending[index];
                        let job = self.handle_answer(p, &answer, &records, options, report);
                        match job {
                            Some(job) => queued.push_back(job),
                            None => {
                                done += 1;
                                self.user_done(report, p.slot, done, total, options);
                            }
                        }
                    }
                }
                Some((job, result)) = writing.next(), if !writing.is_empty() => {
                    // A send the state could not record never reached the UCServer.
                    if !matches!(result, Err(SendFailure::NotRecorded(_))) {
                        self.observer.ucserver_write(result.is_ok());
                    }
                    match result {
                        // A dropped connection fails every write in flight,
                        // not just one: each is sent once more (on the
                        // client's new session). Replacing a whole list is
                        // idempotent, so a write the server did store is
                        // only repeated, never lost or doubled.
                        Err(SendFailure::Refused(e)) if e.retryable && !job.retried && !stopping => {
                            tracing::info!(user = %job.user_name, "UCServer write not confirmed ({e}); sending it again");
                            queued.push_back(WriteJob { retried: true, ..job });
                        }
                        result => {
                            self.written(report, job.slot, &job.hash, result);
                            done += 1;
                            self.user_done(report, job.slot, done, total, options);
                        }
                    }
                }
                () = &mut shutdown, if !stopping => {
                    // Writes in flight finish (each is a whole list); no new
                    // read or write starts.
                    stopping = true;
                    report.abandoned = true;
                }
            }
        }
        if !stopping {
            // Users whose mailbox got no answer keep the UCServer's list.
            let read_error = match read_result {
                Some(Err(ref e)) => Some(e),
                _ => None,
            };
            for index in waiting.into_values().flatten() {
                let p = &pending[index];
                let reason = match &read_error {
                    Some(e) => format!(
                        "Exchange could not be read ({e}); the UCServer keeps the user's previous appointments"
                    ),
                    None => format!(
                        "Exchange gave no answer for the mailbox {}; the UCServer keeps the user's previous appointments",
                        p.mailbox
                    ),
                };
                self.fail(report, p.slot, reason, options.dry_run);
            }
        }
        let total_ms = millis(step);
        if read_result.is_none() {
            report.durations.read_calendars_ms = total_ms;
        }
        report.durations.write_ms = total_ms.saturating_sub(report.durations.read_calendars_ms);
        Ok(())
    }

    /// Tells the observer whether `server` answered (not for dry runs: only
    /// the service's own cycles are watched).
    fn observe_server<T, E: std::fmt::Display>(
        &self,
        server: Server,
        result: Result<T, E>,
        options: &CycleOptions,
    ) -> Result<T, E> {
        if !options.dry_run {
            match &result {
                Ok(_) => self.observer.server_reached(server),
                Err(e) => self.observer.server_unreachable(server, &e.to_string()),
            }
        }
        result
    }

    /// Maps one user's calendar and decides: unchanged, would write (dry
    /// run), failed, or a write to start (returned).
    fn handle_answer(
        &self,
        p: &Pending,
        answer: &MailboxAvailability,
        records: &HashMap<String, UserRecord>,
        options: &CycleOptions,
        report: &mut CycleReport,
    ) -> Option<WriteJob> {
        let events = match &answer.result {
            Ok(events) => events,
            Err(e) => {
                self.fail(
                    report,
                    p.slot,
                    format!("Exchange could not read the mailbox {} ({e}); the UCServer keeps the user's previous appointments", p.mailbox),
                    options.dry_run,
                );
                return None;
            }
        };
        let user_name = report.users[p.slot].user_name.clone();
        let list = map_calendar(&p.mailbox, events, &self.settings);
        let hash = list_hash(&list);
        let record = records.get(&user_name.to_lowercase());
        let changed = needs_write(record, &hash);
        let user = &mut report.users[p.slot];
        user.appointment_count = Some(list.len());
        if options.dry_run || options.keep_appointments {
            user.appointments = Some(list.iter().map(PlannedAppointment::from).collect());
        }
        user.outcome = match (changed, options.dry_run) {
            (false, dry_run) => {
                // Read again after a failure: the user is fine now.
                if !dry_run && record.is_some_and(|r| r.last_error.is_some()) {
                    if let Err(e) = self.state.clear_failure(&user_name) {
                        report.warnings.push(format!(
                            "{user_name}: the state database did not clear the last failure ({e})"
                        ));
                    }
                }
                UserOutcome::Unchanged
            }
            (true, true) => UserOutcome::WouldWrite,
            (true, false) => {
                return Some(WriteJob {
                    slot: p.slot,
                    user_name,
                    list,
                    hash,
                    retried: false,
                })
            }
        };
        None
    }

    async fn write(&self, job: WriteJob) -> (WriteJob, Result<(), SendFailure>) {
        // Durable before the send: a process killed while the write is in
        // flight leaves it behind, and the next cycle settles it.
        if let Err(e) = self.state.record_sending(&job.user_name, &job.hash) {
            return (job, Err(SendFailure::NotRecorded(e)));
        }
        let result = self
            .ucserver
            .write_appointments(&job.user_name, &job.list)
            .await
            .map_err(SendFailure::Refused);
        (job, result)
    }

    /// Records a finished write.
    fn written(
        &self,
        report: &mut CycleReport,
        slot: usize,
        hash: &str,
        result: Result<(), SendFailure>,
    ) {
        let user_name = report.users[slot].user_name.clone();
        match result {
            Ok(()) => {
                if let Err(e) = self.state.record_written(&user_name, hash, Utc::now()) {
                    report.warnings.push(format!(
                        "{user_name}: written to the UCServer, but the state database did not record it ({e}); it will be written again next cycle"
                    ));
                }
                report.users[slot].outcome = UserOutcome::Written;
            }
            Err(SendFailure::Refused(e)) => {
                let reason = format!(
                    "the UCServer did not accept the appointment list ({e}); it is written again next cycle"
                );
                self.fail(report, slot, reason, false);
            }
            Err(SendFailure::NotRecorded(e)) => {
                // Nothing reached the UCServer: the fix is on this machine.
                let reason = format!(
                    "not sent: the state database did not record the send ({e}); check the state path's disk space and permissions; the user is tried again next cycle"
                );
                self.fail(report, slot, reason, false);
            }
        }
    }

    fn user_done(
        &self,
        report: &CycleReport,
        slot: usize,
        done: usize,
        total: usize,
        options: &CycleOptions,
    ) {
        let user = &report.users[slot];
        tracing::debug!(
            user = %user.user_name,
            appointments = user.appointment_count,
            outcome = ?user.outcome,
            "user replicated"
        );
        options.report_progress(Progress::UserDone {
            done,
            total,
            user_name: user.user_name.clone(),
        });
    }

    /// Marks a user failed and records it (unless a dry run).
    fn fail(&self, report: &mut CycleReport, slot: usize, reason: String, dry_run: bool) {
        let user_name = report.users[slot].user_name.clone();
        tracing::warn!(user = %user_name, "{reason}");
        if !dry_run {
            if let Err(e) = self.state.record_failure(&user_name, &reason, Utc::now()) {
                report.warnings.push(format!(
                    "{user_name}: the state database did not record the failure ({e})"
                ));
            }
        }
        report.users[slot].outcome = UserOutcome::Failed { reason };
    }

    fn finish(&self, clock: Instant, report: &mut CycleReport, refresh: bool) {
        let elapsed = clock.elapsed();
        // The end is the start plus the time measured on the monotonic
        // clock, not a second wall-clock reading: a wall-clock step during
        // the cycle (NTP, VM resume, `date -s`) must not record a negative
        // or hours-long duration.
        report.finished_at = ChronoDuration::from_std(elapsed)
            .ok()
            .and_then(|d| report.started_at.checked_add_signed(d))
            .unwrap_or(report.started_at);
        report.durations.total_ms = millis(clock);
        report.overran = !refresh && elapsed > self.settings.interval;
        report.count();
        let c = &report.counters;
        if report.error.is_none() && refresh {
            tracing::info!(
                users = c.selected,
                written = c.written,
                unchanged = c.unchanged,
                failed = c.failed,
                ms = report.durations.total_ms,
                "push refresh finished"
            );
        } else if report.error.is_none() {
            tracing::info!(
                listed = c.listed,
                written = c.written,
                would_write = c.would_write,
                unchanged = c.unchanged,
                skipped = c.skipped,
                failed = c.failed,
                abandoned = c.abandoned,
                ms = report.durations.total_ms,
                dry_run = report.dry_run,
                "replication cycle finished"
            );
        }
        for warning in &report.warnings {
            tracing::warn!("{warning}");
        }
        if !report.dry_run && refresh {
            self.observer.push_refresh_finished(report);
        } else if !report.dry_run {
            if let Err(e) = self.state.record_cycle(&report.to_record()) {
                let warning = format!("the state database did not record the cycle ({e})");
                tracing::warn!("{warning}");
                report.warnings.push(warning);
            }
            self.observer.cycle_finished(report);
        }
    }
}
