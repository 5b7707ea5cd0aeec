//! The feed's logic against a fake Exchange: grouping, limits, re-opening,
//! re-subscribing, refused mailboxes and back-off.

use super::*;

use std::time::Duration;

#[derive(Default)]
struct FakeState {
    next_id: u64,
    /// subscription id -> mailbox.
    subscriptions: BTreeMap<String, String>,
    /// mailbox -> the code its Subscribe is refused with.
    refused: BTreeMap<String, String>,
    /// Subscribe calls still to be answered with ErrorServerBusy.
    busy_subscribes: usize,
    /// (mailbox, the anchor of its affinity).
    subscribe_calls: Vec<(String, String)>,
    /// (ids, anchor) of every GetStreamingEvents opened.
    opens: Vec<(Vec<String>, String)>,
    /// The sending end of each opened stream, in order.
    streams: Vec<UnboundedSender<Result<StreamMessage, NotificationError>>>,
    unsubscribed: Vec<String>,
    /// Connections the account may hold (Exchange's HangingConnectionLimit).
    max_streams: Option<usize>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<FakeState>>);

impl Fake {
    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }

    fn id_of(&self, mailbox: &str) -> Option<String> {
        self.state()
            .subscriptions
            .iter()
            .find(|(_, m)| m.as_str() == mailbox)
            .map(|(id, _)| id.clone())
    }

    /// Sends `message` on the newest connection.
    fn send(&self, message: Result<StreamMessage, NotificationError>) {
        let state = self.state();
        state.streams.last().unwrap().send(message).unwrap();
    }

    fn subscribe_count(&self, mailbox: &str) -> usize {
        self.state()
            .subscribe_calls
            .iter()
            .filter(|(m, _)| m == mailbox)
            .count()
    }

    fn opens(&self) -> usize {
        self.state().opens.len()
    }
}

struct FakeStream(UnboundedReceiver<Result<StreamMessage, NotificationError>>);

impl EventSource for FakeStream {
    async fn next_message(&mut self) -> Option<Result<StreamMessage, NotificationError>> {
        self.0.recv().await
    }
}

fn code(code: &str) -> NotificationError {
    NotificationError {
        code: Some(code.to_owned()),
        message: format!("{code}: refused by the fake"),
    }
}

impl NotificationApi for Fake {
    type Affinity = String;
    type Stream = FakeStream;

    fn affinity(&self, anchor_mailbox: &str) -> String {
        anchor_mailbox.to_owned()
    }

    async fn subscribe(
        &self,
        mailbox: &str,
        affinity: &String,
    ) -> Result<String, NotificationError> {
        let mut state = self.state();
        state
            .subscribe_calls
            .push((mailbox.to_owned(), affinity.clone()));
        if state.busy_subscribes > 0 {
            state.busy_subscribes -= 1;
            return Err(code("ErrorServerBusy"));
        }
        if let Some(refusal) = state.refused.get(mailbox) {
            return Err(code(refusal));
        }
        state.next_id += 1;
        let id = format!("sub-{}", state.next_id);
        state.subscriptions.insert(id.clone(), mailbox.to_owned());
        Ok(id)
    }

    async fn open_stream(
        &self,
        subscription_ids: &[String],
        affinity: &String,
    ) -> Result<FakeStream, NotificationError> {
        let mut state = self.state();
        // As after a server restart: every id unknown.
        if subscription_ids
            .iter()
            .all(|id| !state.subscriptions.contains_key(id))
        {
            return Err(code("ErrorSubscriptionNotFound"));
        }
        let open = state.streams.iter().filter(|s| !s.is_closed()).count();
        if state.max_streams.is_some_and(|max| open >= max) {
            return Err(code("ErrorExceededConnectionCount"));
        }
        state
            .opens
            .push((subscription_ids.to_vec(), affinity.clone()));
        let (tx, rx) = mpsc::unbounded_channel();
        state.streams.push(tx);
        Ok(FakeStream(rx))
    }

    async fn unsubscribe(
        &self,
        subscription_id: &str,
        _mailbox: &str,
        _affinity: &String,
    ) -> Result<(), NotificationError> {
        let mut state = self.state();
        state.subscriptions.remove(subscription_id);
        state.unsubscribed.push(subscription_id.to_owned());
        Ok(())
    }
}

fn fast() -> FeedTiming {
    FeedTiming {
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(80),
        refused_retry: Duration::from_secs(3600),
    }
}

fn start(
    fake: &Fake,
    settings: NotificationSettings,
) -> (StreamingFeed, UnboundedReceiver<MailboxChange>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let feed = StreamingFeed::start(fake.clone(), settings, false, fast(), tx);
    (feed, rx)
}

fn mailboxes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i:04}@corp.example")).collect()
}

/// Waits (generously) until `condition` holds.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn next_change(rx: &mut UnboundedReceiver<MailboxChange>) -> MailboxChange {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a change within 20 s")
        .expect("the feed is running")
}

#[tokio::test]
async fn subscriptions_are_grouped_200_per_connection_each_group_anchored_on_its_first_mailbox() {
    let fake = Fake::default();
    let (feed, _rx) = start(&fake, NotificationSettings::default());
    let all = mailboxes(450);
    feed.watch(&all);
    until("450 subscribed on 3 connections", || {
        let s = feed.status();
        s.subscribed == 450 && s.connections == 3
    })
    .await;
    let state = fake.state();
    let anchors: BTreeSet<&str> = state
        .subscribe_calls
        .iter()
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(
        anchors,
        BTreeSet::from([all[0].as_str(), all[200].as_str(), all[400].as_str()])
    );
    for (mailbox, anchor) in &state.subscribe_calls {
        let index: usize = mailbox[1..5].parse().unwrap();
        assert_eq!(anchor, &all[index / 200 * 200], "{mailbox}");
    }
    // The connections open now carry every subscription, at most 200 each,
    // with the affinity their subscriptions were made with.
    let current: Vec<&(Vec<String>, String)> = state.opens.iter().rev().take(3).collect();
    let mut carried = 0;
    for (ids, anchor) in current {
        assert!(ids.len() <= 200);
        for id in ids {
            let mailbox = &state.subscriptions[id];
            let index: usize = mailbox[1..5].parse().unwrap();
            assert_eq!(anchor, &all[index / 200 * 200]);
        }
        carried += ids.len();
    }
    assert_eq!(carried, 450);
}

#[tokio::test]
async fn mailboxes_beyond_the_connection_limit_stay_polled_with_the_reason() {
    let fake = Fake::default();
    let settings = NotificationSettings {
        max_connections: 2,
        subscriptions_per_connection: 3,
        ..NotificationSettings::default()
    };
    let (feed, _rx) = start(&fake, settings);
    feed.watch(&mailboxes(8));
    until("6 subscribed, 2 polled", || {
        let s = feed.status();
        s.subscribed == 6 && s.polled.len() == 2
    })
    .await;
    for (_, reason) in feed.status().polled {
        assert!(reason.contains("HangingConnectionLimit"), "{reason}");
        assert!(
            reason.contains("exchange.notification_connections"),
            "{reason}"
        );
    }
    assert_eq!(
        fake.state().subscribe_calls.len(),
        6,
        "no Subscribe beyond the limit"
    );
}

#[tokio::test]
async fn mailboxes_beyond_the_subscription_limit_stay_polled_with_the_reason() {
    let fake = Fake::default();
    let settings = NotificationSettings {
        max_subscriptions: 2,
        ..NotificationSettings::default()
    };
    let (feed, _rx) = start(&fake, settings);
    feed.watch(&mailboxes(3));
    until("2 subscribed, 1 polled", || {
        let s = feed.status();
        s.subscribed == 2 && s.polled.len() == 1
    })
    .await;
    let (_, reason) = &feed.status().polled[0];
    assert!(reason.contains("EWSMaxSubscriptions"), "{reason}");
}

#[tokio::test]
async fn a_mailbox_refusing_the_subscription_stays_polled_with_the_reason_and_is_not_asked_again() {
    let fake = Fake::default();
    let all = mailboxes(3);
    fake.state()
        .refused
        .insert(all[1].clone(), "ErrorAccessDenied".to_owned());
    let (feed, _rx) = start(&fake, NotificationSettings::default());
    feed.watch(&all);
    until("2 subscribed, 1 polled", || {
        let s = feed.status();
        s.subscribed == 2 && s.polled.len() == 1
    })
    .await;
    match feed.mode(&all[1]) {
        Some(WatchMode::Polled { reason }) => {
            assert!(reason.contains("ErrorAccessDenied"), "{reason}");
            assert!(reason.contains("Reviewer"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(feed.mode(&all[0]), Some(WatchMode::Subscribed));
    // Another watch (the next cycle) does not ask again before refused_retry.
    feed.watch(&all);
    let opens = fake.opens();
    fake.send(Ok(StreamMessage {
        closed: true,
        ..StreamMessage::default()
    }));
    until("re-opened", || fake.opens() > opens).await;
    assert_eq!(fake.subscribe_count(&all[1]), 1);
}

#[tokio::test]
async fn an_event_marks_its_mailbox_changed() {
    let fake = Fake::default();
    let (feed, mut rx) = start(&fake, NotificationSettings::default());
    let all = mailboxes(2);
    feed.watch(&all);
    until("subscribed", || feed.status().subscribed == 2).await;
    let id = fake.id_of(&all[1]).unwrap();
    fake.send(Ok(StreamMessage {
        changed: vec![id],
        ..StreamMessage::default()
    }));
    assert_eq!(
        next_change(&mut rx).await,
        MailboxChange::Changed {
            mailbox: all[1].clone()
        }
    );
    assert!(feed.status().last_event_at.is_some());
}

#[tokio::test]
async fn a_closed_connection_is_opened_again_at_once_without_new_subscriptions() {
    let fake = Fake::default();
    let (feed, mut rx) = start(&fake, NotificationSettings::default());
    let all = mailboxes(2);
    feed.watch(&all);
    until("subscribed", || feed.status().subscribed == 2).await;
    let first = fake.state().opens[0].0.clone();
    fake.send(Ok(StreamMessage {
        closed: true,
        ..StreamMessage::default()
    }));
    until("re-opened", || fake.opens() == 2).await;
    assert_eq!(fake.state().opens[1].0, first);
    assert_eq!(fake.state().subscribe_calls.len(), 2);
    // No full read: the subscriptions kept their events.
    let id = fake.id_of(&all[0]).unwrap();
    fake.send(Ok(StreamMessage {
        changed: vec![id],
        ..StreamMessage::default()
    }));
    assert_eq!(
        next_change(&mut rx).await,
        MailboxChange::Changed {
            mailbox: all[0].clone()
        }
    );
}

#[tokio::test]
async fn a_lost_subscription_is_made_again_and_its_mailbox_read_in_full() {
    let fake = Fake::default();
    let (feed, mut rx) = start(&fake, NotificationSettings::default());
    let all = mailboxes(2);
    feed.watch(&all);
    until("subscribed", || feed.status().subscribed == 2).await;
    let lost = fake.id_of(&all[0]).unwrap();
    fake.state().subscriptions.remove(&lost);
    fake.send(Ok(StreamMessage {
        failed: vec![("ErrorSubscriptionNotFound".to_owned(), vec![lost.clone()])],
        ..StreamMessage::default()
    }));
    assert_eq!(
        next_change(&mut rx).await,
        MailboxChange::Resync {
            mailbox: all[0].clone()
        }
    );
    until("both subscribed again", || {
        feed.status().subscribed == 2 && fake.opens() == 2
    })
    .await;
    assert_eq!(fake.subscribe_count(&all[0]), 2);
    assert_eq!(fake.subscribe_count(&all[1]), 1);
    let reopened = fake.state().opens[1].0.clone();
    assert!(!reopened.contains(&lost));
    assert!(reopened.contains(&fake.id_of(&all[0]).unwrap()));
    assert_eq!(feed.status().resubscribed, 1);
}

#[tokio::test]
async fn a_dropped_connection_is_opened_again_and_its_mailboxes_read_in_full() {
    let fake = Fake::default();
    let (feed, mut rx) = start(&fake, NotificationSettings::default());
    let all = mailboxes(2);
    feed.watch(&all);
    until("subscribed", || feed.status().subscribed == 2).await;
    fake.send(Err(NotificationError {
        code: None,
        message: "connection reset".to_owned(),
    }));
    let mut resynced = BTreeSet::new();
    while resynced.len() < 2 {
        match next_change(&mut rx).await {
            MailboxChange::Resync { mailbox } => resynced.insert(mailbox),
            other => panic!("{other:?}"),
        };
    }
    assert_eq!(resynced, all.iter().cloned().collect());
    assert_eq!(fake.opens(), 2);
    assert_eq!(
        fake.state().subscribe_calls.len(),
        2,
        "the subscriptions lived on"
    );
}

#[tokio::test]
async fn after_a_server_restart_every_subscription_is_made_again_and_read_in_full() {
    let fake = Fake::default();
    let (feed, mut rx) = start(&fake, NotificationSettings::default());
    let all = mailboxes(3);
    feed.watch(&all);
    until("subscribed", || feed.status().subscribed == 3).await;
    fake.state().subscriptions.clear();
    fake.send(Err(NotificationError {
        code: None,
        message: "connection reset".to_owned(),
    }));
    let mut resynced = BTreeSet::new();
    while resynced.len() < 3 {
        if let MailboxChange::Resync { mailbox } = next_change(&mut rx).await {
            resynced.insert(mailbox);
        }
    }
    until("subscribed again", || {
        feed.status().subscribed == 3 && fake.state().subscriptions.len() == 3
    })
    .await;
    for mailbox in &all {
        assert_eq!(fake.subscribe_count(mailbox), 2, "{mailbox}");
    }
}

#[tokio::test]
async fn a_throttled_subscribe_backs_off_and_tries_again() {
    let fake = Fake::default();
    fake.state().busy_subscribes = 3;
    let (feed, _rx) = start(&fake, NotificationSettings::default());
    let all = mailboxes(2);
    feed.watch(&all);
    until("polled with the throttling reason", || {
        feed.status()
            .polled
            .iter()
            .any(|(_, reason)| reason.contains("ErrorServerBusy"))
    })
    .await;
    until("subscribed after the back-off", || {
        feed.status().subscribed == 2
    })
    .await;
    // A refusal ends the round: the pending mailboxes are asked again only
    // after the pause (2 + 2 + 1 calls), not again and again.
    assert_eq!(fake.state().subscribe_calls.len(), 5);
}

#[tokio::test]
async fn a_mailbox_no_longer_watched_is_unsubscribed() {
    let fake = Fake::default();
    let (feed, _rx) = start(&fake, NotificationSettings::default());
    let all = mailboxes(2);
    feed.watch(&all);
    until("subscribed", || feed.status().subscribed == 2).await;
    let dropped = fake.id_of(&all[1]).unwrap();
    feed.watch(&all[..1]);
    until("one subscribed", || {
        feed.status().subscribed == 1 && fake.opens() == 2
    })
    .await;
    assert_eq!(fake.state().unsubscribed, vec![dropped.clone()]);
    assert!(!fake.state().opens[1].0.contains(&dropped));
    assert!(feed.status().polled.is_empty());
}

#[tokio::test]
async fn every_failure_of_one_message_is_made_again() {
    let fake = Fake::default();
    let (feed, mut rx) = start(&fake, NotificationSettings::default());
    let all = mailboxes(3);
    feed.watch(&all);
    until("subscribed", || feed.status().subscribed == 3).await;
    let (a, b) = (fake.id_of(&all[0]).unwrap(), fake.id_of(&all[2]).unwrap());
    fake.send(Ok(StreamMessage {
        failed: vec![
            ("ErrorSubscriptionNotFound".to_owned(), vec![a]),
            ("ErrorMissedNotificationEvents".to_owned(), vec![b]),
        ],
        ..StreamMessage::default()
    }));
    let mut resynced = BTreeSet::new();
    while resynced.len() < 2 {
        match next_change(&mut rx).await {
            MailboxChange::Resync { mailbox } => resynced.insert(mailbox),
            other => panic!("{other:?}"),
        };
    }
    assert_eq!(resynced, BTreeSet::from([all[0].clone(), all[2].clone()]));
    until("all subscribed again", || feed.status().subscribed == 3).await;
    assert_eq!(fake.subscribe_count(&all[1]), 1);
}

#[tokio::test]
async fn a_connection_beyond_the_accounts_limit_leaves_its_mailboxes_polled_with_the_fix() {
    let fake = Fake::default();
    fake.state().max_streams = Some(1);
    let settings = NotificationSettings {
        max_connections: 2,
        subscriptions_per_connection: 2,
        ..NotificationSettings::default()
    };
    let (feed, _rx) = start(&fake, settings);
    let all = mailboxes(4);
    feed.watch(&all);
    until("one group open, the other refused", || {
        let s = feed.status();
        s.subscribed == 2
            && s.polled.len() == 2
            && s.polled
                .iter()
                .all(|(_, r)| r.contains("ErrorExceededConnectionCount"))
    })
    .await;
    let (_, reason) = &feed.status().polled[0];
    assert!(
        reason.contains("exchange.notification_connections (2)"),
        "{reason}"
    );
    assert!(reason.contains("HangingConnectionLimit"), "{reason}");
    assert_eq!(feed.status().connections, 1);
}
