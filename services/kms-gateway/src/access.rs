//! Authorization at the gateway: what a call asks the policy service (`Access`: the
//! action and the condition keys the request supplies), and the cache of its answers.
//!
//! The cache keeps *allow* decisions only, keyed by the whole authorization request (the
//! principal, action, key and every condition value, so a different encryption context or
//! tag is a different entry). Denials are always asked afresh. An entry goes:
//! - when the policy service announces a change of the key's policy or grants
//!   (`kms.v1.changes.<account>.<key id>`) or of an account's identity policies
//!   (`kms.v1.changes.<account>.identity`, which drops everything);
//! - at once, on this gateway, after a change it made itself (the announcement could
//!   otherwise still be in flight when its client's next call arrives);
//! - when the connection to NATS comes back after a break (see `changes`), and after a
//!   short time-to-live in any case;
//! - never cached: decisions the policy service marks as time-dependent
//!   (`aws:CurrentTime` conditions), and answers that were in flight while an entry
//!   went (a generation check), so a decision racing a revocation cannot be stored.
//!
//! The same announcements clear the key-record cache (`key_cache`), which lives here so
//! that one subscription and one handle per call serve both. `changes` follows the
//! announcements, and makes sure no call acts on an entry that an announcement sent to
//! this gateway before the call had voided.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kms_proto::v1 as wire;
use prost::Message;

use crate::key_cache::KeyCache;

/// What one call needs to be allowed: the action and the condition keys its request
/// supplies. Key-derived keys (`kms:KeySpec`, `aws:ResourceTag/...`) and caller-derived
/// ones (`kms:CallerAccount`, `aws:SourceIp`) are added by `Call::authorize`.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub(crate) action: &'static str,
    /// The operation may use another account's key (named by key or alias ARN).
    pub(crate) cross_account: bool,
    pub(crate) conditions: Vec<wire::ConditionValues>,
    pub(crate) encryption_context: BTreeMap<String, String>,
    pub(crate) resource_description: Option<&'static str>,
}

impl Access {
    /// An action on the caller's own keys only.
    pub(crate) fn to(action: &'static str) -> Self {
        Self {
            action,
            cross_account: false,
            conditions: Vec::new(),
            encryption_context: BTreeMap::new(),
            resource_description: None,
        }
    }

    /// An action AWS allows on other accounts' keys too (cryptographic operations,
    /// DescribeKey, GetKeyRotationStatus, the grant operations).
    pub(crate) fn cross_account(action: &'static str) -> Self {
        Self { cross_account: true, ..Self::to(action) }
    }

    #[must_use]
    pub(crate) fn condition(mut self, key: &str, value: impl Into<String>) -> Self {
        self.conditions.push(wire::ConditionValues {
            key: key.to_owned(),
            values: vec![value.into()],
            multi_valued: false,
        });
        self
    }

    #[must_use]
    pub(crate) fn multi(mut self, key: &str, values: Vec<String>) -> Self {
        self.conditions.push(wire::ConditionValues {
            key: key.to_owned(),
            values,
            multi_valued: true,
        });
        self
    }

    /// The request's encryption context: `kms:EncryptionContext:<k>`,
    /// `kms:EncryptionContextKeys` and grant constraints see it.
    #[must_use]
    pub(crate) fn context(mut self, context: &BTreeMap<String, String>) -> Self {
        self.encryption_context.clone_from(context);
        self
    }

    /// For calls whose key comes from a ciphertext: AWS's denial names "the resource
    /// associated with this ciphertext", not the key.
    #[must_use]
    pub(crate) fn of_ciphertext(mut self) -> Self {
        self.resource_description = Some("the resource associated with this ciphertext");
        self
    }
}

const TTL: Duration = Duration::from_secs(300);
const MAX_ENTRIES: usize = 100_000;

/// Allow decisions by key id ("" for key-less actions), then by the encoded request;
/// and the key records the metadata service resolved.
#[derive(Default)]
pub(crate) struct DecisionCache {
    entries: Mutex<Entries>,
    pub(crate) keys: KeyCache,
}

#[derive(Default)]
struct Entries {
    by_key: HashMap<String, HashMap<Vec<u8>, Entry>>,
    /// The stamp of the next entry stored.
    next_stamp: u64,
    count: usize,
    /// Moves whenever entries go; an answer asked for under an older one is not stored.
    generation: u64,
}

/// When stored, the entry's stamp (see [`DecisionCache::get_stamped`]), the grant id.
type Entry = (Instant, u64, String);

/// The cache key of a request: everything in it but the request id.
pub(crate) fn fingerprint(request: &wire::AuthorizeRequest) -> Vec<u8> {
    let mut r = request.clone();
    if let Some(caller) = r.caller.as_mut() {
        caller.request_id.clear();
    }
    r.encode_to_vec()
}

impl DecisionCache {
    /// The grant id (empty when policies allowed it) of a cached allow.
    #[cfg(test)]
    pub(crate) fn get(&self, key_id: &str, fingerprint: &[u8]) -> Option<String> {
        self.get_stamped(key_id, fingerprint).map(|(grant, _)| grant)
    }

    /// The grant id and the entry's stamp: a number no other entry stored has, so a
    /// caller can later tell whether this very entry is still there ([`Self::stamp`]).
    pub(crate) fn get_stamped(&self, key_id: &str, fingerprint: &[u8]) -> Option<(String, u64)> {
        let entries = self.entries.lock().ok()?;
        let (at, stamp, grant) = entries.by_key.get(key_id)?.get(fingerprint)?;
        (at.elapsed() < TTL).then(|| (grant.clone(), *stamp))
    }

    /// The stamp of the live entry, if any.
    pub(crate) fn stamp(&self, key_id: &str, fingerprint: &[u8]) -> Option<u64> {
        let entries = self.entries.lock().ok()?;
        let (at, stamp, _) = entries.by_key.get(key_id)?.get(fingerprint)?;
        (at.elapsed() < TTL).then_some(*stamp)
    }

    /// The generation to pass to [`Self::insert`] for a decision about to be asked for.
    pub(crate) fn generation(&self) -> u64 {
        self.entries.lock().map(|e| e.generation).unwrap_or(u64::MAX)
    }

    /// Stores an allow asked for at `generation`, unless entries went since.
    pub(crate) fn insert(
        &self,
        key_id: &str,
        fingerprint: Vec<u8>,
        grant_id: String,
        generation: u64,
    ) {
        let Ok(mut entries) = self.entries.lock() else { return };
        if entries.generation != generation {
            return;
        }
        if entries.count >= MAX_ENTRIES {
            entries.by_key.clear();
            entries.count = 0;
        }
        let stamp = entries.next_stamp;
        entries.next_stamp += 1;
        let previous = entries
            .by_key
            .entry(key_id.to_owned())
            .or_default()
            .insert(fingerprint, (Instant::now(), stamp, grant_id));
        if previous.is_none() {
            entries.count += 1;
        }
    }

    pub(crate) fn forget_key(&self, key_id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.generation = entries.generation.wrapping_add(1);
            if let Some(removed) = entries.by_key.remove(key_id) {
                entries.count -= removed.len();
            }
        }
    }

    pub(crate) fn forget_all(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.generation = entries.generation.wrapping_add(1);
            entries.by_key.clear();
            entries.count = 0;
        }
    }

    /// Empties both caches (decisions and key records): announcements may have been missed.
    pub(crate) fn forget_everything(&self) {
        self.forget_all();
        self.keys.forget_all();
    }

    /// Applies one change announcement (`kms.v1.changes.<account>.<key id | identity>`).
    /// `alias` (the metadata service's alias changes) decides nothing here.
    pub(crate) fn on_change(&self, subject: &str) {
        match subject.rsplit('.').next() {
            Some("identity") | None => self.forget_all(),
            Some("alias") => {}
            Some(key_id) => self.forget_key(key_id),
        }
        self.keys.on_change(subject);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(action: &str, key: &str) -> wire::AuthorizeRequest {
        wire::AuthorizeRequest {
            caller: Some(wire::CallerContext {
                account: "111122223333".into(),
                region: "us-east-1".into(),
                principal: "arn:aws:iam::111122223333:user/dev".into(),
                request_id: "r1".into(),
            }),
            action: action.into(),
            key_id: key.into(),
            ..Default::default()
        }
    }

    #[test]
    fn entries_go_with_their_key_or_identity_changes() {
        let cache = DecisionCache::default();
        let a = fingerprint(&request("kms:Decrypt", "k1"));
        let mut again = request("kms:Decrypt", "k1");
        again.caller.as_mut().unwrap().request_id = "r2".into();
        assert_eq!(fingerprint(&again), a, "the request id is not part of the decision");
        let b = fingerprint(&request("kms:Decrypt", "k2"));
        assert_ne!(a, b);
        cache.insert("k1", a.clone(), String::new(), cache.generation());
        cache.insert("k2", b.clone(), "g".into(), cache.generation());
        assert_eq!(cache.get("k1", &a), Some(String::new()));
        assert_eq!(cache.get("k2", &b), Some("g".into()));
        cache.on_change("kms.v1.changes.111122223333.k1");
        assert_eq!(cache.get("k1", &a), None);
        assert_eq!(cache.get("k2", &b), Some("g".into()));
        cache.on_change("kms.v1.changes.111122223333.identity");
        assert_eq!(cache.get("k2", &b), None);
    }

    #[test]
    fn a_decision_asked_for_before_a_change_is_not_stored() {
        let cache = DecisionCache::default();
        let a = fingerprint(&request("kms:Decrypt", "k1"));
        let before = cache.generation();
        cache.on_change("kms.v1.changes.111122223333.k1");
        cache.insert("k1", a.clone(), String::new(), before);
        assert_eq!(cache.get("k1", &a), None);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = DecisionCache::default();
        for i in 0..MAX_ENTRIES + 1 {
            cache.insert("k", i.to_le_bytes().to_vec(), String::new(), cache.generation());
        }
        assert_eq!(cache.get("k", &0usize.to_le_bytes()), None);
        assert!(cache.get("k", &MAX_ENTRIES.to_le_bytes()).is_some());
    }
}
