//! CloudTrail `LookupEvents` over the store's indexes: validation with CloudTrail's
//! exception names, newest-first paging with opaque query-bound tokens, account
//! isolation, and the response JSON the AWS CLI and SDKs parse.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::index::{newest_first, Position, Positions};
use crate::record::{attr_prefix, time_prefix, AttrCode, EventView, Scope};
use crate::store::{AuditStore, StoreError};

/// Default and largest `MaxResults`.
pub const MAX_RESULTS_LIMIT: u32 = 50;
/// Longest `AttributeValue` CloudTrail accepts.
const MAX_ATTRIBUTE_VALUE_LEN: usize = 2000;
const TOKEN_VERSION: u8 = 1;
const TOKEN_LEN: usize = 1 + 8 + 8 + 8;

/// `LookupAttributes[].AttributeKey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupAttributeKey {
    EventId,
    EventName,
    ReadOnly,
    Username,
    ResourceType,
    ResourceName,
    EventSource,
    AccessKeyId,
}

impl LookupAttributeKey {
    pub const ALL: [Self; 8] = [
        Self::EventId,
        Self::EventName,
        Self::ReadOnly,
        Self::Username,
        Self::ResourceType,
        Self::ResourceName,
        Self::EventSource,
        Self::AccessKeyId,
    ];

    /// Parses the wire name (case-sensitive, as CloudTrail).
    pub fn parse(s: &str) -> Result<Self, LookupError> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            LookupError::InvalidLookupAttributes(AttributeProblem::UnknownKey(s.to_owned()))
        })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventId => "EventId",
            Self::EventName => "EventName",
            Self::ReadOnly => "ReadOnly",
            Self::Username => "Username",
            Self::ResourceType => "ResourceType",
            Self::ResourceName => "ResourceName",
            Self::EventSource => "EventSource",
            Self::AccessKeyId => "AccessKeyId",
        }
    }

    fn code(self) -> AttrCode {
        match self {
            Self::EventId => AttrCode::EventId,
            Self::EventName => AttrCode::EventName,
            Self::ReadOnly => AttrCode::ReadOnly,
            Self::Username => AttrCode::Username,
            Self::ResourceType => AttrCode::ResourceType,
            Self::ResourceName => AttrCode::ResourceName,
            Self::EventSource => AttrCode::EventSource,
            Self::AccessKeyId => AttrCode::AccessKeyId,
        }
    }
}

/// One `LookupAttributes` entry as received (`AttributeKey`, `AttributeValue`);
/// `lookup` validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupAttribute {
    pub key: String,
    pub value: String,
}

impl LookupAttribute {
    pub fn new(key: LookupAttributeKey, value: impl Into<String>) -> Self {
        Self { key: key.as_str().to_owned(), value: value.into() }
    }
}

/// A `LookupEvents` request. `account` is the caller's account from authentication,
/// never from the request body; `None` is the operator's view of every account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupQuery {
    pub account: Option<String>,
    /// At most one (CloudTrail's limit).
    pub lookup_attributes: Vec<LookupAttribute>,
    /// Inclusive.
    pub start_time: Option<OffsetDateTime>,
    /// Inclusive.
    pub end_time: Option<OffsetDateTime>,
    /// 1..=50, default 50.
    pub max_results: Option<u32>,
    pub next_token: Option<String>,
}

/// What is wrong with `LookupAttributes`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeProblem {
    #[error("at most one lookup attribute is allowed, got {0}")]
    TooMany(usize),
    #[error("unknown lookup attribute key {0:?}")]
    UnknownKey(String),
    #[error("lookup attribute value must not be empty")]
    EmptyValue,
    #[error("lookup attribute value is longer than 2000 characters")]
    ValueTooLong,
}

/// `LookupEvents` failure; `aws_code` is CloudTrail's exception name.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("{0}")]
    InvalidLookupAttributes(AttributeProblem),
    #[error("start time must not be after end time")]
    InvalidTimeRange,
    #[error("MaxResults must be between 1 and 50, got {0}")]
    InvalidMaxResults(u32),
    #[error("invalid NextToken")]
    InvalidNextToken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LookupError {
    /// The AWS error code (`__type`) to return.
    pub fn aws_code(&self) -> &'static str {
        match self {
            Self::InvalidLookupAttributes(_) => "InvalidLookupAttributesException",
            Self::InvalidTimeRange => "InvalidTimeRangeException",
            Self::InvalidMaxResults(_) => "InvalidMaxResultsException",
            Self::InvalidNextToken => "InvalidNextTokenException",
            Self::Store(_) => "InternalFailure",
        }
    }

    /// True for the caller's mistakes (HTTP 400); false for server faults (HTTP 500).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Store(_))
    }
}

/// `Events[].Resources[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupResource {
    pub resource_type: String,
    pub resource_name: String,
}

/// `Events[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupEvent {
    /// Store sequence number of the record.
    pub seq: u64,
    pub event_id: String,
    pub event_name: String,
    pub read_only: bool,
    pub access_key_id: Option<String>,
    pub event_time: OffsetDateTime,
    pub event_source: String,
    pub username: Option<String>,
    pub resources: Vec<LookupResource>,
    /// The stored record, byte for byte.
    pub cloud_trail_event: String,
}

/// One page of results, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupPage {
    pub events: Vec<LookupEvent>,
    /// Present when more results may follow.
    pub next_token: Option<String>,
}

/// A validated query.
struct Plan<'a> {
    scope: Scope<'a>,
    attr: Option<(AttrCode, String)>,
    /// Inclusive bounds in whole seconds.
    start: i64,
    end: i64,
    limit: usize,
    cursor: Option<(i64, u64)>,
    fingerprint: [u8; 8],
}

fn ceil_secs(t: OffsetDateTime) -> i64 {
    let s = t.unix_timestamp();
    if t.nanosecond() > 0 {
        s.saturating_add(1)
    } else {
        s
    }
}

impl<'a> Plan<'a> {
    fn new(q: &'a LookupQuery) -> Result<Self, LookupError> {
        let attr = match q.lookup_attributes.as_slice() {
            [] => None,
            [a] => {
                let key = LookupAttributeKey::parse(&a.key)?;
                if a.value.is_empty() {
                    return Err(LookupError::InvalidLookupAttributes(AttributeProblem::EmptyValue));
                }
                if a.value.chars().count() > MAX_ATTRIBUTE_VALUE_LEN {
                    return Err(LookupError::InvalidLookupAttributes(
                        AttributeProblem::ValueTooLong,
                    ));
                }
                let value = match key {
                    LookupAttributeKey::ReadOnly if a.value.eq_ignore_ascii_case("true") => {
                        "true".into()
                    }
                    LookupAttributeKey::ReadOnly if a.value.eq_ignore_ascii_case("false") => {
                        "false".into()
                    }
                    _ => a.value.clone(),
                };
                Some((key.code(), value))
            }
            more => {
                return Err(LookupError::InvalidLookupAttributes(AttributeProblem::TooMany(
                    more.len(),
                )))
            }
        };
        if let (Some(s), Some(e)) = (q.start_time, q.end_time) {
            if s > e {
                return Err(LookupError::InvalidTimeRange);
            }
        }
        let limit = match q.max_results {
            None => MAX_RESULTS_LIMIT,
            Some(n @ 1..=MAX_RESULTS_LIMIT) => n,
            Some(n) => return Err(LookupError::InvalidMaxResults(n)),
        };
        let scope = q.account.as_deref().map_or(Scope::All, Scope::Account);
        let start = q.start_time.map_or(i64::MIN, ceil_secs);
        let end = q.end_time.map_or(i64::MAX, OffsetDateTime::unix_timestamp);
        let fingerprint = fingerprint(scope, attr.as_ref(), start, end);
        let cursor = q.next_token.as_deref().map(|t| decode_token(t, &fingerprint)).transpose()?;
        Ok(Self { scope, attr, start, end, limit: limit as usize, cursor, fingerprint })
    }
}

/// Binds a token to the query it continues, so it cannot be replayed against another.
fn fingerprint(
    scope: Scope<'_>,
    attr: Option<&(AttrCode, String)>,
    start: i64,
    end: i64,
) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(b"kms-audit-lookup-v1");
    match scope {
        Scope::All => h.update([0]),
        Scope::Account(a) => {
            h.update([1]);
            h.update((a.len() as u64).to_be_bytes());
            h.update(a.as_bytes());
        }
    }
    match attr {
        None => h.update([0]),
        Some((code, value)) => {
            h.update([1, *code as u8]);
            h.update((value.len() as u64).to_be_bytes());
            h.update(value.as_bytes());
        }
    }
    h.update(start.to_be_bytes());
    h.update(end.to_be_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

fn encode_token(fingerprint: &[u8; 8], secs: i64, seq: u64) -> String {
    let mut raw = Vec::with_capacity(TOKEN_LEN);
    raw.push(TOKEN_VERSION);
    raw.extend_from_slice(fingerprint);
    raw.extend_from_slice(&secs.to_be_bytes());
    raw.extend_from_slice(&seq.to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_token(token: &str, fingerprint: &[u8; 8]) -> Result<(i64, u64), LookupError> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| LookupError::InvalidNextToken)?;
    if raw.len() != TOKEN_LEN
        || raw.first() != Some(&TOKEN_VERSION)
        || raw.get(1..9) != Some(&fingerprint[..])
    {
        return Err(LookupError::InvalidNextToken);
    }
    let secs = raw.get(9..17).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes);
    let seq = raw.get(17..25).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    secs.zip(seq).ok_or(LookupError::InvalidNextToken)
}

impl AuditStore {
    /// Answers `LookupEvents`: matching events newest first (ties by record sequence,
    /// newest first), at most `max_results`, with a `next_token` when more may follow.
    pub fn lookup(&self, q: &LookupQuery) -> Result<LookupPage, LookupError> {
        let plan = Plan::new(q)?;
        let positions: Positions = match &plan.attr {
            Some((AttrCode::EventId, id)) => {
                Box::new(self.event_id_position(&plan, id)?.into_iter().map(Ok))
            }
            Some((code, value)) => newest_first(
                &self.idx_attr,
                &attr_prefix(plan.scope, *code, value),
                plan.start,
                plan.end,
                plan.cursor,
            ),
            None => newest_first(
                &self.idx_time,
                &time_prefix(plan.scope),
                plan.start,
                plan.end,
                plan.cursor,
            ),
        };
        let mut events = Vec::new();
        let mut next_token = None;
        for position in positions {
            let (secs, seq) = position?;
            if events.len() == plan.limit {
                // One more exists: continue after the last event returned.
                next_token = events.last().map(|e: &LookupEvent| {
                    encode_token(&plan.fingerprint, e.event_time.unix_timestamp(), e.seq)
                });
                break;
            }
            events.push(self.lookup_event(seq, secs, plan.scope)?);
        }
        Ok(LookupPage { events, next_token })
    }

    /// The position of the one event with id `id` when it is in the plan's scope, time
    /// range and below its cursor. Found through the `event_ids` dedup marker.
    fn event_id_position(&self, plan: &Plan<'_>, id: &str) -> Result<Option<Position>, StoreError> {
        let Some(seq) = self.event_seq(id)? else { return Ok(None) };
        let corrupt = || StoreError::CorruptRecord { seq };
        let rec = self.record(seq)?.ok_or_else(corrupt)?;
        let view = EventView::parse(&rec.event).map_err(|_| corrupt())?;
        let position = (view.event_time, seq);
        let in_scope = match plan.scope {
            Scope::All => true,
            Scope::Account(a) => a == view.recipient_account_id,
        };
        let wanted = in_scope
            && (plan.start..=plan.end).contains(&view.event_time)
            && plan.cursor.is_none_or(|c| position < c);
        Ok(wanted.then_some(position))
    }

    fn lookup_event(
        &self,
        seq: u64,
        secs: i64,
        scope: Scope<'_>,
    ) -> Result<LookupEvent, StoreError> {
        let corrupt = || StoreError::CorruptRecord { seq };
        let rec = self.record(seq)?.ok_or_else(corrupt)?;
        let view = EventView::parse(&rec.event).map_err(|_| corrupt())?;
        // Defence in depth: an index entry must never hand one account another's event.
        if view.event_time != secs
            || matches!(scope, Scope::Account(a) if a != view.recipient_account_id)
        {
            return Err(corrupt());
        }
        let event_time = OffsetDateTime::from_unix_timestamp(secs).map_err(|_| corrupt())?;
        let cloud_trail_event = String::from_utf8(rec.event).map_err(|_| corrupt())?;
        Ok(LookupEvent {
            seq,
            event_id: view.event_id,
            event_name: view.event_name,
            read_only: view.read_only,
            access_key_id: view.access_key_id,
            event_time,
            event_source: view.event_source,
            username: view.user_name,
            resources: view
                .resources
                .into_iter()
                .map(|(resource_type, resource_name)| LookupResource {
                    resource_type,
                    resource_name,
                })
                .collect(),
            cloud_trail_event,
        })
    }
}

/// The `LookupEvents` response body (AWS JSON 1.1): `EventTime` as epoch seconds,
/// `ReadOnly` as the string `"true"`/`"false"`, `CloudTrailEvent` as the record's JSON
/// text, `NextToken` only when there is one.
pub fn lookup_response_json(page: &LookupPage) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("EventId".into(), json!(e.event_id));
            m.insert("EventName".into(), json!(e.event_name));
            m.insert("ReadOnly".into(), json!(if e.read_only { "true" } else { "false" }));
            if let Some(k) = &e.access_key_id {
                m.insert("AccessKeyId".into(), json!(k));
            }
            m.insert("EventTime".into(), json!(e.event_time.unix_timestamp()));
            m.insert("EventSource".into(), json!(e.event_source));
            if let Some(u) = &e.username {
                m.insert("Username".into(), json!(u));
            }
            let resources: Vec<Value> = e
                .resources
                .iter()
                .map(|r| json!({"ResourceType": r.resource_type, "ResourceName": r.resource_name}))
                .collect();
            m.insert("Resources".into(), Value::Array(resources));
            m.insert("CloudTrailEvent".into(), json!(e.cloud_trail_event));
            Value::Object(m)
        })
        .collect();
    let mut body = Map::new();
    body.insert("Events".into(), Value::Array(events));
    if let Some(t) = &page.next_token {
        body.insert("NextToken".into(), json!(t));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{
        fixture, fixture_bytes, id, key_arn, store_of, t, ACCT_A, ACCT_B, KEY_A1, KEY_A2, KEY_B1,
    };
    use LookupAttributeKey as K;

    fn store() -> AuditStore {
        store_of(&fixture_bytes(), &[])
    }

    /// The same events committed in groups (of 7, then the rest at once), as the audit
    /// service commits them under load: index entries then hold several events each.
    fn grouped_store() -> AuditStore {
        store_of(&fixture_bytes(), &[7, 20])
    }

    fn q(account: Option<&str>) -> LookupQuery {
        LookupQuery { account: account.map(Into::into), ..LookupQuery::default() }
    }

    fn attr(account: Option<&str>, key: K, value: &str) -> LookupQuery {
        LookupQuery { lookup_attributes: vec![LookupAttribute::new(key, value)], ..q(account) }
    }

    fn ids(page: &LookupPage) -> Vec<String> {
        page.events.iter().map(|e| e.event_id.clone()).collect()
    }

    /// Runs `query` in one page and page by page (3 at a time), expecting the fixture
    /// events `expected` (indices), newest first, either way.
    fn check(store: &AuditStore, query: LookupQuery, expected: &[usize]) {
        let want: Vec<String> = expected.iter().map(|&i| id(i)).collect();
        let page = store.lookup(&query).unwrap();
        assert_eq!(ids(&page), want, "{query:?}");
        assert_eq!(page.next_token, None);

        let mut paged = Vec::new();
        let mut token = None;
        let mut pages = 0;
        loop {
            let page = store
                .lookup(&LookupQuery { max_results: Some(3), next_token: token, ..query.clone() })
                .unwrap();
            assert!(page.events.len() <= 3);
            pages += 1;
            paged.extend(ids(&page));
            token = page.next_token;
            if token.is_none() {
                break;
            }
            assert_eq!(page.events.len(), 3, "only full pages carry a token");
        }
        assert_eq!(paged, want, "paged {query:?}");
        assert_eq!(pages, want.len().div_ceil(3).max(1), "no trailing empty page");
    }

    const ALL_NEWEST_FIRST: [usize; 20] =
        [18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 19, 2, 1, 0];
    const A_NEWEST_FIRST: [usize; 13] = [17, 15, 14, 12, 11, 9, 7, 6, 4, 19, 2, 1, 0];
    const B_NEWEST_FIRST: [usize; 7] = [18, 16, 13, 10, 8, 5, 3];

    #[test]
    fn no_attribute_lists_newest_first_per_scope() {
        for s in [store(), grouped_store()] {
            no_attribute_lists_newest_first_per_scope_in(&s);
        }
    }

    fn no_attribute_lists_newest_first_per_scope_in(s: &AuditStore) {
        check(s, q(None), &ALL_NEWEST_FIRST);
        check(s, q(Some(ACCT_A)), &A_NEWEST_FIRST);
        check(s, q(Some(ACCT_B)), &B_NEWEST_FIRST);
        check(s, q(Some("333333333333")), &[]);
    }

    #[test]
    fn every_attribute_key() {
        for s in [store(), grouped_store()] {
            every_attribute_key_in(&s);
        }
    }

    fn every_attribute_key_in(s: &AuditStore) {
        let (a, b) = (Some(ACCT_A), Some(ACCT_B));
        let cases: Vec<(LookupQuery, Vec<usize>)> = vec![
            (attr(a, K::EventId, &id(7)), vec![7]),
            (attr(None, K::EventId, &id(5)), vec![5]),
            (attr(a, K::EventId, "no-such-event"), vec![]),
            (attr(a, K::EventName, "Encrypt"), vec![11, 9, 19, 1]),
            (attr(None, K::EventName, "Encrypt"), vec![11, 9, 5, 19, 1]),
            (attr(b, K::EventName, "Encrypt"), vec![5]),
            (attr(a, K::EventName, "encrypt"), vec![]),
            (attr(a, K::ReadOnly, "false"), vec![12, 4, 0]),
            (attr(b, K::ReadOnly, "false"), vec![13, 3]),
            (attr(a, K::ReadOnly, "true"), vec![17, 15, 14, 11, 9, 7, 6, 19, 2, 1]),
            (attr(a, K::ReadOnly, "TRUE"), vec![17, 15, 14, 11, 9, 7, 6, 19, 2, 1]),
            (attr(a, K::ReadOnly, "maybe"), vec![]),
            (attr(a, K::Username, "bob"), vec![14, 9, 6, 19, 2]),
            (attr(None, K::Username, "dave"), vec![16, 8]),
            (
                attr(a, K::ResourceType, "AWS::KMS::Key"),
                vec![17, 14, 12, 11, 9, 7, 6, 4, 19, 2, 1, 0],
            ),
            (attr(b, K::ResourceType, "AWS::KMS::Key"), vec![18, 16, 13, 10, 5, 3]),
            (attr(a, K::ResourceName, &key_arn(ACCT_A, KEY_A2)), vec![17, 12, 9, 6, 4]),
            (attr(a, K::ResourceName, KEY_A2), vec![17, 12, 9, 6, 4]),
            (attr(a, K::ResourceName, &key_arn(ACCT_A, KEY_A1)), vec![17, 14, 11, 7, 19, 2, 1, 0]),
            (attr(None, K::ResourceName, KEY_B1), vec![18, 16, 13, 10, 5, 3]),
            (attr(a, K::EventSource, "cloudtrail.amazonaws.com"), vec![15]),
            (attr(b, K::EventSource, "kms.amazonaws.com"), B_NEWEST_FIRST.to_vec()),
            (attr(a, K::AccessKeyId, "AKIABOB"), vec![14, 9, 6, 19, 2]),
            (attr(a, K::AccessKeyId, "AKIAALICE"), vec![17, 15, 12, 11, 7, 4, 1, 0]),
        ];
        let mut keys_seen = std::collections::HashSet::new();
        for (query, expected) in cases {
            keys_seen.insert(query.lookup_attributes[0].key.clone());
            check(s, query, &expected);
        }
        assert_eq!(keys_seen.len(), LookupAttributeKey::ALL.len(), "every key exercised");
    }

    #[test]
    fn accounts_never_see_each_other() {
        let s = store();
        let (a, b) = (Some(ACCT_A), Some(ACCT_B));
        // B's event, key, user and access key are invisible to A, and vice versa.
        check(&s, attr(a, K::EventId, &id(5)), &[]);
        check(&s, attr(a, K::ResourceName, &key_arn(ACCT_B, KEY_B1)), &[]);
        check(&s, attr(a, K::ResourceName, KEY_B1), &[]);
        check(&s, attr(a, K::Username, "carol"), &[]);
        check(&s, attr(a, K::AccessKeyId, "AKIACAROL"), &[]);
        check(&s, attr(b, K::Username, "alice"), &[]);
        check(&s, attr(b, K::EventId, &id(0)), &[]);
        for account in [ACCT_A, ACCT_B] {
            for key in LookupAttributeKey::ALL {
                for e in fixture() {
                    let value = match key {
                        K::EventId => e.event_id.clone(),
                        K::EventName => e.event_name.clone(),
                        K::ReadOnly => e.read_only.to_string(),
                        K::Username => e.user_identity.user_name.clone().unwrap_or_default(),
                        K::ResourceType => crate::RESOURCE_TYPE_KMS_KEY.into(),
                        K::ResourceName => match e.resources.first() {
                            Some(r) => r.arn.clone(),
                            None => continue,
                        },
                        K::EventSource => e.event_source.clone(),
                        K::AccessKeyId => match &e.user_identity.access_key_id {
                            Some(k) => k.clone(),
                            None => continue,
                        },
                    };
                    let page = s.lookup(&attr(Some(account), key, &value)).unwrap();
                    for ev in page.events {
                        let rec: serde_json::Value =
                            serde_json::from_str(&ev.cloud_trail_event).unwrap();
                        assert_eq!(rec["recipientAccountId"], account);
                    }
                }
            }
        }
    }

    #[test]
    fn time_ranges_are_inclusive_and_second_granular() {
        let s = store();
        let a = Some(ACCT_A);
        let range = |start: Option<time::OffsetDateTime>, end: Option<time::OffsetDateTime>| {
            LookupQuery { start_time: start, end_time: end, ..q(a) }
        };
        check(&s, range(Some(t(240)), Some(t(540))), &[11, 9, 7, 6, 4]);
        check(&s, range(Some(t(900)), None), &[17, 15]);
        check(&s, range(None, Some(t(150))), &[19, 2, 1, 0]);
        check(&s, range(Some(t(540)), Some(t(540))), &[11, 9]);
        let half = time::Duration::milliseconds(500);
        check(&s, range(Some(t(240) + half), Some(t(540))), &[11, 9, 7, 6]);
        check(&s, range(Some(t(240)), Some(t(540) - half)), &[7, 6, 4]);
        check(&s, range(Some(t(540) - half), Some(t(540) - half)), &[]);
        check(&s, range(Some(t(5000)), None), &[]);
        check(&s, range(None, Some(t(-1))), &[]);
        // With an attribute, and in the operator's view.
        let enc = LookupQuery {
            start_time: Some(t(100)),
            end_time: Some(t(540)),
            ..attr(a, K::EventName, "Encrypt")
        };
        check(&s, enc, &[11, 9, 19]);
        let all = LookupQuery { start_time: Some(t(500)), end_time: Some(t(800)), ..q(None) };
        check(&s, all, &[13, 12, 11, 10, 9]);
    }

    #[test]
    fn paging_covers_every_event_once() {
        let s = store();
        for page_size in 1..=MAX_RESULTS_LIMIT {
            let mut seen = Vec::new();
            let mut token = None;
            loop {
                let page = s
                    .lookup(&LookupQuery {
                        max_results: Some(page_size),
                        next_token: token,
                        ..q(None)
                    })
                    .unwrap();
                seen.extend(ids(&page));
                token = page.next_token;
                if token.is_none() {
                    break;
                }
            }
            let want: Vec<String> = ALL_NEWEST_FIRST.iter().map(|&i| id(i)).collect();
            assert_eq!(seen, want, "page size {page_size}");
        }
    }

    #[test]
    fn paging_is_stable_while_new_events_arrive() {
        let s = store();
        let first = s.lookup(&LookupQuery { max_results: Some(3), ..q(Some(ACCT_A)) }).unwrap();
        // A newer event lands between pages; the continuation neither repeats nor skips.
        let mut late = fixture()[0].clone();
        late.event_id = "late".into();
        late.event_time = t(5000);
        s.append(999, &late.to_json_bytes().unwrap()).unwrap();
        let mut seen = ids(&first);
        let mut token = first.next_token;
        while let Some(tok) = token {
            let page = s
                .lookup(&LookupQuery {
                    max_results: Some(3),
                    next_token: Some(tok),
                    ..q(Some(ACCT_A))
                })
                .unwrap();
            seen.extend(ids(&page));
            token = page.next_token;
        }
        let want: Vec<String> = A_NEWEST_FIRST.iter().map(|&i| id(i)).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn next_token_is_validated_and_bound_to_its_query() {
        let s = store();
        let first = s.lookup(&LookupQuery { max_results: Some(2), ..q(Some(ACCT_A)) }).unwrap();
        let token = first.next_token.unwrap();
        let with = |query: LookupQuery, token: &str| {
            s.lookup(&LookupQuery { next_token: Some(token.into()), ..query })
        };
        assert!(with(q(Some(ACCT_A)), &token).is_ok());
        // Changing max_results between pages is allowed.
        assert!(with(LookupQuery { max_results: Some(7), ..q(Some(ACCT_A)) }, &token).is_ok());
        let other_queries = [
            q(Some(ACCT_B)),
            q(None),
            attr(Some(ACCT_A), K::EventName, "Encrypt"),
            LookupQuery { start_time: Some(t(1)), ..q(Some(ACCT_A)) },
            LookupQuery { end_time: Some(t(10_000)), ..q(Some(ACCT_A)) },
        ];
        for other in other_queries {
            let err = with(other, &token).unwrap_err();
            assert!(matches!(err, LookupError::InvalidNextToken), "{err:?}");
        }
        let mut truncated = token.clone();
        truncated.pop();
        for bad in ["", "!!!not base64!!!", "AAAA", truncated.as_str(), &format!("{token}AA")] {
            let err = with(q(Some(ACCT_A)), bad).unwrap_err();
            assert_eq!(err.aws_code(), "InvalidNextTokenException", "{bad:?}");
            assert!(err.is_client_error());
        }
    }

    #[test]
    fn max_results_bounds() {
        let s = store();
        for bad in [0, 51, u32::MAX] {
            let err = s.lookup(&LookupQuery { max_results: Some(bad), ..q(None) }).unwrap_err();
            assert!(matches!(err, LookupError::InvalidMaxResults(n) if n == bad));
            assert_eq!(err.aws_code(), "InvalidMaxResultsException");
        }
        let one = s.lookup(&LookupQuery { max_results: Some(1), ..q(None) }).unwrap();
        assert_eq!(ids(&one), [id(18)]);
        assert!(one.next_token.is_some());
        let fifty = s.lookup(&LookupQuery { max_results: Some(50), ..q(None) }).unwrap();
        assert_eq!(fifty.events.len(), 20);
        assert!(fifty.next_token.is_none());
    }

    #[test]
    fn default_page_is_fifty() {
        let s = AuditStore::open_temporary().unwrap();
        let template = fixture()[0].clone();
        for i in 0..51u64 {
            let mut e = template.clone();
            e.event_id = format!("bulk-{i}");
            e.event_time = t(i as i64);
            s.append(i + 1, &e.to_json_bytes().unwrap()).unwrap();
        }
        let page = s.lookup(&q(Some(ACCT_A))).unwrap();
        assert_eq!(page.events.len(), 50);
        assert_eq!(page.events[0].event_id, "bulk-50");
        let rest =
            s.lookup(&LookupQuery { next_token: page.next_token, ..q(Some(ACCT_A)) }).unwrap();
        assert_eq!(ids(&rest), ["bulk-0"]);
        assert!(rest.next_token.is_none());
    }

    #[test]
    fn invalid_requests_use_cloudtrail_exception_names() {
        let s = store();
        let two = LookupQuery {
            lookup_attributes: vec![
                LookupAttribute::new(K::EventName, "Encrypt"),
                LookupAttribute::new(K::Username, "bob"),
            ],
            ..q(None)
        };
        let unknown = LookupQuery {
            lookup_attributes: vec![LookupAttribute { key: "KeyId".into(), value: "x".into() }],
            ..q(None)
        };
        type Case = (LookupQuery, &'static str, fn(&LookupError) -> bool);
        let cases: Vec<Case> = vec![
            (two, "InvalidLookupAttributesException", |e| {
                matches!(e, LookupError::InvalidLookupAttributes(AttributeProblem::TooMany(2)))
            }),
            (
                unknown,
                "InvalidLookupAttributesException",
                |e| matches!(e, LookupError::InvalidLookupAttributes(AttributeProblem::UnknownKey(k)) if k == "KeyId"),
            ),
            (attr(None, K::EventName, ""), "InvalidLookupAttributesException", |e| {
                matches!(e, LookupError::InvalidLookupAttributes(AttributeProblem::EmptyValue))
            }),
            (
                attr(None, K::EventName, &"x".repeat(2001)),
                "InvalidLookupAttributesException",
                |e| {
                    matches!(
                        e,
                        LookupError::InvalidLookupAttributes(AttributeProblem::ValueTooLong)
                    )
                },
            ),
            (
                LookupQuery { start_time: Some(t(10)), end_time: Some(t(9)), ..q(None) },
                "InvalidTimeRangeException",
                |e| matches!(e, LookupError::InvalidTimeRange),
            ),
            (LookupQuery { max_results: Some(0), ..q(None) }, "InvalidMaxResultsException", |e| {
                matches!(e, LookupError::InvalidMaxResults(0))
            }),
            (
                LookupQuery { next_token: Some("zz".into()), ..q(None) },
                "InvalidNextTokenException",
                |e| matches!(e, LookupError::InvalidNextToken),
            ),
        ];
        for (query, code, is) in cases {
            let err = s.lookup(&query).unwrap_err();
            assert_eq!(err.aws_code(), code, "{err:?}");
            assert!(is(&err), "{err:?}");
            assert!(err.is_client_error());
        }
        // The longest allowed value is fine.
        assert!(s.lookup(&attr(None, K::EventName, &"x".repeat(2000))).is_ok());
    }

    #[test]
    fn attribute_keys_parse_from_the_wire() {
        for key in LookupAttributeKey::ALL {
            assert_eq!(LookupAttributeKey::parse(key.as_str()).unwrap(), key);
        }
        for bad in ["eventname", "EVENTNAME", "", "KeyId", "EventId "] {
            let err = LookupAttributeKey::parse(bad).unwrap_err();
            assert_eq!(err.aws_code(), "InvalidLookupAttributesException");
        }
    }

    #[test]
    fn events_carry_the_stored_record_and_its_summary() {
        let s = store();
        let fixture = fixture();
        let page = s.lookup(&attr(Some(ACCT_A), K::EventName, "ReEncrypt")).unwrap();
        let e = &page.events[0];
        assert_eq!(e.seq, 18);
        assert_eq!(e.cloud_trail_event.as_bytes(), fixture[17].to_json_bytes().unwrap().as_slice());
        assert_eq!(e.event_time, t(1020));
        assert_eq!(e.username.as_deref(), Some("alice"));
        assert_eq!(e.access_key_id.as_deref(), Some("AKIAALICE"));
        assert!(e.read_only);
        assert_eq!(
            e.resources,
            [KEY_A1, KEY_A2].map(|k| LookupResource {
                resource_type: "AWS::KMS::Key".into(),
                resource_name: key_arn(ACCT_A, k),
            })
        );
    }

    #[test]
    fn response_json_matches_cloudtrail_shape() {
        let s = store();
        let fixture = fixture();
        let page = s.lookup(&LookupQuery { max_results: Some(2), ..q(Some(ACCT_B)) }).unwrap();
        let body = lookup_response_json(&page);
        let events = body["Events"].as_array().unwrap();
        assert_eq!(events.len(), 2);
        assert!(body["NextToken"].is_string());

        // 18: carol DescribeKey; 16: dave (no access key) GenerateDataKey.
        let e = &events[0];
        let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "AccessKeyId",
                "CloudTrailEvent",
                "EventId",
                "EventName",
                "EventSource",
                "EventTime",
                "ReadOnly",
                "Resources",
                "Username"
            ]
        );
        assert_eq!(e["EventId"], id(18));
        assert_eq!(e["EventName"], "DescribeKey");
        assert_eq!(e["ReadOnly"], "true");
        assert_eq!(e["AccessKeyId"], "AKIACAROL");
        assert_eq!(e["EventTime"], serde_json::json!(t(1080).unix_timestamp()));
        assert!(e["EventTime"].is_i64());
        assert_eq!(e["EventSource"], "kms.amazonaws.com");
        assert_eq!(e["Username"], "carol");
        assert_eq!(
            e["Resources"],
            serde_json::json!([{"ResourceType": "AWS::KMS::Key", "ResourceName": key_arn(ACCT_B, KEY_B1)}])
        );
        let record: serde_json::Value =
            serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap();
        assert_eq!(record, serde_json::to_value(&fixture[18]).unwrap());
        assert!(events[1].get("AccessKeyId").is_none());

        let last = s.lookup(&attr(Some(ACCT_B), K::EventName, "ListKeys")).unwrap();
        let body = lookup_response_json(&last);
        assert!(body.get("NextToken").is_none());
        assert_eq!(body["Events"][0]["Resources"], serde_json::json!([]));
        assert_eq!(body["Events"][0]["ReadOnly"], "true");
        let writes =
            lookup_response_json(&s.lookup(&attr(Some(ACCT_B), K::ReadOnly, "false")).unwrap());
        assert_eq!(writes["Events"][0]["ReadOnly"], "false");
        assert_eq!(
            lookup_response_json(&LookupPage { events: vec![], next_token: None }),
            serde_json::json!({"Events": []})
        );
    }

    #[test]
    fn lookups_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = AuditStore::open(dir.path()).unwrap();
            for (i, b) in fixture_bytes().iter().enumerate() {
                s.append(i as u64 + 1, b).unwrap();
            }
        }
        let s = AuditStore::open(dir.path()).unwrap();
        check(&s, q(Some(ACCT_B)), &B_NEWEST_FIRST);
        check(&s, attr(Some(ACCT_A), K::Username, "bob"), &[14, 9, 6, 19, 2]);
        assert_eq!(s.verify_chain().unwrap(), 20);
    }
}
