//! Claims on due transitions, shared by every metadata replica through a JetStream
//! key-value bucket, so that a rotation, a deletion or an expiry has its effects (new
//! material, shredded material, the service's own audit record) exactly once however many
//! replicas see it due.
//!
//! A replica claims a transition with a create-if-absent write of
//! `claimed|<replica>|<wall-clock ms>` under the transition's name, does the work, then
//! marks it `done`. A replica that finds the claim `done` only applies the outcome to its
//! own store; one that finds another replica's fresh claim skips it this tick. A claim
//! whose owner stopped before finishing goes stale and is taken over (by a compare-and-set
//! on the entry's revision, so only one replica takes it); every step of a transition is
//! idempotent, so finishing someone else's half-done work is safe.
//!
//! Staleness is judged on the wall clock, not on the scheduler's clock: it is about
//! processes being alive, not about when keys are due.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{kv, stream};
use kms_core::{KmsError, KmsResult};

/// The key-value bucket holding the claims.
pub(crate) const BUCKET: &str = "KMS_SCHEDULER";

/// What a replica may do with a due transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// This replica holds the claim: it does the work.
    Mine,
    /// Another replica finished it: apply the outcome to this replica's store only.
    Done,
    /// Another replica is working on it now.
    Busy,
}

pub(crate) struct Claims {
    kv: kv::Store,
    replica: String,
    stale_after: Duration,
}

fn internal(e: impl std::fmt::Display) -> KmsError {
    tracing::warn!(error = %e, "scheduler claims unavailable");
    KmsError::internal()
}

fn wall_clock_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

impl Claims {
    /// Opens (declaring it if needed) the claims bucket with `replicas` copies.
    pub(crate) async fn open(
        js: &async_nats::jetstream::Context,
        replicas: usize,
        replica: String,
        stale_after: Duration,
    ) -> anyhow::Result<Self> {
        // The bucket's stream is declared directly (as `create_key_value` would, minus the
        // options nats-server 2.9 does not answer in a form async-nats parses).
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{BUCKET}"),
            description: Some("metadata scheduler: claims on due transitions".to_owned()),
            subjects: vec![format!("$KV.{BUCKET}.>")],
            max_messages_per_subject: 1,
            storage: stream::StorageType::File,
            num_replicas: replicas.max(1),
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("declaring the {BUCKET} bucket: {e}"))?;
        let kv = js
            .get_key_value(BUCKET)
            .await
            .map_err(|e| anyhow::anyhow!("opening the {BUCKET} bucket: {e}"))?;
        Ok(Self { kv, replica, stale_after })
    }

    /// Tries to claim the transition `name` (letters, digits, `-`, `_`, `.` only).
    pub(crate) async fn claim(&self, name: &str) -> KmsResult<Claim> {
        let mine = format!("claimed|{}|{}", self.replica, wall_clock_ms());
        match self.kv.create(name, mine.clone().into()).await {
            Ok(_) => return Ok(Claim::Mine),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(internal(e)),
        }
        let Some(entry) = self.kv.entry(name).await.map_err(internal)? else {
            return Ok(Claim::Busy); // deleted meanwhile: try again next tick
        };
        let value = String::from_utf8_lossy(&entry.value).into_owned();
        if value == "done" {
            return Ok(Claim::Done);
        }
        let mut parts = value.splitn(3, '|');
        let (_, owner, at) = (parts.next(), parts.next(), parts.next());
        if owner == Some(self.replica.as_str()) {
            return Ok(Claim::Mine); // this replica's own unfinished attempt
        }
        let at: u128 = at.and_then(|t| t.parse().ok()).unwrap_or(0);
        if wall_clock_ms().saturating_sub(at) < self.stale_after.as_millis() {
            return Ok(Claim::Busy);
        }
        match self.kv.update(name, mine.into(), entry.revision).await {
            Ok(_) => {
                tracing::info!(transition = name, "took over a stale scheduler claim");
                Ok(Claim::Mine)
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(Claim::Busy),
            Err(e) => Err(internal(e)),
        }
    }

    /// Marks the transition finished: other replicas only apply its outcome.
    pub(crate) async fn finish(&self, name: &str) -> KmsResult<()> {
        self.kv.put(name, "done".into()).await.map(|_| ()).map_err(internal)
    }
}
