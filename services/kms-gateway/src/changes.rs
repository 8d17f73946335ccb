//! Following change announcements, with a barrier: a call that is about to use a cached
//! key record or allow decision first waits until every announcement NATS had sent this
//! gateway when the call began is applied to the caches.
//!
//! Why a barrier: the services announce a change (`kms.v1.changes.<account>.<key id |
//! alias | identity>`) before they answer it, so by the time a client holds the answer to
//! RevokeGrant or DisableKey, NATS has queued the announcement to every gateway. But a
//! gateway reads it on its connection's task and applies it on this module's task, and
//! nothing orders those with the HTTP request the client sends next: under CPU pressure
//! the request could win and be answered from a stale entry. The guarantee is
//! that a revoked grant or disabled key takes effect on the very next call.
//!
//! How: the gateway publishes a small message to its own inbox (an echo) and waits for it
//! to come back. NATS writes a connection's messages in order, and the client hands them
//! to subscriptions in the order they arrive, so when the echo is back every announcement
//! sent before it is in the announcement subscription and is applied before the waiting
//! calls go on. Echo rounds are shared: a call waits for the first round that starts after
//! it asked, so under load one round trip serves many calls, and a call that finds nothing
//! in the caches never waits. With one NATS server this is exact; in a NATS cluster an
//! announcement still crossing a route between servers can arrive after the echo.
//!
//! If the echo does not come back (NATS unreachable), announcements may have been missed:
//! both caches are emptied, and the waiting calls go to the services.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::{watch, Notify};

use crate::access::DecisionCache;

/// The subscription every gateway follows.
const ANNOUNCEMENTS: &str = "kms.v1.changes.>";
/// How long an echo may take before the caches are presumed to have missed something.
const ECHO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a call waits for a round before it skips the caches.
const WAIT_TIMEOUT: Duration = Duration::from_secs(2);

/// The handle calls wait on (see [`Changes::caught_up`]).
pub(crate) struct Changes {
    rounds: Mutex<Rounds>,
    wake: Notify,
    completed: watch::Receiver<u64>,
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

    /// The next round to run, if a call is waiting for one.
    fn start_round(&self) -> Option<u64> {
        let mut rounds = self.rounds.lock().ok()?;
        (rounds.requested > rounds.started).then(|| {
            rounds.started += 1;
            rounds.started
        })
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
    let changes = Arc::new(Changes { rounds: Mutex::default(), wake: Notify::new(), completed });
    let follower = Follower { client, cache, announcements, echoes, echo_subject };
    let task = tokio::spawn(follower.run(changes.clone(), completed_tx));
    Ok((changes, task))
}

struct Follower {
    client: async_nats::Client,
    cache: Arc<DecisionCache>,
    announcements: async_nats::Subscriber,
    echoes: async_nats::Subscriber,
    echo_subject: String,
}

impl Follower {
    async fn run(mut self, changes: Arc<Changes>, completed: watch::Sender<u64>) {
        loop {
            tokio::select! {
                announcement = self.announcements.next() => match announcement {
                    Some(message) => self.cache.on_change(message.subject.as_str()),
                    None => return,
                },
                () = changes.wake.notified() => {}
            }
            while let Some(round) = changes.start_round() {
                if !self.echo(round).await {
                    tracing::warn!("no echo from NATS; emptying the gateway's caches");
                    self.cache.forget_everything();
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
                biased;
                announcement = self.announcements.next() => match announcement {
                    Some(message) => self.cache.on_change(message.subject.as_str()),
                    None => return false,
                },
                echo = self.echoes.next() => match echo {
                    Some(echo) if echo.payload == payload => break,
                    // A late echo of a round that timed out.
                    Some(_) => {}
                    None => return false,
                },
                () = &mut deadline => return false,
            }
        }
        // The client hands messages to subscriptions in arrival order: everything NATS sent
        // before the echo is already waiting here.
        while let Some(Some(message)) = self.announcements.next().now_or_never() {
            self.cache.on_change(message.subject.as_str());
        }
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
