//! Turning one API call into one CloudTrail record and getting it into the `KMS_AUDIT`
//! stream before the caller is answered. Request parameters are copied by allow-list:
//! a member not named here (plaintext, ciphertext, data keys, anything new) never reaches
//! the audit log.

use kms_audit_log::{
    CloudTrailEvent, EventResource, UserIdentity, EVENT_CATEGORY_MANAGEMENT, EVENT_TYPE_API_CALL,
    EVENT_VERSION,
};
use kms_auth::Identity;
use kms_bus::Bus;
use kms_core::KmsError;
use serde_json::{Map, Value};

/// Request and response members that may be recorded. Everything else is dropped.
const RECORDED_MEMBERS: &[&str] = &[
    "AliasName",
    "BypassPolicyLockoutSafetyCheck",
    "Constraints",
    "CustomerMasterKeySpec",
    "DeletionDate",
    "Description",
    "DestinationEncryptionAlgorithm",
    "DestinationEncryptionContext",
    "DestinationKeyId",
    "EncryptionAlgorithm",
    "EncryptionContext",
    "EndTime",
    "EventCategory",
    "ExpirationModel",
    "DryRun",
    "GrantId",
    "GrantTokens",
    "GranteePrincipal",
    "KeyAgreementAlgorithm",
    "KeyId",
    "KeyPairSpec",
    "KeySpec",
    "KeyState",
    "KeyUsage",
    "Limit",
    "MacAlgorithm",
    "LookupAttributes",
    "Marker",
    "MaxResults",
    "MessageType",
    "MultiRegion",
    "Name",
    "NumberOfBytes",
    "Operations",
    "Origin",
    "PendingWindowInDays",
    "Policy",
    "PolicyDocument",
    "PolicyName",
    "PrincipalArn",
    "RetiringPrincipal",
    "RotationPeriodInDays",
    "SigningAlgorithm",
    "SourceEncryptionAlgorithm",
    "SourceEncryptionContext",
    "SourceKeyId",
    "StartTime",
    "TagKeys",
    "Tags",
    "TargetKeyId",
    "ValidTo",
    "WrappingAlgorithm",
    "WrappingKeySpec",
];

/// The allow-listed members of a request or response object, with CloudTrail's
/// lower-camel-case names; `None` when nothing remains.
pub(crate) fn recorded(members: &Map<String, Value>) -> Option<Value> {
    let kept: Map<String, Value> = members
        .iter()
        .filter(|(k, _)| RECORDED_MEMBERS.contains(&k.as_str()))
        .map(|(k, v)| (crate::params::wire_field(k), lower_camel_keys(v)))
        .collect();
    (!kept.is_empty()).then_some(Value::Object(kept))
}

/// Lists of structures (Tags, LookupAttributes) and the grant `Constraints` structure are
/// recorded with lower-camel member names as CloudTrail does; maps such as encryption
/// contexts keep the caller's keys.
fn lower_camel_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.keys().any(|k| k.starts_with("EncryptionContext")) => Value::Object(
            m.iter().map(|(k, v)| (crate::params::wire_field(k), v.clone())).collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| match item {
                    Value::Object(m) => Value::Object(
                        m.iter().map(|(k, v)| (crate::params::wire_field(k), v.clone())).collect(),
                    ),
                    other => other.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The `errorCode` CloudTrail records: KMS's exception names, except that a refused
/// authorization is `AccessDenied`, as in AWS's records.
fn cloudtrail_error_code(code: kms_core::ErrorCode) -> &'static str {
    match code {
        kms_core::ErrorCode::AccessDenied => "AccessDenied",
        other => other.aws_name(),
    }
}

/// Everything about a call that its record needs.
pub(crate) struct CallRecord<'a> {
    pub identity: &'a Identity,
    pub region: &'a str,
    pub event_source: &'static str,
    pub event_name: &'a str,
    pub read_only: bool,
    pub source_ip: String,
    pub user_agent: String,
    pub request_id: &'a str,
    pub request_parameters: Option<Value>,
    pub response_elements: Option<Value>,
    pub key_arns: Vec<String>,
    pub error: Option<&'a KmsError>,
    pub error_code_override: Option<&'a str>,
}

impl CallRecord<'_> {
    pub(crate) fn to_event(&self) -> CloudTrailEvent {
        let id = self.identity;
        CloudTrailEvent {
            event_version: EVENT_VERSION.to_owned(),
            user_identity: UserIdentity {
                identity_type: id.identity_type.clone(),
                principal_id: id.access_key_id.clone().map_or_else(
                    || id.principal_arn.clone(),
                    |_| format!("{}:{}", id.account_id, id.user_name),
                ),
                arn: id.principal_arn.clone(),
                account_id: id.account_id.clone(),
                access_key_id: id.access_key_id.clone(),
                user_name: id.user_name.clone(),
            },
            event_time: time::OffsetDateTime::now_utc(),
            event_source: self.event_source.to_owned(),
            event_name: self.event_name.to_owned(),
            aws_region: self.region.to_owned(),
            source_ip_address: self.source_ip.clone(),
            user_agent: self.user_agent.clone(),
            error_code: self
                .error_code_override
                .map(str::to_owned)
                .or_else(|| self.error.map(|e| cloudtrail_error_code(e.code).to_owned())),
            error_message: self.error.map(|e| e.message.clone()),
            request_parameters: self.request_parameters.clone(),
            response_elements: self.response_elements.clone(),
            request_id: self.request_id.to_owned(),
            event_id: CloudTrailEvent::new_event_id(),
            read_only: self.read_only,
            resources: self
                .key_arns
                .iter()
                .map(|arn| {
                    EventResource::kms_key(arn_account(arn).unwrap_or(&id.account_id), arn.clone())
                })
                .collect(),
            event_type: EVENT_TYPE_API_CALL.to_owned(),
            management_event: true,
            recipient_account_id: id.account_id.clone(),
            event_category: EVENT_CATEGORY_MANAGEMENT.to_owned(),
        }
    }
}

fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Publishes the record and waits for JetStream to acknowledge it as stored.
pub(crate) async fn publish(bus: &Bus, event: &CloudTrailEvent) -> Result<(), KmsError> {
    let body = event.to_json_bytes().map_err(|_| KmsError::internal())?;
    kms_bus::publish_audit(bus, &event.recipient_account_id, &event.event_id, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_allow_listed_members_are_recorded() {
        let request = json!({
            "KeyId": "alias/app",
            "Plaintext": "c2VjcmV0",
            "CiphertextBlob": "AAAA",
            "EncryptionContext": {"Department": "Finance", "TagKey": "kept as is"},
            "Tags": [{"TagKey": "Env", "TagValue": "prod"}],
            "SomethingNew": "x"
        });
        let Value::Object(map) = request else { unreachable!() };
        let kept = recorded(&map).unwrap();
        assert_eq!(
            kept,
            json!({
                "keyId": "alias/app",
                "encryptionContext": {"Department": "Finance", "TagKey": "kept as is"},
                "tags": [{"tagKey": "Env", "tagValue": "prod"}]
            })
        );
        let Value::Object(secret_only) = json!({"Plaintext": "c2VjcmV0"}) else { unreachable!() };
        assert_eq!(recorded(&secret_only), None);
    }
}
