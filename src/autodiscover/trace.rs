//! What autodiscover tried and why it moved on: one [`AutodiscoverStep`] per
//! lookup or request, returned with the result and with the error, for
//! diagnostics (the `check` command) and the log.

use std::fmt;

use crate::server_text::sanitize;

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Answered from the cache.
    Cache,
    /// Read the service connection points from Active Directory.
    ScpLookup,
    /// POSTed the plain-XML request (`autodiscover.xml`).
    Pox,
    /// POSTed SOAP `GetUserSettings` (`autodiscover.svc`).
    Soap,
    /// Unauthenticated `GET http://autodiscover.<domain>/...` for a redirect.
    RedirectProbe,
    /// Looked up the `_autodiscover._tcp.<domain>` SRV record.
    SrvLookup,
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepKind::Cache => "cache",
            StepKind::ScpLookup => "SCP lookup",
            StepKind::Pox => "POX",
            StepKind::Soap => "SOAP GetUserSettings",
            StepKind::RedirectProbe => "HTTP redirect probe",
            StepKind::SrvLookup => "SRV lookup",
        })
    }
}

/// Where the step's target came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A service connection point in Active Directory.
    Scp,
    /// `https://<domain>/autodiscover/...`.
    Domain,
    /// `https://autodiscover.<domain>/autodiscover/...`.
    AutodiscoverHost,
    /// The `Location` of the unauthenticated HTTP probe's redirect.
    HttpRedirect,
    /// A target of the `_autodiscover._tcp` SRV record.
    Srv,
    /// A server's `redirectUrl` answer.
    RedirectUrl,
    /// The cache.
    Cache,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Via::Scp => "service connection point",
            Via::Domain => "the mail domain",
            Via::AutodiscoverHost => "autodiscover.<domain>",
            Via::HttpRedirect => "HTTP redirect",
            Via::Srv => "SRV record",
            Via::RedirectUrl => "redirectUrl",
            Via::Cache => "cache",
        })
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The EWS URL.
    Found { ews_url: String },
    /// A lookup gave this many candidates.
    Candidates { count: usize },
    /// Ask elsewhere: a URL (`redirectUrl`, HTTP redirect) or an address
    /// (`redirectAddr`).
    Redirect { to: String },
    /// The step failed; the search went on with the next candidate.
    Failed { reason: String },
    /// The step was not tried (already tried, refused or not configured).
    Skipped { reason: String },
    /// `host` is not trusted with the credentials: it was asked anonymously
    /// at most, and what it answered was not used.
    Refused { host: String, reason: String },
}

/// One thing autodiscover tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutodiscoverStep {
    pub kind: StepKind,
    pub via: Via,
    /// The URL asked, or the DNS name / directory looked up.
    pub target: String,
    /// The address asked for (changes after a `redirectAddr`).
    pub mailbox: String,
    pub outcome: StepOutcome,
}

impl fmt::Display for AutodiscoverStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Targets, addresses and reasons carry servers' text (redirects,
        // error messages, SRV names): no control characters in the trace.
        write!(
            f,
            "{} {} for {} (from {}): ",
            self.kind,
            sanitize(&self.target),
            sanitize(&self.mailbox),
            self.via
        )?;
        match &self.outcome {
            StepOutcome::Found { ews_url } => write!(f, "found EWS URL {}", sanitize(ews_url)),
            StepOutcome::Candidates { count } => write!(f, "{count} candidate(s)"),
            StepOutcome::Redirect { to } => write!(f, "redirected to {}", sanitize(to)),
            StepOutcome::Failed { reason } => write!(f, "failed: {}", sanitize(reason)),
            StepOutcome::Skipped { reason } => write!(f, "skipped: {}", sanitize(reason)),
            StepOutcome::Refused { reason, .. } => {
                write!(f, "refused credentials: {}", sanitize(reason))
            }
        }
    }
}

/// Why autodiscover gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureReason {
    /// The mailbox is not an e-mail address.
    InvalidMailbox,
    /// Every step was tried without an EWS URL.
    Exhausted,
    /// More redirects than allowed.
    TooManyRedirects { limit: usize },
}

/// Autodiscover found no EWS URL. The message lists every step and why it
/// did not give the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutodiscoverError {
    pub mailbox: String,
    pub reason: FailureReason,
    pub steps: Vec<AutodiscoverStep>,
}

impl fmt::Display for AutodiscoverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            FailureReason::InvalidMailbox => {
                return write!(
                    f,
                    "autodiscover needs an e-mail address (user@domain), got {:?}; configure the mailbox's SMTP address or an EWS URL",
                    self.mailbox
                )
            }
            FailureReason::Exhausted => write!(
                f,
                "autodiscover found no EWS URL for {}: every step failed; configure the EWS URL explicitly or fix the first step that should have worked",
                self.mailbox
            )?,
            FailureReason::TooManyRedirects { limit } => write!(
                f,
                "autodiscover for {} stopped after {limit} redirects (the limit); the servers' redirectAddr/redirectUrl settings send it in circles",
                self.mailbox
            )?,
        }
        f.write_str("; steps:")?;
        for (n, step) in self.steps.iter().enumerate() {
            write!(f, "\n  {}. {step}", n + 1)?;
        }
        Ok(())
    }
}

impl std::error::Error for AutodiscoverError {}
