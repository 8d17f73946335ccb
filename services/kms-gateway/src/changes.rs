//! Following change announcements, and making sure a call never acts on a cached key
//! record or allow decision that a change announced before the call had already voided.
//!
//! Why: the services announce a change (`kms.v1.changes.<account>.<key id | alias |
//! identity>`) before they answer it, so by the time a client holds the answer to
//! RevokeGrant or DisableKey, NATS has queued the announcement to every gateway. But a
//! gateway reads it on its connection's task and applies it on another, and nothing
//! orders those with the HTTP request the client sends next: under CPU pressure the
//! request could win and be answered from a stale entry. The guarantee is that a
//! revoked grant or disabled key takes effect on the very next call.
//!
//! The principle: NATS writes a connection's messages in order, and the client hands
//! them to subscriptions in the order they arrive. So once the gateway has received any
//! message NATS sent after the call began, every announcement sent before it is waiting
//! in the announcement subscription, and applying what waits there brings the caches up
//! to date. Two ways to get such a message (`Freshness`):
//! - **check after** (operations without side effects: Encrypt, Decrypt, Sign, DescribeKey,
//!   ...): the call uses cache hits at once and records them. Its own bus round trip (the
//!   crypto call) is the barrier: before answering, the call applies the waiting
//!   announcements and checks that every entry it used is still cached unchanged. If one
//!   is not, the result is dropped and the operation runs again, checking before. This
//!   costs nothing on the hot path.
//! - **check before** (everything else: a side effect must not follow a stale allow):
//!   before using a hit, the call waits for an echo, a small message the gateway sends to
//!   its own inbox. Echo rounds are shared: a call waits for the first round that starts
//!   after it asked, so one round trip serves many calls. A call that finds nothing
//!   cached never waits.
//!
//! With one NATS server this is exact; in a NATS cluster an announcement still crossing a
//! route between servers can arrive after the barrier. Announcements sent while the
//! connection was down never arrive: after a reconnect, and when no echo comes back (NATS
//! unreachable), both caches are emptied.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{watch, Notify};

use crate::access::DecisionCache;
use crate::key_cache::Lookup;

/// The subscription every gateway follows.
const ANNOUNCEMENTS: &str = "kms.v1.changes.>";
/// How long an echo may take before the caches are presumed to have missed something.
const ECHO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a call waits for a round before it skips the caches.
const WAIT_TIMEOUT: Duration = Duration::from_secs(2);

/// The announcements and the echo rounds, shared by the follower task and the calls.
pub(crate) struct Changes {
    cache: Arc<DecisionCache>,
    /// Read by the follower task and, to apply what waits there, by calls.
    announcements: Mutex<Announcements>,
    rounds: Mutex<Rounds>,
    wake: Notify,
    completed: watch::Receiver<u64>,
    /// The connection's statistics: `connects` moves on every reconnect.
    statistics: Arc<async_nats::Statistics>,
    /// `connects` when last looked at.
    connects_seen: AtomicU64,
}

/// The subscription, and the follower's waker: a call that drains the subscription
/// polls with it, so the follower is still woken by the next announcement.
struct Announcements {
    subscription: async_nats::Subscriber,
    follower: std::task::Waker,
}

/// Echo rounds are numbered from 1; a call needs the first round after the last started.
#[derive(Default)]
struct Rounds {
    requested: u64,
    started: u64,
}

impl Changes {
    /// Waits until the announcements received before this call asked are applied. False
    /// when that could not be established in time: the caller must not use the caches.
    pub(crate) async fn caught_up(&self) -> bool {
        let round = {
            let Ok(mut rounds) = self.rounds.lock() else { return false };
            let round = rounds.started + 1;
            rounds.requested = rounds.requested.max(round);
            round
        };
        self.wake.notify_one();
        let mut completed = self.completed.clone();
        let waited =
            tokio::time::timeout(WAIT_TIMEOUT, completed.wait_for(|done| *done >= round)).await;
        matches!(waited, Ok(Ok(_)))
    }

    /// Whether every cache entry `call` used is still cached unchanged, once the
    /// announcements that came before its last bus reply (or, without one, an echo) are
    /// applied. True when it used none.
    pub(crate) async fn still_current(&self, call: &Freshness) -> bool {
        let used = std::mem::take(&mut *call.used.lock().unwrap_or_else(|p| p.into_inner()));
        if used.is_empty() {
            return true;
        }
        if call.replies.load(Ordering::Acquire) > 0 {
            self.apply_pending();
        } else if !self.caught_up().await {
            return false;
        }
        used.iter().all(|entry| match entry {
            Used::Key { lookup, stamp } => self.cache.keys.stamp(lookup) == Some(*stamp),
            Used::Decision { key_id, fingerprint, stamp } => {
                self.cache.stamp(key_id, fingerprint) == Some(*stamp)
            }
        })
    }

    /// Applies the announcements already received (none is waited for). After a
    /// reconnect, empties both caches instead: what was announced while the connection
    /// was down never arrives.
    fn apply_pending(&self) {
        let connects = self.statistics.connects.load(Ordering::Acquire);
        // A plain load first: the swap (a write every call would share) only on a change.
        if self.connects_seen.load(Ordering::Acquire) != connects
            && self.connects_seen.swap(connects, Ordering::AcqRel) != connects
        {
            tracing::info!("reconnected to NATS; emptying the gateway's caches");
            self.cache.forget_everything();
        }
        let Ok(mut announcements) = self.announcements.lock() else { return };
        let Announcements { subscription, follower } = &mut *announcements;
        let mut cx = std::task::Context::from_waker(follower);
        while let Poll::Ready(Some(message)) = subscription.poll_next_unpin(&mut cx) {
            self.cache.on_change(message.subject.as_str());
        }
    }

    /// The next announcement, for the follower; the lock is held only while polling.
    async fn next_announcement(&self) -> Option<async_nats::Message> {
        std::future::poll_fn(|cx| match self.announcements.lock() {
            Ok(mut announcements) => {
                if !announcements.follower.will_wake(cx.waker()) {
                    announcements.follower = cx.waker().clone();
                }
                announcements.subscription.poll_next_unpin(cx)
            }
            Err(_) => Poll::Ready(None),
        })
        .await
    }

    /// The next round to run, if a call is waiting for one.
    fn start_round(&self) -> Option<u64> {
        let mut rounds = self.rounds.lock().ok()?;
        (rounds.requested > rounds.started).then(|| {
            rounds.started += 1;
            rounds.started
        })
    }
}

/// How one call makes sure the cache entries it used were current (see the module docs).
#[derive(Default)]
pub(crate) struct Freshness {
    /// Use hits at once and check them before answering (operations without side effects).
    check_after: AtomicBool,
    /// Whether this call waited for an echo yet, and with what outcome.
    caught_up: tokio::sync::OnceCell<bool>,
    /// Bus replies this call received: each one is a barrier as good as an echo.
    replies: AtomicUsize,
    /// The hits a check-after call used.
    used: Mutex<Vec<Used>>,
}

/// One cache entry a call used, by its stamp: the same entry must still be there.
pub(crate) enum Used {
    Key { lookup: Lookup, stamp: u64 },
    Decision { key_id: String, fingerprint: Vec<u8>, stamp: u64 },
}

impl Freshness {
    /// Sets how hits are checked: after (true) or before (false); forgets earlier hits.
    pub(crate) fn check_after(&self, after: bool) {
        self.check_after.store(after, Ordering::Release);
        self.used.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Counts a reply that came over the bus for this call.
    pub(crate) fn replied(&self) {
        self.replies.fetch_add(1, Ordering::AcqRel);
    }

    /// A cache hit `read` finds (with its entry's stamp), if it may be used: recorded
    /// by `used`, for a check-after call; after an echo round (one per call), for the
    /// others. `None` sends the call to the services.
    pub(crate) async fn hit<T>(
        &self,
        changes: &Changes,
        read: impl Fn() -> Option<(T, u64)>,
        used: impl FnOnce(u64) -> Used,
    ) -> Option<T> {
        let (hit, stamp) = read()?;
        if self.check_after.load(Ordering::Acquire) {
            self.used.lock().unwrap_or_else(|p| p.into_inner()).push(used(stamp));
            return Some(hit);
        }
        if *self.caught_up.get_or_init(|| changes.caught_up()).await {
            read().map(|(hit, _)| hit)
        } else {
            None
        }
    }
}

/// Subscribes to change announcements and to this gateway's echo subject, and applies
/// announcements to `cache` until `client` closes.
pub(crate) async fn follow(
    client: async_nats::Client,
    cache: Arc<DecisionCache>,
) -> anyhow::Result<(Arc<Changes>, tokio::task::JoinHandle<()>)> {
    let announcements = client.subscribe(ANNOUNCEMENTS).await?;
    // Under the connection's inbox prefix, which only this gateway may read.
    let echo_subject = format!("{}.sync", client.new_inbox());
    let echoes = client.subscribe(echo_subject.clone()).await?;
    let (completed_tx, completed) = watch::channel(0);
    let changes = Arc::new(Changes {
        cache,
        announcements: Mutex::new(Announcements {
            subscription: announcements,
            follower: std::task::Waker::noop().clone(),
        }),
        rounds: Mutex::default(),
        wake: Notify::new(),
        completed,
        connects_seen: AtomicU64::new(client.statistics().connects.load(Ordering::Acquire)),
        statistics: client.statistics(),
    });
    let follower = Follower { client, changes: changes.clone(), echoes, echo_subject };
    let task = tokio::spawn(follower.run(completed_tx));
    Ok((changes, task))
}

struct Follower {
    client: async_nats::Client,
    changes: Arc<Changes>,
    echoes: async_nats::Subscriber,
    echo_subject: String,
}

impl Follower {
    async fn run(mut self, completed: watch::Sender<u64>) {
        let changes = self.changes.clone();
        loop {
            tokio::select! {
                announcement = changes.next_announcement() => match announcement {
                    Some(message) => changes.cache.on_change(message.subject.as_str()),
                    None => return,
                },
                () = changes.wake.notified() => {}
            }
            while let Some(round) = changes.start_round() {
                if !self.echo(round).await {
                    tracing::warn!("no echo from NATS; emptying the gateway's caches");
                    changes.cache.forget_everything();
                }
                completed.send_replace(round);
            }
        }
    }

    /// One round trip to NATS and back; applies the announcements that came before it.
    async fn echo(&mut self, round: u64) -> bool {
        let payload = bytes::Bytes::copy_from_slice(&round.to_be_bytes());
        if self.client.publish(self.echo_subject.clone(), payload.clone()).await.is_err() {
            return false;
        }
        let deadline = tokio::time::sleep(ECHO_TIMEOUT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                echo = self.echoes.next() => match echo {
                    Some(echo) if echo.payload == payload => break,
                    // A late echo of a round that timed out.
                    Some(_) => {}
                    None => return false,
                },
                () = &mut deadline => return false,
            }
        }
        self.changes.apply_pending();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::fingerprint;
    use kms_proto::v1 as wire;

    fn request(key: &str) -> wire::AuthorizeRequest {
        wire::AuthorizeRequest {
            action: "kms:Encrypt".into(),
            key_id: key.into(),
            ..Default::default()
        }
    }

    /// What the e2e test `caches::a_grant_revoked_past_the_gateway_stops_the_next_call`
    /// needs, without the rest of the system: an announcement another connection has
    /// published (and NATS has taken) before a call asks is applied by the time the call
    /// is told the caches are current. Without the echo, the announcement is still on
    /// its way through the gateway's connection in most of these rounds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn announcements_sent_before_a_call_are_applied_before_it_uses_the_caches() {
        let nats = kms_testkit::NatsServer::start().await.unwrap();
        let gateway = async_nats::connect(nats.url()).await.unwrap();
        let service = async_nats::connect(nats.url()).await.unwrap();
        let cache = Arc::new(DecisionCache::default());
        let (changes, task) = follow(gateway, cache.clone()).await.unwrap();
        for i in 0..200 {
            let key = format!("k{i}");
            let entry = fingerprint(&request(&key));
            cache.insert(&key, entry.clone(), String::new(), cache.generation());
            assert!(changes.caught_up().await);
            assert!(cache.get(&key, &entry).is_some(), "round {i}: nothing announced yet");
            // The service's request-reply: its announcement is taken by NATS before the
            // answer reaches the caller, whose next call then asks.
            service.publish(format!("kms.v1.changes.111122223333.{key}"), "".into()).await.unwrap();
            service.request("kms.v1.nobody", "".into()).await.ok();
            assert!(changes.caught_up().await);
            assert_eq!(cache.get(&key, &entry), None, "round {i}: a stale decision was served");
        }
        task.abort();
    }

    /// A decision cache hit, as `Call::authorize` takes it.
    async fn decision(
        changes: &Changes,
        cache: &DecisionCache,
        call: &Freshness,
        key: &str,
        entry: &[u8],
    ) -> Option<String> {
        call.hit(
            changes,
            || cache.get_stamped(key, entry),
            |stamp| Used::Decision { key_id: key.to_owned(), fingerprint: entry.to_vec(), stamp },
        )
        .await
    }

    /// A check-after call: its hit is used at once; a bus reply it got after the
    /// announcement is the barrier, and the check before answering finds the entry gone
    /// (whether the follower task applied it already or the check does). Without a reply
    /// the check takes an echo instead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hit_used_before_an_announcement_was_applied_is_caught_before_the_answer() {
        let nats = kms_testkit::NatsServer::start().await.unwrap();
        let gateway = async_nats::connect(nats.url()).await.unwrap();
        let service = async_nats::connect(nats.url()).await.unwrap();
        let mut requests = service.subscribe("kms.v1.crypto.Test").await.unwrap();
        let responder = service.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                if let Some(reply) = request.reply {
                    responder.publish(reply, "done".into()).await.unwrap();
                }
            }
        });
        service.flush().await.unwrap();
        let cache = Arc::new(DecisionCache::default());
        let (changes, task) = follow(gateway.clone(), cache.clone()).await.unwrap();
        for (i, with_reply) in (0..100).map(|i| (i, i % 2 == 0)) {
            let key = format!("k{i}");
            let entry = fingerprint(&request(&key));
            cache.insert(&key, entry.clone(), String::new(), cache.generation());
            // Nothing changed: the hit stands.
            let call = Freshness::default();
            call.check_after(true);
            assert!(decision(&changes, &cache, &call, &key, &entry).await.is_some());
            assert!(changes.still_current(&call).await, "round {i}: nothing was announced");

            // The call takes its hit; then the grant is revoked (and the revocation
            // acknowledged to its caller) before the call's own bus reply arrives.
            let call = Freshness::default();
            call.check_after(true);
            assert!(decision(&changes, &cache, &call, &key, &entry).await.is_some());
            service.publish(format!("kms.v1.changes.111122223333.{key}"), "".into()).await.unwrap();
            service.request("kms.v1.nobody", "".into()).await.ok();
            if with_reply {
                gateway.request("kms.v1.crypto.Test", "".into()).await.unwrap();
                call.replied();
            }
            assert!(
                !changes.still_current(&call).await,
                "round {i}: a result built on a revoked decision would be answered"
            );
            assert_eq!(cache.get(&key, &entry), None);
        }
        task.abort();
    }

    /// What was announced while the gateway was disconnected never arrives: a call after
    /// the reconnect does not answer from what was cached before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_reconnect_nothing_cached_before_it_is_used() {
        let mut nats = kms_testkit::NatsServer::start().await.unwrap();
        let gateway = async_nats::connect(nats.url()).await.unwrap();
        let cache = Arc::new(DecisionCache::default());
        let (changes, task) = follow(gateway.clone(), cache.clone()).await.unwrap();
        let key = "k1";
        let entry = fingerprint(&request(key));
        cache.insert(key, entry.clone(), String::new(), cache.generation());
        let call = Freshness::default();
        call.check_after(true);
        assert!(decision(&changes, &cache, &call, key, &entry).await.is_some());
        assert!(changes.still_current(&call).await, "nothing happened yet");

        nats.restart().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while gateway.statistics().connects.load(Ordering::Acquire) < 2 {
            assert!(tokio::time::Instant::now() < deadline, "the gateway never reconnected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let call = Freshness::default();
        call.check_after(true);
        assert!(decision(&changes, &cache, &call, key, &entry).await.is_some());
        call.replied();
        assert!(!changes.still_current(&call).await, "a hit from before the reconnect");
        assert_eq!(cache.get(key, &entry), None);
        task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_an_echo_the_caches_are_emptied() {
        let mut nats = kms_testkit::NatsServer::start().await.unwrap();
        let gateway = async_nats::connect(nats.url()).await.unwrap();
        let cache = Arc::new(DecisionCache::default());
        let (changes, task) = follow(gateway, cache.clone()).await.unwrap();
        let entry = fingerprint(&request("k1"));
        cache.insert("k1", entry.clone(), String::new(), cache.generation());
        assert!(changes.caught_up().await);
        nats.stop().await;
        // Whatever the wait's outcome, the call finds nothing cached to trust.
        let _ = changes.caught_up().await;
        assert_eq!(cache.get("k1", &entry), None, "announcements may have been missed");
        task.abort();
    }
}
