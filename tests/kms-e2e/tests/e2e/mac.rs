//! HMAC keys through aws-sdk-kms: every HMAC key spec generates MACs that verify, a MAC
//! that does not match is KMSInvalidMacException, and keys are used only for what their
//! usage allows.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MacAlgorithmSpec};

use crate::sandbox::{error_code, Sandbox, ACCOUNT_A};

#[tokio::test]
async fn hmac_keys_generate_and_verify_macs() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let message = Blob::new(b"sign me, but symmetrically".to_vec());
    let cases = [
        (KeySpec::Hmac224, MacAlgorithmSpec::HmacSha224, 28),
        (KeySpec::Hmac256, MacAlgorithmSpec::HmacSha256, 32),
        (KeySpec::Hmac384, MacAlgorithmSpec::HmacSha384, 48),
        (KeySpec::Hmac512, MacAlgorithmSpec::HmacSha512, 64),
    ];
    let mut keys = Vec::new();
    for (spec, algorithm, mac_len) in cases {
        let meta = kms
            .create_key()
            .key_spec(spec.clone())
            .key_usage(KeyUsageType::GenerateVerifyMac)
            .send()
            .await
            .unwrap()
            .key_metadata
            .unwrap();
        assert_eq!(meta.mac_algorithms(), std::slice::from_ref(&algorithm));
        assert!(meta.encryption_algorithms().is_empty());
        let key = meta.key_id().to_owned();
        let mac = kms
            .generate_mac()
            .key_id(&key)
            .message(message.clone())
            .mac_algorithm(algorithm.clone())
            .send()
            .await
            .unwrap()
            .mac
            .unwrap();
        assert_eq!(mac.as_ref().len(), mac_len, "{spec:?}");
        let verified = kms
            .verify_mac()
            .key_id(&key)
            .message(message.clone())
            .mac_algorithm(algorithm.clone())
            .mac(mac.clone())
            .send()
            .await
            .unwrap();
        assert!(verified.mac_valid());
        let mut bad = mac.into_inner();
        bad[0] ^= 1;
        let refused = kms
            .verify_mac()
            .key_id(&key)
            .message(message.clone())
            .mac_algorithm(algorithm.clone())
            .mac(Blob::new(bad))
            .send()
            .await;
        assert_eq!(error_code(refused), "KMSInvalidMacException", "{spec:?}");
        keys.push((key, algorithm));
    }

    // A MAC made with one key does not verify with another of the same spec.
    let other = kms
        .create_key()
        .key_spec(KeySpec::Hmac256)
        .key_usage(KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let (k256, alg256) = &keys[1];
    let mac = kms
        .generate_mac()
        .key_id(k256)
        .message(message.clone())
        .mac_algorithm(alg256.clone())
        .send()
        .await
        .unwrap();
    let cross = kms
        .verify_mac()
        .key_id(&other)
        .message(message.clone())
        .mac_algorithm(alg256.clone())
        .mac(mac.mac.unwrap())
        .send()
        .await;
    assert_eq!(error_code(cross), "KMSInvalidMacException");

    // Usage and algorithm mismatches.
    let wrong_alg = kms
        .generate_mac()
        .key_id(k256)
        .message(message.clone())
        .mac_algorithm(MacAlgorithmSpec::HmacSha512)
        .send()
        .await;
    assert_eq!(error_code(wrong_alg), "InvalidKeyUsageException");
    let encrypt = kms.encrypt().key_id(k256).plaintext(message.clone()).send().await;
    assert_eq!(error_code(encrypt), "InvalidKeyUsageException");
    let symmetric = sb.create_key(ACCOUNT_A).await;
    let on_symmetric = kms
        .generate_mac()
        .key_id(&symmetric)
        .message(message.clone())
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .send()
        .await;
    assert_eq!(error_code(on_symmetric), "InvalidKeyUsageException");
    let mismatched = kms.create_key().key_spec(KeySpec::Hmac256).send().await;
    assert_eq!(error_code(mismatched), "ValidationException", "HMAC keys need GENERATE_VERIFY_MAC");
    kms.disable_key().key_id(k256).send().await.unwrap();
    let disabled =
        kms.generate_mac().key_id(k256).message(message).mac_algorithm(alg256.clone()).send().await;
    assert_eq!(error_code(disabled), "DisabledException");
}
