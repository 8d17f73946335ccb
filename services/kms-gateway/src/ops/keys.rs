//! Key lifecycle operations: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey,
//! UpdateKeyDescription, ScheduleKeyDeletion, CancelKeyDeletion.

use kms_bus::{crypto as crypto_op, metadata, policy};
use kms_core::{
    key_arn, validate, ErrorCode, KeySpec, KeyState, KeyUsage, KmsError, KmsResult, Origin, Usage,
};
use kms_proto::v1::{self as wire, change_key_state_request::Change};
use serde_json::{json, Value};

use super::{epoch_seconds, limit, Call, Output};
use crate::access::Access;
use crate::params::Params;

/// DescribeKey's `KeyMetadata` as AWS shapes it.
pub(super) fn key_metadata(k: &wire::KeyRecord) -> Value {
    let mut m = json!({
        "AWSAccountId": k.account,
        "KeyId": k.key_id,
        "Arn": k.arn,
        "CreationDate": epoch_seconds(k.creation_date_ms),
        "Enabled": k.key_state == KeyState::Enabled.as_str(),
        "Description": k.description,
        "KeyUsage": k.key_usage,
        "KeyState": k.key_state,
        "Origin": k.origin,
        "KeyManager": if k.key_manager == "AWS" { "AWS" } else { "CUSTOMER" },
        "CustomerMasterKeySpec": k.key_spec,
        "KeySpec": k.key_spec,
        "MultiRegion": k.multi_region,
    });
    // Encryption keys list their encryption algorithms, HMAC keys their MAC algorithm,
    // signing keys their signing algorithms, key agreement keys ECDH.
    if let Some(obj) = m.as_object_mut() {
        for (member, list) in super::asym::algorithm_lists(&k.key_spec, &k.key_usage) {
            obj.insert(member.into(), list);
        }
    }
    if let (Some(date), Some(obj)) = (k.deletion_date_ms, m.as_object_mut()) {
        obj.insert("DeletionDate".into(), epoch_seconds(date));
    }
    if let (Some(days), Some(obj)) = (k.pending_window_days, m.as_object_mut()) {
        obj.insert("PendingDeletionWindowInDays".into(), json!(days));
    }
    if let (false, Some(obj)) = (k.expiration_model.is_empty(), m.as_object_mut()) {
        obj.insert("ExpirationModel".into(), json!(k.expiration_model));
    }
    if let (Some(valid_to), Some(obj)) = (k.valid_to_ms, m.as_object_mut()) {
        obj.insert("ValidTo".into(), epoch_seconds(valid_to));
    }
    m
}

/// Parses an enum member: AWS's other valid values are refused as unsupported here,
/// anything else as invalid.
fn enum_member<T>(
    p: &Params,
    member: &str,
    parse: fn(&str) -> Option<T>,
    default: T,
    known_elsewhere: &[&str],
) -> KmsResult<T> {
    match p.opt_str(member)? {
        None => Ok(default),
        Some(text) => parse(text).ok_or_else(|| {
            if known_elsewhere.contains(&text) {
                KmsError::new(
                    ErrorCode::UnsupportedOperation,
                    format!("{member} {text} is not supported by this service yet"),
                )
            } else {
                validate::constraint(
                    &crate::params::wire_field(member),
                    Some(text),
                    &format!("satisfy enum value set: {known_elsewhere:?}"),
                )
            }
        }),
    }
}

const OTHER_KEY_SPECS: &[&str] = &[
    "SYMMETRIC_DEFAULT",
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ECC_NIST_EDWARDS25519",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
];

pub(super) async fn create_key(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let description = p.opt_str("Description")?.unwrap_or_default().to_owned();
    validate::description(&description)?;
    let usage = enum_member(
        p,
        "KeyUsage",
        KeyUsage::parse,
        KeyUsage::EncryptDecrypt,
        &[
            "ENCRYPT_DECRYPT",
            "SIGN_VERIFY",
            "GENERATE_VERIFY_MAC",
            "KEY_AGREEMENT",
            "ENCAPSULATE_DECAPSULATE",
        ],
    )?;
    let spec_member =
        if p.opt_str("KeySpec")?.is_some() { "KeySpec" } else { "CustomerMasterKeySpec" };
    let spec =
        enum_member(p, spec_member, KeySpec::parse, KeySpec::SymmetricDefault, OTHER_KEY_SPECS)?;
    let origin = enum_member(
        p,
        "Origin",
        Origin::parse,
        Origin::AwsKms,
        &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"],
    )?;
    // KeyUsage defaults to ENCRYPT_DECRYPT, as in AWS: an ECC or HMAC key must name its
    // usage.
    if !spec.allows_usage(usage) {
        let valid: Vec<&str> = spec.valid_usages().iter().map(|u| u.as_str()).collect();
        return Err(KmsError::validation(format!(
            "KeyUsage {} is not compatible with KeySpec {}; use {}",
            usage.as_str(),
            spec.as_str(),
            valid.join(" or ")
        )));
    }
    if p.opt_bool("MultiRegion")? == Some(true) {
        return Err(KmsError::new(
            ErrorCode::UnsupportedOperation,
            "Multi-Region keys are not supported by this service yet",
        ));
    }
    let tags = p.tags("Tags")?.unwrap_or_default();
    validate::tags(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let bypass = p.opt_bool("BypassPolicyLockoutSafetyCheck")?.unwrap_or(false);
    let mut access = Access::to("kms:CreateKey")
        .condition("kms:KeySpec", spec.as_str())
        .condition("kms:KeyUsage", usage.as_str())
        .condition("kms:KeyOrigin", origin.as_str())
        .condition("kms:MultiRegion", "false")
        .condition("kms:BypassPolicyLockoutSafetyCheck", bypass.to_string())
        .multi("aws:TagKeys", tags.iter().map(|(k, _)| k.clone()).collect());
    for (k, v) in &tags {
        access = access.condition(&format!("aws:RequestTag/{k}"), v.clone());
    }
    call.authorize(None, access).await?;
    let key_id = uuid::Uuid::new_v4().to_string();
    let arn = key_arn(&call.caller.region, &call.caller.account, &key_id);
    let policy = match p.opt_str("Policy")? {
        Some(doc) => {
            super::check_key_policy(call, doc, &arn, bypass)?;
            doc.to_owned()
        }
        // AWS's default: the account root may do everything, so IAM policies decide.
        None => kms_policy_lang::default_key_policy(&call.caller.account),
    };
    let created = new_key(
        call,
        NewKey { key_id, description, spec, usage, origin, tags, policy, managed_alias: None },
    )
    .await?;
    let metadata = key_metadata(&created);
    // CloudTrail records members in lower camel case ("aWSAccountId", "keyId", ...).
    let recorded: serde_json::Map<String, Value> = metadata
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (crate::params::wire_field(k), v.clone())).collect())
        .unwrap_or_default();
    Ok(Output::recorded(json!({ "KeyMetadata": metadata }), json!({ "keyMetadata": recorded })))
}

/// Everything a new key is made of.
struct NewKey {
    key_id: String,
    description: String,
    spec: KeySpec,
    usage: KeyUsage,
    origin: Origin,
    tags: Vec<(String, String)>,
    policy: String,
    /// `alias/aws/<service>` for an AWS managed key.
    managed_alias: Option<String>,
}

/// Makes a key: material (unless imported later) and policy first, then the metadata
/// record, which is what makes the key visible — a failure part-way leaves nothing a
/// caller can see.
async fn new_key(call: &Call<'_>, new: NewKey) -> KmsResult<wire::KeyRecord> {
    let arn = key_arn(&call.caller.region, &call.caller.account, &new.key_id);
    call.touch(&arn);
    let material_version = if new.origin == Origin::External {
        0
    } else {
        call.call::<crypto_op::CreateMaterial>(&wire::CreateMaterialRequest {
            caller: call.caller(),
            key_id: new.key_id.clone(),
            key_spec: new.spec.as_str().to_owned(),
            material_version: 1,
        })
        .await?
        .material_version
    };
    call.call::<policy::PutPolicy>(&wire::PutPolicyRequest {
        caller: call.caller(),
        key_id: new.key_id.clone(),
        policy_name: validate::DEFAULT_POLICY_NAME.to_owned(),
        document: new.policy,
    })
    .await?;
    let aws_managed = new.managed_alias.is_some();
    let now = kms_core::Clock::now_ms(&kms_core::SystemClock);
    let mut record = wire::KeyRecord {
        tags: new.tags.into_iter().map(|(key, value)| wire::Tag { key, value }).collect(),
        ..Default::default()
    };
    let domain = kms_core::KeyRecord {
        key_id: new.key_id,
        account: call.caller.account.clone(),
        region: call.caller.region.clone(),
        arn,
        creation_date_ms: now,
        description: new.description,
        state: if new.origin == Origin::External {
            KeyState::PendingImport
        } else {
            KeyState::Enabled
        },
        spec: new.spec,
        usage: new.usage,
        origin: new.origin,
        deletion_date_ms: None,
        pending_window_days: None,
        current_material_version: material_version,
        // AWS managed keys rotate every year, always.
        rotation_enabled: aws_managed,
        rotation_period_days: aws_managed
            .then_some(kms_core::schedule::DEFAULT_ROTATION_PERIOD_DAYS),
        next_rotation_date_ms: aws_managed.then_some(
            now + i64::from(kms_core::schedule::DEFAULT_ROTATION_PERIOD_DAYS)
                * kms_core::schedule::DAY_MS,
        ),
        valid_to_ms: None,
        aws_managed,
    };
    kms_bus::key_to_wire(&domain, &mut record);
    call.call::<metadata::CreateKey>(&wire::CreateKeyRequest {
        caller: call.caller(),
        key: Some(record),
        managed_alias: new.managed_alias.unwrap_or_default(),
    })
    .await?
    .key
    .ok_or_else(KmsError::internal)
}

/// The services whose AWS managed keys (`alias/aws/<service>`) a tenant may use.
const MANAGED_KEY_SERVICES: &[&str] = &[
    "acm",
    "backup",
    "cloudtrail",
    "codecommit",
    "dynamodb",
    "ebs",
    "efs",
    "elasticfilesystem",
    "es",
    "glue",
    "kinesis",
    "lambda",
    "rds",
    "redshift",
    "s3",
    "secretsmanager",
    "sns",
    "sqs",
    "ssm",
    "xray",
];

/// Creates the AWS managed key behind `alias/aws/<service>` on first use, as AWS does.
/// `None` when the alias names no known service.
pub(super) async fn create_managed_key(
    call: &Call<'_>,
    alias_name: &str,
) -> Option<KmsResult<wire::KeyRecord>> {
    let service = alias_name.strip_prefix("alias/aws/")?;
    if !MANAGED_KEY_SERVICES.contains(&service) {
        return None;
    }
    let account = &call.caller.account;
    let policy = json!({
        "Version": "2012-10-17",
        "Id": format!("auto-{service}-1"),
        "Statement": [
            {
                "Sid": format!("Allow access through {service} for all principals in the account that are authorized to use {service}"),
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": "*",
                // AWS adds `kms:ViaService: <service>.<region>.amazonaws.com`; no AWS
                // service stands in front of this one, so the account's principals use
                // the key directly.
                "Condition": {"StringEquals": {"kms:CallerAccount": account}}
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                "Resource": "*"
            }
        ]
    })
    .to_string();
    let new = NewKey {
        key_id: uuid::Uuid::new_v4().to_string(),
        description: format!(
            "Default key that protects my {service} data when no other key is defined"
        ),
        spec: KeySpec::SymmetricDefault,
        usage: KeyUsage::EncryptDecrypt,
        origin: Origin::AwsKms,
        tags: Vec::new(),
        policy,
        managed_alias: Some(alias_name.to_owned()),
    };
    Some(new_key(call, new).await)
}

pub(super) async fn describe_key(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key = call.resolve(p.str("KeyId")?, Access::cross_account("kms:DescribeKey")).await?;
    Ok(Output::new(json!({ "KeyMetadata": key_metadata(&key) })))
}

pub(super) async fn list_keys(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let limit = limit(p, 100, 1000)?;
    call.authorize(None, Access::to("kms:ListKeys")).await?;
    let page = call
        .call::<metadata::ListKeys>(&wire::ListKeysRequest {
            caller: call.caller(),
            limit,
            marker: p.opt_str("Marker")?.unwrap_or_default().to_owned(),
        })
        .await?;
    let keys: Vec<Value> =
        page.keys.iter().map(|k| json!({ "KeyId": k.key_id, "KeyArn": k.arn })).collect();
    Ok(Output::new(paged(json!({ "Keys": keys }), page.next_marker)))
}

/// Adds AWS's `Truncated` and `NextMarker` to a list response.
pub(super) fn paged(mut body: Value, next_marker: String) -> Value {
    if let Some(obj) = body.as_object_mut() {
        obj.insert("Truncated".into(), json!(!next_marker.is_empty()));
        if !next_marker.is_empty() {
            obj.insert("NextMarker".into(), json!(next_marker));
        }
    }
    body
}

async fn change_state(
    call: &Call<'_>,
    key_ref: &str,
    change: Change,
) -> KmsResult<wire::KeyRecord> {
    let (action, access) = match change {
        Change::Enable(_) => ("EnableKey", Access::to("kms:EnableKey")),
        Change::Disable(_) => ("DisableKey", Access::to("kms:DisableKey")),
        Change::ScheduleDeletionDays(days) => (
            "ScheduleKeyDeletion",
            Access::to("kms:ScheduleKeyDeletion")
                .condition("kms:ScheduleKeyDeletionPendingWindowInDays", days.to_string()),
        ),
        Change::CancelDeletion(_) => ("CancelKeyDeletion", Access::to("kms:CancelKeyDeletion")),
    };
    let key = call.resolve(key_ref, access).await?;
    call.check_customer_managed(&key, action)?;
    call.call::<metadata::ChangeKeyState>(&wire::ChangeKeyStateRequest {
        caller: call.caller(),
        key_id: key.key_id,
        change: Some(change),
    })
    .await?
    .key
    .ok_or_else(KmsError::internal)
}

pub(super) async fn enable_key(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    change_state(call, p.str("KeyId")?, Change::Enable(true)).await?;
    Ok(Output::new(json!({})))
}

pub(super) async fn disable_key(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    change_state(call, p.str("KeyId")?, Change::Disable(true)).await?;
    Ok(Output::new(json!({})))
}

pub(super) async fn update_key_description(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let description = p.str("Description")?;
    validate::description(description)?;
    let (key, domain) =
        call.usable(key_ref, Usage::Modify, Access::to("kms:UpdateKeyDescription")).await?;
    domain.check_customer_managed(&call.caller.principal, "UpdateKeyDescription")?;
    call.call::<metadata::UpdateDescription>(&wire::UpdateDescriptionRequest {
        caller: call.caller(),
        key_id: key.key_id,
        description: description.to_owned(),
    })
    .await?;
    Ok(Output::new(json!({})))
}

pub(super) async fn schedule_key_deletion(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let days = match p.opt_i64("PendingWindowInDays")? {
        None => 30,
        Some(d) => {
            let d = i32::try_from(d).unwrap_or(i32::MAX);
            validate::pending_window_days(d)?;
            d
        }
    };
    let key = change_state(call, key_ref, Change::ScheduleDeletionDays(days)).await?;
    let body = json!({
        "KeyId": key.arn,
        "DeletionDate": epoch_seconds(key.deletion_date_ms.unwrap_or_default()),
        "KeyState": key.key_state,
        "PendingWindowInDays": days,
    });
    let recorded = json!({
        "keyId": key.arn,
        "deletionDate": epoch_seconds(key.deletion_date_ms.unwrap_or_default()),
        "keyState": key.key_state,
        "pendingWindowInDays": days,
    });
    Ok(Output::recorded(body, recorded))
}

pub(super) async fn cancel_key_deletion(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key = change_state(call, p.str("KeyId")?, Change::CancelDeletion(true)).await?;
    Ok(Output::recorded(json!({ "KeyId": key.arn }), json!({ "keyId": key.arn })))
}
