//! The audit store's index entries (`idx_time`, `idx_attr`), grouped per commit.
//!
//! Why grouped: sled 0.34 copies a B-tree node on every insert, so an append costs about
//! as much as its number of inserts. One index key per (event, attribute) made about 30
//! inserts per event, and under load that was half of the whole system's CPU. A group
//! commit therefore writes ONE entry per (index prefix, second) for all of the group's
//! events that share them:
//!
//! ```text
//! key   = prefix | time (8, order-preserving) | first seq (8, BE)
//! value = the group's further seqs under that prefix in that second, ascending, 8 bytes BE each
//! ```
//!
//! An entry with an empty value holds one event: the layout written before grouping, which
//! is read the same way. The order is exact: under one prefix and second, every seq of a
//! later group is greater than every seq of an earlier one, so reading keys in order and
//! each value in order gives positions sorted by `(time, seq)`, which lookups, paging
//! tokens and exports rely on. Entries are never rewritten; later groups only add keys.

use std::collections::BTreeMap;

use sled::Tree;

use crate::record::{position_of, positioned};
use crate::store::StoreError;

/// Most seqs one entry holds, so that no sled value (and no node copy) grows large.
pub(crate) const MAX_POSTINGS_PER_ENTRY: usize = 64;

/// A record's position in an index: its event time (Unix seconds) and store sequence.
pub(crate) type Position = (i64, u64);

/// Newest-first positions, as index readers hand them out.
pub(crate) type Positions = Box<dyn Iterator<Item = Result<Position, StoreError>>>;

/// Collects one group commit's index entries.
#[derive(Debug, Default)]
pub(crate) struct IndexWriter {
    /// `prefix | time` → seqs in the order added (ascending: seqs are assigned in order).
    groups: BTreeMap<Vec<u8>, Vec<u64>>,
}

impl IndexWriter {
    /// Adds record `seq`, of event time `secs`, under `prefix`. Call in ascending `seq`.
    pub(crate) fn add(&mut self, prefix: &[u8], secs: i64, seq: u64) {
        let mut stem = positioned(prefix, secs, 0);
        stem.truncate(stem.len() - 8);
        let seqs = self.groups.entry(stem).or_default();
        debug_assert!(seqs.last().is_none_or(|last| *last < seq));
        seqs.push(seq);
    }

    /// The sled entries to insert.
    pub(crate) fn into_entries(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::with_capacity(self.groups.len());
        for (stem, seqs) in self.groups {
            for chunk in seqs.chunks(MAX_POSTINGS_PER_ENTRY) {
                let Some((first, rest)) = chunk.split_first() else { continue };
                let mut key = Vec::with_capacity(stem.len() + 8);
                key.extend_from_slice(&stem);
                key.extend_from_slice(&first.to_be_bytes());
                let value = rest.iter().flat_map(|seq| seq.to_be_bytes()).collect();
                out.push((key, value));
            }
        }
        out
    }
}

/// The positions one entry holds, ascending; `None` when the entry is malformed.
pub(crate) fn postings(key: &[u8], value: &[u8]) -> Option<Vec<Position>> {
    let (secs, first) = position_of(key)?;
    if !value.len().is_multiple_of(8) {
        return None;
    }
    let mut out = Vec::with_capacity(1 + value.len() / 8);
    out.push((secs, first));
    let mut previous = first;
    for chunk in value.chunks_exact(8) {
        let seq = u64::from_be_bytes(chunk.try_into().ok()?);
        if seq <= previous {
            return None;
        }
        out.push((secs, seq));
        previous = seq;
    }
    Some(out)
}

fn corrupt() -> StoreError {
    StoreError::CorruptMeta("index entry")
}

/// The inclusive key range of `prefix` for times `start..=end` (`None` when empty).
fn key_range(prefix: &[u8], start: i64, end: i64) -> Option<(Vec<u8>, Vec<u8>)> {
    (start <= end).then(|| (positioned(prefix, start, 0), positioned(prefix, end, u64::MAX)))
}

/// Positions under `prefix` with event time in `start..=end` and strictly below `below`
/// (a paging cursor) when given, newest first.
pub(crate) fn newest_first(
    tree: &Tree,
    prefix: &[u8],
    start: i64,
    end: i64,
    below: Option<Position>,
) -> Positions {
    let end = below.map_or(end, |(secs, _)| end.min(secs));
    let Some((lo, hi)) = key_range(prefix, start, end) else {
        return Box::new(std::iter::empty());
    };
    Box::new(tree.range(lo..=hi).rev().flat_map(move |item| {
        let entry =
            item.map_err(StoreError::from).and_then(|(k, v)| postings(&k, &v).ok_or_else(corrupt));
        let positions: Vec<Result<Position, StoreError>> = match entry {
            Ok(p) => p.into_iter().rev().filter(|p| below.is_none_or(|b| *p < b)).map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        positions
    }))
}

/// Every position under `prefix` with event time in `start..=end`, oldest first.
pub(crate) fn oldest_first(
    tree: &Tree,
    prefix: &[u8],
    start: i64,
    end: i64,
) -> Result<Vec<Position>, StoreError> {
    let mut out = Vec::new();
    if let Some((lo, hi)) = key_range(prefix, start, end) {
        for item in tree.range(lo..=hi) {
            let (k, v) = item?;
            out.extend(postings(&k, &v).ok_or_else(corrupt)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Tree {
        sled::Config::new().temporary(true).open().unwrap().open_tree("idx").unwrap()
    }

    fn write(tree: &Tree, group: &[(i64, u64)]) {
        let mut w = IndexWriter::default();
        for (secs, seq) in group {
            w.add(b"p", *secs, *seq);
            w.add(b"other", *secs, *seq);
        }
        for (k, v) in w.into_entries() {
            tree.insert(k, v).unwrap();
        }
    }

    fn newest(tree: &Tree, start: i64, end: i64, below: Option<Position>) -> Vec<Position> {
        newest_first(tree, b"p", start, end, below).map(Result::unwrap).collect()
    }

    #[test]
    fn grouped_entries_read_back_in_exact_time_and_sequence_order() {
        let t = tree();
        // Three groups; times go back and forth as they do when clocks of gateways differ.
        write(&t, &[(10, 1), (11, 2), (10, 3), (10, 4)]);
        write(&t, &[(10, 5), (9, 6), (11, 7)]);
        // An entry written before grouping (empty value) reads as one event.
        t.insert(positioned(b"p", 10, 8), &[]).unwrap();
        let mut all: Vec<Position> =
            vec![(10, 1), (11, 2), (10, 3), (10, 4), (10, 5), (9, 6), (11, 7), (10, 8)];
        all.sort();
        all.reverse();
        assert_eq!(newest(&t, i64::MIN, i64::MAX, None), all);
        let mut oldest = all.clone();
        oldest.reverse();
        assert_eq!(oldest_first(&t, b"p", i64::MIN, i64::MAX).unwrap(), oldest);
        // Time bounds are inclusive.
        assert_eq!(newest(&t, 10, 10, None), vec![(10, 8), (10, 5), (10, 4), (10, 3), (10, 1)]);
        // A cursor inside a grouped entry continues strictly below it.
        assert_eq!(newest(&t, i64::MIN, i64::MAX, Some((10, 4))), vec![(10, 3), (10, 1), (9, 6)]);
        assert_eq!(newest(&t, i64::MIN, i64::MAX, Some((10, 1))), vec![(9, 6)]);
        assert_eq!(newest(&t, 11, i64::MAX, Some((10, 5))), vec![]);
        assert_eq!(newest(&t, 12, 11, None), vec![]);
    }

    #[test]
    fn one_entry_per_prefix_and_second_with_bounded_values() {
        let mut w = IndexWriter::default();
        let n = MAX_POSTINGS_PER_ENTRY as u64 * 2 + 1;
        for seq in 1..=n {
            w.add(b"p", 100, seq);
        }
        w.add(b"p", 101, n + 1);
        let entries = w.into_entries();
        assert_eq!(entries.len(), 4, "129 events in one second take 3 entries, plus 1");
        assert!(entries.iter().all(|(_, v)| v.len() < MAX_POSTINGS_PER_ENTRY * 8));
        let t = tree();
        for (k, v) in entries {
            t.insert(k, v).unwrap();
        }
        let got = newest(&t, i64::MIN, i64::MAX, None);
        assert_eq!(got.len() as u64, n + 1);
        assert_eq!(got.first(), Some(&(101, n + 1)));
        assert_eq!(got.last(), Some(&(100, 1)));
    }

    #[test]
    fn malformed_entries_are_reported_not_skipped() {
        let t = tree();
        let mut key = positioned(b"p", 5, 3);
        t.insert(&key, &2u64.to_be_bytes()).unwrap(); // not ascending
        assert!(newest_first(&t, b"p", i64::MIN, i64::MAX, None).any(|r| r.is_err()));
        key = positioned(b"p", 6, 3);
        t.insert(&key, &[1, 2, 3]).unwrap(); // not whole seqs
        assert!(oldest_first(&t, b"p", 6, 6).is_err());
    }
}
