//! Turning one API call into its CloudTrail records and getting them into the `KMS_AUDIT`
//! stream before the caller is answered. Request parameters are copied by allow-list:
//! a member not named here (plaintext, ciphertext, data keys, anything new) never reaches
//! the audit log.
//!
//! The records follow AWS's documented KMS records, so tools written for CloudTrail read
//! them unchanged: `userIdentity` has the members AWS writes for the credential type,
//! the defaults AWS logs are filled in, and a call that used another account's key is
//! recorded for that account too (AWS's `sharedEventID` pair), because the key owner must
//! be able to see who used its key without asking the caller's account.

use kms_audit_log::{
    derived_principal_id, format_event_time, CloudTrailEvent, EventResource, SessionAttributes,
    SessionContext, SessionIssuer, UserIdentity, WebIdFederationData, EVENT_CATEGORY_MANAGEMENT,
    EVENT_TYPE_API_CALL, EVENT_VERSION,
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
            user_identity: user_identity(id),
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
            request_parameters: self.completed_request_parameters(),
            response_elements: self.completed_response_elements(),
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
            shared_event_id: None,
            service_event_details: None,
            event_category: EVENT_CATEGORY_MANAGEMENT.to_owned(),
            tls_details: None,
        }
    }
}

/// The caller's `userIdentity`, by credential type, with the members AWS writes for it.
pub(crate) fn user_identity(id: &Identity) -> UserIdentity {
    let base = UserIdentity {
        identity_type: Some(id.identity_type.clone()),
        arn: Some(id.principal_arn.clone()),
        account_id: Some(id.account_id.clone()),
        access_key_id: id.access_key_id.clone(),
        ..UserIdentity::default()
    };
    match id.identity_type.as_str() {
        "Root" => UserIdentity { principal_id: Some(id.account_id.clone()), ..base },
        "AssumedRole" => {
            // `principalId` is the role's id and the session name; the session's ARN
            // (`assumed-role/<role>/<session>`) ends with the session name.
            let role_arn =
                id.session.as_ref().map_or(id.principal_arn.as_str(), |s| s.issuer_arn.as_str());
            let role_id = derived_principal_id("AROA", role_arn);
            let session_name = id.principal_arn.rsplit('/').next().unwrap_or(&id.user_name);
            UserIdentity {
                principal_id: Some(format!("{role_id}:{session_name}")),
                session_context: id.session.as_ref().map(|s| session_context(s, &role_id)),
                ..base
            }
        }
        "AWSService" => UserIdentity {
            identity_type: Some(id.identity_type.clone()),
            invoked_by: Some(id.principal_arn.clone()),
            ..UserIdentity::default()
        },
        "WebIdentityUser" => {
            let provider = match &id.method {
                kms_auth::AuthMethod::Jwt { issuer } => issuer.as_str(),
                kms_auth::AuthMethod::SigV4 => "",
            };
            UserIdentity {
                principal_id: Some(format!("{provider}:{}", id.user_name)),
                user_name: Some(id.user_name.clone()),
                ..base
            }
        }
        _ => UserIdentity {
            principal_id: Some(derived_principal_id("AIDA", &id.principal_arn)),
            user_name: Some(id.user_name.clone()),
            ..base
        },
    }
}

fn session_context(s: &kms_auth::SessionContext, role_id: &str) -> SessionContext {
    let created = time::OffsetDateTime::from_unix_timestamp(s.created_at_epoch_s)
        .ok()
        .and_then(|t| format_event_time(t).ok())
        .unwrap_or_default();
    SessionContext {
        session_issuer: Some(SessionIssuer {
            issuer_type: "Role".to_owned(),
            principal_id: role_id.to_owned(),
            arn: s.issuer_arn.clone(),
            account_id: s.issuer_account_id.clone(),
            user_name: s.issuer_name.clone(),
        }),
        web_id_federation_data: s
            .federated_provider
            .as_ref()
            .map(|p| WebIdFederationData { federated_provider: p.clone(), attributes: Map::new() }),
        attributes: SessionAttributes {
            creation_date: created,
            // No MFA step exists for sessions issued here.
            mfa_authenticated: "false".to_owned(),
        },
    }
}

impl CallRecord<'_> {
    /// The first KMS key (not alias) the call used.
    fn key_arn(&self) -> Option<&str> {
        self.key_arns.iter().map(String::as_str).find(|arn| arn.contains(":key/"))
    }

    /// The request parameters as AWS records them: besides what the caller sent, the
    /// defaults AWS writes even when the request left them out (the algorithm of
    /// Encrypt, Decrypt and ReEncrypt; Decrypt's key, known from the ciphertext;
    /// PutKeyPolicy's lockout check flag).
    fn completed_request_parameters(&self) -> Option<Value> {
        let defaults: &[(&str, Value)] = match (self.event_source, self.event_name) {
            (kms_audit_log::EVENT_SOURCE_KMS, "Encrypt" | "Decrypt") => {
                &[("encryptionAlgorithm", Value::String(SYMMETRIC_DEFAULT.to_owned()))]
            }
            (kms_audit_log::EVENT_SOURCE_KMS, "ReEncrypt") => &[
                ("sourceEncryptionAlgorithm", Value::String(SYMMETRIC_DEFAULT.to_owned())),
                ("destinationEncryptionAlgorithm", Value::String(SYMMETRIC_DEFAULT.to_owned())),
            ],
            (kms_audit_log::EVENT_SOURCE_KMS, "PutKeyPolicy") => {
                &[("bypassPolicyLockoutSafetyCheck", Value::Bool(false))]
            }
            _ => &[],
        };
        let decrypt_key = (self.event_source == kms_audit_log::EVENT_SOURCE_KMS
            && self.event_name == "Decrypt")
            .then(|| self.key_arn())
            .flatten();
        if defaults.is_empty() && decrypt_key.is_none() {
            return self.request_parameters.clone();
        }
        let mut members = match &self.request_parameters {
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return self.request_parameters.clone(),
            None => Map::new(),
        };
        for (name, value) in defaults {
            members.entry(*name).or_insert_with(|| value.clone());
        }
        if let Some(arn) = decrypt_key {
            members.entry("keyId").or_insert_with(|| Value::String(arn.to_owned()));
        }
        Some(Value::Object(members))
    }

    /// The response elements as AWS records them: management calls that answer nothing
    /// still record the ARN of the key they changed (`responseElements.keyId`, AWS's
    /// records since December 2022).
    fn completed_response_elements(&self) -> Option<Value> {
        if self.response_elements.is_some() || self.error.is_some() {
            return self.response_elements.clone();
        }
        let records_key = self.event_source == kms_audit_log::EVENT_SOURCE_KMS
            && matches!(
                self.event_name,
                "EnableKey" | "DisableKey" | "EnableKeyRotation" | "CreateAlias" | "UpdateAlias"
            );
        records_key.then(|| self.key_arn()).flatten().map(|arn| serde_json::json!({ "keyId": arn }))
    }
}

const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";

fn arn_account(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// The records one call produces: the caller's, and — when the call used keys of other
/// accounts — a copy for each key owner's account, as CloudTrail records a cross-account
/// call in both. The copies show the caller as AWS shows a foreign account
/// (`AWSAccount`, its `principalId` and `accountId` only), and every record of the call
/// carries the same `sharedEventID`.
pub(crate) fn records_for_accounts(mut event: CloudTrailEvent) -> Vec<CloudTrailEvent> {
    let caller_account = event.recipient_account_id.clone();
    let mut owners: Vec<String> = Vec::new();
    for r in &event.resources {
        if r.account_id != caller_account && !owners.contains(&r.account_id) {
            owners.push(r.account_id.clone());
        }
    }
    if owners.is_empty() {
        return vec![event];
    }
    event.shared_event_id = Some(uuid::Uuid::new_v4().to_string());
    let foreign = UserIdentity {
        identity_type: Some("AWSAccount".to_owned()),
        principal_id: event.user_identity.principal_id.clone(),
        account_id: event.user_identity.account_id.clone(),
        ..UserIdentity::default()
    };
    let copies: Vec<CloudTrailEvent> = owners
        .into_iter()
        .map(|owner| CloudTrailEvent {
            user_identity: foreign.clone(),
            event_id: CloudTrailEvent::new_event_id(),
            recipient_account_id: owner,
            ..event.clone()
        })
        .collect();
    std::iter::once(event).chain(copies).collect()
}

/// Publishes the records of a call (see [`records_for_accounts`]) and waits for
/// JetStream to acknowledge each as stored.
pub(crate) async fn publish(bus: &Bus, event: CloudTrailEvent) -> Result<(), KmsError> {
    for record in records_for_accounts(event) {
        let body = record.to_json_bytes().map_err(|_| KmsError::internal())?;
        kms_bus::publish_audit(bus, &record.recipient_account_id, &record.event_id, body).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(arn: &str, identity_type: &str, user_name: &str) -> Identity {
        Identity {
            account_id: "111122223333".into(),
            principal_arn: arn.into(),
            user_name: user_name.into(),
            identity_type: identity_type.into(),
            access_key_id: Some("AKIAEXAMPLE".into()),
            region: Some("us-east-1".into()),
            service: Some("kms".into()),
            method: kms_auth::AuthMethod::SigV4,
            principal_tags: std::collections::BTreeMap::new(),
            session: None,
        }
    }

    fn rendered(id: &Identity) -> Value {
        serde_json::to_value(user_identity(id)).unwrap()
    }

    #[test]
    fn iam_user_identity() {
        let arn = "arn:aws:iam::111122223333:user/Alice";
        let v = rendered(&identity(arn, "IAMUser", "Alice"));
        let principal_id = derived_principal_id("AIDA", arn);
        assert_eq!(
            v,
            json!({"type": "IAMUser", "principalId": principal_id, "arn": arn,
                   "accountId": "111122223333", "accessKeyId": "AKIAEXAMPLE", "userName": "Alice"})
        );
    }

    #[test]
    fn root_identity() {
        let arn = "arn:aws:iam::111122223333:root";
        let v = rendered(&identity(arn, "Root", "root"));
        assert_eq!(
            v,
            json!({"type": "Root", "principalId": "111122223333", "arn": arn,
                   "accountId": "111122223333", "accessKeyId": "AKIAEXAMPLE"})
        );
    }

    #[test]
    fn assumed_role_identity_has_session_context() {
        let mut id = identity(
            "arn:aws:sts::111122223333:assumed-role/app/build-42",
            "AssumedRole",
            "build-42",
        );
        id.access_key_id = Some("ASIAEXAMPLE".into());
        id.session = Some(kms_auth::SessionContext {
            issuer_arn: "arn:aws:iam::111122223333:role/app".into(),
            issuer_name: "app".into(),
            issuer_account_id: "111122223333".into(),
            created_at_epoch_s: 1_795_431_429, // 2026-11-23T10:57:09Z
            federated_provider: None,
        });
        let role_id = derived_principal_id("AROA", "arn:aws:iam::111122223333:role/app");
        let expected = json!({
            "type": "AssumedRole",
            "principalId": format!("{role_id}:build-42"),
            "arn": "arn:aws:sts::111122223333:assumed-role/app/build-42",
            "accountId": "111122223333",
            "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": role_id,
                                  "arn": "arn:aws:iam::111122223333:role/app",
                                  "accountId": "111122223333", "userName": "app"},
                "attributes": {"creationDate": "2026-11-23T10:57:09Z", "mfaAuthenticated": "false"}
            }
        });
        assert_eq!(rendered(&id), expected);

        id.session.as_mut().unwrap().federated_provider = Some("https://issuer.example".into());
        let v = rendered(&id);
        assert_eq!(
            v["sessionContext"]["webIdFederationData"],
            json!({"federatedProvider": "https://issuer.example", "attributes": {}})
        );
    }

    #[test]
    fn defaults_aws_records_fill_only_what_the_request_left_out() {
        let caller = identity("arn:aws:iam::111122223333:user/Alice", "IAMUser", "Alice");
        let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let record = |name: &'static str, params: Option<Value>, error: Option<&KmsError>| {
            CallRecord {
                identity: &caller,
                region: "us-east-1",
                event_source: kms_audit_log::EVENT_SOURCE_KMS,
                event_name: name,
                read_only: true,
                source_ip: "192.0.2.1".into(),
                user_agent: "test".into(),
                request_id: "req-1",
                request_parameters: params,
                response_elements: None,
                key_arns: vec![key.into()],
                error,
                error_code_override: None,
            }
            .to_event()
        };
        // Decrypt: the algorithm and the key (from the ciphertext) even when not sent.
        let e = record("Decrypt", None, None);
        assert_eq!(
            e.request_parameters,
            Some(json!({"encryptionAlgorithm": "SYMMETRIC_DEFAULT", "keyId": key}))
        );
        // What the caller sent is kept as sent.
        let sent = json!({"encryptionAlgorithm": "RSAES_OAEP_SHA_256", "keyId": "alias/app"});
        let e = record("Decrypt", Some(sent.clone()), None);
        assert_eq!(e.request_parameters, Some(sent));
        // Management calls name the key they changed; a failed one records nothing back.
        let e = record("EnableKey", Some(json!({"keyId": "k"})), None);
        assert_eq!(e.response_elements, Some(json!({"keyId": key})));
        let failed = KmsError::new(kms_core::ErrorCode::NotFound, "gone");
        let e = record("EnableKey", Some(json!({"keyId": "k"})), Some(&failed));
        assert_eq!(e.response_elements, None);
        // Operations AWS records no defaults for are left alone.
        let e = record("DescribeKey", None, None);
        assert_eq!((e.request_parameters, e.response_elements), (None, None));
    }

    #[test]
    fn cross_account_call_is_recorded_for_the_key_owner_too() {
        let caller = identity("arn:aws:iam::111122223333:user/Alice", "IAMUser", "Alice");
        let foreign_key =
            "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let call = CallRecord {
            identity: &caller,
            region: "us-east-1",
            event_source: kms_audit_log::EVENT_SOURCE_KMS,
            event_name: "Encrypt",
            read_only: true,
            source_ip: "192.0.2.1".into(),
            user_agent: "test".into(),
            request_id: "req-1",
            request_parameters: Some(json!({"keyId": foreign_key})),
            response_elements: None,
            key_arns: vec![foreign_key.into()],
            error: None,
            error_code_override: None,
        };
        let records = records_for_accounts(call.to_event());
        assert_eq!(records.len(), 2);
        let (mine, theirs) = (&records[0], &records[1]);
        assert_eq!(mine.recipient_account_id, "111122223333");
        assert_eq!(theirs.recipient_account_id, "444455556666");
        assert!(mine.shared_event_id.is_some());
        assert_eq!(mine.shared_event_id, theirs.shared_event_id);
        assert_ne!(mine.event_id, theirs.event_id);
        assert_eq!(mine.request_id, theirs.request_id);
        assert_eq!(mine.user_identity, user_identity(&caller));
        assert_eq!(
            serde_json::to_value(&theirs.user_identity).unwrap(),
            json!({"type": "AWSAccount",
                   "principalId": derived_principal_id("AIDA", "arn:aws:iam::111122223333:user/Alice"),
                   "accountId": "111122223333"})
        );
        assert_eq!(theirs.resources, mine.resources);

        // A call on the caller's own keys is one record without a sharedEventID.
        let own_key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let own = CallRecord { key_arns: vec![own_key.into()], ..call };
        let records = records_for_accounts(own.to_event());
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].shared_event_id, None);
    }

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
