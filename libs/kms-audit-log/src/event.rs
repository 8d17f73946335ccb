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
/// `eventType` of an event the service emits itself (scheduled rotation, deletion).
pub const EVENT_TYPE_SERVICE_EVENT: &str = "AwsServiceEvent";
/// `userIdentity.invokedBy`, `sourceIPAddress` and `userAgent` of such events, as AWS's
/// documented KMS service events write them.
pub const INVOKED_BY_SERVICE: &str = "AWS Internal";
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
    /// Empty (and then omitted) for events the service emits itself, as in AWS's.
    #[serde(rename = "requestID", default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub read_only: bool,
    #[serde(default)]
    pub resources: Vec<EventResource>,
    pub event_type: String,
    pub management_event: bool,
    pub recipient_account_id: String,
    /// Set on both copies of a call recorded for two accounts (a caller using another
    /// account's key): the same value in the caller's and the key owner's record.
    #[serde(rename = "sharedEventID", default, skip_serializing_if = "Option::is_none")]
    pub shared_event_id: Option<String>,
    /// What an event the service emitted itself did (`AwsServiceEvent`s such as an
    /// automatic `RotateKey`: `rotationType`, `keyId`); omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_event_details: Option<serde_json::Value>,
    pub event_category: String,
    /// How the call reached the service when it came over TLS; omitted otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_details: Option<TlsDetails>,
}

/// `tlsDetails` of a record: the negotiated protocol and cipher suite, and the `Host`
/// header the client sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsDetails {
    /// `TLSv1.2` or `TLSv1.3`.
    pub tls_version: String,
    /// The IANA name of the suite, e.g. `TLS_AES_128_GCM_SHA256`.
    pub cipher_suite: String,
    pub client_provided_host_header: String,
}

/// `userIdentity` of a record. Which members appear depends on the credential type, as
/// in AWS's records: an IAM user has all of `principalId`, `arn`, `accountId`,
/// `accessKeyId`, `userName`; an assumed role has no `userName` but a `sessionContext`;
/// another account (`AWSAccount`, the key owner's copy of a cross-account call) only
/// `principalId` and `accountId`; an event the service emits itself only `accountId` and
/// `invokedBy`. Absent members are omitted, never written as `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_context: Option<SessionContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
}

/// `userIdentity.sessionContext`: the role session behind temporary credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_issuer: Option<SessionIssuer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_id_federation_data: Option<WebIdFederationData>,
    pub attributes: SessionAttributes,
}

/// `sessionContext.sessionIssuer`: the role that issued the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer {
    /// `Role` for role sessions.
    #[serde(rename = "type")]
    pub issuer_type: String,
    pub principal_id: String,
    pub arn: String,
    pub account_id: String,
    pub user_name: String,
}

/// `sessionContext.webIdFederationData` of a web-identity session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebIdFederationData {
    pub federated_provider: String,
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// `sessionContext.attributes`. AWS writes both as strings (`"false"`, an ISO time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAttributes {
    pub creation_date: String,
    pub mfa_authenticated: String,
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

    /// `serviceEventDetails` of an automatic rotation, as AWS writes them.
    pub fn automatic_rotation_details(key_id: &str) -> serde_json::Value {
        Self::rotation_details("AUTOMATIC", key_id)
    }

    /// `serviceEventDetails` of a rotation (`AUTOMATIC` or `ON_DEMAND`).
    pub fn rotation_details(rotation_type: &str, key_id: &str) -> serde_json::Value {
        serde_json::json!({"rotationType": rotation_type, "keyId": key_id})
    }

    /// An event KMS emits itself about a key (`RotateKey`, `DeleteKey`,
    /// `DeleteExpiredKeyMaterial`), as AWS's documented service events are shaped: the
    /// identity is the key's account invoked by "AWS Internal", which also stands for
    /// address and agent; no request id.
    pub fn service_event(
        name: &str,
        key_account: &str,
        region: &str,
        key_arn: &str,
        event_time: OffsetDateTime,
        event_id: String,
        details: Option<serde_json::Value>,
    ) -> Self {
        let internal = INVOKED_BY_SERVICE.to_owned();
        Self {
            event_version: EVENT_VERSION.to_owned(),
            user_identity: UserIdentity {
                account_id: Some(key_account.to_owned()),
                invoked_by: Some(internal.clone()),
                ..UserIdentity::default()
            },
            event_time,
            event_source: EVENT_SOURCE_KMS.to_owned(),
            event_name: name.to_owned(),
            aws_region: region.to_owned(),
            source_ip_address: internal.clone(),
            user_agent: internal,
            error_code: None,
            error_message: None,
            request_parameters: None,
            response_elements: None,
            request_id: String::new(),
            event_id,
            read_only: false,
            resources: vec![EventResource::kms_key(key_account, key_arn)],
            event_type: EVENT_TYPE_SERVICE_EVENT.to_owned(),
            management_event: true,
            recipient_account_id: key_account.to_owned(),
            shared_event_id: None,
            service_event_details: details,
            event_category: EVENT_CATEGORY_MANAGEMENT.to_owned(),
            tls_details: None,
        }
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

/// A stable stand-in for IAM's unique ids (`AIDA...` users, `AROA...` roles): there is
/// no IAM here to assign them, so the id is derived from the ARN — the same principal
/// always gets the same id, 21 characters of IAM's alphabet like AWS's.
pub fn derived_principal_id(prefix: &str, arn: &str) -> String {
    use sha2::Digest as _;
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = sha2::Sha256::digest(arn.as_bytes());
    let tail: String = digest
        .iter()
        .take(21usize.saturating_sub(prefix.len()))
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect();
    format!("{prefix}{tail}")
}

/// Formats an instant the way CloudTrail writes `eventTime` (and a session's
/// `creationDate`): UTC, whole seconds, `Z`.
pub fn format_event_time(t: OffsetDateTime) -> Result<String, time::error::Format> {
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
                identity_type: Some("IAMUser".into()),
                principal_id: Some("AIDAEXAMPLE".into()),
                arn: Some("arn:aws:iam::111122223333:user/Alice".into()),
                account_id: Some("111122223333".into()),
                access_key_id: Some("AKIAEXAMPLE".into()),
                user_name: Some("Alice".into()),
                ..UserIdentity::default()
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
            shared_event_id: None,
            service_event_details: None,
            event_category: EVENT_CATEGORY_MANAGEMENT.into(),
            tls_details: None,
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
        e.shared_event_id = Some("c7a3e2a5-2b7f-4a43-8d53-4b6dfe26d9d0".into());
        e.service_event_details = Some(json!({"rotationType": "AUTOMATIC"}));
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
            "\"sharedEventID\"",
            "\"serviceEventDetails\"",
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
        assert!(v.get("sharedEventID").is_none());
        assert!(v["userIdentity"].get("sessionContext").is_none());
        assert!(v["userIdentity"].get("invokedBy").is_none());

        e.error_code = Some("AccessDeniedException".into());
        e.error_message = Some("not authorized".into());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["errorCode"], "AccessDeniedException");
        assert_eq!(v["errorMessage"], "not authorized");
    }

    #[test]
    fn assumed_role_identity_has_aws_shape() {
        let identity = UserIdentity {
            identity_type: Some("AssumedRole".into()),
            principal_id: Some("AROAEXAMPLE:app-session".into()),
            arn: Some("arn:aws:sts::111122223333:assumed-role/app/app-session".into()),
            account_id: Some("111122223333".into()),
            access_key_id: Some("ASIAEXAMPLE".into()),
            session_context: Some(SessionContext {
                session_issuer: Some(SessionIssuer {
                    issuer_type: "Role".into(),
                    principal_id: "AROAEXAMPLE".into(),
                    arn: "arn:aws:iam::111122223333:role/app".into(),
                    account_id: "111122223333".into(),
                    user_name: "app".into(),
                }),
                web_id_federation_data: None,
                attributes: SessionAttributes {
                    creation_date: "2026-11-23T10:00:00Z".into(),
                    mfa_authenticated: "false".into(),
                },
            }),
            ..UserIdentity::default()
        };
        let text = serde_json::to_string(&identity).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"type":"AssumedRole","principalId":"AROAEXAMPLE:app-session","#,
                r#""arn":"arn:aws:sts::111122223333:assumed-role/app/app-session","#,
                r#""accountId":"111122223333","accessKeyId":"ASIAEXAMPLE","#,
                r#""sessionContext":{"sessionIssuer":{"type":"Role","principalId":"AROAEXAMPLE","#,
                r#""arn":"arn:aws:iam::111122223333:role/app","accountId":"111122223333","#,
                r#""userName":"app"},"attributes":{"creationDate":"2026-11-23T10:00:00Z","#,
                r#""mfaAuthenticated":"false"}}}"#
            )
        );
        assert_eq!(serde_json::from_str::<UserIdentity>(&text).unwrap(), identity);
    }

    #[test]
    fn service_event_identity_is_account_and_invoker_only() {
        let identity = UserIdentity {
            account_id: Some("111122223333".into()),
            invoked_by: Some("AWS Internal".into()),
            ..UserIdentity::default()
        };
        assert_eq!(
            serde_json::to_value(&identity).unwrap(),
            json!({"accountId": "111122223333", "invokedBy": "AWS Internal"})
        );
    }

    #[test]
    fn round_trips() {
        for mut e in [sample(), {
            let mut e = sample();
            e.error_code = Some("DisabledException".into());
            e.error_message = Some("disabled".into());
            e.user_identity.access_key_id = None;
            e.resources.clear();
            e.shared_event_id = Some("c7a3e2a5-2b7f-4a43-8d53-4b6dfe26d9d0".into());
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
    fn derived_principal_ids_are_stable_and_distinct() {
        let a = derived_principal_id("AIDA", "arn:aws:iam::111122223333:user/a");
        assert_eq!(a.len(), 21);
        assert!(a.starts_with("AIDA"));
        assert_eq!(a, derived_principal_id("AIDA", "arn:aws:iam::111122223333:user/a"));
        assert_ne!(a, derived_principal_id("AIDA", "arn:aws:iam::111122223333:user/b"));
    }

    #[test]
    fn new_event_ids_are_uuids() {
        let a = CloudTrailEvent::new_event_id();
        assert_eq!(a.len(), 36);
        assert_ne!(a, CloudTrailEvent::new_event_id());
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }
}
