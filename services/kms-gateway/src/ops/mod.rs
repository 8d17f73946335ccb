//! The KMS operations: each validates its parameters as AWS does, asks the services over
//! the bus, and shapes the response as AWS returns it.

mod aliases;
mod crypto;
mod import;
mod keys;
mod mac;
mod policies;
mod rotation;
mod tags;

use std::sync::Mutex;

use base64::Engine;
use kms_bus::{metadata, Bus, CallContext, Operation};
use kms_core::{ErrorCode, KeyRecord, KeyRef, KmsError, KmsResult, Usage};
use kms_proto::v1 as wire;
use serde_json::{json, Value};

use crate::params::Params;

/// What an operation hands back: the response body and, for the audit record, the
/// response elements worth keeping.
pub(crate) struct Output {
    pub body: Value,
    pub response_elements: Option<Value>,
}

impl Output {
    fn new(body: Value) -> Self {
        Self { body, response_elements: None }
    }
    fn recorded(body: Value, response_elements: Value) -> Self {
        Self { body, response_elements: Some(response_elements) }
    }
}

/// One call in progress: who asks, where, and which keys it touched.
pub(crate) struct Call<'a> {
    pub bus: &'a Bus,
    pub caller: wire::CallerContext,
    pub touched: Mutex<Vec<String>>,
}

impl Call<'_> {
    fn ctx(&self) -> CallContext {
        CallContext { request_id: self.caller.request_id.clone() }
    }

    fn caller(&self) -> Option<wire::CallerContext> {
        Some(self.caller.clone())
    }

    pub(crate) async fn call<O: Operation>(&self, request: &O::Request) -> KmsResult<O::Response> {
        self.bus.call::<O>(&self.ctx(), request).await
    }

    fn touch(&self, arn: &str) {
        if let Ok(mut touched) = self.touched.lock() {
            if !touched.iter().any(|a| a == arn) {
                touched.push(arn.to_owned());
            }
        }
    }

    /// Resolves any of the four key reference forms to the caller's key. An AWS managed
    /// key (`alias/aws/<service>`) is created on first use, as AWS does.
    async fn resolve(&self, key_ref: &str) -> KmsResult<wire::KeyRecord> {
        let parsed = KeyRef::parse(key_ref)?;
        let resolved = self
            .call::<metadata::ResolveKey>(&wire::ResolveKeyRequest {
                caller: self.caller(),
                key_ref: key_ref.to_owned(),
            })
            .await;
        let key = match (resolved, &parsed) {
            (Ok(response), _) => response.key.ok_or_else(KmsError::internal)?,
            (Err(e), KeyRef::AliasName(name)) if e.code == ErrorCode::NotFound => {
                match keys::create_managed_key(self, name).await {
                    Some(created) => created?,
                    None => return Err(e),
                }
            }
            (Err(e), KeyRef::AliasArn { alias_name, account, region })
                if e.code == ErrorCode::NotFound
                    && *account == self.caller.account
                    && *region == self.caller.region =>
            {
                match keys::create_managed_key(self, alias_name).await {
                    Some(created) => created?,
                    None => return Err(e),
                }
            }
            (Err(e), _) => return Err(e),
        };
        self.touch(&key.arn);
        Ok(key)
    }

    /// Refuses a management action on an AWS managed key.
    fn check_customer_managed(&self, key: &wire::KeyRecord, action: &str) -> KmsResult<()> {
        kms_bus::key_from_wire(key)?.check_customer_managed(&self.caller.principal, action)
    }

    /// Resolves a key and checks it may serve an operation of class `usage`.
    async fn usable(&self, key_ref: &str, usage: Usage) -> KmsResult<(wire::KeyRecord, KeyRecord)> {
        let stored = self.resolve(key_ref).await?;
        let key = kms_bus::key_from_wire(&stored)?;
        key.check_usable(usage)?;
        Ok((stored, key))
    }

    /// For operations that take only a key id or key ARN (not an alias).
    async fn resolve_key_only(&self, key_ref: &str, member: &str) -> KmsResult<wire::KeyRecord> {
        if matches!(KeyRef::parse(key_ref)?, KeyRef::AliasName(_) | KeyRef::AliasArn { .. }) {
            return Err(KmsError::validation(format!(
                "{member} must be a key ID or key ARN, not an alias: {key_ref}"
            )));
        }
        self.resolve(key_ref).await
    }
}

/// Dispatches a `TrentService.<name>` operation. `None` for an unknown name.
pub(crate) async fn dispatch(call: &Call<'_>, name: &str, p: &Params) -> Option<KmsResult<Output>> {
    let result = match name {
        "CreateKey" => keys::create_key(call, p).await,
        "DescribeKey" => keys::describe_key(call, p).await,
        "ListKeys" => keys::list_keys(call, p).await,
        "EnableKey" => keys::enable_key(call, p).await,
        "DisableKey" => keys::disable_key(call, p).await,
        "UpdateKeyDescription" => keys::update_key_description(call, p).await,
        "ScheduleKeyDeletion" => keys::schedule_key_deletion(call, p).await,
        "CancelKeyDeletion" => keys::cancel_key_deletion(call, p).await,
        "Encrypt" => crypto::encrypt(call, p).await,
        "Decrypt" => crypto::decrypt(call, p).await,
        "ReEncrypt" => crypto::re_encrypt(call, p).await,
        "GenerateDataKey" => crypto::generate_data_key(call, p, true).await,
        "GenerateDataKeyWithoutPlaintext" => crypto::generate_data_key(call, p, false).await,
        "GenerateRandom" => crypto::generate_random(call, p).await,
        "GenerateMac" => mac::generate_mac(call, p).await,
        "VerifyMac" => mac::verify_mac(call, p).await,
        "CreateAlias" => aliases::create_alias(call, p).await,
        "UpdateAlias" => aliases::update_alias(call, p).await,
        "DeleteAlias" => aliases::delete_alias(call, p).await,
        "ListAliases" => aliases::list_aliases(call, p).await,
        "TagResource" => tags::tag_resource(call, p).await,
        "UntagResource" => tags::untag_resource(call, p).await,
        "ListResourceTags" => tags::list_resource_tags(call, p).await,
        "GetKeyPolicy" => policies::get_key_policy(call, p).await,
        "PutKeyPolicy" => policies::put_key_policy(call, p).await,
        "ListKeyPolicies" => policies::list_key_policies(call, p).await,
        "EnableKeyRotation" => rotation::enable_key_rotation(call, p).await,
        "DisableKeyRotation" => rotation::disable_key_rotation(call, p).await,
        "GetKeyRotationStatus" => rotation::get_key_rotation_status(call, p).await,
        "RotateKeyOnDemand" => rotation::rotate_key_on_demand(call, p).await,
        "ListKeyRotations" => rotation::list_key_rotations(call, p).await,
        "GetParametersForImport" => import::get_parameters_for_import(call, p).await,
        "ImportKeyMaterial" => import::import_key_material(call, p).await,
        "DeleteImportedKeyMaterial" => import::delete_imported_key_material(call, p).await,
        _ => return None,
    };
    Some(result)
}

/// Whether CloudTrail marks the operation read-only.
pub(crate) fn is_read_only(name: &str) -> bool {
    matches!(
        name,
        "DescribeKey"
            | "ListKeys"
            | "ListAliases"
            | "ListResourceTags"
            | "GetKeyPolicy"
            | "ListKeyPolicies"
            | "GetKeyRotationStatus"
            | "ListKeyRotations"
            | "Encrypt"
            | "Decrypt"
            | "ReEncrypt"
            | "GenerateDataKey"
            | "GenerateDataKeyWithoutPlaintext"
            | "GenerateRandom"
            | "GenerateMac"
            | "VerifyMac"
    )
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Milliseconds since the epoch as the epoch-seconds number AWS JSON timestamps use.
fn epoch_seconds(ms: i64) -> Value {
    // f64 holds millisecond timestamps exactly for many millennia.
    #[allow(clippy::cast_precision_loss, reason = "exact for realistic timestamps")]
    let seconds = ms as f64 / 1000.0;
    json!(seconds)
}

fn context_entries(
    context: &std::collections::BTreeMap<String, String>,
) -> Vec<wire::EncryptionContextEntry> {
    context
        .iter()
        .map(|(k, v)| wire::EncryptionContextEntry { key: k.clone(), value: v.clone() })
        .collect()
}

/// Checks a key policy as AWS does on CreateKey and PutKeyPolicy: at most 32 KB, a valid
/// document in the policy language, and — unless the caller bypasses the lockout safety
/// check — one that still lets the caller change the policy later.
fn check_key_policy(
    call: &Call<'_>,
    document: &str,
    key_arn: &str,
    bypass_lockout_check: bool,
) -> KmsResult<()> {
    use kms_policy_lang::{
        lockout_safety_check, Policy, PolicyKind, PrincipalType, RequestContext,
    };
    kms_core::validate::policy_size(document)?;
    let policy = Policy::parse(document, PolicyKind::Key)
        .map_err(|e| KmsError::new(ErrorCode::MalformedPolicyDocument, e.to_string()))?;
    if bypass_lockout_check {
        return Ok(());
    }
    let principal = call.caller.principal.as_str();
    let principal_type = PrincipalType::of_arn(principal);
    let ctx =
        RequestContext::builder(principal, principal_type, "kms:PutKeyPolicy", key_arn).build();
    if lockout_safety_check(&policy, &ctx) {
        Ok(())
    } else {
        Err(KmsError::new(
            ErrorCode::MalformedPolicyDocument,
            "The new key policy will not allow you to update the key policy in the future.",
        ))
    }
}

/// Page size as AWS validates it: `Limit` within 1..=max.
fn limit(p: &Params, default: u32, max: u32) -> KmsResult<u32> {
    kms_core::validate::limit(p.opt_i64("Limit")?, default, max)
}

/// The one encryption algorithm symmetric keys support.
fn check_symmetric_algorithm(p: &Params, member: &str) -> KmsResult<()> {
    match p.opt_str(member)? {
        None | Some("SYMMETRIC_DEFAULT") => Ok(()),
        Some(other @ ("RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256" | "SM2PKE")) => Err(KmsError::new(
            ErrorCode::InvalidKeyUsage,
            format!("{other} is not a valid encryption algorithm for a symmetric key"),
        )),
        Some(other) => Err(kms_core::validate::constraint(
            &crate::params::wire_field(member),
            Some(other),
            "satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]",
        )),
    }
}
