//! Encrypt, Decrypt, ReEncrypt, data keys and random bytes through aws-sdk-kms, with every
//! error a user can provoke: wrong or missing encryption context, tampered bytes, wrong
//! KeyId, limits.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, EncryptionAlgorithmSpec};

use crate::sandbox::{error_code, Sandbox, ACCOUNT_A, REGION};

fn arn(id: &str) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT_A}:key/{id}")
}

#[tokio::test]
async fn encrypt_decrypt_round_trip_with_context() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let id = sb.create_key(ACCOUNT_A).await;
    kms.create_alias().alias_name("alias/app").target_key_id(&id).send().await.unwrap();
    let plaintext = b"Sensitive data to encrypt".to_vec();
    let encrypted = kms
        .encrypt()
        .key_id("alias/app")
        .plaintext(Blob::new(plaintext.clone()))
        .encryption_context("Department", "Finance")
        .encryption_context("Purpose", "Audit")
        .send()
        .await
        .unwrap();
    assert_eq!(encrypted.key_id(), Some(arn(&id).as_str()));
    assert_eq!(encrypted.encryption_algorithm(), Some(&EncryptionAlgorithmSpec::SymmetricDefault));
    let blob = encrypted.ciphertext_blob().unwrap().clone();
    assert!(!blob.as_ref().windows(plaintext.len()).any(|w| w == plaintext.as_slice()));

    let decrypted = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("Purpose", "Audit")
        .encryption_context("Department", "Finance")
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref(), plaintext.as_slice());
    assert_eq!(decrypted.key_id(), Some(arn(&id).as_str()));

    // Naming the key is optional, but a different key is refused.
    let with_key = kms
        .decrypt()
        .key_id("alias/app")
        .ciphertext_blob(blob.clone())
        .encryption_context("Purpose", "Audit")
        .encryption_context("Department", "Finance")
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.plaintext().unwrap().as_ref(), plaintext.as_slice());
    let other = sb.create_key(ACCOUNT_A).await;
    assert_eq!(
        error_code(
            kms.decrypt()
                .key_id(&other)
                .ciphertext_blob(blob.clone())
                .encryption_context("Purpose", "Audit")
                .encryption_context("Department", "Finance")
                .send()
                .await
        ),
        "IncorrectKeyException"
    );

    for context in [
        vec![],
        vec![("Department", "Finance")],
        vec![("Department", "Finance"), ("Purpose", "Other")],
    ] {
        let mut request = kms.decrypt().ciphertext_blob(blob.clone());
        for (k, v) in &context {
            request = request.encryption_context(*k, *v);
        }
        assert_eq!(error_code(request.send().await), "InvalidCiphertextException", "{context:?}");
    }
}

#[tokio::test]
async fn every_tampered_byte_is_invalid_ciphertext() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let id = sb.create_key(ACCOUNT_A).await;
    let blob =
        kms.encrypt().key_id(&id).plaintext(Blob::new(b"abc".to_vec())).send().await.unwrap();
    let blob = blob.ciphertext_blob().unwrap().as_ref().to_vec();
    // Every position: format byte, key id, version, nonce, ciphertext, tag.
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x80;
        let code = error_code(kms.decrypt().ciphertext_blob(Blob::new(bad)).send().await);
        assert_eq!(code, "InvalidCiphertextException", "byte {i}");
    }
    let truncated = Blob::new(blob[..blob.len() - 1].to_vec());
    assert_eq!(
        error_code(kms.decrypt().ciphertext_blob(truncated).send().await),
        "InvalidCiphertextException"
    );
    assert_eq!(
        error_code(kms.decrypt().ciphertext_blob(Blob::new(vec![0u8; 6145])).send().await),
        "ValidationException"
    );
}

#[tokio::test]
async fn plaintext_limits() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let id = sb.create_key(ACCOUNT_A).await;
    let max = vec![7u8; 4096];
    let ok = kms.encrypt().key_id(&id).plaintext(Blob::new(max.clone())).send().await.unwrap();
    let back =
        kms.decrypt().ciphertext_blob(ok.ciphertext_blob().unwrap().clone()).send().await.unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), max.as_slice());
    assert_eq!(
        error_code(kms.encrypt().key_id(&id).plaintext(Blob::new(vec![0u8; 4097])).send().await),
        "ValidationException"
    );
    assert_eq!(
        error_code(kms.encrypt().key_id(&id).plaintext(Blob::new(Vec::new())).send().await),
        "ValidationException"
    );
    assert_eq!(
        error_code(
            kms.encrypt()
                .key_id(&id)
                .plaintext(Blob::new(b"x".to_vec()))
                .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
                .send()
                .await
        ),
        "InvalidKeyUsageException"
    );
    assert_eq!(
        error_code(
            kms.encrypt().key_id("alias/missing").plaintext(Blob::new(b"x".to_vec())).send().await
        ),
        "NotFoundException"
    );
}

#[tokio::test]
async fn re_encrypt_moves_ciphertext_between_keys_and_contexts() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let (k1, k2) = (sb.create_key(ACCOUNT_A).await, sb.create_key(ACCOUNT_A).await);
    let blob = kms
        .encrypt()
        .key_id(&k1)
        .plaintext(Blob::new(b"rotate me".to_vec()))
        .encryption_context("Department", "Finance")
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let moved = kms
        .re_encrypt()
        .ciphertext_blob(blob.clone())
        .source_encryption_context("Department", "Finance")
        .destination_key_id(&k2)
        .destination_encryption_context("Department", "Finance")
        .destination_encryption_context("Rotated", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(moved.source_key_id(), Some(arn(&k1).as_str()));
    assert_eq!(moved.key_id(), Some(arn(&k2).as_str()));
    let back = kms
        .decrypt()
        .ciphertext_blob(moved.ciphertext_blob().unwrap().clone())
        .encryption_context("Department", "Finance")
        .encryption_context("Rotated", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), b"rotate me");
    assert_eq!(back.key_id(), Some(arn(&k2).as_str()));

    assert_eq!(
        error_code(
            kms.re_encrypt().ciphertext_blob(blob.clone()).destination_key_id(&k2).send().await
        ),
        "InvalidCiphertextException",
        "the source context is required"
    );
    assert_eq!(
        error_code(
            kms.re_encrypt()
                .ciphertext_blob(blob.clone())
                .source_key_id(&k2)
                .source_encryption_context("Department", "Finance")
                .destination_key_id(&k2)
                .send()
                .await
        ),
        "IncorrectKeyException"
    );
    kms.disable_key().key_id(&k2).send().await.unwrap();
    assert_eq!(
        error_code(
            kms.re_encrypt()
                .ciphertext_blob(blob)
                .source_encryption_context("Department", "Finance")
                .destination_key_id(&k2)
                .send()
                .await
        ),
        "DisabledException"
    );
}

#[tokio::test]
async fn data_keys_and_random_bytes() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let id = sb.create_key(ACCOUNT_A).await;
    for (spec, len) in [(DataKeySpec::Aes256, 32), (DataKeySpec::Aes128, 16)] {
        let dk = kms
            .generate_data_key()
            .key_id(&id)
            .key_spec(spec)
            .encryption_context("Application", "MyApp")
            .send()
            .await
            .unwrap();
        assert_eq!(dk.key_id(), Some(arn(&id).as_str()));
        let plaintext = dk.plaintext().unwrap().as_ref().to_vec();
        assert_eq!(plaintext.len(), len);
        let back = kms
            .decrypt()
            .ciphertext_blob(dk.ciphertext_blob().unwrap().clone())
            .encryption_context("Application", "MyApp")
            .send()
            .await
            .unwrap();
        assert_eq!(back.plaintext().unwrap().as_ref(), plaintext.as_slice());
    }
    let by_bytes = kms.generate_data_key().key_id(&id).number_of_bytes(64).send().await.unwrap();
    assert_eq!(by_bytes.plaintext().unwrap().as_ref().len(), 64);

    let without = kms
        .generate_data_key_without_plaintext()
        .key_id(&id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let blob = without.ciphertext_blob().unwrap().clone();
    let recovered = kms.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(recovered.plaintext().unwrap().as_ref().len(), 32);

    assert_eq!(
        error_code(kms.generate_data_key().key_id(&id).send().await),
        "ValidationException",
        "neither KeySpec nor NumberOfBytes"
    );
    assert_eq!(
        error_code(
            kms.generate_data_key()
                .key_id(&id)
                .key_spec(DataKeySpec::Aes256)
                .number_of_bytes(32)
                .send()
                .await
        ),
        "ValidationException",
        "both KeySpec and NumberOfBytes"
    );
    for n in [0, 1025] {
        assert_eq!(
            error_code(kms.generate_data_key().key_id(&id).number_of_bytes(n).send().await),
            "ValidationException"
        );
        assert_eq!(
            error_code(kms.generate_random().number_of_bytes(n).send().await),
            "ValidationException"
        );
    }
    let a = kms.generate_random().number_of_bytes(32).send().await.unwrap().plaintext.unwrap();
    let b = kms.generate_random().number_of_bytes(1024).send().await.unwrap().plaintext.unwrap();
    assert_eq!((a.as_ref().len(), b.as_ref().len()), (32, 1024));
    assert_ne!(a.as_ref(), &b.as_ref()[..32]);
}
