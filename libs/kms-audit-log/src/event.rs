//! The CloudTrail record shape: what the gateway builds for every KMS API call and what
//! `LookupEvents` hands back verbatim in `CloudTrailEvent`, so its field spelling must
//! match AWS's exactly (`sourceIPAddress`, `requestID`, `eventID`, `ARN`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `eventVersion` this service writes.
pub const EVENT_VERSION: &str = "1.08";
/// `eventSource` of KMS API calls.
pub const EVENT_SOURCE_KMS: &str = "kms.amazonaws.com";
/// `eventSource` of calls to the audit API itself (`LookupEvents`).
pub const EVENT_SOURCE_CLOUDTRAIL: &str = "cloudtrail.amazonaws.com";
/// `resources[].type` of a KMS key.
pub const RESOURCE_TYPE_KMS_KEY: &str = "AWS::KMS::Key";
/// `eventType` of an API call record.
pub const EVENT_TYPE_API_CALL: &str = "AwsApiCall";
/// `eventCategory` of a management event.
pub const EVENT_CATEGORY_MANAGEMENT: &str = "Management";

/// One CloudTrail record. Field order follows AWS's records; `errorCode`/`errorMessage`
/// appear (after `userAgent`, as AWS places them) only on failed calls.
///
/// `eventTime` is written in UTC at second precision (`2026-11-23T11:17:09Z`); any
/// sub-second part of the value is dropped on serialization.
/// `requestParameters`/`responseElements` are written as `null` when `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudTrailEvent {
    pub event_version: String,
    pub user_identity: UserIdentity,
    #[serde(with = "ct_time")]
    pub event_time: OffsetDateTime,
    pub event_source: String,
    pub event_name: String,
    pub aws_region: String,
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    pub user_agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub request_parameters: Option<serde_json::Value>,
    pub response_elements: Option<serde_json::Value>,
    #[serde(rename = "requestID")]
    pub request_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub read_only: bool,
    #[serde(default)]
    pub resources: Vec<EventResource>,
    pub event_type: String,
    pub management_event: bool,
    pub recipient_account_id: String,
    pub event_category: String,
}

/// `userIdentity` of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    #[serde(rename = "type")]
    pub identity_type: String,
    pub principal_id: String,
    pub arn: String,
    pub account_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    pub user_name: String,
}

/// One entry of `resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventResource {
    #[serde(rename = "accountId")]
    pub account_id: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    #[serde(rename = "ARN")]
    pub arn: String,
}

impl EventResource {
    /// A KMS key resource (`type` = `AWS::KMS::Key`).
    pub fn kms_key(account_id: impl Into<String>, key_arn: impl Into<String>) -> Self {
        Self {
            account_id: account_id.into(),
            resource_type: RESOURCE_TYPE_KMS_KEY.to_owned(),
            arn: key_arn.into(),
        }
    }
}

impl CloudTrailEvent {
    /// A fresh `eventID` (random UUID v4, lowercase hyphenated).
    pub fn new_event_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    /// The record as the JSON bytes to publish and store.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Parses a record from JSON bytes.
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Formats an instant the way CloudTrail writes `eventTime`: UTC, whole seconds, `Z`.
pub(crate) fn format_event_time(t: OffsetDateTime) -> Result<String, time::error::Format> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC).format(&fmt)
}

/// Parses an RFC 3339 `eventTime` (any offset, optional fraction) into UTC.
pub(crate) fn parse_event_time(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
}

mod ct_time {
    use serde::{de::Error as _, ser::Error as _, Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub(super) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = super::format_event_time(*t).map_err(S::Error::custom)?;
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_event_time(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn sample() -> CloudTrailEvent {
        CloudTrailEvent {
            event_version: EVENT_VERSION.into(),
            user_identity: UserIdentity {
                identity_type: "IAMUser".into(),
                principal_id: "AIDAEXAMPLE".into(),
                arn: "arn:aws:iam::111122223333:user/Alice".into(),
                account_id: "111122223333".into(),
                access_key_id: Some("AKIAEXAMPLE".into()),
                user_name: "Alice".into(),
            },
            event_time: datetime!(2026-11-23 11:17:09 UTC),
            event_source: EVENT_SOURCE_KMS.into(),
            event_name: "Encrypt".into(),
            aws_region: "us-east-1".into(),
            source_ip_address: "192.0.2.0".into(),
            user_agent: "aws-cli/2".into(),
            error_code: None,
            error_message: None,
            request_parameters: Some(
                json!({"keyId": "k1", "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}),
            ),
            response_elements: None,
            request_id: "f3423043-63bc-11e4-bc2b-4198b6150d5c".into(),
            event_id: "91235988-eb87-476a-ac2c-0cdc244e6dca".into(),
            read_only: true,
            resources: vec![EventResource::kms_key(
                "111122223333",
                "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            )],
            event_type: EVENT_TYPE_API_CALL.into(),
            management_event: true,
            recipient_account_id: "111122223333".into(),
            event_category: EVENT_CATEGORY_MANAGEMENT.into(),
        }
    }

    #[test]
    fn serializes_to_cloudtrail_record_shape() {
        let v = serde_json::to_value(sample()).unwrap();
        let expected = json!({
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "IAMUser",
                "principalId": "AIDAEXAMPLE",
                "arn": "arn:aws:iam::111122223333:user/Alice",
                "accountId": "111122223333",
                "accessKeyId": "AKIAEXAMPLE",
                "userName": "Alice"
            },
            "eventTime": "2026-11-23T11:17:09Z",
            "eventSource": "kms.amazonaws.com",
            "eventName": "Encrypt",
            "awsRegion": "us-east-1",
            "sourceIPAddress": "192.0.2.0",
            "userAgent": "aws-cli/2",
            "requestParameters": {"keyId": "k1", "encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
            "responseElements": null,
            "requestID": "f3423043-63bc-11e4-bc2b-4198b6150d5c",
            "eventID": "91235988-eb87-476a-ac2c-0cdc244e6dca",
            "readOnly": true,
            "resources": [{
                "accountId": "111122223333",
                "type": "AWS::KMS::Key",
                "ARN": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
            }],
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": "111122223333",
            "eventCategory": "Management"
        });
        assert_eq!(v, expected);
    }

    #[test]
    fn field_order_matches_cloudtrail() {
        let mut e = sample();
        e.error_code = Some("NotFoundException".into());
        e.error_message = Some("Key not found".into());
        let text = String::from_utf8(e.to_json_bytes().unwrap()).unwrap();
        let order = [
            "\"eventVersion\"",
            "\"userIdentity\"",
            "\"eventTime\"",
            "\"eventSource\"",
            "\"eventName\"",
            "\"awsRegion\"",
            "\"sourceIPAddress\"",
            "\"userAgent\"",
            "\"errorCode\"",
            "\"errorMessage\"",
            "\"requestParameters\"",
            "\"responseElements\"",
            "\"requestID\"",
            "\"eventID\"",
            "\"readOnly\"",
            "\"resources\"",
            "\"eventType\"",
            "\"managementEvent\"",
            "\"recipientAccountId\"",
            "\"eventCategory\"",
        ];
        let positions: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn omits_absent_optionals_and_writes_errors_on_failure() {
        let mut e = sample();
        e.user_identity.access_key_id = None;
        let v = serde_json::to_value(&e).unwrap();
        assert!(v["userIdentity"].get("accessKeyId").is_none());
        assert!(v.get("errorCode").is_none());
        assert!(v.get("errorMessage").is_none());

        e.error_code = Some("AccessDeniedException".into());
        e.error_message = Some("not authorized".into());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["errorCode"], "AccessDeniedException");
        assert_eq!(v["errorMessage"], "not authorized");
    }

    #[test]
    fn round_trips() {
        for mut e in [sample(), {
            let mut e = sample();
            e.error_code = Some("DisabledException".into());
            e.error_message = Some("disabled".into());
            e.user_identity.access_key_id = None;
            e.resources.clear();
            e
        }] {
            let back = CloudTrailEvent::from_json_slice(&e.to_json_bytes().unwrap()).unwrap();
            assert_eq!(back, e);
            e.response_elements = Some(json!({"keyId": "x"}));
            let back = CloudTrailEvent::from_json_slice(&e.to_json_bytes().unwrap()).unwrap();
            assert_eq!(back, e);
        }
    }

    #[test]
    fn event_time_is_utc_whole_seconds() {
        let t = datetime!(2026-11-23 12:17:09.987 +01:00);
        assert_eq!(format_event_time(t).unwrap(), "2026-11-23T11:17:09Z");
        assert_eq!(
            parse_event_time("2026-11-23T12:17:09+01:00").unwrap(),
            datetime!(2026-11-23 11:17:09 UTC)
        );
        assert!(parse_event_time("yesterday").is_err());
    }

    #[test]
    fn new_event_ids_are_uuids() {
        let a = CloudTrailEvent::new_event_id();
        assert_eq!(a.len(), 36);
        assert_ne!(a, CloudTrailEvent::new_event_id());
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
