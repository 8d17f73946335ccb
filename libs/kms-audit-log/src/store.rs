//! The append-only, hash-chained audit store on sled, fed from a JetStream stream:
//! idempotent per stream sequence and per `eventID`. `append_batch` commits a group of
//! events and flushes once, so an acknowledged message is durable; `append` is a group
//! of one. Index entries are grouped per prefix and second (see `index`), which keeps the
//! inserts per event (what sled's copy-on-write nodes make expensive) near three under
//! load: the record and its two dedup markers.
//!
//! # How a group is written
//!
//! Not in a sled transaction (whose tree reads each key before writing it, plus its
//! bookkeeping) but as one [`sled::Batch`] per tree, applied in this order:
//!
//! 1. `records` (the source of truth: stream sequence and event bytes of each record);
//! 2. the *derived* entries: `stream_seqs`, `event_ids`, `idx_time`, `idx_attr`;
//! 3. `meta`: `last_stream_seq` and `derived_through`, the last record seq whose derived
//!    entries are all written.
//!
//! Each `apply_batch` is atomic on its own. A crash part-way leaves a prefix of those
//! batches (below), so on open, records above `derived_through` (at most one group) have
//! their derived entries written again from the records themselves: dedup markers are one
//! per record, and index entries are a pure function of the group's records
//! ([`IndexWriter`]), so recomputing them for the same group rewrites identical keys and
//! values. An append that fails after the records batch leaves the same state in memory,
//! repaired the same way before the next group. Derived entries of a group only ever
//! lag its records until then, and never exist without them. A store written before
//! `derived_through` existed (by one transaction per group) is fully derived.
//!
//! Nothing is acknowledged before the flush that follows the last batch, as before.
//!
//! # Why a prefix of the batches survives a crash (sled 0.34.7)
//!
//! * Every tree of one `Db` writes to the same log (`pagecache/logger.rs`, `Log`), and a
//!   write's log position (LSN) is taken from the current IO buffer when it is reserved
//!   (`Log::reserve_inner`: `reservation_lsn = iobuf.lsn + buf_offset`), so writes issued
//!   one after another by one thread get increasing LSNs whatever their tree.
//! * `Tree::apply_batch` (`tree.rs`, `apply_batch_inner`) reserves a batch manifest first
//!   (`PageCache::pin_log`, `pagecache/mod.rs`) and seals it with the batch's last LSN
//!   (`RecoveryGuard::seal_batch`): recovery stops before a batch that is not stable to
//!   its end (`LogIter::next`, `pagecache/iterator.rs`, `LogRead::BatchManifest`).
//! * Recovery replays the log in LSN order only up to the end of the last contiguous
//!   message: the first torn or corrupt message, or a missing segment in the unstable
//!   tail, ends it (`check_contiguity_in_unstable_tail` and `raw_segment_iter_from`, which
//!   bound the replaying `LogIter` by `max_lsn`).
//!
//! So what recovers is a prefix of the log: if a later batch is durable, every batch
//! issued before it through the same `Db` is too.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sled::transaction::TransactionError;
use sled::{Batch, Tree};

use crate::index::IndexWriter;
use crate::record::{
    attr_prefix, chain_hash, time_prefix, EventView, InvalidEvent, Scope, StoredRecord,
    GENESIS_HASH, INDEX_VERSION,
};

const TREE_RECORDS: &str = "records";
const TREE_STREAM_SEQS: &str = "stream_seqs";
const TREE_EVENT_IDS: &str = "event_ids";
const TREE_IDX_TIME: &str = "idx_time";
const TREE_IDX_ATTR: &str = "idx_attr";
const TREE_META: &str = "meta";
pub(crate) const TREE_DIGESTS: &str = "digests";
pub(crate) const TREE_DIGEST_KEYS: &str = "digest_keys";
const META_LAST_STREAM_SEQ: &[u8] = b"last_stream_seq";
const META_INDEX_VERSION: &[u8] = b"index_version";
/// The last record seq whose dedup markers and index entries are all written (module doc).
const META_DERIVED_THROUGH: &[u8] = b"derived_through";

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored as record `seq`.
    Appended { seq: u64 },
    /// This stream sequence was applied before (redelivery); nothing written.
    AlreadyApplied { seq: u64 },
    /// New stream sequence but its `eventID` is already stored as record `seq` (the
    /// producer published the event twice). The stream sequence is remembered as
    /// applied; no record is added and the stored record is kept. `identical` is false
    /// when the bytes differ from the stored ones: worth an alert (never log the bodies).
    DuplicateEvent { seq: u64, identical: bool },
}

/// Failure to append or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("audit store I/O: {0}")]
    Storage(#[from] sled::Error),
    #[error("event rejected: {0}")]
    InvalidEvent(#[from] InvalidEvent),
    #[error("audit store record {seq} is unreadable")]
    CorruptRecord { seq: u64 },
    #[error("audit store metadata `{0}` is unreadable")]
    CorruptMeta(&'static str),
    #[error("writing a digest: {0}")]
    Digest(#[from] crate::digest::DigestSignError),
}

impl StoreError {
    /// True when retrying the same input can never succeed (the event itself is bad):
    /// the consumer should dead-letter/terminate the message rather than redeliver it.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::InvalidEvent(_))
    }
}

/// How the hash chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainBreak {
    /// The record's bytes do not decode.
    Malformed,
    /// Records are not numbered 1, 2, 3, … without gaps.
    SequenceGap { expected: u64 },
    /// `prev_hash` is not the previous record's hash.
    PrevHashMismatch,
    /// `hash` is not `sha256(prev_hash || event)`: the record was altered.
    HashMismatch,
}

/// `verify_chain` failure.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("audit hash chain broken at record {seq}: {kind:?}")]
    Broken { seq: u64, kind: ChainBreak },
    #[error("audit store I/O: {0}")]
    Storage(#[from] sled::Error),
}

impl ChainError {
    /// The store sequence number where the chain broke.
    pub fn broken_at(&self) -> Option<u64> {
        match self {
            Self::Broken { seq, .. } => Some(*seq),
            Self::Storage(_) => None,
        }
    }
}

/// The append-only audit store. Share it behind an `Arc`; appends are serialized
/// internally, lookups run concurrently.
#[derive(Debug)]
pub struct AuditStore {
    pub(crate) db: sled::Db,
    pub(crate) records: Tree,
    stream_seqs: Tree,
    event_ids: Tree,
    pub(crate) idx_time: Tree,
    pub(crate) idx_attr: Tree,
    pub(crate) meta: Tree,
    /// `account (len-prefixed) | digest sequence (8, BE)` → encoded `SignedDigest`.
    pub(crate) digests: Tree,
    /// Fingerprint → public key PEM of every key that ever signed a digest.
    pub(crate) digest_keys: Tree,
    /// Serializes digest passes.
    pub(crate) digest_lock: Mutex<()>,
    /// Serializes appends so sequence numbers and the chain head are assigned in order.
    append_lock: Mutex<Head>,
    last_stream_seq: AtomicU64,
    /// Mirrors `Head::seq` so `len` never waits for an append's flush.
    len: AtomicU64,
    /// Tests: how many more `apply_batch` calls succeed before the store "crashes"
    /// (fails every further one).
    #[cfg(test)]
    batches_before_crash: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Head {
    seq: u64,
    hash: [u8; 32],
    /// Records `derived + 1 ..= seq` lack (some of) their derived entries.
    derived: u64,
}

pub(crate) fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// Adds record `seq` of event `view` to a group's index entries.
fn index_record(
    view: &EventView,
    seq: u64,
    time_index: &mut IndexWriter,
    attr_index: &mut IndexWriter,
) {
    for scope in [Scope::All, Scope::Account(&view.recipient_account_id)] {
        time_index.add(&time_prefix(scope), view.event_time, seq);
        for (code, value) in view.attribute_values() {
            attr_index.add(&attr_prefix(scope, code, &value), view.event_time, seq);
        }
    }
}

fn entries_batch(index: IndexWriter) -> Batch {
    let mut batch = Batch::default();
    for (k, v) in index.into_entries() {
        batch.insert(k, v);
    }
    batch
}

fn meta_batch(last_stream_seq: u64, derived_through: u64) -> Batch {
    let mut batch = Batch::default();
    batch.insert(META_LAST_STREAM_SEQ, &last_stream_seq.to_be_bytes());
    batch.insert(META_DERIVED_THROUGH, &derived_through.to_be_bytes());
    batch
}

impl AuditStore {
    /// Opens (or creates) the store in directory `path`. Only one process may hold it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::from_db(kms_sled_guard::open(path.as_ref())?)
    }

    /// A store in a temporary directory removed on drop (tests, dry runs).
    pub fn open_temporary() -> Result<Self, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self, StoreError> {
        let records = db.open_tree(TREE_RECORDS)?;
        let meta = db.open_tree(TREE_META)?;
        let derived = match meta.get(META_DERIVED_THROUGH)? {
            None => None,
            Some(v) => Some(be_u64(&v).ok_or(StoreError::CorruptMeta("derived_through"))?),
        };
        let mut head = match records.last()? {
            None => Head { seq: 0, hash: GENESIS_HASH, derived: 0 },
            Some((k, v)) => {
                let seq = be_u64(&k).ok_or(StoreError::CorruptMeta("records key"))?;
                let rec = StoredRecord::decode(&v).ok_or(StoreError::CorruptRecord { seq })?;
                // No marker: written by one transaction per group, so fully derived.
                Head { seq, hash: rec.hash, derived: derived.unwrap_or(seq) }
            }
        };
        if head.derived > head.seq {
            return Err(StoreError::CorruptMeta("derived_through"));
        }
        let last_stream_seq = match meta.get(META_LAST_STREAM_SEQ)? {
            None => 0,
            Some(v) => be_u64(&v).ok_or(StoreError::CorruptMeta("last_stream_seq"))?,
        };
        let write_marker = derived.is_none() && head.seq > 0;
        let store = Self {
            stream_seqs: db.open_tree(TREE_STREAM_SEQS)?,
            event_ids: db.open_tree(TREE_EVENT_IDS)?,
            idx_time: db.open_tree(TREE_IDX_TIME)?,
            idx_attr: db.open_tree(TREE_IDX_ATTR)?,
            digests: db.open_tree(TREE_DIGESTS)?,
            digest_keys: db.open_tree(TREE_DIGEST_KEYS)?,
            digest_lock: Mutex::new(()),
            records,
            meta,
            db,
            append_lock: Mutex::new(head),
            last_stream_seq: AtomicU64::new(last_stream_seq),
            len: AtomicU64::new(head.seq),
            #[cfg(test)]
            batches_before_crash: AtomicU64::new(u64::MAX),
        };
        if write_marker || head.derived < head.seq {
            store.derive_missing(&mut head)?;
            kms_sled_guard::flush(&store.db)?;
            *store.append_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = head;
        }
        store.upgrade_indexes()?;
        Ok(store)
    }

    /// Writes the derived entries (dedup markers, index entries) of records
    /// `head.derived + 1 ..= head.seq`, then `derived_through` (see the module doc); with
    /// none missing, just the marker. Those records are the last group written, so their
    /// index entries are recomputed as that one group: the same keys and values.
    fn derive_missing(&self, head: &mut Head) -> Result<(), StoreError> {
        let mut stream_marks = Batch::default();
        let mut event_marks = Batch::default();
        let mut time_index = IndexWriter::default();
        let mut attr_index = IndexWriter::default();
        let mut last_stream = self.last_stream_seq.load(Ordering::Acquire);
        for item in self.records.range((head.derived + 1).to_be_bytes()..) {
            let (k, v) = item?;
            let seq = be_u64(&k).ok_or(StoreError::CorruptMeta("records key"))?;
            let rec = StoredRecord::decode(&v).ok_or(StoreError::CorruptRecord { seq })?;
            let view =
                EventView::parse(&rec.event).map_err(|_| StoreError::CorruptRecord { seq })?;
            index_record(&view, seq, &mut time_index, &mut attr_index);
            stream_marks.insert(&rec.stream_seq.to_be_bytes(), &seq.to_be_bytes());
            event_marks.insert(view.event_id.as_bytes(), &seq.to_be_bytes());
            last_stream = last_stream.max(rec.stream_seq);
        }
        self.apply_batch_to(&self.stream_seqs, stream_marks)?;
        self.apply_batch_to(&self.event_ids, event_marks)?;
        self.apply_batch_to(&self.idx_time, entries_batch(time_index))?;
        self.apply_batch_to(&self.idx_attr, entries_batch(attr_index))?;
        self.apply_batch_to(&self.meta, meta_batch(last_stream, head.seq))?;
        head.derived = head.seq;
        self.last_stream_seq.store(last_stream, Ordering::Release);
        Ok(())
    }

    /// `tree.apply_batch(batch)`. sled's `apply_batch` takes its process-wide lock
    /// exclusively, as a transaction does, so it goes through `kms-sled-guard` too.
    fn apply_batch_to(&self, tree: &Tree, batch: Batch) -> Result<(), StoreError> {
        #[cfg(test)]
        {
            let left = self.batches_before_crash.load(Ordering::Acquire);
            if left == 0 {
                return Err(StoreError::Storage(sled::Error::Unsupported(
                    "simulated crash".into(),
                )));
            }
            self.batches_before_crash.store(left.saturating_sub(1), Ordering::Release);
        }
        kms_sled_guard::exclusively(|| tree.apply_batch(batch))?;
        Ok(())
    }

    /// Brings a store written by an older version up to `INDEX_VERSION` by indexing every
    /// record again (inserts are idempotent, so an interrupted upgrade simply reruns).
    fn upgrade_indexes(&self) -> Result<(), StoreError> {
        let version = match self.meta.get(META_INDEX_VERSION)? {
            Some(v) => be_u64(&v).ok_or(StoreError::CorruptMeta("index_version"))?,
            None if self.records.is_empty() => 0,
            None => 1,
        };
        if version >= INDEX_VERSION {
            return Ok(());
        }
        for item in self.records.iter() {
            let (k, v) = item?;
            let seq = be_u64(&k).ok_or(StoreError::CorruptMeta("records key"))?;
            let Some(view) = StoredRecord::decode(&v).and_then(|r| EventView::parse(&r.event).ok())
            else {
                continue;
            };
            let mut attr_index = IndexWriter::default();
            for scope in [Scope::All, Scope::Account(&view.recipient_account_id)] {
                for (code, value) in view.attribute_values() {
                    attr_index.add(&attr_prefix(scope, code, &value), view.event_time, seq);
                }
            }
            for (k, v) in attr_index.into_entries() {
                self.idx_attr.insert(k, v)?;
            }
        }
        self.meta.insert(META_INDEX_VERSION, &INDEX_VERSION.to_be_bytes())?;
        kms_sled_guard::flush(&self.db)?;
        Ok(())
    }

    /// Appends the event carried by stream message `stream_seq`, durably (flushed)
    /// before returning: ack the message only after this returns `Ok`.
    ///
    /// Idempotent: a stream sequence already applied returns `AlreadyApplied`, an
    /// `eventID` already stored returns `DuplicateEvent`. Stream sequences may arrive out
    /// of order (redeliveries); each is remembered individually.
    pub fn append(&self, stream_seq: u64, event_json: &[u8]) -> Result<AppendOutcome, StoreError> {
        // `append_batch` flushes also after a failure or a redelivery: an earlier attempt
        // may have committed but failed to flush, and the caller is about to acknowledge
        // what is stored.
        self.append_batch(&[(stream_seq, event_json)])?
            .pop()
            .unwrap_or(Err(StoreError::CorruptMeta("append outcome")))
    }

    /// Group commit: appends each `(stream sequence, event)` in order, with the outcome
    /// [`Self::append`] would give it, in one sled batch per tree (module doc) flushed
    /// once. The outcomes are in input order; an `Err` of the whole call means nothing of
    /// the group may be acknowledged (a batch or the flush failed).
    ///
    /// Batches and flushes go through `kms-sled-guard`, which keeps sled 0.34's
    /// process-wide lock from deadlocking them.
    pub fn append_batch(
        &self,
        events: &[(u64, &[u8])],
    ) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
        use std::collections::HashMap;
        let mut head = self.append_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if head.derived < head.seq {
            // An earlier append failed after writing its records: complete it first, so
            // that the dedup checks below see its markers.
            self.derive_missing(&mut head)?;
        }
        let mut next = *head;
        let mut last_stream = self.last_stream_seq.load(Ordering::Acquire);
        // What the batches write.
        let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut stream_marks: Vec<(u64, u64)> = Vec::new();
        let mut event_marks: Vec<(String, u64)> = Vec::new();
        let mut time_index = IndexWriter::default();
        let mut attr_index = IndexWriter::default();
        let mut batch_streams: HashMap<u64, u64> = HashMap::new();
        let mut batch_events: HashMap<String, (u64, usize)> = HashMap::new();
        // Outcomes; a duplicate of an event stored earlier in this batch compares later.
        let mut outcomes: Vec<Result<AppendOutcome, StoreError>> = Vec::with_capacity(events.len());
        for (i, (stream_seq, event_json)) in events.iter().enumerate() {
            let stream_seq = *stream_seq;
            let known = match batch_streams.get(&stream_seq) {
                Some(seq) => Some(*seq),
                None => match self.stream_seqs.get(stream_seq.to_be_bytes()) {
                    Ok(v) => v.and_then(|v| be_u64(&v)),
                    Err(e) => {
                        outcomes.push(Err(e.into()));
                        continue;
                    }
                },
            };
            if let Some(seq) = known {
                outcomes.push(Ok(AppendOutcome::AlreadyApplied { seq }));
                continue;
            }
            let view = match EventView::parse(event_json) {
                Ok(v) => v,
                Err(e) => {
                    outcomes.push(Err(e.into()));
                    continue;
                }
            };
            last_stream = last_stream.max(stream_seq);
            let stored = match batch_events.get(&view.event_id) {
                Some((seq, index)) => Some((*seq, events[*index].1 == *event_json)),
                None => match self.event_ids.get(view.event_id.as_bytes()) {
                    Ok(Some(v)) => {
                        let seq = be_u64(&v).ok_or(StoreError::CorruptMeta("event_ids value"))?;
                        let identical = self.record(seq)?.is_some_and(|r| r.event == *event_json);
                        Some((seq, identical))
                    }
                    Ok(None) => None,
                    Err(e) => {
                        outcomes.push(Err(e.into()));
                        continue;
                    }
                },
            };
            if let Some((seq, identical)) = stored {
                stream_marks.push((stream_seq, seq));
                batch_streams.insert(stream_seq, seq);
                outcomes.push(Ok(AppendOutcome::DuplicateEvent { seq, identical }));
                continue;
            }
            let seq = next.seq + 1;
            let hash = chain_hash(&next.hash, event_json);
            records.push((
                seq,
                StoredRecord { stream_seq, prev_hash: next.hash, hash, event: event_json.to_vec() }
                    .encode(),
            ));
            index_record(&view, seq, &mut time_index, &mut attr_index);
            stream_marks.push((stream_seq, seq));
            batch_streams.insert(stream_seq, seq);
            event_marks.push((view.event_id.clone(), seq));
            batch_events.insert(view.event_id, (seq, i));
            next = Head { seq, hash, derived: head.derived };
            outcomes.push(Ok(AppendOutcome::Appended { seq }));
        }
        if !stream_marks.is_empty() {
            // The order matters (module doc): records, derived entries, then `meta`.
            if !records.is_empty() {
                let mut batch = Batch::default();
                for (seq, record) in records {
                    batch.insert(&seq.to_be_bytes()[..], record);
                }
                self.apply_batch_to(&self.records, batch)?;
                // Written: advance the in-memory head before anything else can fail (see
                // `append`); until `derived` catches up, the next append completes this one.
                *head = next;
                self.len.store(next.seq, Ordering::Release);
            }
            let mut batch = Batch::default();
            for (stream_seq, seq) in &stream_marks {
                batch.insert(&stream_seq.to_be_bytes()[..], &seq.to_be_bytes()[..]);
            }
            self.apply_batch_to(&self.stream_seqs, batch)?;
            let mut batch = Batch::default();
            for (event_id, seq) in &event_marks {
                batch.insert(event_id.as_bytes(), &seq.to_be_bytes()[..]);
            }
            self.apply_batch_to(&self.event_ids, batch)?;
            self.apply_batch_to(&self.idx_time, entries_batch(time_index))?;
            self.apply_batch_to(&self.idx_attr, entries_batch(attr_index))?;
            self.apply_batch_to(&self.meta, meta_batch(last_stream, next.seq))?;
            head.derived = next.seq;
            self.last_stream_seq.store(last_stream, Ordering::Release);
        }
        drop(head);
        kms_sled_guard::flush(&self.db)?;
        Ok(outcomes)
    }

    /// Highest stream sequence applied (0 when none).
    pub fn last_stream_seq(&self) -> u64 {
        self.last_stream_seq.load(Ordering::Acquire)
    }

    /// Number of records (= the newest record's sequence number).
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// True when no record is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Newest record's sequence number and hash (`(0, [0; 32])` when empty). Publish it
    /// somewhere the store's host cannot rewrite to make truncation or a rewritten
    /// chain detectable.
    pub fn head(&self) -> (u64, [u8; 32]) {
        let head = *self.append_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        (head.seq, head.hash)
    }

    /// Recomputes every hash from the first record; returns how many records verified.
    pub fn verify_chain(&self) -> Result<u64, ChainError> {
        let mut prev = GENESIS_HASH;
        let mut expected = 1u64;
        for item in self.records.iter() {
            let (k, v) = item?;
            let seq = be_u64(&k)
                .ok_or(ChainError::Broken { seq: expected, kind: ChainBreak::Malformed })?;
            if seq != expected {
                return Err(ChainError::Broken { seq, kind: ChainBreak::SequenceGap { expected } });
            }
            let rec = StoredRecord::decode(&v)
                .ok_or(ChainError::Broken { seq, kind: ChainBreak::Malformed })?;
            if rec.prev_hash != prev {
                return Err(ChainError::Broken { seq, kind: ChainBreak::PrevHashMismatch });
            }
            if chain_hash(&rec.prev_hash, &rec.event) != rec.hash {
                return Err(ChainError::Broken { seq, kind: ChainBreak::HashMismatch });
            }
            prev = rec.hash;
            expected += 1;
        }
        Ok(expected - 1)
    }

    /// The sequence number of the record of event `event_id`, if stored.
    pub(crate) fn event_seq(&self, event_id: &str) -> Result<Option<u64>, StoreError> {
        match self.event_ids.get(event_id.as_bytes())? {
            None => Ok(None),
            Some(v) => be_u64(&v).map(Some).ok_or(StoreError::CorruptMeta("event_ids value")),
        }
    }

    /// The stored record `seq`, decoded.
    pub(crate) fn record(&self, seq: u64) -> Result<Option<StoredRecord>, StoreError> {
        match self.records.get(seq.to_be_bytes())? {
            None => Ok(None),
            Some(v) => StoredRecord::decode(&v).map(Some).ok_or(StoreError::CorruptRecord { seq }),
        }
    }
}

pub(crate) fn txn_err(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Storage(e) => StoreError::Storage(e),
        // Nothing in the closures aborts.
        TransactionError::Abort(()) => {
            StoreError::Storage(sled::Error::Unsupported("audit append transaction aborted".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{fixture, fixture_bytes};

    /// sled releases a dropped database's file lock from a background thread, so a
    /// reopen right after a drop may briefly find it still held: retry for a while.
    fn retry<T>(open: impl Fn() -> Result<T, sled::Error>) -> T {
        for _ in 0..200 {
            match open() {
                Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::Other => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other.unwrap(),
            }
        }
        open().unwrap()
    }

    fn sled_open(dir: &Path) -> sled::Db {
        retry(|| sled::open(dir))
    }

    fn store_open(dir: &Path) -> AuditStore {
        retry(|| match AuditStore::open(dir) {
            Ok(s) => Ok(s),
            Err(StoreError::Storage(e)) => Err(e),
            Err(e) => panic!("{e}"),
        })
    }

    #[test]
    fn appends_are_numbered_and_chained() {
        let store = AuditStore::open_temporary().unwrap();
        assert!(store.is_empty());
        assert_eq!(store.head(), (0, GENESIS_HASH));
        let events = fixture();
        for (i, e) in events.iter().enumerate() {
            let n = i as u64 + 1;
            let out = store.append(100 + n, &e.to_json_bytes().unwrap()).unwrap();
            assert_eq!(out, AppendOutcome::Appended { seq: n });
        }
        assert_eq!(store.len(), events.len() as u64);
        assert_eq!(store.last_stream_seq(), 100 + events.len() as u64);
        assert_eq!(store.verify_chain().unwrap(), events.len() as u64);

        let r1 = store.record(1).unwrap().unwrap();
        let r2 = store.record(2).unwrap().unwrap();
        assert_eq!(r1.prev_hash, GENESIS_HASH);
        assert_eq!(r1.stream_seq, 101);
        assert_eq!(r2.prev_hash, r1.hash);
        // Bytes are kept exactly as received and hashed as received.
        assert_eq!(r1.event, events[0].to_json_bytes().unwrap());
        assert_eq!(r1.hash, chain_hash(&GENESIS_HASH, &r1.event));
        assert_eq!(store.head().1, store.record(store.len()).unwrap().unwrap().hash);
    }

    #[test]
    fn redelivery_is_a_no_op() {
        let store = AuditStore::open_temporary().unwrap();
        let bytes = fixture_bytes();
        assert_eq!(store.append(1, &bytes[0]).unwrap(), AppendOutcome::Appended { seq: 1 });
        assert_eq!(store.append(2, &bytes[1]).unwrap(), AppendOutcome::Appended { seq: 2 });
        // Redelivered seq 1, even with different bytes, changes nothing.
        assert_eq!(store.append(1, &bytes[0]).unwrap(), AppendOutcome::AlreadyApplied { seq: 1 });
        assert_eq!(store.append(1, &bytes[5]).unwrap(), AppendOutcome::AlreadyApplied { seq: 1 });
        assert_eq!(store.len(), 2);
        assert_eq!(store.verify_chain().unwrap(), 2);
        let idx_before = (store.idx_time.len(), store.idx_attr.len());
        assert_eq!(store.append(2, &bytes[1]).unwrap(), AppendOutcome::AlreadyApplied { seq: 2 });
        assert_eq!((store.idx_time.len(), store.idx_attr.len()), idx_before);
    }

    #[test]
    fn same_event_id_under_a_new_stream_seq_is_deduplicated() {
        let store = AuditStore::open_temporary().unwrap();
        let bytes = fixture_bytes();
        store.append(1, &bytes[0]).unwrap();
        store.append(2, &bytes[1]).unwrap();
        assert_eq!(
            store.append(3, &bytes[0]).unwrap(),
            AppendOutcome::DuplicateEvent { seq: 1, identical: true }
        );
        // Same eventID, altered body: the stored record wins and the caller is told.
        let mut forged = crate::testdata::fixture()[0].clone();
        forged.event_name = "Decrypt".into();
        assert_eq!(
            store.append(4, &forged.to_json_bytes().unwrap()).unwrap(),
            AppendOutcome::DuplicateEvent { seq: 1, identical: false }
        );
        assert_eq!(store.record(1).unwrap().unwrap().event, bytes[0]);
        assert_eq!(store.last_stream_seq(), 4);
        // ... and that stream seq is now itself idempotent.
        assert_eq!(store.append(3, &bytes[0]).unwrap(), AppendOutcome::AlreadyApplied { seq: 1 });
        assert_eq!(store.len(), 2);
        assert_eq!(store.verify_chain().unwrap(), 2);
    }

    #[test]
    fn out_of_order_stream_seqs_are_each_applied_once() {
        let store = AuditStore::open_temporary().unwrap();
        let bytes = fixture_bytes();
        store.append(10, &bytes[0]).unwrap();
        // 9 was nak'ed earlier and is redelivered after 10: it must still be stored.
        assert_eq!(store.append(9, &bytes[1]).unwrap(), AppendOutcome::Appended { seq: 2 });
        assert_eq!(store.last_stream_seq(), 10);
        assert_eq!(store.append(9, &bytes[1]).unwrap(), AppendOutcome::AlreadyApplied { seq: 2 });
    }

    #[test]
    fn invalid_events_are_rejected_as_permanent_without_side_effects() {
        let store = AuditStore::open_temporary().unwrap();
        for bad in [&b"not json"[..], b"[]", br#"{"eventID":"x"}"#] {
            let err = store.append(1, bad).unwrap_err();
            assert!(matches!(err, StoreError::InvalidEvent(_)), "{err:?}");
            assert!(err.is_permanent());
        }
        assert!(store.is_empty());
        assert_eq!(store.last_stream_seq(), 0);
        // The stream seq was not consumed by the failures.
        let bytes = fixture_bytes();
        assert_eq!(store.append(1, &bytes[0]).unwrap(), AppendOutcome::Appended { seq: 1 });
    }

    #[test]
    fn reopen_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = fixture_bytes();
        let head = {
            let store = store_open(dir.path());
            for (i, b) in bytes.iter().enumerate() {
                store.append(i as u64 + 1, b).unwrap();
            }
            store.head()
        };
        let store = store_open(dir.path());
        assert_eq!(store.len(), bytes.len() as u64);
        assert_eq!(store.head(), head);
        assert_eq!(store.last_stream_seq(), bytes.len() as u64);
        assert_eq!(store.verify_chain().unwrap(), bytes.len() as u64);
        assert_eq!(store.append(1, &bytes[0]).unwrap(), AppendOutcome::AlreadyApplied { seq: 1 });
        // Appending after reopen continues the chain.
        let mut extra = crate::testdata::fixture()[0].clone();
        extra.event_id = "99999999-0000-4000-8000-000000000000".into();
        let out = store.append(1000, &extra.to_json_bytes().unwrap()).unwrap();
        assert_eq!(out, AppendOutcome::Appended { seq: bytes.len() as u64 + 1 });
        assert_eq!(store.verify_chain().unwrap(), bytes.len() as u64 + 1);
    }

    #[test]
    fn a_group_commit_stores_what_single_appends_store() {
        let bytes = fixture_bytes();
        let (single, grouped) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let one_by_one = store_open(single.path());
        for (i, b) in bytes.iter().enumerate() {
            one_by_one.append(i as u64 + 1, b).unwrap();
        }
        let store = store_open(grouped.path());
        let batch: Vec<(u64, &[u8])> =
            bytes.iter().enumerate().map(|(i, b)| (i as u64 + 1, b.as_slice())).collect();
        let (first, rest) = batch.split_at(3);
        let mut outcomes = store.append_batch(first).unwrap();
        // A redelivery inside the next group is recognised as such.
        let mut second = vec![first[0]];
        second.extend_from_slice(rest);
        outcomes.extend(store.append_batch(&second).unwrap());
        let outcomes: Vec<AppendOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
        assert_eq!(outcomes[3], AppendOutcome::AlreadyApplied { seq: 1 });
        assert_eq!(outcomes[bytes.len()], AppendOutcome::Appended { seq: bytes.len() as u64 });
        assert_eq!(store.head(), one_by_one.head(), "the same chain");
        assert_eq!(store.verify_chain().unwrap(), bytes.len() as u64);
    }

    /// Rewrites record `seq` in a closed store directly through sled.
    fn tamper(dir: &Path, seq: u64, f: impl FnOnce(&mut StoredRecord)) {
        let db = sled_open(dir);
        let records = db.open_tree(TREE_RECORDS).unwrap();
        let mut rec =
            StoredRecord::decode(&records.get(seq.to_be_bytes()).unwrap().unwrap()).unwrap();
        f(&mut rec);
        records.insert(seq.to_be_bytes(), rec.encode()).unwrap();
        db.flush().unwrap();
    }

    fn filled_store_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let store = store_open(dir.path());
        for (i, b) in fixture_bytes().iter().enumerate() {
            store.append(i as u64 + 1, b).unwrap();
        }
        dir
    }

    #[test]
    fn tampered_event_bytes_break_the_chain_at_that_record() {
        let dir = filled_store_dir();
        tamper(dir.path(), 7, |r| {
            let text = String::from_utf8(r.event.clone()).unwrap();
            r.event = text.replacen("\"eventName\":\"", "\"eventName\":\"X", 1).into_bytes();
            assert_ne!(r.event, text.as_bytes());
        });
        let store = store_open(dir.path());
        let err = store.verify_chain().unwrap_err();
        assert_eq!(err.broken_at(), Some(7));
        assert!(matches!(err, ChainError::Broken { kind: ChainBreak::HashMismatch, .. }));
    }

    #[test]
    fn rehashed_tampering_is_caught_at_the_next_record() {
        let dir = filled_store_dir();
        // The attacker fixes up record 4's own hash, but record 5 still points at the old one.
        tamper(dir.path(), 4, |r| {
            r.event = b"{\"eventID\":\"forged\"}".to_vec();
            r.hash = chain_hash(&r.prev_hash, &r.event);
        });
        let store = store_open(dir.path());
        let err = store.verify_chain().unwrap_err();
        assert!(matches!(err, ChainError::Broken { seq: 5, kind: ChainBreak::PrevHashMismatch }));
    }

    #[test]
    fn deleted_record_is_a_sequence_gap() {
        let dir = filled_store_dir();
        {
            let db = sled_open(dir.path());
            db.open_tree(TREE_RECORDS).unwrap().remove(3u64.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let store = store_open(dir.path());
        let err = store.verify_chain().unwrap_err();
        assert!(matches!(
            err,
            ChainError::Broken { seq: 4, kind: ChainBreak::SequenceGap { expected: 3 } }
        ));
    }

    #[test]
    fn garbage_record_is_malformed() {
        let dir = filled_store_dir();
        {
            let db = sled_open(dir.path());
            db.open_tree(TREE_RECORDS).unwrap().insert(2u64.to_be_bytes(), &b"junk"[..]).unwrap();
            db.flush().unwrap();
        }
        let store = store_open(dir.path());
        let err = store.verify_chain().unwrap_err();
        assert!(matches!(err, ChainError::Broken { seq: 2, kind: ChainBreak::Malformed }));
    }

    /// Every `LookupEvents` filter each fixture event answers to, in each scope.
    fn filters() -> Vec<crate::LookupQuery> {
        use crate::{LookupAttribute, LookupAttributeKey as K, LookupQuery};
        let mut out = Vec::new();
        for e in fixture() {
            let resource_type = (!e.resources.is_empty()).then(|| "AWS::KMS::Key".to_owned());
            let mut attrs: Vec<(K, Option<String>)> = vec![
                (K::EventId, Some(e.event_id.clone())),
                (K::EventName, Some(e.event_name.clone())),
                (K::ReadOnly, Some(e.read_only.to_string())),
                (K::Username, e.user_identity.user_name.clone()),
                (K::ResourceType, resource_type),
                (K::EventSource, Some(e.event_source.clone())),
                (K::AccessKeyId, e.user_identity.access_key_id.clone()),
            ];
            attrs.extend(e.resources.iter().map(|r| (K::ResourceName, Some(r.arn.clone()))));
            for account in [None, Some(e.recipient_account_id.clone())] {
                out.push(LookupQuery { account: account.clone(), ..LookupQuery::default() });
                for (key, value) in attrs.iter().filter_map(|(k, v)| Some((*k, v.clone()?))) {
                    out.push(LookupQuery {
                        account: account.clone(),
                        lookup_attributes: vec![LookupAttribute::new(key, value)],
                        ..LookupQuery::default()
                    });
                }
            }
        }
        out
    }

    /// The event IDs each filter finds, asserting that none is found twice.
    fn lookups(store: &AuditStore) -> Vec<Vec<String>> {
        filters()
            .iter()
            .map(|q| {
                let page = store.lookup(q).unwrap();
                assert_eq!(page.next_token, None);
                let ids: Vec<String> = page.events.iter().map(|e| e.event_id.clone()).collect();
                let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
                assert_eq!(unique.len(), ids.len(), "an event found twice by {q:?}: {ids:?}");
                ids
            })
            .collect()
    }

    /// The fixture in two groups (7, then 13) with stream sequences 1..=20.
    const FIRST_GROUP: usize = 7;

    /// The fixture events, in four seconds only, so that most index entries of a group
    /// hold several events and both groups have entries in the same seconds.
    fn events() -> Vec<Vec<u8>> {
        let mut events = fixture();
        for (i, e) in events.iter_mut().enumerate() {
            e.event_time = crate::testdata::t(60 * (i as i64 % 4));
        }
        events.iter().map(|e| e.to_json_bytes().unwrap()).collect()
    }

    fn groups(bytes: &[Vec<u8>]) -> Vec<(u64, &[u8])> {
        bytes.iter().enumerate().map(|(i, b)| (i as u64 + 1, b.as_slice())).collect()
    }

    /// What a store holding the whole fixture must answer, written without any failure.
    fn reference_lookups() -> Vec<Vec<String>> {
        lookups(&crate::testdata::store_of(&events(), &[FIRST_GROUP, 20]))
    }

    /// The checks after the second group failed (or crashed) part-way and was
    /// redelivered: nothing lost, nothing twice, dedup intact, the chain continues.
    fn assert_recovered(store: &AuditStore, reference: &[Vec<String>]) {
        let bytes = events();
        let n = bytes.len() as u64;
        assert_eq!(store.len(), n);
        assert_eq!(store.verify_chain().unwrap(), n);
        assert_eq!(store.last_stream_seq(), n);
        assert_eq!(lookups(store), reference);
        // Redelivering every stream sequence changes nothing.
        let all = groups(&bytes);
        for (i, outcome) in store.append_batch(&all).unwrap().into_iter().enumerate() {
            assert_eq!(outcome.unwrap(), AppendOutcome::AlreadyApplied { seq: i as u64 + 1 });
        }
        // The same eventIDs under new stream sequences are duplicates, from either group.
        for i in [0, FIRST_GROUP, bytes.len() - 1] {
            assert_eq!(
                store.append(1000 + i as u64, &bytes[i]).unwrap(),
                AppendOutcome::DuplicateEvent { seq: i as u64 + 1, identical: true }
            );
        }
        assert_eq!(lookups(store), reference);
        let mut extra = fixture()[0].clone();
        extra.event_id = "99999999-0000-4000-8000-000000000000".into();
        let out = store.append(2000, &extra.to_json_bytes().unwrap()).unwrap();
        assert_eq!(out, AppendOutcome::Appended { seq: n + 1 });
        assert_eq!(store.verify_chain().unwrap(), n + 1);
    }

    /// A crash after each of the second group's first five batches, before the first, and
    /// (all six written) before the flush:
    /// reopening completes the group (or, with no record written, a redelivery stores it).
    #[test]
    fn a_crash_part_way_through_a_group_is_recovered_on_open() {
        let reference = reference_lookups();
        let bytes = events();
        let all = groups(&bytes);
        let (first, second) = all.split_at(FIRST_GROUP);
        for written in 0..=6 {
            let dir = tempfile::tempdir().unwrap();
            {
                let store = store_open(dir.path());
                store.append_batch(first).unwrap();
                store.batches_before_crash.store(written, Ordering::Release);
                // With all six written, only the flush was left: it succeeds.
                let result = store.append_batch(second);
                assert_eq!(result.is_err(), written < 6, "after {written} batches");
                // Dropping the store flushes what was written: a crash after that batch.
            }
            let store = store_open(dir.path());
            if written == 0 {
                assert_eq!(store.len(), FIRST_GROUP as u64);
                for outcome in store.append_batch(second).unwrap() {
                    assert!(matches!(outcome, Ok(AppendOutcome::Appended { .. })));
                }
            }
            let derived = store.meta.get(META_DERIVED_THROUGH).unwrap().unwrap();
            assert_eq!(be_u64(&derived), Some(bytes.len() as u64), "after {written} batches");
            assert_recovered(&store, &reference);
        }
    }

    /// The same failures without a restart: the next append completes the group first.
    #[test]
    fn a_group_that_failed_part_way_is_completed_by_the_next_append() {
        let reference = reference_lookups();
        let bytes = events();
        let all = groups(&bytes);
        let (first, second) = all.split_at(FIRST_GROUP);
        for written in 1..=5 {
            let store = AuditStore::open_temporary().unwrap();
            store.append_batch(first).unwrap();
            store.batches_before_crash.store(written, Ordering::Release);
            assert!(store.append_batch(second).is_err(), "after {written} batches");
            store.batches_before_crash.store(u64::MAX, Ordering::Release);
            // The redelivered group: its records were written, so it was applied.
            for (i, outcome) in store.append_batch(second).unwrap().into_iter().enumerate() {
                let seq = (FIRST_GROUP + i) as u64 + 1;
                assert_eq!(outcome.unwrap(), AppendOutcome::AlreadyApplied { seq });
            }
            assert_recovered(&store, &reference);
        }
    }

    /// A store written before `derived_through` existed (no marker) opens as fully
    /// derived: nothing is indexed twice, and the marker is written.
    #[test]
    fn a_store_without_derived_through_opens_and_keeps_working() {
        let reference = reference_lookups();
        let bytes = events();
        let all = groups(&bytes);
        let (first, second) = all.split_at(FIRST_GROUP);
        let dir = tempfile::tempdir().unwrap();
        {
            // What the transactional version left: the same trees, and no marker.
            let store = store_open(dir.path());
            store.append_batch(first).unwrap();
            store.append_batch(second).unwrap();
            store.meta.remove(META_DERIVED_THROUGH).unwrap();
            store.db.flush().unwrap();
        }
        let store = store_open(dir.path());
        let derived = store.meta.get(META_DERIVED_THROUGH).unwrap().unwrap();
        assert_eq!(be_u64(&derived), Some(bytes.len() as u64));
        assert_recovered(&store, &reference);
    }

    #[test]
    fn concurrent_appends_keep_the_chain_valid() {
        let store = std::sync::Arc::new(AuditStore::open_temporary().unwrap());
        let bytes = std::sync::Arc::new(fixture_bytes());
        let handles: Vec<_> = (0..2)
            .map(|t| {
                let (store, bytes) = (store.clone(), bytes.clone());
                std::thread::spawn(move || {
                    for (i, b) in bytes.iter().enumerate().filter(|(i, _)| i % 2 == t) {
                        store.append(i as u64 + 1, b).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(store.len(), bytes.len() as u64);
        assert_eq!(store.verify_chain().unwrap(), bytes.len() as u64);
    }
}
