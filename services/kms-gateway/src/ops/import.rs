//! Importing key material (BYOK): GetParametersForImport, ImportKeyMaterial,
//! DeleteImportedKeyMaterial. The crypto service makes the wrapping key and unwraps what
//! the caller sends; the metadata service moves the key between PendingImport and
//! Enabled and remembers when imported material expires.

use kms_bus::{crypto as crypto_op, metadata};
use kms_core::{validate, ErrorCode, KeyState, KmsError, KmsResult, Origin, Usage};
use kms_proto::v1 as wire;
use serde_json::json;

use super::{b64, epoch_seconds, Call, Output};
use crate::access::Access;
use crate::params::Params;

/// Import tokens are valid for 24 hours, as in AWS.
const TOKEN_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// The key, which must hold imported material and not be pending deletion.
async fn external_key(call: &Call<'_>, p: &Params, access: Access) -> KmsResult<wire::KeyRecord> {
    let key = call.resolve_key_only(p.str("KeyId")?, "KeyId", access).await?;
    let domain = kms_bus::key_from_wire(&key)?;
    if domain.origin != Origin::External {
        return Err(KmsError::new(
            ErrorCode::UnsupportedOperation,
            format!("{} origin is {} which is not valid for this operation.", key.arn, key.origin),
        ));
    }
    domain.check_usable(Usage::Modify)?;
    Ok(key)
}

fn enum_value<'a>(p: &'a Params, member: &str, allowed: &[&str]) -> KmsResult<&'a str> {
    let value = p.str(member)?;
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(validate::constraint(
            &crate::params::wire_field(member),
            Some(value),
            &format!("satisfy enum value set: {allowed:?}"),
        ))
    }
}

pub(super) async fn get_parameters_for_import(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let algorithm = enum_value(
        p,
        "WrappingAlgorithm",
        &[
            "RSAES_OAEP_SHA_1",
            "RSAES_OAEP_SHA_256",
            "RSA_AES_KEY_WRAP_SHA_1",
            "RSA_AES_KEY_WRAP_SHA_256",
        ],
    )?;
    let spec = enum_value(p, "WrappingKeySpec", &["RSA_2048", "RSA_3072", "RSA_4096"])?;
    let key = external_key(call, p, Access::to("kms:GetParametersForImport")).await?;
    let now = kms_core::Clock::now_ms(&kms_core::SystemClock);
    let valid_to = now + TOKEN_LIFETIME_MS;
    let params = call
        .call::<crypto_op::GetImportParameters>(&wire::GetImportParametersRequest {
            caller: call.caller(),
            key_id: key.key_id.clone(),
            wrapping_algorithm: algorithm.to_owned(),
            wrapping_key_spec: spec.to_owned(),
            valid_to_ms: valid_to,
            now_ms: now,
        })
        .await?;
    Ok(Output::new(json!({
        "KeyId": key.arn,
        "ImportToken": b64(&params.import_token),
        "PublicKey": b64(&params.public_key),
        "ParametersValidTo": epoch_seconds(valid_to),
    })))
}

pub(super) async fn import_key_material(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let token = p.blob("ImportToken")?;
    let encrypted = p.blob("EncryptedKeyMaterial")?;
    validate::blob_length("importToken", token.len(), 1, 6144)?;
    validate::blob_length("encryptedKeyMaterial", encrypted.len(), 1, 6144)?;
    let valid_to = p.opt_f64("ValidTo")?;
    let model = match (p.opt_str("ExpirationModel")?, valid_to) {
        (None | Some("KEY_MATERIAL_EXPIRES"), Some(_)) => "KEY_MATERIAL_EXPIRES",
        (None | Some("KEY_MATERIAL_DOES_NOT_EXPIRE"), None) => "KEY_MATERIAL_DOES_NOT_EXPIRE",
        (Some("KEY_MATERIAL_EXPIRES"), None) => {
            return Err(KmsError::validation(
                "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
            ))
        }
        (Some("KEY_MATERIAL_DOES_NOT_EXPIRE"), Some(_)) => return Err(KmsError::validation(
            "A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE",
        )),
        (Some(other), _) => {
            return Err(validate::constraint(
                "expirationModel",
                Some(other),
                "satisfy enum value set: [KEY_MATERIAL_EXPIRES, KEY_MATERIAL_DOES_NOT_EXPIRE]",
            ))
        }
    };
    #[allow(clippy::cast_possible_truncation, reason = "epoch milliseconds fit in i64")]
    let valid_to_ms = valid_to.map(|s| (s * 1000.0).round() as i64);
    let now = kms_core::Clock::now_ms(&kms_core::SystemClock);
    if valid_to_ms.is_some_and(|v| v <= now) {
        return Err(KmsError::validation("ValidTo must be in the future"));
    }
    let key = external_key(call, p, Access::to("kms:ImportKeyMaterial")).await?;
    call.call::<crypto_op::ImportMaterial>(&wire::ImportMaterialRequest {
        caller: call.caller(),
        key_id: key.key_id.clone(),
        import_token: token.to_vec(),
        encrypted_key_material: encrypted.to_vec(),
        now_ms: now,
        key_spec: key.key_spec.clone(),
    })
    .await?;
    call.call::<metadata::SetImportedMaterial>(&wire::SetImportedMaterialRequest {
        caller: call.caller(),
        key_id: key.key_id.clone(),
        present: true,
        expiration_model: model.to_owned(),
        valid_to_ms,
    })
    .await?;
    Ok(Output::new(json!({ "KeyId": key.arn })))
}

pub(super) async fn delete_imported_key_material(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key = external_key(call, p, Access::to("kms:DeleteImportedKeyMaterial")).await?;
    if key.key_state != KeyState::PendingImport.as_str() {
        call.call::<crypto_op::DeleteImportedMaterial>(&wire::DeleteImportedMaterialRequest {
            caller: call.caller(),
            key_id: key.key_id.clone(),
        })
        .await?;
        call.call::<metadata::SetImportedMaterial>(&wire::SetImportedMaterialRequest {
            caller: call.caller(),
            key_id: key.key_id.clone(),
            present: false,
            expiration_model: String::new(),
            valid_to_ms: None,
        })
        .await?;
    }
    Ok(Output::new(json!({ "KeyId": key.arn })))
}
