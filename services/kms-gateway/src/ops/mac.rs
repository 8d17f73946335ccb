//! HMAC keys: GenerateMac and VerifyMac. The MAC algorithm must be the one of the key's
//! spec; the crypto service computes and checks the MAC (in constant time).

use kms_bus::crypto as op;
use kms_core::{validate, ErrorCode, KeyUsage, KmsError, KmsResult, Usage};
use kms_crypto_core::MacAlgorithm;
use kms_proto::v1 as wire;
use serde_json::json;

use super::{b64, Call, Output};
use crate::access::Access;
use crate::params::Params;

/// The HMAC key, usable now, and the algorithm the request names (which must be its own).
async fn mac_key(
    call: &Call<'_>,
    p: &Params,
    action: &'static str,
) -> KmsResult<(wire::KeyRecord, MacAlgorithm)> {
    let key_ref = p.str("KeyId")?;
    let algorithm_name = p.str("MacAlgorithm")?;
    let algorithm = MacAlgorithm::parse(algorithm_name).ok_or_else(|| {
        validate::constraint(
            "macAlgorithm",
            Some(algorithm_name),
            "satisfy enum value set: [HMAC_SHA_224, HMAC_SHA_256, HMAC_SHA_384, HMAC_SHA_512]",
        )
    })?;
    let access = Access::cross_account(action).condition("kms:MacAlgorithm", algorithm.as_str());
    let (key, domain) = call.usable(key_ref, Usage::Cryptographic, access).await?;
    if domain.usage != KeyUsage::GenerateVerifyMac {
        return Err(KmsError::new(
            ErrorCode::InvalidKeyUsage,
            format!(
                "{} key usage is {} which is not valid for {}.",
                key.arn, key.key_usage, "GenerateMac/VerifyMac"
            ),
        ));
    }
    if MacAlgorithm::for_key_spec(&key.key_spec) != Some(algorithm) {
        return Err(KmsError::new(
            ErrorCode::InvalidKeyUsage,
            format!(
                "Algorithm {} is incompatible with key spec {}.",
                algorithm.as_str(),
                key.key_spec
            ),
        ));
    }
    Ok((key, algorithm))
}

fn message(p: &Params) -> KmsResult<zeroize::Zeroizing<Vec<u8>>> {
    let message = p.blob("Message")?;
    validate::blob_length("message", message.len(), 1, 4096)?;
    Ok(message)
}

pub(super) async fn generate_mac(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let message = message(p)?;
    let (key, algorithm) = mac_key(call, p, "kms:GenerateMac").await?;
    let mac = call
        .call::<op::GenerateMac>(&wire::GenerateMacRequest {
            caller: call.caller(),
            key_id: key.key_id.clone(),
            material_version: key.current_material_version,
            message: message.to_vec(),
            mac_algorithm: algorithm.as_str().to_owned(),
        })
        .await?;
    Ok(Output::new(json!({
        "Mac": b64(&mac.mac),
        "MacAlgorithm": algorithm.as_str(),
        "KeyId": key.arn,
    })))
}

pub(super) async fn verify_mac(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let message = message(p)?;
    let mac = p.blob("Mac")?;
    validate::blob_length("mac", mac.len(), 1, 6144)?;
    let (key, algorithm) = mac_key(call, p, "kms:VerifyMac").await?;
    call.call::<op::VerifyMac>(&wire::VerifyMacRequest {
        caller: call.caller(),
        key_id: key.key_id.clone(),
        material_version: key.current_material_version,
        message: message.to_vec(),
        mac_algorithm: algorithm.as_str().to_owned(),
        mac: mac.to_vec(),
    })
    .await?;
    Ok(Output::new(json!({
        "KeyId": key.arn,
        "MacValid": true,
        "MacAlgorithm": algorithm.as_str(),
    })))
}
