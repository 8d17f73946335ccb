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
//! bookkeeping, under sled's process-wide lock taken exclusively) but as plain inserts,
//! one key at a time, in this order:
//!
//! 1. `records`, in seq order (the source of truth: stream sequence and event bytes);
//! 2. the *derived* entries: `stream_seqs`, `event_ids`, `idx_time`, `idx_attr`;
//! 3. `meta`: `last_stream_seq`, then `derived_through`, the last record seq whose derived
//!    entries are all written.
//!
//! Each insert is atomic on its own, and a crash leaves a prefix of them (below): some of
//! the group's records, or all of them and some of their derived entries. On open (and
//! before the next append after a failed one), records above `derived_through` (part or
//! all of the last group) get their derived entries written again from the records
//! themselves: dedup markers are one per record, and index entries are a pure function of
//! the records indexed together ([`IndexWriter`]), so recomputing them for the same
//! records rewrites identical keys and values, and when only part of a group's records
//! survived, none of its derived entries had been written. Derived entries only ever lag
//! their records, never exist without them. A store written before `derived_through`
//! existed (by one transaction per group) is fully derived.
//!
//! Nothing is acknowledged before the flush that follows the last insert, as before: a
//! group cut short by a crash was not acknowledged and is redelivered; its stored records
//! are then `AlreadyApplied`, the rest appended.
//!
//! One `sled::Batch` per tree (`Tree::apply_batch`, atomic per tree) was tried first and
//! measured no faster than the transaction: each batch takes sled's process-wide lock
//! exclusively (so it still had to go through `kms_sled_guard::exclusively`) and rolls
//! the log's IO buffer twice (`PageCache::pin_log`). Plain inserts take sled's lock shared
//! and need neither.
//!
//! # Why a prefix of the writes survives a crash (sled 0.34.7)
//!
//! * Every tree of one `Db` writes to the same log (`pagecache/logger.rs`, `Log`), and a
//!   write's log position (LSN) is taken from the current IO buffer when it is reserved
//!   (`Log::reserve_inner`: `reservation_lsn = iobuf.lsn + buf_offset`), so writes issued
//!   one after another by one thread get increasing LSNs whatever their tree
//!   (`Tree::insert` → `insert_inner` → the page cache's `link`/`replace` → `reserve`).
//! * Recovery replays the log in LSN order only up to the end of the last contiguous
//!   message: the first torn or corrupt message, or a missing segment in the unstable
//!   tail, ends it (`check_contiguity_in_unstable_tail` and `raw_segment_iter_from`,
//!   `pagecache/iterator.rs`, which bound the replaying `LogIter` by `max_lsn`); sled's
//!   own multi-message writes (batches, transactions) are cut whole when not stable to
//!   their end (`LogIter::next`, `LogRead::BatchManifest`).
//!
//! So what recovers is a prefix of the log: if a later write is durable, every write
//! issued before it through the same `Db` is too.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sled::transaction::TransactionError;
use sled::{IVec, Tree};

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
    /// Tests: how many more inserts of an append succeed before the store "crashes"
    /// (fails every further one).
    #[cfg(test)]
    inserts_before_crash: AtomicU64,
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

/// Keys and values to insert into one tree, in order.
#[derive(Default)]
struct Writes(Vec<(IVec, IVec)>);

impl Writes {
    fn insert(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.0.push((key.into(), value.into()));
    }
}

fn entries(index: IndexWriter) -> Writes {
    let mut writes = Writes::default();
    for (k, v) in index.into_entries() {
        writes.insert(k, v);
    }
    writes
}

/// `last_stream_seq` first: `derived_through` says everything before it is written.
fn meta_writes(last_stream_seq: u64, derived_through: u64) -> Writes {
    let mut writes = Writes::default();
    writes.insert(META_LAST_STREAM_SEQ, &last_stream_seq.to_be_bytes()[..]);
    writes.insert(META_DERIVED_THROUGH, &derived_through.to_be_bytes()[..]);
    writes
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
            inserts_before_crash: AtomicU64::new(u64::MAX),
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
        let mut stream_marks = Writes::default();
        let mut event_marks = Writes::default();
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
            stream_marks.insert(&rec.stream_seq.to_be_bytes()[..], &seq.to_be_bytes()[..]);
            event_marks.insert(view.event_id.as_bytes(), &seq.to_be_bytes()[..]);
            last_stream = last_stream.max(rec.stream_seq);
        }
        self.write(&self.stream_seqs, stream_marks)?;
        self.write(&self.event_ids, event_marks)?;
        self.write(&self.idx_time, entries(time_index))?;
        self.write(&self.idx_attr, entries(attr_index))?;
        self.write(&self.meta, meta_writes(last_stream, head.seq))?;
        head.derived = head.seq;
        self.last_stream_seq.store(last_stream, Ordering::Release);
        Ok(())
    }

    /// Inserts `writes` into `tree` in order. Plain inserts take sled's process-wide lock
    /// shared, so they need no `kms_sled_guard::exclusively`.
    fn write(&self, tree: &Tree, writes: Writes) -> Result<(), StoreError> {
        for (k, v) in writes.0 {
            self.insert(tree, k, v)?;
        }
        Ok(())
    }

    fn insert(&self, tree: &Tree, key: IVec, value: IVec) -> Result<(), StoreError> {
        #[cfg(test)]
        {
            let left = self.inserts_before_crash.load(Ordering::Acquire);
            if left == 0 {
                return Err(StoreError::Storage(sled::Error::Unsupported(
                    "simulated crash".into(),
                )));
            }
            self.inserts_before_crash.store(left.saturating_sub(1), Ordering::Release);
        }
        tree.insert(key, value)?;
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
    /// [`Self::append`] would give it, written in a fixed order (module doc) and flushed
    /// once. The outcomes are in input order; an `Err` of the whole call means nothing of
    /// the group may be acknowledged (an insert or the flush failed).
    ///
    /// The flush goes through `kms-sled-guard`, which keeps sled 0.34's process-wide lock
    /// from deadlocking it with other stores' transactions.
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
        // What the group writes.
        let mut records: Vec<(Head, Vec<u8>)> = Vec::new();
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
            let head_after = Head { seq, hash, derived: head.derived };
            records.push((
                head_after,
                StoredRecord { stream_seq, prev_hash: next.hash, hash, event: event_json.to_vec() }
                    .encode(),
            ));
            index_record(&view, seq, &mut time_index, &mut attr_index);
            stream_marks.push((stream_seq, seq));
            batch_streams.insert(stream_seq, seq);
            event_marks.push((view.event_id.clone(), seq));
            batch_events.insert(view.event_id, (seq, i));
            next = head_after;
            outcomes.push(Ok(AppendOutcome::Appended { seq }));
        }
        if !stream_marks.is_empty() {
            // The order matters (module doc): records, derived entries, then `meta`.
            for (after, record) in records {
                self.insert(
                    &self.records,
                    IVec::from(&after.seq.to_be_bytes()[..]),
                    record.into(),
                )?;
                // Written: advance the in-memory head at once, so that a failure further on
                // never lets the next append reuse the seq (see `append`); until `derived`
                // catches up, the next append completes this one first.
                *head = after;
                self.len.store(after.seq, Ordering::Release);
            }
            let mut writes = Writes::default();
            for (stream_seq, seq) in &stream_marks {
                writes.insert(&stream_seq.to_be_bytes()[..], &seq.to_be_bytes()[..]);
            }
            self.write(&self.stream_seqs, writes)?;
            let mut writes = Writes::default();
            for (event_id, seq) in &event_marks {
                writes.insert(event_id.as_bytes(), &seq.to_be_bytes()[..]);
            }
            self.write(&self.event_ids, writes)?;
            self.write(&self.idx_time, entries(time_index))?;
            self.write(&self.idx_attr, entries(attr_index))?;
            self.write(&self.meta, meta_writes(last_stream, next.seq))?;
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

    /// Redelivers the second group after it was cut short: records already stored are
    /// `AlreadyApplied`, the rest appended.
    fn redeliver(store: &AuditStore, second: &[(u64, &[u8])]) {
        let stored = store.len();
        for (i, outcome) in store.append_batch(second).unwrap().into_iter().enumerate() {
            let seq = (FIRST_GROUP + i) as u64 + 1;
            if seq <= stored {
                assert_eq!(outcome.unwrap(), AppendOutcome::AlreadyApplied { seq });
            } else {
                assert_eq!(outcome.unwrap(), AppendOutcome::Appended { seq });
            }
        }
    }

    /// How many inserts appending the second group takes, and where to cut it short: at
    /// every phase's edges (records, stream_seqs, event_ids: one insert per event) and
    /// every eighth insert between, up to the last (`derived_through`) and the flush.
    fn cut_points(first: &[(u64, &[u8])], second: &[(u64, &[u8])]) -> Vec<u64> {
        let store = AuditStore::open_temporary().unwrap();
        store.append_batch(first).unwrap();
        store.inserts_before_crash.store(u64::MAX, Ordering::Release);
        store.append_batch(second).unwrap();
        let total = u64::MAX - store.inserts_before_crash.load(Ordering::Acquire);
        let n = second.len() as u64;
        let edges = [1, n - 1, n, n + 1, 2 * n, 2 * n + 1, 3 * n, 3 * n + 1];
        (0..=total).filter(|k| k % 8 == 0 || edges.contains(k) || k + 2 >= total).collect()
    }

    /// A crash after each of those inserts of the second group (none, part of its records,
    /// all of them and part of the derived entries, ..., everything but the flush):
    /// reopening completes what was stored, and redelivery the rest.
    #[test]
    fn a_crash_part_way_through_a_group_is_recovered_on_open() {
        let reference = reference_lookups();
        let bytes = events();
        let all = groups(&bytes);
        let (first, second) = all.split_at(FIRST_GROUP);
        let cuts = cut_points(first, second);
        assert!(cuts.len() > 15, "{cuts:?}");
        for (i, &written) in cuts.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            {
                let store = store_open(dir.path());
                store.append_batch(first).unwrap();
                store.inserts_before_crash.store(written, Ordering::Release);
                // Only with every insert written does the append (its flush) succeed.
                let ok = store.append_batch(second).is_ok();
                assert_eq!(ok, i == cuts.len() - 1, "after {written} inserts");
                // Dropping the store flushes what was written: a crash after that insert.
            }
            let store = store_open(dir.path());
            assert!(store.len() >= FIRST_GROUP as u64);
            let derived = store.meta.get(META_DERIVED_THROUGH).unwrap().unwrap();
            assert_eq!(be_u64(&derived), Some(store.len()), "after {written} inserts");
            redeliver(&store, second);
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
        for written in cut_points(first, second) {
            let store = AuditStore::open_temporary().unwrap();
            store.append_batch(first).unwrap();
            store.inserts_before_crash.store(written, Ordering::Release);
            let _ = store.append_batch(second);
            // The head is the last record written, whatever failed after it: the next
            // append must not number a record again.
            let (k, v) = store.records.last().unwrap().unwrap();
            let last = StoredRecord::decode(&v).unwrap();
            assert_eq!(store.head(), (be_u64(&k).unwrap(), last.hash), "after {written} inserts");
            assert_eq!(store.len(), store.records.len() as u64);
            store.inserts_before_crash.store(u64::MAX, Ordering::Release);
            redeliver(&store, second);
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
