//! Cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey(WithoutPlaintext)
//! and GenerateRandom. The gateway checks key state and usage; the crypto service does the
//! cryptography. Decrypt of a symmetric ciphertext learns its key from the ciphertext
//! header, never from the caller. RSA keys encrypt with RSAES-OAEP (EncryptionAlgorithm
//! required): such a ciphertext has no header, so Decrypt needs its KeyId, as in AWS.

use std::collections::BTreeMap;

use kms_bus::crypto as op;
use kms_core::{validate, ErrorCode, KeyUsage, KmsError, KmsResult, Usage};
use kms_crypto_core::asym::EncryptionAlgorithm;
use kms_proto::v1 as wire;
use serde_json::json;

use super::{b64, check_symmetric_algorithm, context_entries, Call, Output};
use crate::access::Access;
use crate::params::Params;

/// The encryption algorithm a request names in `member`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    /// `SYMMETRIC_DEFAULT`, or nothing (AWS's default).
    Symmetric,
    Rsa(EncryptionAlgorithm),
    /// `SM2PKE`: an AWS algorithm for a key spec this service does not offer.
    Sm2,
}

impl Algorithm {
    fn parse(p: &Params, member: &str) -> KmsResult<Self> {
        match p.opt_str(member)? {
            None | Some("SYMMETRIC_DEFAULT") => Ok(Self::Symmetric),
            Some("SM2PKE") => Ok(Self::Sm2),
            Some(name) => match EncryptionAlgorithm::parse(name) {
                Some(rsa) => Ok(Self::Rsa(rsa)),
                // The wording of an unknown value is the symmetric check's.
                None => check_symmetric_algorithm(p, member).map(|()| Self::Symmetric),
            },
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Symmetric => "SYMMETRIC_DEFAULT",
            Self::Rsa(rsa) => rsa.as_str(),
            Self::Sm2 => "SM2PKE",
        }
    }

    fn is_asymmetric(self) -> bool {
        !matches!(self, Self::Symmetric)
    }
}

/// Checks the request's algorithm in `member` against the key: symmetric keys take only
/// SYMMETRIC_DEFAULT, RSA keys only the RSAES-OAEP algorithms of their spec. The RSA
/// algorithm to use, or `None` for a symmetric key.
fn check_key_algorithm(
    p: &Params,
    member: &str,
    key: &wire::KeyRecord,
) -> KmsResult<Option<EncryptionAlgorithm>> {
    let Some(spec) = super::asym::asym_spec(key) else {
        check_symmetric_algorithm(p, member)?;
        return Ok(None);
    };
    match Algorithm::parse(p, member)? {
        Algorithm::Rsa(rsa) if EncryptionAlgorithm::for_spec(spec).contains(&rsa) => Ok(Some(rsa)),
        other => Err(incompatible(other, key)),
    }
}

fn incompatible(algorithm: Algorithm, key: &wire::KeyRecord) -> KmsError {
    KmsError::new(
        ErrorCode::InvalidKeyUsage,
        format!("Algorithm {} is incompatible with key spec {}.", algorithm.as_str(), key.key_spec),
    )
}

/// Asymmetric keys take no encryption context (AWS supports it on symmetric keys only).
fn check_no_context(context: &BTreeMap<String, String>, member: &str) -> KmsResult<()> {
    if context.is_empty() {
        Ok(())
    } else {
        Err(KmsError::validation(format!(
            "{member} is supported only on operations with symmetric encryption KMS keys."
        )))
    }
}

/// Refuses an asymmetric key where only symmetric encryption keys serve (data keys, the
/// key of a symmetric ciphertext).
fn check_symmetric_key(key: &wire::KeyRecord, operation: &str) -> KmsResult<()> {
    if key.key_spec == "SYMMETRIC_DEFAULT" {
        Ok(())
    } else {
        Err(KmsError::new(
            ErrorCode::InvalidKeyUsage,
            format!(
                "{} key spec {} is not valid for {operation}: it needs a symmetric encryption key.",
                key.arn, key.key_spec
            ),
        ))
    }
}

/// An RSA ciphertext has the length limits of every CiphertextBlob (1 to 6144 bytes); one
/// not as long as the key's modulus is simply invalid for that key.
fn rsa_ciphertext(blob: &[u8]) -> KmsResult<()> {
    validate::ciphertext(blob.len())
}

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
    super::count_pending_deletion_use(&domain);
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
    let algorithm = Algorithm::parse(p, "EncryptionAlgorithm")?;
    let access = Access::cross_account("kms:Encrypt")
        .context(&context)
        .condition("kms:EncryptionAlgorithm", algorithm.as_str());
    let key = encryption_key(call, key_ref, access).await?;
    if let Some(rsa) = check_key_algorithm(p, "EncryptionAlgorithm", &key)? {
        check_no_context(&context, "EncryptionContext")?;
        let sealed = call
            .call::<op::AsymEncrypt>(&wire::AsymEncryptRequest {
                caller: call.caller(),
                key_id: key.key_id.clone(),
                material_version: key.current_material_version,
                plaintext: plaintext.to_vec(),
                encryption_algorithm: rsa.as_str().to_owned(),
            })
            .await?;
        return Ok(Output::new(json!({
            "CiphertextBlob": b64(&sealed.ciphertext_blob),
            "KeyId": key.arn,
            "EncryptionAlgorithm": rsa.as_str(),
        })));
    }
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

/// Decrypt of an RSA-OAEP ciphertext: the key is the one KeyId names.
async fn decrypt_asymmetric(
    call: &Call<'_>,
    p: &Params,
    blob: &[u8],
    context: &BTreeMap<String, String>,
    algorithm: Algorithm,
) -> KmsResult<Output> {
    rsa_ciphertext(blob)?;
    let Some(key_ref) = p.opt_str("KeyId")? else {
        return Err(KmsError::validation(format!(
            "KeyId is required to decrypt with the {} encryption algorithm: a ciphertext \
             encrypted under an asymmetric KMS key does not name its key.",
            algorithm.as_str()
        )));
    };
    let access = Access::cross_account("kms:Decrypt")
        .context(context)
        .condition("kms:EncryptionAlgorithm", algorithm.as_str());
    let key = encryption_key(call, key_ref, access).await?;
    let Some(rsa) = check_key_algorithm(p, "EncryptionAlgorithm", &key)? else {
        return Err(incompatible(algorithm, &key));
    };
    check_no_context(context, "EncryptionContext")?;
    let opened = call
        .call::<op::AsymDecrypt>(&wire::AsymDecryptRequest {
            caller: call.caller(),
            key_id: key.key_id.clone(),
            material_version: key.current_material_version,
            ciphertext_blob: blob.to_vec(),
            encryption_algorithm: rsa.as_str().to_owned(),
        })
        .await?;
    let plaintext = zeroize::Zeroizing::new(opened.plaintext);
    Ok(Output::new(json!({
        "KeyId": key.arn,
        "Plaintext": b64(&plaintext),
        "EncryptionAlgorithm": rsa.as_str(),
    })))
}

pub(super) async fn decrypt(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let blob = p.blob("CiphertextBlob")?;
    let context = p.context("EncryptionContext")?;
    let algorithm = Algorithm::parse(p, "EncryptionAlgorithm")?;
    if algorithm.is_asymmetric() {
        return decrypt_asymmetric(call, p, &blob, &context, algorithm).await;
    }
    let access = Access::cross_account("kms:Decrypt")
        .context(&context)
        .condition("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
    let key = key_of_ciphertext(call, &blob, Some(access)).await?;
    check_expected_key(call, p, "KeyId", &key).await?;
    check_crypto_key(&key)?;
    check_symmetric_key(&key, "a symmetric ciphertext")
        .map_err(|_| KmsError::invalid_ciphertext())?;
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
    let source_algorithm = Algorithm::parse(p, "SourceEncryptionAlgorithm")?;
    let destination_algorithm = Algorithm::parse(p, "DestinationEncryptionAlgorithm")?;
    // An RSA ciphertext names no key: SourceKeyId does.
    let source = if source_algorithm.is_asymmetric() {
        rsa_ciphertext(&blob)?;
        let Some(source_ref) = p.opt_str("SourceKeyId")? else {
            return Err(KmsError::validation(format!(
                "SourceKeyId is required to re-encrypt with the {} source encryption \
                 algorithm.",
                source_algorithm.as_str()
            )));
        };
        call.lookup(source_ref, true).await?
    } else {
        key_of_ciphertext(call, &blob, None).await?
    };
    let destination = call.lookup(destination_ref, true).await?;
    // Both sides are authorized: kms:ReEncryptFrom on the source key with the source
    // context, kms:ReEncryptTo on the destination key with the destination context.
    let same_key = (source.key_id == destination.key_id).to_string();
    let from = Access::cross_account("kms:ReEncryptFrom")
        .context(&source_context)
        .condition("kms:ReEncryptOnSameKey", same_key.clone())
        .condition("kms:EncryptionAlgorithm", source_algorithm.as_str());
    // A key named by SourceKeyId is denied by name; one read from a ciphertext is not.
    let from = if source_algorithm.is_asymmetric() { from } else { from.of_ciphertext() };
    call.authorize(Some(&source), from).await?;
    let to = Access::cross_account("kms:ReEncryptTo")
        .context(&destination_context)
        .condition("kms:ReEncryptOnSameKey", same_key)
        .condition("kms:EncryptionAlgorithm", destination_algorithm.as_str());
    call.authorize(Some(&destination), to).await?;
    if !source_algorithm.is_asymmetric() {
        check_expected_key(call, p, "SourceKeyId", &source).await?;
    }
    check_crypto_key(&source)?;
    check_crypto_key(&destination)?;
    let source_rsa = check_key_algorithm(p, "SourceEncryptionAlgorithm", &source)?;
    if source_rsa.is_some() {
        check_no_context(&source_context, "SourceEncryptionContext")?;
    } else if source_algorithm.is_asymmetric() {
        return Err(incompatible(source_algorithm, &source));
    }
    let destination_rsa = check_key_algorithm(p, "DestinationEncryptionAlgorithm", &destination)?;
    if destination_rsa.is_some() {
        check_no_context(&destination_context, "DestinationEncryptionContext")?;
    }
    let sealed = call
        .call::<op::ReEncrypt>(&wire::ReEncryptRequest {
            caller: call.caller(),
            ciphertext_blob: blob.to_vec(),
            source_context: context_entries(&source_context),
            destination_key_id: destination.key_id.clone(),
            destination_material_version: destination.current_material_version,
            destination_context: context_entries(&destination_context),
            source_key_id: if source_rsa.is_some() { source.key_id.clone() } else { String::new() },
            source_material_version: source.current_material_version,
            source_encryption_algorithm: source_rsa
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            destination_encryption_algorithm: destination_rsa
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
        })
        .await?;
    let algorithm_name = |rsa: Option<EncryptionAlgorithm>| {
        rsa.map_or("SYMMETRIC_DEFAULT", EncryptionAlgorithm::as_str)
    };
    Ok(Output::new(json!({
        "CiphertextBlob": b64(&sealed.ciphertext_blob),
        "SourceKeyId": source.arn,
        "KeyId": destination.arn,
        "SourceEncryptionAlgorithm": algorithm_name(source_rsa),
        "DestinationEncryptionAlgorithm": algorithm_name(destination_rsa),
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
    check_symmetric_key(&key, "GenerateDataKey")?;
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
