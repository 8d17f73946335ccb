//! Asymmetric keys: Sign, Verify, GetPublicKey, GenerateDataKeyPair(WithoutPlaintext) and
//! DeriveSharedSecret (RSA-OAEP Encrypt/Decrypt/ReEncrypt are in `crypto`). The gateway
//! checks the request against AWS's enums and limits, the key's usage, state and spec;
//! the crypto service holds the private keys and does the cryptography. Which algorithm
//! goes with which spec comes from `kms_crypto_core::asym`, the one place that knows.

use kms_bus::crypto as op;
use kms_core::{validate, ErrorCode, KeySpec, KeyUsage, KmsError, KmsResult, Usage};
use kms_crypto_core::asym::{
    AsymSpec, EncryptionAlgorithm, KeyAgreementAlgorithm, MessageType, SigningAlgorithm,
};
use kms_proto::v1 as wire;
use serde_json::{json, Value};

use super::{b64, context_entries, Call, Output};
use crate::access::Access;
use crate::params::Params;

/// AWS's `SigningAlgorithmSpec` values; those not offered here (SM2, Ed25519, ML-DSA keys
/// do not exist in this service) are incompatible with every key, as AWS answers for a
/// key spec that does not support them.
const SIGNING_ALGORITHMS: &[&str] = &[
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "ECDSA_SHA_256",
    "ECDSA_SHA_384",
    "ECDSA_SHA_512",
    "SM2DSA",
    "ML_DSA_SHAKE_256",
    "ED25519_SHA_512",
    "ED25519_PH_SHA_512",
];

/// AWS's `DataKeyPairSpec` values; the ones not offered here are unsupported.
const KEY_PAIR_SPECS: &[&str] = &[
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "SM2",
    "ECC_NIST_EDWARDS25519",
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
];

fn enum_error(member: &str, value: &str, values: &[&str]) -> KmsError {
    validate::constraint(
        &crate::params::wire_field(member),
        Some(value),
        &format!("satisfy enum value set: [{}]", values.join(", ")),
    )
}

/// The asymmetric spec of a key, if it has one.
pub(super) fn asym_spec(key: &wire::KeyRecord) -> Option<AsymSpec> {
    AsymSpec::parse(&key.key_spec)
}

/// The algorithm lists DescribeKey and GetPublicKey show for a key: its encryption
/// algorithms (symmetric and RSA ENCRYPT_DECRYPT keys), signing algorithms (SIGN_VERIFY),
/// key agreement algorithms (KEY_AGREEMENT) or MAC algorithm (HMAC keys).
pub(super) fn algorithm_lists(key_spec: &str, key_usage: &str) -> Vec<(&'static str, Value)> {
    if let Some(mac) = kms_crypto_core::MacAlgorithm::for_key_spec(key_spec) {
        return vec![("MacAlgorithms", json!([mac.as_str()]))];
    }
    let Some(spec) = AsymSpec::parse(key_spec) else {
        return vec![("EncryptionAlgorithms", json!(["SYMMETRIC_DEFAULT"]))];
    };
    let names = |list: Vec<&'static str>| json!(list);
    match KeyUsage::parse(key_usage) {
        Some(KeyUsage::EncryptDecrypt) => vec![(
            "EncryptionAlgorithms",
            names(EncryptionAlgorithm::for_spec(spec).into_iter().map(|a| a.as_str()).collect()),
        )],
        Some(KeyUsage::SignVerify) => vec![(
            "SigningAlgorithms",
            names(SigningAlgorithm::for_spec(spec).into_iter().map(|a| a.as_str()).collect()),
        )],
        Some(KeyUsage::KeyAgreement) => vec![(
            "KeyAgreementAlgorithms",
            names(KeyAgreementAlgorithm::for_spec(spec).into_iter().map(|a| a.as_str()).collect()),
        )],
        Some(KeyUsage::GenerateVerifyMac) | None => Vec::new(),
    }
}

fn wrong_usage(key: &wire::KeyRecord, operation: &str) -> KmsError {
    KmsError::new(
        ErrorCode::InvalidKeyUsage,
        format!("{} key usage is {} which is not valid for {operation}.", key.arn, key.key_usage),
    )
}

fn incompatible(algorithm: &str, key: &wire::KeyRecord) -> KmsError {
    KmsError::new(
        ErrorCode::InvalidKeyUsage,
        format!("Algorithm {algorithm} is incompatible with key spec {}.", key.key_spec),
    )
}

/// `DryRun`: the call was authorized and would have succeeded.
fn dry_run(p: &Params) -> KmsResult<()> {
    if p.opt_bool("DryRun")?.unwrap_or(false) {
        return Err(KmsError::new(
            ErrorCode::DryRunOperation,
            "The request would have succeeded, but the DryRun option is set.",
        ));
    }
    Ok(())
}

/// What Sign and Verify ask: the key, the algorithm (checked against the key's spec), the
/// message type and the message.
struct Signing {
    key: wire::KeyRecord,
    algorithm: SigningAlgorithm,
    message_type: MessageType,
    message: zeroize::Zeroizing<Vec<u8>>,
}

async fn signing(call: &Call<'_>, p: &Params, action: &'static str) -> KmsResult<Signing> {
    let key_ref = p.str("KeyId")?;
    let message = p.blob("Message")?;
    validate::blob_length("message", message.len(), 1, kms_crypto_core::asym::MAX_MESSAGE_LEN)?;
    let type_name = p.opt_str("MessageType")?.unwrap_or("RAW");
    let message_type = match type_name {
        "EXTERNAL_MU" => {
            return Err(KmsError::validation(
                "The EXTERNAL_MU message type is valid only for ML_DSA key specs.",
            ))
        }
        other => MessageType::parse(other)
            .ok_or_else(|| enum_error("MessageType", other, &["RAW", "DIGEST", "EXTERNAL_MU"]))?,
    };
    let algorithm_name = p.str("SigningAlgorithm")?;
    if !SIGNING_ALGORITHMS.contains(&algorithm_name) {
        return Err(enum_error("SigningAlgorithm", algorithm_name, SIGNING_ALGORITHMS));
    }
    let access = Access::cross_account(action)
        .condition("kms:SigningAlgorithm", algorithm_name)
        .condition("kms:MessageType", type_name);
    let (key, domain) = call.usable(key_ref, Usage::Cryptographic, access).await?;
    if domain.usage != KeyUsage::SignVerify {
        return Err(wrong_usage(&key, "Sign/Verify"));
    }
    let algorithm = SigningAlgorithm::parse(algorithm_name)
        .filter(|a| asym_spec(&key).is_some_and(|spec| a.supports(spec)))
        .ok_or_else(|| incompatible(algorithm_name, &key))?;
    if message_type == MessageType::Digest && message.len() != algorithm.digest_len() {
        return Err(KmsError::validation(format!(
            "Digest is invalid length for algorithm {}.",
            algorithm.as_str()
        )));
    }
    dry_run(p)?;
    Ok(Signing { key, algorithm, message_type, message })
}

pub(super) async fn sign(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let s = signing(call, p, "kms:Sign").await?;
    let signed = call
        .call::<op::Sign>(&wire::SignRequest {
            caller: call.caller(),
            key_id: s.key.key_id.clone(),
            material_version: s.key.current_material_version,
            message: s.message.to_vec(),
            message_type: s.message_type.as_str().to_owned(),
            signing_algorithm: s.algorithm.as_str().to_owned(),
        })
        .await?;
    Ok(Output::new(json!({
        "KeyId": s.key.arn,
        "Signature": b64(&signed.signature),
        "SigningAlgorithm": s.algorithm.as_str(),
    })))
}

pub(super) async fn verify(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let signature = p.blob("Signature")?;
    validate::blob_length("signature", signature.len(), 1, 6144)?;
    let s = signing(call, p, "kms:Verify").await?;
    call.call::<op::Verify>(&wire::VerifyRequest {
        caller: call.caller(),
        key_id: s.key.key_id.clone(),
        material_version: s.key.current_material_version,
        message: s.message.to_vec(),
        message_type: s.message_type.as_str().to_owned(),
        signing_algorithm: s.algorithm.as_str().to_owned(),
        signature: signature.to_vec(),
    })
    .await?;
    Ok(Output::new(json!({
        "KeyId": s.key.arn,
        "SignatureValid": true,
        "SigningAlgorithm": s.algorithm.as_str(),
    })))
}

pub(super) async fn get_public_key(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let (key, _) = call
        .usable(key_ref, Usage::Cryptographic, Access::cross_account("kms:GetPublicKey"))
        .await?;
    if asym_spec(&key).is_none() {
        return Err(KmsError::new(
            ErrorCode::UnsupportedOperation,
            format!("{} key spec {} does not have a public key.", key.arn, key.key_spec),
        ));
    }
    let public = call
        .call::<op::GetPublicKey>(&wire::GetPublicKeyRequest {
            caller: call.caller(),
            key_id: key.key_id.clone(),
            material_version: key.current_material_version,
        })
        .await?;
    let mut body = json!({
        "KeyId": key.arn,
        "PublicKey": b64(&public.public_key),
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        "KeyUsage": key.key_usage,
    });
    if let Some(obj) = body.as_object_mut() {
        for (member, list) in algorithm_lists(&key.key_spec, &key.key_usage) {
            obj.insert(member.into(), list);
        }
    }
    Ok(Output::new(body))
}

pub(super) async fn generate_data_key_pair(
    call: &Call<'_>,
    p: &Params,
    include_plaintext: bool,
) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let spec_name = p.str("KeyPairSpec")?;
    let spec = match AsymSpec::parse(spec_name) {
        Some(spec) => spec,
        None if KEY_PAIR_SPECS.contains(&spec_name) => {
            return Err(KmsError::new(
                ErrorCode::UnsupportedOperation,
                format!("KeyPairSpec {spec_name} is not supported by this service"),
            ))
        }
        None => return Err(enum_error("KeyPairSpec", spec_name, KEY_PAIR_SPECS)),
    };
    let context = p.context("EncryptionContext")?;
    let action = if include_plaintext {
        "kms:GenerateDataKeyPair"
    } else {
        "kms:GenerateDataKeyPairWithoutPlaintext"
    };
    let access = Access::cross_account(action)
        .context(&context)
        .condition("kms:DataKeyPairSpec", spec.as_str())
        .condition("kms:EncryptionAlgorithm", "SYMMETRIC_DEFAULT");
    let (key, domain) = call.usable(key_ref, Usage::Cryptographic, access).await?;
    if domain.usage != KeyUsage::EncryptDecrypt || domain.spec != KeySpec::SymmetricDefault {
        return Err(KmsError::new(
            ErrorCode::InvalidKeyUsage,
            format!(
                "{} key spec {} and key usage {} are not valid for GenerateDataKeyPair: it \
                 needs a symmetric encryption key.",
                key.arn, key.key_spec, key.key_usage
            ),
        ));
    }
    dry_run(p)?;
    let generated = call
        .call::<op::GenerateDataKeyPair>(&wire::GenerateDataKeyPairRequest {
            caller: call.caller(),
            key_id: key.key_id.clone(),
            material_version: key.current_material_version,
            key_pair_spec: spec.as_str().to_owned(),
            context: context_entries(&context),
            include_plaintext,
        })
        .await?;
    let private_key = zeroize::Zeroizing::new(generated.private_key_plaintext);
    let mut body = json!({
        "PrivateKeyCiphertextBlob": b64(&generated.private_key_ciphertext_blob),
        "PublicKey": b64(&generated.public_key),
        "KeyId": key.arn,
        "KeyPairSpec": spec.as_str(),
    });
    if include_plaintext {
        if let Some(obj) = body.as_object_mut() {
            obj.insert("PrivateKeyPlaintext".into(), json!(b64(&private_key)));
        }
    }
    Ok(Output::new(body))
}

pub(super) async fn derive_shared_secret(call: &Call<'_>, p: &Params) -> KmsResult<Output> {
    let key_ref = p.str("KeyId")?;
    let algorithm_name = p.str("KeyAgreementAlgorithm")?;
    let algorithm = KeyAgreementAlgorithm::parse(algorithm_name)
        .ok_or_else(|| enum_error("KeyAgreementAlgorithm", algorithm_name, &["ECDH"]))?;
    let public_key = p.blob("PublicKey")?;
    validate::blob_length("publicKey", public_key.len(), 1, 8192)?;
    let access = Access::cross_account("kms:DeriveSharedSecret")
        .condition("kms:KeyAgreementAlgorithm", algorithm.as_str());
    let (key, domain) = call.usable(key_ref, Usage::Cryptographic, access).await?;
    if domain.usage != KeyUsage::KeyAgreement {
        return Err(wrong_usage(&key, "DeriveSharedSecret"));
    }
    dry_run(p)?;
    let derived = call
        .call::<op::DeriveSharedSecret>(&wire::DeriveSharedSecretRequest {
            caller: call.caller(),
            key_id: key.key_id.clone(),
            material_version: key.current_material_version,
            public_key: public_key.to_vec(),
            key_agreement_algorithm: algorithm.as_str().to_owned(),
        })
        .await?;
    let secret = zeroize::Zeroizing::new(derived.shared_secret);
    Ok(Output::new(json!({
        "KeyId": key.arn,
        "SharedSecret": b64(&secret),
        "KeyAgreementAlgorithm": algorithm.as_str(),
        "KeyOrigin": key.origin,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &str, usage: &str, expected: &[(&str, &[&str])]) {
        let got: Vec<(&str, Vec<String>)> = algorithm_lists(spec, usage)
            .into_iter()
            .map(|(member, list)| {
                let names = list
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                (member, names)
            })
            .collect();
        let expected: Vec<(&str, Vec<String>)> = expected
            .iter()
            .map(|(member, names)| (*member, names.iter().map(|n| (*n).to_owned()).collect()))
            .collect();
        assert_eq!(got, expected, "{spec} {usage}");
    }

    #[test]
    fn algorithm_lists_are_aws_s() {
        check(
            "SYMMETRIC_DEFAULT",
            "ENCRYPT_DECRYPT",
            &[("EncryptionAlgorithms", &["SYMMETRIC_DEFAULT"])],
        );
        check("HMAC_384", "GENERATE_VERIFY_MAC", &[("MacAlgorithms", &["HMAC_SHA_384"])]);
        check(
            "RSA_3072",
            "ENCRYPT_DECRYPT",
            &[("EncryptionAlgorithms", &["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])],
        );
        check(
            "RSA_2048",
            "SIGN_VERIFY",
            &[(
                "SigningAlgorithms",
                &[
                    "RSASSA_PSS_SHA_256",
                    "RSASSA_PSS_SHA_384",
                    "RSASSA_PSS_SHA_512",
                    "RSASSA_PKCS1_V1_5_SHA_256",
                    "RSASSA_PKCS1_V1_5_SHA_384",
                    "RSASSA_PKCS1_V1_5_SHA_512",
                ],
            )],
        );
        check("ECC_NIST_P384", "SIGN_VERIFY", &[("SigningAlgorithms", &["ECDSA_SHA_384"])]);
        check("ECC_SECG_P256K1", "SIGN_VERIFY", &[("SigningAlgorithms", &["ECDSA_SHA_256"])]);
        check("ECC_NIST_P521", "KEY_AGREEMENT", &[("KeyAgreementAlgorithms", &["ECDH"])]);
    }

    #[test]
    fn enum_sets_name_aws_s_values() {
        for alg in SigningAlgorithm::ALL {
            assert!(SIGNING_ALGORITHMS.contains(&alg.as_str()));
        }
        for spec in AsymSpec::ALL {
            assert!(KEY_PAIR_SPECS.contains(&spec.as_str()));
        }
        let e = enum_error("SigningAlgorithm", "NOPE", &["A", "B"]);
        assert_eq!(
            e.message,
            "1 validation error detected: Value 'NOPE' at 'signingAlgorithm' failed to satisfy \
             constraint: Member must satisfy enum value set: [A, B]"
        );
    }
}
