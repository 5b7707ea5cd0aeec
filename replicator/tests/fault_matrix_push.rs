//! The push rows of the fault matrix (issue #19): the service's engine with
//! the change feed over Exchange's streaming notifications, in-process
//! against the Exchange and UCServer simulators over real sockets (TLS and
//! NTLM to Exchange, ROSE to the UCServer). After the first cycle a
//! calendar changes, and a fault hits the notifications: the stream dropped
//! mid-response, the subscriptions expired, the server restarted (every
//! subscription gone), Subscribe throttled. Every row ends with the change
//! written to the UCServer exactly once, and nobody else written.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Duration as ChronoDuration, DurationRound, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use ews_calendar_replicator::app::notifications::{EwsNotifications, FeedTiming, StreamingFeed};
use ews_calendar_replicator::app::{assemble, SimulatedSite};
use ews_calendar_replicator::config::NotificationSettings;
use ews_calendar_replicator::directory::{DirectoryUser, ObjectGuid};
use ews_calendar_replicator::replication::{
    run_scheduled_with_feed, ChangeFeed, CycleOptions, PrivateAppointments, WatchMode,
};
use ews_calendar_replicator::sim::ucserver::{
    SimUser, UcServerSim, UcServerSimConfig, UserDatabase,
};
use ews_calendar_replicator::state::MemoryStateStore;
use ews_toolkit::sim::exchange::{
    generate, BusyMode, ExchangeSim, ExchangeSimConfig, GenerateSpec, InjectedFault, Permission,
    SimAccount, SimBusyType, SimEvent,
};

const ADMIN: &str = "ucadmin";
const ADMIN_PASSWORD: &str = "push-admin-password";
const EWS_PASSWORD: &str = "push-service-password";

/// The simulators, the engine scheduled with the feed, and who is who.
struct PushSite {
    exchange: ExchangeSim,
    ucserver: UcServerSim,
    /// Offline users whose calendar the account may subscribe to.
    subscribable: Vec<SimUser>,
    /// An offline user whose mailbox grants free/busy only: read by the
    /// cycle, refused by Subscribe.
    free_busy_only: SimUser,
    feed: Arc<StreamingFeed>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl PushSite {
    async fn start() -> PushSite {
        PushSite::start_with(|_| {}).await
    }

    async fn start_with(tune: impl FnOnce(&mut ExchangeSimConfig)) -> PushSite {
        PushSite::start_as(false, tune).await
    }

    /// `impersonation`: the account has the impersonation right and the
    /// configuration uses it (`exchange.impersonation = true`).
    async fn start_as(impersonation: bool, tune: impl FnOnce(&mut ExchangeSimConfig)) -> PushSite {
        let dir = tempfile::tempdir().unwrap();
        let people = UserDatabase::generate(12, 0.75, 19, ADMIN, ADMIN_PASSWORD);
        let ucserver = UcServerSim::start(UcServerSimConfig::new(people), None)
            .await
            .unwrap();
        let users: Vec<SimUser> = ucserver.users().into_iter().filter(|u| !u.admin).collect();
        let mut mailboxes = generate(&GenerateSpec {
            users: users.len(),
            events_per_user: 4,
            seed: 19,
            domain: "example.com".into(),
            now: Utc::now(),
        })
        .mailboxes;
        let offline: Vec<usize> = (0..users.len()).filter(|&n| !users[n].online).collect();
        assert!(offline.len() >= 4, "the generated site has offline users");
        let free_busy_index = offline[offline.len() - 1];
        let mut directory = Vec::new();
        for (n, (user, mailbox)) in users.iter().zip(mailboxes.iter_mut()).enumerate() {
            mailbox.smtp = user.email.clone();
            mailbox.permission = if n == free_busy_index {
                Permission::FreeBusy
            } else {
                Permission::DetailsAndPrivate
            };
            directory.push(DirectoryUser {
                object_guid: user.object_guid.parse::<ObjectGuid>().unwrap(),
                dn: user.dn.clone(),
                sam_account_name: Some(user.sam_account_name.clone()),
                user_principal_name: Some(user.email.clone()),
                primary_smtp: Some(user.email.clone()),
                smtp_addresses: vec![user.email.clone()],
                home_mdb: None,
            });
        }
        let mut config = ExchangeSimConfig::new(mailboxes);
        let account = SimAccount::new("CORP", "svc-push", EWS_PASSWORD);
        config.accounts = vec![if impersonation {
            account.with_impersonation()
        } else {
            account
        }];
        tune(&mut config);
        let exchange = ExchangeSim::start(config).await.unwrap();
        let ca_file = dir.path().join("exchange-ca.pem");
        exchange.write_ca_pem(&ca_file).unwrap();
        let site = SimulatedSite {
            ucserver_url: ucserver.base_url(),
            ucserver_admin: ADMIN.into(),
            ucserver_password: ADMIN_PASSWORD.into(),
            exchange_url: exchange.ews_url(),
            exchange_account: "CORP\\svc-push".into(),
            exchange_password: EWS_PASSWORD.into(),
            exchange_ca_file: ca_file,
            directory,
            max_concurrency: 4,
            private_appointments: PrivateAppointments::Skip,
        };
        let mut config = site.configure(dir.path()).unwrap();
        config.exchange.impersonation = impersonation;
        let engine = assemble(&config, MemoryStateStore::new()).await.unwrap();

        let (changes_tx, changes) = mpsc::unbounded_channel();
        let settings = NotificationSettings {
            connection_timeout_minutes: 1,
            ..config.exchange.notifications.clone()
        };
        let feed = Arc::new(StreamingFeed::start(
            EwsNotifications::new(config.exchange.clone(), engine.calendars().scp()),
            settings,
            impersonation,
            FeedTiming {
                first_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(2),
                refused_retry: Duration::from_secs(3600),
            },
            changes_tx,
        ));
        let (stop, shutdown) = watch::channel(false);
        let scheduled = feed.clone();
        let task = tokio::spawn(async move {
            run_scheduled_with_feed(
                &engine,
                CycleOptions::default(),
                Some((&*scheduled, changes)),
                shutdown,
                |_| {},
            )
            .await;
        });
        let site = PushSite {
            exchange,
            ucserver,
            subscribable: offline[..offline.len() - 1]
                .iter()
                .map(|&n| users[n].clone())
                .collect(),
            free_busy_only: users[free_busy_index].clone(),
            feed,
            stop,
            task,
            _dir: dir,
        };
        site.first_cycle_done(impersonation).await;
        site
    }

    /// The first cycle wrote every offline user once, and the feed
    /// subscribed every mailbox it may.
    async fn first_cycle_done(&self, impersonation: bool) {
        // Impersonated, the account needs no folder rights.
        let subscribable = self.subscribable.len() + usize::from(impersonation);
        wait_until("the first cycle's writes and the subscriptions", || {
            self.subscribable
                .iter()
                .chain([&self.free_busy_only])
                .all(|u| self.ucserver.write_count(&u.user_name) == 1)
                && self.feed.status().subscribed == subscribable
                && self.exchange.notification_counters().open_streams >= 1
        })
        .await;
    }

    fn writes(&self) -> Vec<usize> {
        self.ucserver
            .users()
            .iter()
            .map(|u| self.ucserver.write_count(&u.user_name))
            .collect()
    }

    /// Adds a meeting tomorrow to `user`'s calendar.
    fn change(&self, user: &SimUser, id: &str) {
        let start = (Utc::now() + ChronoDuration::days(1))
            .duration_trunc(ChronoDuration::hours(1))
            .unwrap();
        self.exchange
            .mailbox_mut(&user.email, |mailbox| {
                mailbox.events.push(SimEvent {
                    id: id.into(),
                    start,
                    end: start + ChronoDuration::minutes(30),
                    busy_type: SimBusyType::Busy,
                    subject: Some(format!("pushed {id}")),
                    location: None,
                    private: false,
                    meeting: true,
                    all_day: false,
                    recurrence: None,
                })
            })
            .unwrap();
    }

    /// `user`'s calendar as the UCServer holds it has the meeting `id`.
    fn shows(&self, user: &SimUser, id: &str) -> bool {
        self.ucserver
            .appointments(&user.user_name)
            .unwrap_or_default()
            .iter()
            .any(|a| format!("{a:?}").contains(&format!("pushed {id}")))
    }

    /// `change` is written to `user` by the push loop, exactly once, and
    /// nobody else is written: a second change to another user (written
    /// after it, the loop being first come first served) shows that no
    /// further write of the first was still on its way.
    async fn assert_pushed_once(&self, user: &SimUser, id: &str, before: &[usize]) {
        wait_until(&format!("{id} written to {}", user.user_name), || {
            self.shows(user, id)
        })
        .await;
        let marker = self
            .subscribable
            .iter()
            .find(|u| u.user_name != user.user_name)
            .unwrap();
        self.change(marker, "marker");
        wait_until("the marker change written", || self.shows(marker, "marker")).await;
        let users = self.ucserver.users();
        for ((u, before), after) in users.iter().zip(before).zip(self.writes()) {
            let expected = before
                + usize::from(u.user_name == user.user_name)
                + usize::from(u.user_name == marker.user_name);
            assert_eq!(after, expected, "writes of {}", u.user_name);
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the scheduler stops")
            .unwrap();
    }
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_calendar_change_reaches_the_ucserver_within_seconds_written_once() {
    let site = PushSite::start().await;
    let before = site.writes();
    let user = site.subscribable[0].clone();
    site.change(&user, "plain");
    // Far sooner than the 15-minute cycle: the wait is the push loop's.
    site.assert_pushed_once(&user, "plain", &before).await;
    assert!(site.feed.status().last_event_at.is_some());
    site.stop().await;
}

#[tokio::test]
async fn a_mailbox_granting_free_busy_only_stays_polled_with_the_reason() {
    let site = PushSite::start().await;
    match site.feed.mode(&site.free_busy_only.email) {
        Some(WatchMode::Polled { reason }) => {
            assert!(reason.contains("ErrorAccessDenied"), "{reason}");
            assert!(reason.contains("Reviewer"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let status = site.feed.status();
    assert_eq!(status.polled.len(), 1, "{status:?}");
    assert_eq!(status.subscribed, site.subscribable.len());
    site.stop().await;
}

#[tokio::test]
async fn row_connection_dropped_mid_stream() {
    let site = PushSite::start().await;
    let before = site.writes();
    let user = site.subscribable[1].clone();
    site.exchange.drop_event_streams();
    site.change(&user, "dropped");
    site.assert_pushed_once(&user, "dropped", &before).await;
    site.stop().await;
}

#[tokio::test]
async fn row_subscription_expired() {
    let site = PushSite::start().await;
    let before = site.writes();
    let user = site.subscribable[1].clone();
    site.exchange.expire_subscriptions();
    site.change(&user, "expired");
    site.assert_pushed_once(&user, "expired", &before).await;
    let status = site.feed.status();
    assert!(status.resubscribed >= 1, "{status:?}");
    site.stop().await;
}

#[tokio::test]
async fn row_server_restart_every_subscription_gone() {
    let site = PushSite::start().await;
    let before = site.writes();
    let user = site.subscribable[2].clone();
    let created = site.exchange.notification_counters().subscriptions_created;
    site.exchange.restart();
    // Changed while no subscription exists: only the full read after the
    // new subscription finds it.
    site.change(&user, "restart");
    site.assert_pushed_once(&user, "restart", &before).await;
    let counters = site.exchange.notification_counters();
    assert!(
        counters.subscriptions_created >= created + site.subscribable.len() as u64,
        "{counters:?}"
    );
    site.stop().await;
}

#[tokio::test]
async fn row_throttled_subscribe() {
    let site = PushSite::start().await;
    let before = site.writes();
    let user = site.subscribable[0].clone();
    site.exchange.restart();
    // The requests after the restart (the stream re-opened, the Subscribes)
    // are answered ErrorServerBusy for a while.
    site.exchange.inject(
        InjectedFault::Busy(BusyMode::SoapFault { back_off_ms: 300 }),
        6,
    );
    site.change(&user, "throttled");
    site.assert_pushed_once(&user, "throttled", &before).await;
    site.stop().await;
}

#[tokio::test]
async fn row_connection_closed_at_its_timeout_is_opened_again_seamlessly() {
    // One "minute" of ConnectionTimeout lasts 300 ms: the stream closes
    // and is opened again many times during the test.
    let site = PushSite::start_with(|config| {
        config.knobs.notifications.connection_timeout_minute = Duration::from_millis(300);
    })
    .await;
    let opened = site.exchange.notification_counters().streams_opened;
    wait_until("the stream closed and opened again", || {
        site.exchange.notification_counters().streams_closed >= 2
            && site.exchange.notification_counters().streams_opened >= opened + 2
    })
    .await;
    let before = site.writes();
    let user = site.subscribable[1].clone();
    site.change(&user, "reopened");
    site.assert_pushed_once(&user, "reopened", &before).await;
    let counters = site.exchange.notification_counters();
    assert_eq!(
        counters.subscriptions_created,
        site.subscribable.len() as u64,
        "no subscription made again: {counters:?}"
    );
    site.stop().await;
}

#[tokio::test]
async fn with_impersonation_every_mailbox_is_subscribed_as_itself_and_changes_are_pushed() {
    let site = PushSite::start_as(true, |_| {}).await;
    // Folder rights do not matter when subscribing as the mailbox.
    assert_eq!(
        site.feed.mode(&site.free_busy_only.email),
        Some(WatchMode::Subscribed)
    );
    assert!(site.feed.status().polled.is_empty());
    let before = site.writes();
    let user = site.subscribable[0].clone();
    site.change(&user, "impersonated");
    site.assert_pushed_once(&user, "impersonated", &before)
        .await;
    site.stop().await;
}
