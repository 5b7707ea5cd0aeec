//! How an [`EwsClient`](crate::EwsClient) paces and retries its requests,
//! the same for every operation (as exchangelib's `Protocol` and smithy's
//! retry classifiers do): a classifier over [`EwsError`], one pause for the
//! whole server when it says it is busy, bounded retries with a capped
//! doubling back-off, and a concurrency limit that the server's answers
//! lower and calm answers raise again.
//!
//! Everything here is per client, that is per server: Exchange throttles an
//! account per server, so one busy answer concerns every request to it.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::client::EwsError;

/// How a client paces and retries; [`Default`] suits a production Exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResilienceConfig {
    /// Requests in flight at once, at least 1; far below Exchange's
    /// `EWSMaxConcurrency` (10 on 2010, 27 on 2013+) by default. Busy and
    /// connection-limit answers lower it, calm answers raise it back. The
    /// transport's `max_connections_per_host` is a second, fixed bound.
    pub concurrency: usize,
    /// Retries of one request after a timeout, a dropped connection, HTTP
    /// 502/504 or a transient Exchange error.
    pub max_transient_retries: u32,
    /// Retries of one request after busy (`ErrorServerBusy`, HTTP 503) or
    /// connection-limit (`ErrorExceededConnectionCount`) answers.
    pub max_busy_retries: u32,
    /// The first pause when the server is busy without saying for how long,
    /// and before the first transient retry; each further one in a row
    /// doubles it.
    pub initial_back_off: Duration,
    /// No pause is longer, whatever the server asks for.
    pub max_back_off: Duration,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            concurrency: 4,
            max_transient_retries: 3,
            max_busy_retries: 10,
            initial_back_off: Duration::from_secs(1),
            max_back_off: Duration::from_secs(300),
        }
    }
}

impl ResilienceConfig {
    /// Every request sent once: a caller that reports each failure as it
    /// comes (diagnostics) and decides itself whether to wait and ask again.
    pub fn single_attempt() -> Self {
        ResilienceConfig {
            max_transient_retries: 0,
            max_busy_retries: 0,
            ..ResilienceConfig::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), EwsError> {
        if self.concurrency == 0 {
            return Err(EwsError::Config(
                "concurrent requests is 0; set it to at least 1".to_owned(),
            ));
        }
        if self.initial_back_off.is_zero() || self.max_back_off < self.initial_back_off {
            return Err(EwsError::Config(format!(
                "the back-off must start above zero and its maximum ({:?}) must not be below its start ({:?})",
                self.max_back_off, self.initial_back_off
            )));
        }
        Ok(())
    }
}

/// What the client does after a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// The server is overloaded (`ErrorServerBusy`, HTTP 503): every request
    /// to it pauses (as long as it asked, else the doubling back-off), one
    /// request fewer at a time, then this one goes again.
    Busy { asked: Option<Duration> },
    /// `ErrorExceededConnectionCount`: one request fewer at a time; only this
    /// request waits (the others in flight hold connections the server
    /// counted and may finish).
    TooManyConnections,
    /// A timeout, a dropped or refused connection, HTTP 502/504, a transient
    /// Exchange error: sent again after the doubling back-off.
    Transient,
    /// Sending it again would fail the same way.
    Permanent,
}

/// The retry classifier: what a failed request's error asks for.
pub fn classify(error: &EwsError) -> RetryClass {
    if error.is_busy() {
        RetryClass::Busy {
            asked: error.back_off(),
        }
    } else if error.fault_code() == Some("ErrorExceededConnectionCount") {
        RetryClass::TooManyConnections
    } else if error.is_retryable() {
        RetryClass::Transient
    } else {
        RetryClass::Permanent
    }
}

/// Told about a client's traffic as it happens (metrics). Every method
/// defaults to doing nothing; calls come from the request tasks and must
/// return quickly. [`RequestStats`] has the same counts as totals.
pub trait RequestObserver: Send + Sync {
    /// A request is sent (retries included).
    fn request_sent(&self) {}
    /// The server answered busy (SOAP fault, per-mailbox error or HTTP 503).
    fn busy_answer(&self) {}
    /// A request is sent again.
    fn retry(&self) {}
    /// The client waits `pause` before sending again (busy, connection limit).
    fn backed_off(&self, _pause: Duration) {}
}

/// The observer of a client nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRequestObserver;

impl RequestObserver for NoRequestObserver {}

/// A client's traffic so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// Requests sent (retries included).
    pub requests_sent: u64,
    /// Requests sent again (after busy, connection-limit or transient failures).
    pub retries: u64,
    /// Busy answers: SOAP fault, per-mailbox error or HTTP 503.
    pub busy_answers: u64,
    /// The current limit of requests in flight.
    pub concurrency: usize,
    /// The most requests that were in flight at once.
    pub peak_in_flight: usize,
    /// Time spent waiting because the server was busy or counted too many
    /// connections (every pause, summed).
    pub back_off: Duration,
}

/// The retries one request has used. One request may be several sends (the
/// availability reader sends the mailboxes a server was busy for again):
/// they share one budget.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Attempts {
    busy: u32,
    transient: u32,
}

/// Answers without a busy error before the concurrency is raised by one.
const RAISE_AFTER_CALM_ANSWERS: u32 = 8;

/// One client's pacing state.
pub(crate) struct Resilience {
    config: ResilienceConfig,
    limiter: Limiter,
    paused_until: Mutex<Option<Instant>>,
    /// Busy answers in a row, for the doubling back-off.
    busy_streak: AtomicU32,
    /// Answers without a busy error since the concurrency last changed, to
    /// raise it again.
    calm_answers: AtomicU32,
    requests_sent: AtomicU64,
    retries: AtomicU64,
    busy_answers: AtomicU64,
    back_off_ms: AtomicU64,
    observer: Arc<dyn RequestObserver>,
}

impl Resilience {
    pub(crate) fn new(config: ResilienceConfig, observer: Arc<dyn RequestObserver>) -> Self {
        Resilience {
            limiter: Limiter::new(config.concurrency),
            config,
            paused_until: Mutex::new(None),
            busy_streak: AtomicU32::new(0),
            calm_answers: AtomicU32::new(0),
            requests_sent: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            busy_answers: AtomicU64::new(0),
            back_off_ms: AtomicU64::new(0),
            observer,
        }
    }

    pub(crate) fn config(&self) -> &ResilienceConfig {
        &self.config
    }

    pub(crate) fn observer(&self) -> &Arc<dyn RequestObserver> {
        &self.observer
    }

    pub(crate) fn stats(&self) -> RequestStats {
        RequestStats {
            requests_sent: self.requests_sent.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            busy_answers: self.busy_answers.load(Ordering::Relaxed),
            concurrency: self.limiter.limit(),
            peak_in_flight: self.limiter.peak(),
            back_off: Duration::from_millis(self.back_off_ms.load(Ordering::Relaxed)),
        }
    }

    /// Holds every request back for `pause` from now (a longer pause
    /// already in force is kept).
    pub(crate) fn pause_for(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut paused = self.paused_until.lock().expect("pause lock");
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }

    pub(crate) fn paused_until(&self) -> Option<Instant> {
        self.paused_until
            .lock()
            .expect("pause lock")
            .filter(|until| *until > Instant::now())
    }

    async fn wait_while_paused(&self) {
        // A pause may be extended while waiting: look again after each sleep.
        while let Some(until) = self.paused_until() {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// Sends with `send_once` until it succeeds or its error may not be
    /// retried (any more). Each send holds a concurrency slot unless
    /// `take_slot` is false, and waits out a pause first. A success is not
    /// counted as calm here: the caller knows whether the answer was
    /// (see [`Self::answered_calmly`]).
    pub(crate) async fn send<T, F, Fut>(
        &self,
        attempts: &mut Attempts,
        take_slot: bool,
        server: &str,
        operation: &str,
        mut send_once: F,
    ) -> Result<T, EwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, EwsError>>,
    {
        loop {
            let sent = {
                let _slot = if take_slot {
                    Some(self.limiter.acquire().await)
                } else {
                    None
                };
                self.wait_while_paused().await;
                self.requests_sent.fetch_add(1, Ordering::Relaxed);
                self.observer.request_sent();
                send_once().await
            };
            let error = match sent {
                Ok(body) => return Ok(body),
                Err(error) => error,
            };
            if !self.retry_after(attempts, &error, server, operation).await {
                return Err(error);
            }
        }
    }

    /// Waits as `error` asks when `attempts` allow another try; `false`
    /// when the request is to fail with it.
    async fn retry_after(
        &self,
        attempts: &mut Attempts,
        error: &EwsError,
        server: &str,
        operation: &str,
    ) -> bool {
        match classify(error) {
            RetryClass::Busy { asked } => {
                let Some(pause) = self.busy(attempts, asked) else {
                    return false;
                };
                tracing::warn!(server, operation, pause_ms = pause.as_millis() as u64, %error,
                    "Exchange is busy; pausing all requests to it");
                true
            }
            RetryClass::TooManyConnections => {
                if attempts.busy >= self.config.max_busy_retries {
                    return false;
                }
                attempts.busy += 1;
                self.retry();
                self.limiter.lower();
                tracing::warn!(server, operation, concurrency = self.limiter.limit(),
                    "Exchange counts too many connections (ErrorExceededConnectionCount); fewer requests at a time");
                let pause = self.backing_off(doubled(
                    self.config.initial_back_off,
                    attempts.busy - 1,
                    self.config.max_back_off,
                ));
                tokio::time::sleep(pause).await;
                true
            }
            RetryClass::Transient => {
                if attempts.transient >= self.config.max_transient_retries {
                    return false;
                }
                attempts.transient += 1;
                self.retry();
                tracing::debug!(server, operation, %error, "sending the request again");
                tokio::time::sleep(doubled(
                    self.config.initial_back_off,
                    attempts.transient - 1,
                    self.config.max_back_off,
                ))
                .await;
                true
            }
            RetryClass::Permanent => false,
        }
    }

    /// A busy answer (a fault, an HTTP 503, or busy errors inside an answer):
    /// counted, one request fewer at a time, and, when `attempts` allow a
    /// retry, every request paused for `asked` (else the doubling back-off),
    /// capped; the pause is returned. The request then waits it out before
    /// its next send like every other.
    pub(crate) fn busy(
        &self,
        attempts: &mut Attempts,
        asked: Option<Duration>,
    ) -> Option<Duration> {
        self.busy_answers.fetch_add(1, Ordering::Relaxed);
        self.observer.busy_answer();
        // Pausing alone is not enough: when the server serves fewer requests
        // than are in flight, the same requests keep colliding after every
        // pause and one of them can exhaust its retries.
        self.calm_answers.store(0, Ordering::Relaxed);
        self.limiter.lower();
        if attempts.busy >= self.config.max_busy_retries {
            return None;
        }
        attempts.busy += 1;
        self.retry();
        let streak = self.busy_streak.fetch_add(1, Ordering::Relaxed);
        let cap = self.config.max_back_off;
        let pause = match asked {
            Some(asked) => asked.min(cap),
            None => doubled(self.config.initial_back_off, streak, cap),
        };
        self.backing_off(pause);
        self.pause_for(pause);
        Some(pause)
    }

    /// An answer without a busy error: the doubling starts again, and after
    /// `RAISE_AFTER_CALM_ANSWERS` of them one request more at a time, up to
    /// the configured limit.
    pub(crate) fn answered_calmly(&self) {
        self.busy_streak.store(0, Ordering::Relaxed);
        let calm = self.calm_answers.fetch_add(1, Ordering::Relaxed) + 1;
        if calm >= RAISE_AFTER_CALM_ANSWERS && self.limiter.raise(self.config.concurrency) {
            self.calm_answers.store(0, Ordering::Relaxed);
        }
    }

    fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.observer.retry();
    }

    /// Counts a pause before it is taken.
    fn backing_off(&self, pause: Duration) -> Duration {
        let ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
        self.back_off_ms.fetch_add(ms, Ordering::Relaxed);
        self.observer.backed_off(pause);
        pause
    }
}

/// `initial * 2^n`, at most `cap`.
pub(crate) fn doubled(initial: Duration, n: u32, cap: Duration) -> Duration {
    initial
        .checked_mul(1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(cap)
        .min(cap)
}

/// A concurrency limit that can be lowered while requests are in flight.
struct Limiter {
    semaphore: Semaphore,
    limit: AtomicUsize,
    /// Permits to retire as they come back (the limit was lowered while
    /// they were in use).
    debt: AtomicUsize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

struct Permit<'a> {
    limiter: &'a Limiter,
    permit: Option<SemaphorePermit<'a>>,
}

impl Limiter {
    fn new(limit: usize) -> Limiter {
        Limiter {
            semaphore: Semaphore::new(limit),
            limit: AtomicUsize::new(limit),
            debt: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    async fn acquire(&self) -> Permit<'_> {
        let permit = self
            .semaphore
            .acquire()
            .await
            .expect("the limiter's semaphore is never closed");
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Permit {
            limiter: self,
            permit: Some(permit),
        }
    }

    /// One request more at a time, never above `max` (checked and raised in
    /// one step, so two answers at once cannot both pass the check): first
    /// cancels a permit still to be retired, otherwise adds one.
    fn raise(&self, max: usize) -> bool {
        let raised = self
            .limit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                (l < max).then_some(l + 1)
            });
        if raised.is_err() {
            return false;
        }
        let cancelled = self
            .debt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| d.checked_sub(1))
            .is_ok();
        if !cancelled {
            self.semaphore.add_permits(1);
        }
        true
    }

    /// One request fewer at a time, never below one.
    fn lower(&self) {
        let lowered = self
            .limit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| {
                (l > 1).then_some(l - 1)
            });
        if lowered.is_err() {
            return;
        }
        match self.semaphore.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(_) => {
                self.debt.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.limiter.in_flight.fetch_sub(1, Ordering::Relaxed);
        let retire = self
            .limiter
            .debt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| d.checked_sub(1))
            .is_ok();
        if let (true, Some(permit)) = (retire, self.permit.take()) {
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::SoapFault;
    use crate::transport::TransportError;

    fn fault(code: &str) -> EwsError {
        EwsError::Fault {
            server: "mail.contoso.com".into(),
            fault: Box::new(SoapFault {
                fault_code: format!("a:{code}"),
                fault_string: String::new(),
                response_code: Some(code.to_owned()),
                message: None,
                message_xml: Vec::new(),
            }),
        }
    }

    #[test]
    fn errors_are_classified_by_what_they_ask_for() {
        assert_eq!(
            classify(&fault("ErrorServerBusy")),
            RetryClass::Busy { asked: None }
        );
        let unavailable = EwsError::ServiceUnavailable {
            server: "mail.contoso.com".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            classify(&unavailable),
            RetryClass::Busy {
                asked: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(&fault("ErrorExceededConnectionCount")),
            RetryClass::TooManyConnections
        );
        assert_eq!(
            classify(&fault("ErrorInternalServerTransientError")),
            RetryClass::Transient
        );
        let reset = EwsError::from(TransportError::ConnectionReset {
            host: "mail.contoso.com".into(),
            reason: "eof".into(),
        });
        assert_eq!(classify(&reset), RetryClass::Transient);
        assert_eq!(classify(&fault("ErrorAccessDenied")), RetryClass::Permanent);
        assert_eq!(
            classify(&fault("ErrorMailboxDataArrayTooBig")),
            RetryClass::Permanent
        );
        assert_eq!(
            classify(&EwsError::Config("x".into())),
            RetryClass::Permanent
        );
    }

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let second = Duration::from_secs(1);
        let cap = Duration::from_secs(10);
        let steps: Vec<u64> = (0..6).map(|n| doubled(second, n, cap).as_secs()).collect();
        assert_eq!(steps, [1, 2, 4, 8, 10, 10]);
        assert_eq!(doubled(second, 200, cap), cap);
    }

    #[test]
    fn config_limits_are_checked() {
        let none = ResilienceConfig {
            concurrency: 0,
            ..Default::default()
        };
        assert!(none.validate().is_err());
        let inverted = ResilienceConfig {
            max_back_off: Duration::from_millis(1),
            ..Default::default()
        };
        assert!(inverted.validate().is_err());
        assert!(ResilienceConfig::default().validate().is_ok());
        assert!(ResilienceConfig::single_attempt().validate().is_ok());
    }

    #[test]
    fn busy_answers_share_one_budget_and_pause_the_server() {
        let resilience = Resilience::new(
            ResilienceConfig {
                max_busy_retries: 2,
                initial_back_off: Duration::from_millis(10),
                ..Default::default()
            },
            Arc::new(NoRequestObserver),
        );
        let mut attempts = Attempts::default();
        assert_eq!(
            resilience.busy(&mut attempts, None),
            Some(Duration::from_millis(10))
        );
        assert!(resilience.paused_until().is_some());
        assert_eq!(
            resilience.busy(&mut attempts, Some(Duration::from_millis(3))),
            Some(Duration::from_millis(3))
        );
        assert_eq!(resilience.busy(&mut attempts, None), None, "budget spent");
        let stats = resilience.stats();
        assert_eq!((stats.busy_answers, stats.retries), (3, 2));
        assert_eq!(stats.concurrency, 1, "each busy answer lowers it");
    }

    #[tokio::test]
    async fn the_limit_can_be_lowered_while_permits_are_out() {
        let limiter = Limiter::new(3);
        let a = limiter.acquire().await;
        let b = limiter.acquire().await;
        let c = limiter.acquire().await;
        limiter.lower();
        limiter.lower();
        limiter.lower(); // never below one
        assert_eq!(limiter.limit(), 1);
        drop((a, b, c));
        let _one = limiter.acquire().await;
        assert!(
            limiter.semaphore.try_acquire().is_err(),
            "only one permit is left"
        );
        assert_eq!(limiter.peak(), 3);
    }

    #[tokio::test]
    async fn a_lowered_limit_can_be_raised_again() {
        let limiter = Limiter::new(3);
        let a = limiter.acquire().await;
        let b = limiter.acquire().await;
        limiter.lower(); // two out, one free: the free one is retired
        limiter.lower(); // none free: one of the two is retired on return
        assert!(limiter.raise(3)); // cancels that retirement
        assert_eq!(limiter.limit(), 2);
        drop((a, b));
        let _x = limiter.acquire().await;
        let _y = limiter.acquire().await;
        assert!(
            limiter.semaphore.try_acquire().is_err(),
            "two permits in all"
        );
        assert!(limiter.raise(3));
        assert!(!limiter.raise(3), "never above the configured limit");
        let _z = limiter.acquire().await;
        assert_eq!(limiter.limit(), 3);
        assert!(
            limiter.semaphore.try_acquire().is_err(),
            "three permits in all"
        );
    }
}
