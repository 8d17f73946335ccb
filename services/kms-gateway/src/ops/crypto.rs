//! Cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext)
//! and GenerateRandom. The gateway checks key state and usage; the crypto service does the
//! cryptography. Decrypt learns its key from the ciphertext header, never from the caller.

use kms_bus::crypto as op;
use kms_core::{validate, ErrorCode, KeyUsage, KmsError, KmsResult, Usage};
use kms_proto::v1 as wire;
use serde_json::json;

use super::{b64, check_symmetric_algorithm, context_entries, Call, Output};
use crate::access::Access;
use crate::params::Params;

/// The key a ciphertext names, in any account of the region (authorization decides
/// whether the caller may use it; a denial names "the resource associated with this
/// ciphertext", not the key). A key that does not exist makes the ciphertext invalid.
async fn key_of_ciphertext(
    call: &Call<'_>,
    blob: &[u8],
    access: Option<Access>,
) -> KmsResult<wire::KeyRecord> {
    validate::ciphertext(blob.len())?;
    let header = kms_crypto_core::peek_header(blob).map_err(|_| KmsError::invalid_ciphertext())?;
    let found = match access {
        Some(access) => call.resolve_ciphertext_key(&header.key_id, access).await,
        None => call.lookup_scoped(&header.key_id, true, true).await,
    };
    match found {
        Ok(key) => Ok(key),
        Err(e) if e.code == ErrorCode::NotFound => Err(KmsError::invalid_ciphertext()),
        Err(e) => Err(e),
    }
}

/// Checks that a key may encrypt or decrypt now.
fn check_crypto_key(key: &wire::KeyRecord) -> KmsResult<()> {
    let domain = kms_bus::key_from_wire(key)?;
    domain.check_usable(Usage::Cryptographic)?;
    if domain.usage != KeyUsage::EncryptDecrypt {
        return Err(KmsError::new(
            ErrorCode::InvalidKeyUsage,
            format!(
                "{} key usage is {} which is not valid for this operation.",
                key.arn, key.key_usage
            ),
        ));
    }
    Ok(())
}

/// The optional KeyId of Decrypt/ReEncrypt must name the key the ciphertext names.
async fn check_expected_key(
    call: &Call<'_>,
    p: &Params,
    member: &str,
    actual: &wire::KeyRecord,
) -> KmsResult<()> {
    if let Some(expected) = p.opt_str(member)? {
        let expected = call.lookup(expected, true).await?;
        if expected.key_id != actual.key_id {
            return Err(KmsError::new(
                ErrorCode::IncorrectKey,
                "The key ID in the request does not identify a CMK that can perform this operation.",
            ));
        }
    }
    Ok(())
}

async fn encryption_key(
    call: &Call<'_>,
    key_ref: &str,
    access: Access,
) -> KmsResult<wire::KeyRecord> {
    let key = call.resolve(key_ref, access).await?;
    check_crypto_key(&key)?;
    Ok(key)
}

pub(super) async fn encrypt(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let plaintext = p.blob("Plaintext")?;
    validate::plaintext(plaintext.len())?;
    let context = p.context("EncryptionContext")?;
    check_symmetric_algorithm(p, "EncryptionAlgorithm")?;
    let access = Access::cross_account("kms:Encrypt")
        .context(&context)
        .condition("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
    let key = encryption_key(call, key_ref, access).await?;
    let sealed = call
        .call::<op::Encrypt>(&wire::EncryptRequest {
            caller: call.caller(),
            key_id: key.key_id.clone(),
            material_version: key.current_material_version,
            plaintext: plaintext.to_vec(),
            context: context_entries(&context),
        })
        .await?;
    Ok(Output::new(json!({
        "CiphertextBlob": b64(&sealed.ciphertext_blob),
        "KeyId": key.arn,
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    })))
}

pub(super) async fn decrypt(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let blob = p.blob("CiphertextBlob")?;
    let context = p.context("EncryptionContext")?;
    check_symmetric_algorithm(p, "EncryptionAlgorithm")?;
    let access = Access::cross_account("kms:Decrypt")
        .context(&context)
        .condition("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
    let key = key_of_ciphertext(call, &blob, Some(access)).await?;
    check_expected_key(call, p, "KeyId", &key).await?;
    check_crypto_key(&key)?;
    let opened = call
        .call::<op::Decrypt>(&wire::DecryptRequest {
            caller: call.caller(),
            ciphertext_blob: blob.to_vec(),
            context: context_entries(&context),
        })
        .await?;
    let plaintext = zeroize::Zeroizing::new(opened.plaintext);
    Ok(Output::new(json!({
        "KeyId": key.arn,
        "Plaintext": b64(&plaintext),
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    })))
}

pub(super) async fn re_encrypt(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let blob = p.blob("CiphertextBlob")?;
    let destination_ref = p.str("DestinationKeyId")?;
    let source_context = p.context("SourceEncryptionContext")?;
    let destination_context = p.context("DestinationEncryptionContext")?;
    check_symmetric_algorithm(p, "SourceEncryptionAlgorithm")?;
    check_symmetric_algorithm(p, "DestinationEncryptionAlgorithm")?;
    let source = key_of_ciphertext(call, &blob, None).await?;
    let destination = call.lookup(destination_ref, true).await?;
    // Both sides are authorized: kms:ReEncryptFrom on the source key with the source
    // context, kms:ReEncryptTo on the destination key with the destination context.
    let same_key = (source.key_id == destination.key_id).to_string();
    let from = Access::cross_account("kms:ReEncryptFrom")
        .context(&source_context)
        .condition("kms:ReEncryptOnSameKey", same_key.clone())
        .condition("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
        .of_ciphertext();
    call.authorize(Some(&source), from).await?;
    let to = Access::cross_account("kms:ReEncryptTo")
        .context(&destination_context)
        .condition("kms:ReEncryptOnSameKey", same_key)
        .condition("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
    call.authorize(Some(&destination), to).await?;
    check_expected_key(call, p, "SourceKeyId", &source).await?;
    check_crypto_key(&source)?;
    check_crypto_key(&destination)?;
    let sealed = call
        .call::<op::ReEncrypt>(&wire::ReEncryptRequest {
            caller: call.caller(),
            ciphertext_blob: blob.to_vec(),
            source_context: context_entries(&source_context),
            destination_key_id: destination.key_id.clone(),
            destination_material_version: destination.current_material_version,
            destination_context: context_entries(&destination_context),
        })
        .await?;
    Ok(Output::new(json!({
        "CiphertextBlob": b64(&sealed.ciphertext_blob),
        "SourceKeyId": source.arn,
        "KeyId": destination.arn,
        "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    })))
}

pub(super) async fn generate_data_key(
    call: &Call<'_>,
    p: &Params,
    include_plaintext: bool,
) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let length = validate::data_key_length(p.opt_str("KeySpec")?, p.opt_i64("NumberOfBytes")?)?;
    let context = p.context("EncryptionContext")?;
    let action = if include_plaintext {
        "kms:GenerateDataKey"
    } else {
        "kms:GenerateDataKeyWithoutPlaintext"
    };
    let access = Access::cross_account(action)
        .context(&context)
        .condition("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
    let key = encryption_key(call, key_ref, access).await?;
    let generated = call
        .call::<op::GenerateDataKey>(&wire::GenerateDataKeyRequest {
            caller: call.caller(),
            key_id: key.key_id.clone(),
            material_version: key.current_material_version,
            number_of_bytes: length,
            context: context_entries(&context),
            include_plaintext,
        })
        .await?;
    let data_key = zeroize::Zeroizing::new(generated.plaintext);
    let mut body = json!({
        "CiphertextBlob": b64(&generated.ciphertext_blob),
        "KeyId": key.arn,
    });
    if include_plaintext {
        if let Some(obj) = body.as_object_mut() {
            obj.insert("Plaintext".into(), json!(b64(&data_key)));
        }
    }
    Ok(Output::new(body))
}

pub(super) async fn generate_random(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let n = match p.opt_i64("NumberOfBytes")? {
        Some(n) => validate::number_of_bytes(n)?,
        None => {
            return Err(KmsError::validation(
                "1 validation error detected: Value null at 'numberOfBytes' failed to satisfy constraint: Member must not be null",
            ))
        }
    };
    call.authorize(None, Access::to("kms:GenerateRandom")).await?;
    let random = call
        .call::<op::GenerateRandom>(&wire::GenerateRandomRequest {
            caller: call.caller(),
            number_of_bytes: n,
        })
        .await?;
    Ok(Output::new(json!({ "Plaintext": b64(&random.plaintext) })))
}
