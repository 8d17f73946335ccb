//! The KMS operations: each validates its parameters as AWS does, asks the services over
//! the bus, and shapes the response as AWS returns it.

pub(crate) mod admin;
mod aliases;
mod asym;
mod crypto;
mod grants;
mod import;
mod keys;
mod mac;
mod policies;
mod rotation;
mod tags;

use std::sync::Mutex;

use base64::Engine;
use kms_bus::{metadata, policy, Bus, CallContext, Operation};
use kms_core::{ErrorCode, KeyRecord, KeyRef, KmsError, KmsResult, Usage};
use kms_proto::v1 as wire;
use serde_json::{json, Value};

use crate::access::{self, Access, DecisionCache};
use crate::changes::{Changes, Freshness, Used};
use crate::key_cache;
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
    /// The caller's address, for `aws:SourceIp`.
    pub source_ip: String,
    /// Allowed decisions of earlier calls (see `access`).
    pub decisions: &'a DecisionCache,
    /// Change announcements, and the barrier cache hits are checked with (see `changes`).
    pub changes: &'a Changes,
    /// How this call's cache hits are checked.
    pub freshness: Freshness,
    /// The caller's tags, for `aws:PrincipalTag/<key>`.
    pub principal_tags: &'a std::collections::BTreeMap<String, String>,
}

impl Call<'_> {
    fn ctx(&self) -> CallContext {
        CallContext { request_id: self.caller.request_id.clone() }
    }

    fn caller(&self) -> Option<wire::CallerContext> {
        Some(self.caller.clone())
    }

    /// Calls a service. A metadata write drops this gateway's cached key records at once
    /// (before and after: a concurrent lookup cannot store what the write replaces), so
    /// its client's next call sees the change even before the announcement arrives.
    pub(crate) async fn call<O: Operation>(&self, request: &O::Request) -> KmsResult<O::Response> {
        let writes_keys = O::SERVICE == "metadata"
            && !matches!(O::NAME, "ResolveKey" | "ListKeys" | "ListAliases" | "ListResourceTags");
        if writes_keys {
            self.decisions.keys.forget_all();
        }
        let result = self.bus.call::<O>(&self.ctx(), request).await;
        if result.is_ok() {
            self.freshness.replied();
        }
        if writes_keys {
            self.decisions.keys.forget_all();
        }
        result
    }

    fn touch(&self, arn: &str) {
        if let Ok(mut touched) = self.touched.lock() {
            if !touched.iter().any(|a| a == arn) {
                touched.push(arn.to_owned());
            }
        }
    }

    /// Finds the key a reference names, without authorizing anything (for a KeyId that
    /// is only compared with the key of a ciphertext). An AWS managed key
    /// (`alias/aws/<service>`) is created on first use, as AWS does.
    async fn lookup(&self, key_ref: &str, cross_account: bool) -> KmsResult<wire::KeyRecord> {
        self.lookup_scoped(key_ref, cross_account, false).await
    }

    async fn lookup_scoped(
        &self,
        key_ref: &str,
        cross_account: bool,
        from_ciphertext: bool,
    ) -> KmsResult<wire::KeyRecord> {
        let parsed = KeyRef::parse(key_ref)?;
        let cached = key_cache::Lookup {
            account: self.caller.account.clone(),
            region: self.caller.region.clone(),
            key_ref: key_ref.to_owned(),
            cross_account,
            from_ciphertext,
        };
        let hit = self.freshness.hit(
            self.changes,
            || self.decisions.keys.get_stamped(&cached),
            |stamp| Used::Key { lookup: cached.clone(), stamp },
        );
        if let Some(key) = hit.await {
            self.touch(&key.arn);
            return Ok(key);
        }
        let generation = self.decisions.keys.generation();
        let resolved = self
            .call::<metadata::ResolveKey>(&wire::ResolveKeyRequest {
                caller: self.caller(),
                key_ref: key_ref.to_owned(),
                cross_account,
                from_ciphertext,
            })
            .await;
        let key = match (resolved, &parsed) {
            (Ok(response), _) => {
                let key = response.key.ok_or_else(KmsError::internal)?;
                self.decisions.keys.insert(cached, &key, generation);
                key
            }
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

    /// Resolves any of the four key reference forms and authorizes `access` on the key.
    async fn resolve(&self, key_ref: &str, access: Access) -> KmsResult<wire::KeyRecord> {
        let key = self.lookup(key_ref, access.cross_account).await?;
        let access = match KeyRef::parse(key_ref)? {
            KeyRef::AliasName(name) | KeyRef::AliasArn { alias_name: name, .. } => {
                access.condition("kms:RequestAlias", name)
            }
            KeyRef::KeyId(_) | KeyRef::KeyArn { .. } => access,
        };
        self.authorize(Some(&key), access).await?;
        Ok(key)
    }

    /// The key a ciphertext names (any account of the region), authorized for `access`.
    async fn resolve_ciphertext_key(
        &self,
        key_id: &str,
        access: Access,
    ) -> KmsResult<wire::KeyRecord> {
        let key = self.lookup_scoped(key_id, true, true).await?;
        self.authorize(Some(&key), access.of_ciphertext()).await?;
        Ok(key)
    }

    /// Asks the policy service whether the caller may perform `access` on `key` (or, for
    /// `None`, on no key: CreateKey, ListKeys, ...). Allowed answers are cached until a
    /// change to the key's policy, grants or the account's identity policies.
    async fn authorize(&self, key: Option<&wire::KeyRecord>, access: Access) -> KmsResult<String> {
        let mut conditions = access.conditions;
        let mut add = |key: &str, value: &str| {
            conditions.push(wire::ConditionValues {
                key: key.to_owned(),
                values: vec![value.to_owned()],
                multi_valued: false,
            });
        };
        add("kms:CallerAccount", &self.caller.account);
        add("aws:SourceIp", &self.source_ip);
        add("aws:SecureTransport", "false");
        for (tag, value) in self.principal_tags {
            add(&format!("aws:PrincipalTag/{tag}"), value);
        }
        if let Some(k) = key {
            add("kms:KeySpec", &k.key_spec);
            add("kms:KeyUsage", &k.key_usage);
            add("kms:KeyOrigin", &k.origin);
            add("kms:KeyManager", if k.key_manager == "AWS" { "AWS" } else { "CUSTOMER" });
            for tag in &k.tags {
                add(&format!("aws:ResourceTag/{}", tag.key), &tag.value);
            }
            // Multi-valued (ForAnyValue/ForAllValues): the aliases the key has now. Being
            // part of the request, they also key the decision cache.
            conditions.push(wire::ConditionValues {
                key: "kms:ResourceAliases".to_owned(),
                values: k.alias_names.clone(),
                multi_valued: true,
            });
        }
        let request = wire::AuthorizeRequest {
            caller: self.caller(),
            action: access.action.to_owned(),
            key_id: key.map(|k| k.key_id.clone()).unwrap_or_default(),
            key_arn: key.map(|k| k.arn.clone()).unwrap_or_default(),
            key_account: key.map(|k| k.account.clone()).unwrap_or_default(),
            key_manager: key.map(|k| k.key_manager.clone()).unwrap_or_default(),
            principal_type: String::new(),
            conditions,
            encryption_context: context_entries(&access.encryption_context),
            resource_description: access.resource_description.unwrap_or_default().to_owned(),
        };
        let cache_key = request.key_id.clone();
        let fingerprint = access::fingerprint(&request);
        let hit = self.freshness.hit(
            self.changes,
            || self.decisions.get_stamped(&cache_key, &fingerprint),
            |stamp| Used::Decision {
                key_id: cache_key.clone(),
                fingerprint: fingerprint.clone(),
                stamp,
            },
        );
        if let Some(grant_id) = hit.await {
            return Ok(grant_id);
        }
        let generation = self.decisions.generation();
        let answer = self.call::<policy::Authorize>(&request).await?;
        if answer.cacheable {
            self.decisions.insert(&cache_key, fingerprint, answer.grant_id.clone(), generation);
        }
        Ok(answer.grant_id)
    }

    /// Drops this gateway's cached decisions about a key after a change it made itself.
    fn changed_key(&self, key_id: &str) {
        self.decisions.forget_key(key_id);
    }

    /// Refuses a management action on an AWS managed key.
    fn check_customer_managed(&self, key: &wire::KeyRecord, action: &str) -> KmsResult<()> {
        kms_bus::key_from_wire(key)?.check_customer_managed(&self.caller.principal, action)
    }

    /// Resolves a key, authorizes `access`, and checks the key may serve an operation of
    /// class `usage`.
    async fn usable(
        &self,
        key_ref: &str,
        usage: Usage,
        access: Access,
    ) -> KmsResult<(wire::KeyRecord, KeyRecord)> {
        let stored = self.resolve(key_ref, access).await?;
        let key = kms_bus::key_from_wire(&stored)?;
        if matches!(usage, Usage::Cryptographic) {
            count_pending_deletion_use(&key);
        }
        key.check_usable(usage)?;
        Ok((stored, key))
    }

    /// For operations that take only a key id or key ARN (not an alias).
    async fn resolve_key_only(
        &self,
        key_ref: &str,
        member: &str,
        access: Access,
    ) -> KmsResult<wire::KeyRecord> {
        if matches!(KeyRef::parse(key_ref)?, KeyRef::AliasName(_) | KeyRef::AliasArn { .. }) {
            return Err(KmsError::validation(format!(
                "{member} must be a key ID or key ARN, not an alias: {key_ref}"
            )));
        }
        self.resolve(key_ref, access).await
    }
}

/// Counts a cryptographic use of a key pending deletion, for the alert on it.
fn count_pending_deletion_use(key: &KeyRecord) {
    if key.state == kms_core::KeyState::PendingDeletion {
        kms_telemetry::http::pending_deletion_key_used();
    }
}

/// Dispatches a `TrentService.<name>` operation (`None` for an unknown name). One without
/// side effects uses cache hits at once and checks them before answering; if a change it
/// had not seen voided one, the result is dropped and the operation runs again, checking
/// hits before use (see `changes`).
pub(crate) async fn dispatch(call: &Call<'_>, name: &str, p: &Params) -> Option<KmsResult<Output>> {
    call.freshness.check_after(is_side_effect_free(name));
    let result = run(call, name, p).await?;
    if call.changes.still_current(&call.freshness).await {
        return Some(result);
    }
    call.freshness.check_after(false);
    if let Ok(mut touched) = call.touched.lock() {
        touched.clear();
    }
    run(call, name, p).await
}

/// Operations that change nothing: running one on a stale cache entry and dropping the
/// result is harmless.
fn is_side_effect_free(name: &str) -> bool {
    matches!(
        name,
        "Encrypt"
            | "Decrypt"
            | "ReEncrypt"
            | "GenerateDataKey"
            | "GenerateDataKeyWithoutPlaintext"
            | "GenerateDataKeyPair"
            | "GenerateDataKeyPairWithoutPlaintext"
            | "GenerateMac"
            | "VerifyMac"
            | "Sign"
            | "Verify"
            | "GetPublicKey"
            | "DeriveSharedSecret"
            | "DescribeKey"
    )
}

/// One run of operation `name`.
async fn run(call: &Call<'_>, name: &str, p: &Params) -> Option<KmsResult<Output>> {
    if let Err(e) = grants::check_grant_tokens(p) {
        return Some(Err(e));
    }
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
        "Sign" => asym::sign(call, p).await,
        "Verify" => asym::verify(call, p).await,
        "GetPublicKey" => asym::get_public_key(call, p).await,
        "GenerateDataKeyPair" => asym::generate_data_key_pair(call, p, true).await,
        "GenerateDataKeyPairWithoutPlaintext" => asym::generate_data_key_pair(call, p, false).await,
        "DeriveSharedSecret" => asym::derive_shared_secret(call, p).await,
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
        "CreateGrant" => grants::create_grant(call, p).await,
        "ListGrants" => grants::list_grants(call, p).await,
        "ListRetirableGrants" => grants::list_retirable_grants(call, p).await,
        "RetireGrant" => grants::retire_grant(call, p).await,
        "RevokeGrant" => grants::revoke_grant(call, p).await,
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
            | "ListGrants"
            | "ListRetirableGrants"
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
            | "Sign"
            | "Verify"
            | "GetPublicKey"
            | "GenerateDataKeyPair"
            | "GenerateDataKeyPairWithoutPlaintext"
            | "DeriveSharedSecret"
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
