//! The gateway's cache of key records: what the metadata service answered to
//! `ResolveKey`, so that a hot key costs no bus round trip before its authorization and
//! its cryptography. Key state, usage, spec, tags, current material version and alias
//! targets all come from here, so an entry must never outlive a change:
//! - the metadata service announces every change of a key (state, description, tags,
//!   rotation, imported material, deletion) on `kms.v1.changes.<account>.<key id>`, and
//!   every alias change on `kms.v1.changes.<account>.alias`, before it replies; the
//!   first drops the entries that resolved to that key, the second every entry (alias
//!   changes are rare, and an alias may be reached from another account by ARN);
//! - a gateway that changed anything through the metadata service drops everything at
//!   once, since the announcement could still be in flight when its client's next call
//!   arrives;
//! - an answer that was in flight while an invalidation happened is not stored (the
//!   generation check), so a lookup racing a change cannot put the old record back;
//! - everything goes when the connection to NATS comes back after a break (see
//!   `changes`), and entries expire after five minutes in any case.
//!
//! Failures (`NotFoundException`, a key of another region, ...) are never cached: they
//! are rare on the hot path, and AWS managed keys appear on first use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kms_proto::v1 as wire;

const TTL: Duration = Duration::from_secs(300);
const MAX_ENTRIES: usize = 200_000;

/// Everything a `ResolveKey` answer depends on: the caller's scope and the request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Lookup {
    pub(crate) account: String,
    pub(crate) region: String,
    pub(crate) key_ref: String,
    pub(crate) cross_account: bool,
    pub(crate) from_ciphertext: bool,
}

#[derive(Default)]
pub(crate) struct KeyCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// When stored, the entry's stamp (see [`KeyCache::get_stamped`]), the record.
    entries: HashMap<Lookup, (Instant, u64, wire::KeyRecord)>,
    /// The stamp of the next entry stored.
    next_stamp: u64,
    /// The lookups that resolved to each key id, to drop them when the key changes.
    by_key: HashMap<String, Vec<Lookup>>,
    /// Moves on every invalidation; an answer fetched under an older one is not stored.
    generation: u64,
}

impl KeyCache {
    /// The generation to pass to [`Self::insert`] for an answer about to be fetched.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.lock().map(|i| i.generation).unwrap_or(u64::MAX)
    }

    #[cfg(test)]
    pub(crate) fn get(&self, lookup: &Lookup) -> Option<wire::KeyRecord> {
        self.get_stamped(lookup).map(|(key, _)| key)
    }

    /// The record and its entry's stamp: a number no other entry stored has, so a
    /// caller can later tell whether this very entry is still there ([`Self::stamp`]).
    pub(crate) fn get_stamped(&self, lookup: &Lookup) -> Option<(wire::KeyRecord, u64)> {
        let inner = self.inner.lock().ok()?;
        let (at, stamp, key) = inner.entries.get(lookup)?;
        (at.elapsed() < TTL).then(|| (key.clone(), *stamp))
    }

    /// The stamp of the live entry for `lookup`, if any.
    pub(crate) fn stamp(&self, lookup: &Lookup) -> Option<u64> {
        let inner = self.inner.lock().ok()?;
        let (at, stamp, _) = inner.entries.get(lookup)?;
        (at.elapsed() < TTL).then_some(*stamp)
    }

    /// Stores an answer fetched at `generation`, unless something changed since.
    pub(crate) fn insert(&self, lookup: Lookup, key: &wire::KeyRecord, generation: u64) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
            inner.by_key.clear();
        }
        let refs = inner.by_key.entry(key.key_id.clone()).or_default();
        if !refs.contains(&lookup) {
            refs.push(lookup.clone());
        }
        let stamp = inner.next_stamp;
        inner.next_stamp += 1;
        inner.entries.insert(lookup, (Instant::now(), stamp, key.clone()));
    }

    pub(crate) fn forget_key(&self, key_id: &str) {
        let Ok(mut inner) = self.inner.lock() else { return };
        inner.generation = inner.generation.wrapping_add(1);
        if let Some(lookups) = inner.by_key.remove(key_id) {
            for lookup in lookups {
                inner.entries.remove(&lookup);
            }
        }
    }

    pub(crate) fn forget_all(&self) {
        let Ok(mut inner) = self.inner.lock() else { return };
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.clear();
        inner.by_key.clear();
    }

    /// Applies one change announcement (`kms.v1.changes.<account>.<key id | alias |
    /// identity>`); identity-policy changes do not touch key records.
    pub(crate) fn on_change(&self, subject: &str) {
        match subject.rsplit('.').next() {
            Some("identity") => {}
            Some("alias") | None => self.forget_all(),
            Some(key_id) => self.forget_key(key_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(key_ref: &str) -> Lookup {
        Lookup {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            key_ref: key_ref.into(),
            cross_account: false,
            from_ciphertext: false,
        }
    }

    fn key(id: &str) -> wire::KeyRecord {
        wire::KeyRecord { key_id: id.into(), ..Default::default() }
    }

    #[test]
    fn a_key_change_drops_every_reference_to_it() {
        let cache = KeyCache::default();
        let g = cache.generation();
        cache.insert(lookup("k1"), &key("k1"), g);
        cache.insert(lookup("alias/a"), &key("k1"), g);
        cache.insert(lookup("k2"), &key("k2"), g);
        assert_eq!(cache.get(&lookup("alias/a")).map(|k| k.key_id), Some("k1".into()));
        cache.on_change("kms.v1.changes.111122223333.k1");
        assert!(cache.get(&lookup("k1")).is_none());
        assert!(cache.get(&lookup("alias/a")).is_none());
        assert!(cache.get(&lookup("k2")).is_some());
        cache.on_change("kms.v1.changes.111122223333.identity");
        assert!(cache.get(&lookup("k2")).is_some(), "identity policies are not key records");
        cache.on_change("kms.v1.changes.444455556666.alias");
        assert!(cache.get(&lookup("k2")).is_none());
    }

    #[test]
    fn an_answer_fetched_before_a_change_is_not_stored() {
        let cache = KeyCache::default();
        let before = cache.generation();
        cache.on_change("kms.v1.changes.111122223333.k9");
        cache.insert(lookup("k1"), &key("k1"), before);
        assert!(cache.get(&lookup("k1")).is_none());
        cache.insert(lookup("k1"), &key("k1"), cache.generation());
        assert!(cache.get(&lookup("k1")).is_some());
    }

    #[test]
    fn scopes_and_flags_are_separate_entries() {
        let cache = KeyCache::default();
        cache.insert(lookup("k1"), &key("k1"), cache.generation());
        let mut other = lookup("k1");
        other.account = "444455556666".into();
        assert!(cache.get(&other).is_none());
        let mut ciphertext = lookup("k1");
        ciphertext.from_ciphertext = true;
        assert!(cache.get(&ciphertext).is_none());
    }
}
