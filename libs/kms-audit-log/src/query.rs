//! The security team's queries: events matching every given filter (account, key,
//! principal, event names, error code, encryption-context key/value, source IP, time
//! range), newest first with stable paging, and counts grouped by key, principal or event
//! name per time bucket.
//!
//! Plan: each indexed filter names one or more index prefixes (several event names are a
//! union). The planner counts each candidate's entries in the time range, up to a cap, and
//! walks the smallest; every record it yields is checked against the whole filter. So the
//! cost of a query is the size of its most selective indexed filter, not of the store:
//! "Decrypt with key X in the last 24 hours" reads only key X's entries of that day.

use std::collections::BTreeMap;
use std::iter::Peekable;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::index::{newest_first, Positions};
use crate::record::{attr_prefix, context_pair, time_prefix, AttrCode, EventView, Scope};
use crate::store::{AuditStore, StoreError};

/// Largest page.
pub const MAX_QUERY_PAGE: usize = 1000;
/// Index entries one page may examine before it returns (possibly short) with a token.
pub const MAX_SCAN_PER_PAGE: usize = 200_000;
/// Entries counted per candidate index when choosing the most selective one.
const PLAN_PROBE: usize = 2_000;
const TOKEN_VERSION: u8 = 1;

/// A conjunction of filters; empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// `recipientAccountId`; `None` is every account (the platform view).
    pub account: Option<String>,
    /// A key ARN or bare key id among `resources`.
    pub key: Option<String>,
    /// `userIdentity.arn`.
    pub principal: Option<String>,
    /// Any of these `eventName`s.
    pub event_names: Vec<String>,
    pub error_code: Option<String>,
    /// `requestParameters.encryptionContext` has this key (with this value, if given).
    pub context_key: Option<String>,
    pub context_value: Option<String>,
    /// `sourceIPAddress`.
    pub source_ip: Option<String>,
    /// Inclusive bounds, Unix seconds.
    pub start: Option<i64>,
    pub end: Option<i64>,
}

/// Query failure.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("start time must not be after end time")]
    InvalidTimeRange,
    #[error("an encryption-context value needs its key")]
    ContextValueWithoutKey,
    #[error("invalid page token")]
    InvalidPageToken,
    #[error("bucket size must be positive")]
    InvalidBucket,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueryError {
    /// True for the caller's mistakes.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Store(_))
    }
}

/// One matching event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryEvent {
    pub seq: u64,
    /// Unix seconds.
    pub event_time: i64,
    pub event_id: String,
    pub event_name: String,
    pub account: String,
    /// The stored record, byte for byte.
    pub event: Vec<u8>,
}

/// One page, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPage {
    pub events: Vec<QueryEvent>,
    pub next_token: Option<String>,
    /// Index entries examined (a measure of the query's cost).
    pub scanned: u64,
}

/// What counts are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// Each key ARN in `resources` (`-` when none).
    Key,
    /// `userIdentity.arn`.
    Principal,
    EventName,
}

/// Counts per `(bucket start, group)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub buckets: BTreeMap<(i64, String), u64>,
    /// Matching events.
    pub total: u64,
    pub scanned: u64,
}

/// The fields a filter looks at, parsed from a record.
struct Fields {
    view: EventView,
}

impl EventFilter {
    fn validate(&self) -> Result<(), QueryError> {
        if let (Some(s), Some(e)) = (self.start, self.end) {
            if s > e {
                return Err(QueryError::InvalidTimeRange);
            }
        }
        if self.context_value.is_some() && self.context_key.is_none() {
            return Err(QueryError::ContextValueWithoutKey);
        }
        Ok(())
    }

    fn matches_view(&self, v: &EventView) -> bool {
        let eq = |want: &Option<String>, got: Option<&String>| {
            want.as_ref().is_none_or(|w| got.is_some_and(|g| g == w))
        };
        let time_ok = self.start.is_none_or(|s| v.event_time >= s)
            && self.end.is_none_or(|e| v.event_time <= e);
        let key_ok = self.key.as_ref().is_none_or(|k| {
            v.resources
                .iter()
                .any(|(_, arn)| arn == k || arn.rsplit_once('/').is_some_and(|(_, id)| id == k))
        });
        let ctx_ok = self.context_key.as_ref().is_none_or(|k| {
            v.encryption_context.iter().any(|(ck, cv)| {
                ck == k && self.context_value.as_ref().is_none_or(|want| want == cv)
            })
        });
        time_ok
            && key_ok
            && ctx_ok
            && eq(&self.account, Some(&v.recipient_account_id))
            && eq(&self.principal, v.principal_arn.as_ref())
            && eq(&self.error_code, v.error_code.as_ref())
            && eq(&self.source_ip, v.source_ip.as_ref())
            && (self.event_names.is_empty() || self.event_names.contains(&v.event_name))
    }

    /// Whether the record bytes match (for live tails; unparseable records never do).
    pub fn matches(&self, event: &[u8]) -> bool {
        EventView::parse(event).is_ok_and(|v| self.matches_view(&v))
    }

    fn scope(&self) -> Scope<'_> {
        self.account.as_deref().map_or(Scope::All, Scope::Account)
    }

    /// Every way to enumerate candidates: each a set of index prefixes whose union holds
    /// every match. The time index of the scope always qualifies.
    fn candidates(&self) -> Vec<(bool, Vec<Vec<u8>>)> {
        let scope = self.scope();
        let attr = |code, value: &str| attr_prefix(scope, code, value);
        let mut out = vec![(false, vec![time_prefix(scope)])];
        if let Some(k) = &self.key {
            out.push((true, vec![attr(AttrCode::ResourceName, k)]));
        }
        if let Some(p) = &self.principal {
            out.push((true, vec![attr(AttrCode::PrincipalArn, p)]));
        }
        if let Some(e) = &self.error_code {
            out.push((true, vec![attr(AttrCode::ErrorCode, e)]));
        }
        if let Some(ip) = &self.source_ip {
            out.push((true, vec![attr(AttrCode::SourceIp, ip)]));
        }
        match (&self.context_key, &self.context_value) {
            (Some(k), Some(v)) => {
                out.push((true, vec![attr(AttrCode::ContextPair, &context_pair(k, v))]))
            }
            (Some(k), None) => out.push((true, vec![attr(AttrCode::ContextKey, k)])),
            _ => {}
        }
        if !self.event_names.is_empty() {
            let mut names = self.event_names.clone();
            names.sort();
            names.dedup();
            out.push((true, names.iter().map(|n| attr(AttrCode::EventName, n)).collect()));
        }
        out
    }

    fn fingerprint(&self) -> [u8; 8] {
        let mut normalized = self.clone();
        normalized.event_names.sort();
        normalized.event_names.dedup();
        let mut h = Sha256::new();
        h.update(b"kms-audit-query-v1");
        h.update(serde_json::to_vec(&normalized).unwrap_or_default());
        let digest = h.finalize();
        let mut out = [0u8; 8];
        out.copy_from_slice(&digest[..8]);
        out
    }
}

fn encode_token(fingerprint: &[u8; 8], secs: i64, seq: u64) -> String {
    let mut raw = Vec::with_capacity(25);
    raw.push(TOKEN_VERSION);
    raw.extend_from_slice(fingerprint);
    raw.extend_from_slice(&secs.to_be_bytes());
    raw.extend_from_slice(&seq.to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_token(token: &str, fingerprint: &[u8; 8]) -> Result<(i64, u64), QueryError> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| QueryError::InvalidPageToken)?;
    if raw.len() != 25
        || raw.first() != Some(&TOKEN_VERSION)
        || raw.get(1..9) != Some(&fingerprint[..])
    {
        return Err(QueryError::InvalidPageToken);
    }
    let secs = raw.get(9..17).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes);
    let seq = raw.get(17..25).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    secs.zip(seq).ok_or(QueryError::InvalidPageToken)
}

/// Newest-first merge of several newest-first position streams, without repeats.
struct Merge {
    streams: Vec<Peekable<Positions>>,
    last: Option<(i64, u64)>,
}

impl Iterator for Merge {
    type Item = Result<(i64, u64), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let mut best: Option<(usize, (i64, u64))> = None;
            for (i, s) in self.streams.iter_mut().enumerate() {
                match s.peek() {
                    Some(Err(_)) => return s.next(),
                    Some(Ok(p)) if best.is_none_or(|(_, b)| *p > b) => best = Some((i, *p)),
                    _ => {}
                }
            }
            let (i, p) = best?;
            self.streams.get_mut(i).and_then(Iterator::next);
            if self.last != Some(p) {
                self.last = Some(p);
                return Some(Ok(p));
            }
        }
    }
}

impl AuditStore {
    /// Newest-first positions of the index entries under `prefixes`, within the filter's
    /// time range and strictly below `cursor`.
    fn positions(
        &self,
        attr: bool,
        prefixes: &[Vec<u8>],
        filter: &EventFilter,
        cursor: Option<(i64, u64)>,
    ) -> Merge {
        let tree = if attr { &self.idx_attr } else { &self.idx_time };
        let (start, end) = (filter.start.unwrap_or(i64::MIN), filter.end.unwrap_or(i64::MAX));
        let streams = prefixes
            .iter()
            .map(|prefix| newest_first(tree, prefix, start, end, cursor).peekable())
            .collect();
        Merge { streams, last: None }
    }

    /// The cheapest candidate enumeration for `filter`.
    fn plan(&self, filter: &EventFilter, cursor: Option<(i64, u64)>) -> Result<Merge, StoreError> {
        let mut best: Option<(usize, bool, Vec<Vec<u8>>)> = None;
        for (attr, prefixes) in filter.candidates() {
            let mut n = 0usize;
            for p in self.positions(attr, &prefixes, filter, cursor).take(PLAN_PROBE) {
                p?;
                n += 1;
            }
            if best.as_ref().is_none_or(|(b, _, _)| n < *b) {
                best = Some((n, attr, prefixes));
            }
        }
        let (_, attr, prefixes) = best.unwrap_or((0, false, vec![time_prefix(filter.scope())]));
        Ok(self.positions(attr, &prefixes, filter, cursor))
    }

    fn fields(
        &self,
        seq: u64,
        secs: i64,
        filter: &EventFilter,
    ) -> Result<Option<(Fields, Vec<u8>)>, StoreError> {
        let Some(rec) = self.record(seq)? else { return Ok(None) };
        let Ok(view) = EventView::parse(&rec.event) else { return Ok(None) };
        // Defence in depth: an index entry must never hand one account another's event.
        if view.event_time != secs || !filter.matches_view(&view) {
            return Ok(None);
        }
        Ok(Some((Fields { view }, rec.event)))
    }

    /// One page of events matching `filter`, newest first. `page_size` is clamped to
    /// `1..=MAX_QUERY_PAGE`; a page may be short (even empty) with a token when the scan
    /// budget ran out first.
    pub fn query(
        &self,
        filter: &EventFilter,
        page_size: usize,
        token: Option<&str>,
    ) -> Result<QueryPage, QueryError> {
        filter.validate()?;
        let limit = page_size.clamp(1, MAX_QUERY_PAGE);
        let fingerprint = filter.fingerprint();
        let cursor = token.map(|t| decode_token(t, &fingerprint)).transpose()?;
        let mut events = Vec::new();
        let mut scanned = 0u64;
        let mut next_token = None;
        let positions = self.plan(filter, cursor)?;
        for p in positions {
            let (secs, seq) = p?;
            scanned += 1;
            if let Some((f, event)) = self.fields(seq, secs, filter)? {
                if events.len() == limit {
                    next_token = events
                        .last()
                        .map(|e: &QueryEvent| encode_token(&fingerprint, e.event_time, e.seq));
                    break;
                }
                events.push(QueryEvent {
                    seq,
                    event_time: secs,
                    event_id: f.view.event_id,
                    event_name: f.view.event_name,
                    account: f.view.recipient_account_id,
                    event,
                });
            }
            if scanned as usize >= MAX_SCAN_PER_PAGE {
                next_token = Some(encode_token(&fingerprint, secs, seq));
                break;
            }
        }
        Ok(QueryPage { events, next_token, scanned })
    }

    /// Matching events counted per `bucket_seconds` bucket and group. Scans at most
    /// `max_scan` index entries (newest first); `scanned` tells whether it stopped early.
    pub fn counts(
        &self,
        filter: &EventFilter,
        group_by: GroupBy,
        bucket_seconds: i64,
        max_scan: u64,
    ) -> Result<Counts, QueryError> {
        filter.validate()?;
        if bucket_seconds <= 0 {
            return Err(QueryError::InvalidBucket);
        }
        let mut out = Counts::default();
        for p in self.plan(filter, None)? {
            let (secs, seq) = p?;
            out.scanned += 1;
            if let Some((f, _)) = self.fields(seq, secs, filter)? {
                out.total += 1;
                let bucket = secs.div_euclid(bucket_seconds) * bucket_seconds;
                let groups: Vec<String> = match group_by {
                    GroupBy::EventName => vec![f.view.event_name],
                    GroupBy::Principal => vec![f.view.principal_arn.unwrap_or_else(|| "-".into())],
                    GroupBy::Key => {
                        let mut keys: Vec<String> =
                            f.view.resources.into_iter().map(|(_, arn)| arn).collect();
                        keys.sort();
                        keys.dedup();
                        if keys.is_empty() {
                            keys.push("-".into());
                        }
                        keys
                    }
                };
                for g in groups {
                    *out.buckets.entry((bucket, g)).or_default() += 1;
                }
            }
            if out.scanned >= max_scan {
                break;
            }
        }
        Ok(out)
    }

    /// Records after `after` that match `filter`, oldest first (a live tail's step),
    /// examining at most `limit` records; returns them and the last sequence examined.
    pub fn tail_after(
        &self,
        filter: &EventFilter,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<QueryEvent>, u64), StoreError> {
        let records = self.records_after(after, limit)?;
        let last = records.last().map_or(after, |r| r.seq);
        let events = records
            .into_iter()
            .filter_map(|r| {
                let view = EventView::parse(&r.event).ok().filter(|v| filter.matches_view(v))?;
                Some(QueryEvent {
                    seq: r.seq,
                    event_time: view.event_time,
                    event_id: view.event_id,
                    event_name: view.event_name,
                    account: view.recipient_account_id,
                    event: r.event,
                })
            })
            .collect();
        Ok((events, last))
    }
}

#[cfg(test)]
mod tests;
