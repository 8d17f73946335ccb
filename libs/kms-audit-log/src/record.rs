//! Byte layouts of what the store writes: the hash-chained record value, the secondary
//! index keys, and the few event fields the indexes and `LookupEvents` need, read
//! leniently from the stored JSON so a record is never rewritten to be indexed.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::event::parse_event_time;

/// Hash of the record before the first one.
pub(crate) const GENESIS_HASH: [u8; 32] = [0; 32];

const RECORD_VERSION: u8 = 1;
const RECORD_HEADER: usize = 1 + 8 + 32 + 32;

/// `hash = sha256(prev_hash || event bytes as received)`.
pub(crate) fn chain_hash(prev: &[u8; 32], event: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(event);
    h.finalize().into()
}

/// A record as stored in the `records` tree under its store sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredRecord {
    pub(crate) stream_seq: u64,
    pub(crate) prev_hash: [u8; 32],
    pub(crate) hash: [u8; 32],
    pub(crate) event: Vec<u8>,
}

impl StoredRecord {
    /// `version(1) | stream_seq(8, BE) | prev_hash(32) | hash(32) | event bytes`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER + self.event.len());
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.stream_seq.to_be_bytes());
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.event);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < RECORD_HEADER || bytes.first() != Some(&RECORD_VERSION) {
            return None;
        }
        let stream_seq = u64::from_be_bytes(bytes.get(1..9)?.try_into().ok()?);
        let prev_hash = bytes.get(9..41)?.try_into().ok()?;
        let hash = bytes.get(41..73)?.try_into().ok()?;
        Some(Self { stream_seq, prev_hash, hash, event: bytes.get(RECORD_HEADER..)?.to_vec() })
    }
}

/// Why event bytes cannot be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEvent {
    #[error("event is not a JSON object")]
    NotJsonObject,
    #[error("event lacks the string field `{0}`")]
    MissingField(&'static str),
    #[error("event field `{0}` has the wrong type")]
    WrongType(&'static str),
    #[error("event `eventTime` is not an RFC 3339 timestamp")]
    BadEventTime,
    #[error("event `eventID` is empty")]
    EmptyEventId,
}

/// The fields of a stored event that lookups index and return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventView {
    pub(crate) event_id: String,
    pub(crate) event_name: String,
    pub(crate) event_source: String,
    /// Unix seconds (UTC).
    pub(crate) event_time: i64,
    pub(crate) read_only: bool,
    pub(crate) user_name: Option<String>,
    pub(crate) access_key_id: Option<String>,
    /// `userIdentity.arn`, `errorCode`, `sourceIPAddress` and
    /// `requestParameters.encryptionContext`: read leniently (a wrong type is ignored),
    /// for the security team's queries.
    pub(crate) principal_arn: Option<String>,
    pub(crate) error_code: Option<String>,
    pub(crate) source_ip: Option<String>,
    pub(crate) encryption_context: Vec<(String, String)>,
    pub(crate) recipient_account_id: String,
    /// `(type, ARN)` per entry of `resources`, in record order.
    pub(crate) resources: Vec<(String, String)>,
}

fn req_str<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    name: &'static str,
) -> Result<&'a str, InvalidEvent> {
    match obj.get(name) {
        None | Some(serde_json::Value::Null) => Err(InvalidEvent::MissingField(name)),
        Some(v) => v.as_str().ok_or(InvalidEvent::WrongType(name)),
    }
}

fn opt_str(
    obj: Option<&serde_json::Map<String, serde_json::Value>>,
    name: &'static str,
) -> Result<Option<String>, InvalidEvent> {
    match obj.and_then(|o| o.get(name)) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_str().map(|s| Some(s.to_owned())).ok_or(InvalidEvent::WrongType(name)),
    }
}

fn lenient_str(
    obj: Option<&serde_json::Map<String, serde_json::Value>>,
    name: &str,
) -> Option<String> {
    obj.and_then(|o| o.get(name)).and_then(|v| v.as_str()).map(str::to_owned)
}

/// `len-prefixed key | value`: the index value of one encryption-context pair.
pub(crate) fn context_pair(key: &str, value: &str) -> String {
    format!("{}:{key}={value}", key.len())
}

impl EventView {
    /// Reads the indexed fields. `eventID`, `eventTime`, `eventName`, `eventSource` and
    /// `recipientAccountId` are required; the rest default when absent.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, InvalidEvent> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|_| InvalidEvent::NotJsonObject)?;
        let obj = value.as_object().ok_or(InvalidEvent::NotJsonObject)?;
        let event_id = req_str(obj, "eventID")?;
        if event_id.is_empty() {
            return Err(InvalidEvent::EmptyEventId);
        }
        let event_time = parse_event_time(req_str(obj, "eventTime")?)
            .map_err(|_| InvalidEvent::BadEventTime)?
            .unix_timestamp();
        let read_only = match obj.get("readOnly") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => *b,
            // Some producers write the string form; accept it.
            Some(serde_json::Value::String(s)) if s == "true" => true,
            Some(serde_json::Value::String(s)) if s == "false" => false,
            Some(_) => return Err(InvalidEvent::WrongType("readOnly")),
        };
        let identity = match obj.get("userIdentity") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_object().ok_or(InvalidEvent::WrongType("userIdentity"))?),
        };
        let mut resources = Vec::new();
        match obj.get("resources") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Array(items)) => {
                for item in items {
                    let r = item.as_object().ok_or(InvalidEvent::WrongType("resources"))?;
                    let arn = opt_str(Some(r), "ARN")?.unwrap_or_default();
                    let ty = opt_str(Some(r), "type")?.unwrap_or_default();
                    resources.push((ty, arn));
                }
            }
            Some(_) => return Err(InvalidEvent::WrongType("resources")),
        }
        Ok(Self {
            event_id: event_id.to_owned(),
            event_name: req_str(obj, "eventName")?.to_owned(),
            event_source: req_str(obj, "eventSource")?.to_owned(),
            event_time,
            read_only,
            user_name: opt_str(identity, "userName")?,
            principal_arn: lenient_str(identity, "arn"),
            error_code: lenient_str(Some(obj), "errorCode"),
            source_ip: lenient_str(Some(obj), "sourceIPAddress"),
            encryption_context: obj
                .get("requestParameters")
                .and_then(|p| p.get("encryptionContext"))
                .and_then(|c| c.as_object())
                .map(|c| {
                    c.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
            access_key_id: opt_str(identity, "accessKeyId")?,
            recipient_account_id: req_str(obj, "recipientAccountId")?.to_owned(),
            resources,
        })
    }

    /// Every `(attribute, value)` pair `idx_attr` finds this event by, without
    /// duplicates. Not the event id: unique per event, so an index entry per event could
    /// not be grouped; the `event_ids` dedup marker finds it instead (stores written
    /// before may still hold `EventId` entries, which nothing reads).
    pub(crate) fn attribute_values(&self) -> BTreeSet<(AttrCode, String)> {
        let mut out = BTreeSet::new();
        out.insert((AttrCode::EventName, self.event_name.clone()));
        out.insert((AttrCode::ReadOnly, self.read_only.to_string()));
        out.insert((AttrCode::EventSource, self.event_source.clone()));
        if let Some(u) = self.user_name.as_ref().filter(|u| !u.is_empty()) {
            out.insert((AttrCode::Username, u.clone()));
        }
        if let Some(k) = self.access_key_id.as_ref().filter(|k| !k.is_empty()) {
            out.insert((AttrCode::AccessKeyId, k.clone()));
        }
        if let Some(p) = self.principal_arn.as_ref().filter(|p| !p.is_empty()) {
            out.insert((AttrCode::PrincipalArn, p.clone()));
        }
        if let Some(e) = self.error_code.as_ref().filter(|e| !e.is_empty()) {
            out.insert((AttrCode::ErrorCode, e.clone()));
        }
        if let Some(ip) = self.source_ip.as_ref().filter(|ip| !ip.is_empty()) {
            out.insert((AttrCode::SourceIp, ip.clone()));
        }
        for (k, v) in &self.encryption_context {
            out.insert((AttrCode::ContextKey, k.clone()));
            out.insert((AttrCode::ContextPair, context_pair(k, v)));
        }
        for (ty, arn) in &self.resources {
            if !ty.is_empty() {
                out.insert((AttrCode::ResourceType, ty.clone()));
            }
            if !arn.is_empty() {
                out.insert((AttrCode::ResourceName, arn.clone()));
                // `arn:aws:kms:r:acct:key/<id>` is also findable by the bare `<id>`.
                if let Some((_, bare)) = arn.rsplit_once('/') {
                    if !bare.is_empty() {
                        out.insert((AttrCode::ResourceName, bare.to_owned()));
                    }
                }
            }
        }
        out
    }
}

/// Stable on-disk code of a lookup attribute in `idx_attr` keys. Never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum AttrCode {
    EventId = 1,
    EventName = 2,
    ReadOnly = 3,
    Username = 4,
    ResourceType = 5,
    ResourceName = 6,
    EventSource = 7,
    AccessKeyId = 8,
    // Index version 2: the security team's query filters (not LookupEvents attributes).
    PrincipalArn = 9,
    ErrorCode = 10,
    SourceIp = 11,
    ContextKey = 12,
    ContextPair = 13,
}

/// The index layout version this code writes; older stores are brought up to it on open.
pub(crate) const INDEX_VERSION: u64 = 2;

/// Whose events an index entry belongs to: every record is indexed under `All` (the
/// operator's view) and under its `recipientAccountId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope<'a> {
    All,
    Account(&'a str),
}

fn push_len_prefixed(out: &mut Vec<u8>, s: &str) {
    // Lengths are bounded by what sled accepts; u32 keeps prefixes unambiguous.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn push_scope(out: &mut Vec<u8>, scope: Scope<'_>) {
    match scope {
        Scope::All => out.push(0),
        Scope::Account(a) => {
            out.push(1);
            push_len_prefixed(out, a);
        }
    }
}

/// Order-preserving encoding of signed seconds.
pub(crate) fn time_bytes(secs: i64) -> [u8; 8] {
    ((secs as u64) ^ (1u64 << 63)).to_be_bytes()
}

/// Prefix of `idx_time` keys: `scope`.
pub(crate) fn time_prefix(scope: Scope<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    push_scope(&mut out, scope);
    out
}

/// Prefix of `idx_attr` keys: `scope | attr code | len-prefixed value`.
pub(crate) fn attr_prefix(scope: Scope<'_>, attr: AttrCode, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + value.len());
    push_scope(&mut out, scope);
    out.push(attr as u8);
    push_len_prefixed(&mut out, value);
    out
}

/// `prefix | time(8) | seq(8)`: the full index key.
pub(crate) fn positioned(prefix: &[u8], secs: i64, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 16);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&time_bytes(secs));
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// The `(time, seq)` tail of an index key.
pub(crate) fn position_of(key: &[u8]) -> Option<(i64, u64)> {
    let n = key.len();
    let t: [u8; 8] = key.get(n.checked_sub(16)?..n - 8)?.try_into().ok()?;
    let s: [u8; 8] = key.get(n - 8..)?.try_into().ok()?;
    let secs = (u64::from_be_bytes(t) ^ (1u64 << 63)) as i64;
    Some((secs, u64::from_be_bytes(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_codec_round_trips_and_rejects_garbage() {
        let r = StoredRecord {
            stream_seq: 42,
            prev_hash: [7; 32],
            hash: [9; 32],
            event: b"{\"a\":1}".to_vec(),
        };
        assert_eq!(StoredRecord::decode(&r.encode()), Some(r));
        assert_eq!(StoredRecord::decode(b"short"), None);
        let mut bad =
            StoredRecord { stream_seq: 1, prev_hash: [0; 32], hash: [0; 32], event: vec![] }
                .encode();
        bad[0] = 99;
        assert_eq!(StoredRecord::decode(&bad), None);
    }

    #[test]
    fn time_encoding_preserves_order() {
        let times = [i64::MIN, -86_400, -1, 0, 1, 1_800_000_000, i64::MAX];
        for w in times.windows(2) {
            assert!(time_bytes(w[0]) < time_bytes(w[1]));
        }
        for t in times {
            let key = positioned(b"p", t, 5);
            assert_eq!(position_of(&key), Some((t, 5)));
        }
    }

    #[test]
    fn prefixes_are_unambiguous() {
        // "ab" + "c" must not be a prefix of "a" + "bc" and so on.
        let a = attr_prefix(Scope::Account("ab"), AttrCode::EventName, "c");
        let b = attr_prefix(Scope::Account("a"), AttrCode::EventName, "bc");
        assert!(!a.starts_with(&b) && !b.starts_with(&a));
        let v1 = attr_prefix(Scope::All, AttrCode::EventName, "Encrypt");
        let v2 = attr_prefix(Scope::All, AttrCode::EventName, "EncryptX");
        assert!(!v2.starts_with(&v1));
    }

    #[test]
    fn view_requires_the_indexed_fields() {
        let ok = br#"{"eventID":"e1","eventTime":"2026-01-01T00:00:00Z","eventName":"Encrypt",
            "eventSource":"kms.amazonaws.com","recipientAccountId":"111122223333"}"#;
        let v = EventView::parse(ok).unwrap();
        assert!(!v.read_only && v.user_name.is_none() && v.resources.is_empty());
        assert_eq!(EventView::parse(b"[1]"), Err(InvalidEvent::NotJsonObject));
        assert_eq!(EventView::parse(b"not json"), Err(InvalidEvent::NotJsonObject));
        assert_eq!(
            EventView::parse(br#"{"eventID":"e1"}"#),
            Err(InvalidEvent::MissingField("eventTime"))
        );
        assert_eq!(
            EventView::parse(br#"{"eventID":"","eventTime":"x"}"#),
            Err(InvalidEvent::EmptyEventId)
        );
        assert_eq!(
            EventView::parse(br#"{"eventID":"e","eventTime":"noon"}"#),
            Err(InvalidEvent::BadEventTime)
        );
        assert_eq!(EventView::parse(br#"{"eventID":7}"#), Err(InvalidEvent::WrongType("eventID")));
    }

    #[test]
    fn resource_names_include_bare_key_id() {
        let ev = br#"{"eventID":"e1","eventTime":"2026-01-01T00:00:00Z","eventName":"ReEncrypt",
            "eventSource":"kms.amazonaws.com","recipientAccountId":"1","readOnly":true,
            "resources":[{"accountId":"1","type":"AWS::KMS::Key","ARN":"arn:aws:kms:r:1:key/k1"},
                         {"accountId":"1","type":"AWS::KMS::Key","ARN":"arn:aws:kms:r:1:key/k1"}]}"#;
        let attrs = EventView::parse(ev).unwrap().attribute_values();
        let names: Vec<_> = attrs
            .iter()
            .filter(|(c, _)| *c == AttrCode::ResourceName)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(names, ["arn:aws:kms:r:1:key/k1", "k1"]);
        assert!(attrs.contains(&(AttrCode::ReadOnly, "true".into())));
        assert_eq!(attrs.iter().filter(|(c, _)| *c == AttrCode::ResourceType).count(), 1);
    }
}
