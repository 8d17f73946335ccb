//! Asymmetric keys through aws-sdk-kms, checked with a tool nobody here wrote (`openssl`):
//! signatures from Sign verify with `openssl dgst` and the GetPublicKey DER for every RSA
//! padding and every curve; `openssl pkeyutl` encrypts to an RSA key and KMS decrypts;
//! data key pairs work in `openssl` and their encrypted private key decrypts through
//! Decrypt; DeriveSharedSecret agrees with `openssl pkeyutl -derive`. Also the errors:
//! wrong usage, wrong algorithm, bad signatures, unsupported specs, and what the audit
//! trail keeps of these calls (algorithms, never messages or keys).

use std::path::Path;
use std::process::Command;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeyPairSpec, EncryptionAlgorithmSpec, KeyAgreementAlgorithmSpec, KeySpec, KeyUsageType,
    MessageType, OriginType, SigningAlgorithmSpec,
};
use base64::Engine;
use sha2::Digest;

use crate::sandbox::{error_code, Sandbox, ACCOUNT_A};

const MESSAGE: &[u8] = b"a release artifact signed by the KMS under test";

/// Runs openssl in `dir`; fails the test with its output unless it succeeds.
fn openssl(dir: &Path, args: &[&str]) -> String {
    String::from_utf8_lossy(&crate::sandbox::openssl(dir, args)).into_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

/// Writes a DER SubjectPublicKeyInfo as `<name>.pem` (openssl must read the DER).
fn public_pem(dir: &Path, name: &str, der: &[u8]) {
    write(dir, &format!("{name}.der"), der);
    openssl(
        dir,
        &[
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            &format!("{name}.der"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

async fn create(kms: &aws_sdk_kms::Client, spec: KeySpec, usage: KeyUsageType) -> String {
    kms.create_key()
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id
}

async fn public_key(kms: &aws_sdk_kms::Client, key: &str) -> Vec<u8> {
    kms.get_public_key().key_id(key).send().await.unwrap().public_key.unwrap().into_inner()
}

fn dgst_flag(algorithm: &SigningAlgorithmSpec) -> &'static str {
    let name = algorithm.as_str();
    if name.ends_with("256") {
        "-sha256"
    } else if name.ends_with("384") {
        "-sha384"
    } else {
        "-sha512"
    }
}

fn digest(algorithm: &SigningAlgorithmSpec, message: &[u8]) -> Vec<u8> {
    match dgst_flag(algorithm) {
        "-sha256" => sha2::Sha256::digest(message).to_vec(),
        "-sha384" => sha2::Sha384::digest(message).to_vec(),
        _ => sha2::Sha512::digest(message).to_vec(),
    }
}

/// `openssl dgst -verify` of `sig` over `msg` with `pub.pem`.
fn openssl_verifies(dir: &Path, algorithm: &SigningAlgorithmSpec) -> bool {
    let mut args = vec!["dgst", dgst_flag(algorithm), "-verify", "pub.pem"];
    let name = algorithm.as_str();
    if name.starts_with("RSASSA_PSS") {
        args.extend(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]);
    } else if name.starts_with("RSASSA_PKCS1") {
        args.extend(["-sigopt", "rsa_padding_mode:pkcs1"]);
    }
    args.extend(["-signature", "sig", "msg"]);
    let output = Command::new("openssl").args(&args).current_dir(dir).output().unwrap();
    output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "Verified OK"
}

async fn sign(
    kms: &aws_sdk_kms::Client,
    key: &str,
    algorithm: &SigningAlgorithmSpec,
    message_type: MessageType,
    message: &[u8],
) -> Vec<u8> {
    let signed = kms
        .sign()
        .key_id(key)
        .message(Blob::new(message.to_vec()))
        .message_type(message_type)
        .signing_algorithm(algorithm.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(signed.signing_algorithm(), Some(algorithm));
    signed.signature.unwrap().into_inner()
}

#[tokio::test]
async fn signatures_verify_with_openssl_for_every_padding_and_curve() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let specs = [
        KeySpec::Rsa2048,
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
        KeySpec::EccSecgP256K1,
    ];
    let mut checked = 0;
    for spec in specs {
        let key = create(&kms, spec.clone(), KeyUsageType::SignVerify).await;
        let described = kms.describe_key().key_id(&key).send().await.unwrap().key_metadata.unwrap();
        let algorithms = described.signing_algorithms().to_vec();
        assert!(described.encryption_algorithms().is_empty(), "{spec:?}");
        assert_eq!(described.key_usage(), Some(&KeyUsageType::SignVerify));
        let public = kms.get_public_key().key_id(&key).send().await.unwrap();
        assert_eq!(public.key_spec(), Some(&spec));
        assert_eq!(public.key_usage(), Some(&KeyUsageType::SignVerify));
        assert_eq!(public.signing_algorithms(), algorithms.as_slice());
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        public_pem(dir, "pub", public.public_key().unwrap().as_ref());
        write(dir, "msg", MESSAGE);
        for (i, algorithm) in algorithms.iter().enumerate() {
            let case = format!("{spec:?} {algorithm:?}");
            let signature = sign(&kms, &key, algorithm, MessageType::Raw, MESSAGE).await;
            write(dir, "sig", &signature);
            assert!(openssl_verifies(dir, algorithm), "openssl verifies {case}");
            // KMS verifies its own signature, also as the DIGEST openssl computes.
            let verified = kms
                .verify()
                .key_id(&key)
                .message(Blob::new(MESSAGE))
                .signing_algorithm(algorithm.clone())
                .signature(Blob::new(signature.clone()))
                .send()
                .await
                .unwrap();
            assert!(verified.signature_valid(), "{case}");
            let flag = dgst_flag(algorithm);
            openssl(dir, &["dgst", flag, "-binary", "-out", "digest", "msg"]);
            let verified = kms
                .verify()
                .key_id(&key)
                .message(Blob::new(read(dir, "digest")))
                .message_type(MessageType::Digest)
                .signing_algorithm(algorithm.clone())
                .signature(Blob::new(signature.clone()))
                .send()
                .await
                .unwrap();
            assert!(verified.signature_valid(), "DIGEST {case}");
            // A flipped bit anywhere is KMSInvalidSignatureException.
            let mut bad = signature.clone();
            let last = bad.len() - 1;
            bad[last / 2] ^= 0x10;
            let refused = kms
                .verify()
                .key_id(&key)
                .message(Blob::new(MESSAGE))
                .signing_algorithm(algorithm.clone())
                .signature(Blob::new(bad))
                .send()
                .await;
            assert_eq!(error_code(refused), "KMSInvalidSignatureException", "{case}");
            if i == 0 {
                // A DIGEST signed by KMS verifies in openssl over the message.
                let signature =
                    sign(&kms, &key, algorithm, MessageType::Digest, &digest(algorithm, MESSAGE))
                        .await;
                write(dir, "sig", &signature);
                assert!(openssl_verifies(dir, algorithm), "openssl verifies DIGEST {case}");
                let short = kms
                    .sign()
                    .key_id(&key)
                    .message(Blob::new(vec![1u8; 20]))
                    .message_type(MessageType::Digest)
                    .signing_algorithm(algorithm.clone())
                    .send()
                    .await;
                assert_eq!(error_code(short), "ValidationException", "{case}");
            }
            checked += 1;
        }
        // A signature openssl made with a key of its own does not verify under ours.
        let local = if spec == KeySpec::Rsa2048 {
            vec![
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "local.pem",
            ]
        } else {
            let curve = match spec {
                KeySpec::EccNistP256 => "ec_paramgen_curve:P-256",
                KeySpec::EccNistP384 => "ec_paramgen_curve:P-384",
                KeySpec::EccNistP521 => "ec_paramgen_curve:P-521",
                _ => "ec_paramgen_curve:secp256k1",
            };
            vec!["genpkey", "-algorithm", "EC", "-pkeyopt", curve, "-out", "local.pem"]
        };
        openssl(dir, &local);
        let algorithm = &algorithms[algorithms.len() - 1];
        let mut args = vec!["dgst", dgst_flag(algorithm), "-sign", "local.pem"];
        if algorithm.as_str().starts_with("RSASSA_PKCS1") {
            args.extend(["-sigopt", "rsa_padding_mode:pkcs1"]);
        }
        args.extend(["-out", "sig", "msg"]);
        openssl(dir, &args);
        let foreign = kms
            .verify()
            .key_id(&key)
            .message(Blob::new(MESSAGE))
            .signing_algorithm(algorithm.clone())
            .signature(Blob::new(read(dir, "sig")))
            .send()
            .await;
        assert_eq!(error_code(foreign), "KMSInvalidSignatureException", "{spec:?}");
    }
    assert_eq!(checked, 6 + 4);

    // Errors: an algorithm of another spec, encryption with a signing key, a disabled key.
    let ec = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let wrong = kms
        .sign()
        .key_id(&ec)
        .message(Blob::new(MESSAGE))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha384)
        .send()
        .await;
    assert_eq!(error_code(wrong), "InvalidKeyUsageException");
    let rsa_on_ec = kms
        .sign()
        .key_id(&ec)
        .message(Blob::new(MESSAGE))
        .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
        .send()
        .await;
    assert_eq!(error_code(rsa_on_ec), "InvalidKeyUsageException");
    let encrypt = kms.encrypt().key_id(&ec).plaintext(Blob::new(MESSAGE)).send().await;
    assert_eq!(error_code(encrypt), "InvalidKeyUsageException");
    let derive = kms
        .derive_shared_secret()
        .key_id(&ec)
        .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
        .public_key(Blob::new(public_key(&kms, &ec).await))
        .send()
        .await;
    assert_eq!(error_code(derive), "InvalidKeyUsageException");
    let too_long = kms
        .sign()
        .key_id(&ec)
        .message(Blob::new(vec![0u8; 4097]))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await;
    assert_eq!(error_code(too_long), "ValidationException");
    let symmetric = sb.create_key(ACCOUNT_A).await;
    let on_symmetric = kms
        .sign()
        .key_id(&symmetric)
        .message(Blob::new(MESSAGE))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await;
    assert_eq!(error_code(on_symmetric), "InvalidKeyUsageException");
    let no_public = kms.get_public_key().key_id(&symmetric).send().await;
    assert_eq!(error_code(no_public), "UnsupportedOperationException");
    kms.disable_key().key_id(&ec).send().await.unwrap();
    let disabled = kms
        .sign()
        .key_id(&ec)
        .message(Blob::new(MESSAGE))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await;
    assert_eq!(error_code(disabled), "DisabledException");
}

#[tokio::test]
async fn create_key_accepts_aws_s_spec_and_usage_pairs_only() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let refused = |spec: KeySpec, usage: Option<KeyUsageType>| {
        let kms = kms.clone();
        async move { error_code(kms.create_key().key_spec(spec).set_key_usage(usage).send().await) }
    };
    // KeyUsage defaults to ENCRYPT_DECRYPT, which no curve supports.
    assert_eq!(refused(KeySpec::EccNistP256, None).await, "ValidationException");
    assert_eq!(
        refused(KeySpec::EccSecgP256K1, Some(KeyUsageType::KeyAgreement)).await,
        "ValidationException"
    );
    assert_eq!(
        refused(KeySpec::Rsa2048, Some(KeyUsageType::KeyAgreement)).await,
        "ValidationException"
    );
    assert_eq!(
        refused(KeySpec::EccNistP384, Some(KeyUsageType::GenerateVerifyMac)).await,
        "ValidationException"
    );
    assert_eq!(
        refused(KeySpec::Sm2, Some(KeyUsageType::SignVerify)).await,
        "UnsupportedOperationException"
    );
    // An asymmetric key may wait for imported material (tests in import.rs).
    let imported = kms
        .create_key()
        .key_spec(KeySpec::EccNistP256)
        .key_usage(KeyUsageType::SignVerify)
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(imported.key_state(), Some(&aws_sdk_kms::types::KeyState::PendingImport));

    // An RSA key without KeyUsage encrypts; asymmetric keys do not rotate.
    let rsa =
        kms.create_key().key_spec(KeySpec::Rsa2048).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(rsa.key_usage(), Some(&KeyUsageType::EncryptDecrypt));
    assert_eq!(
        rsa.encryption_algorithms(),
        [EncryptionAlgorithmSpec::RsaesOaepSha1, EncryptionAlgorithmSpec::RsaesOaepSha256]
    );
    assert!(rsa.signing_algorithms().is_empty());
    let rotation = kms.enable_key_rotation().key_id(rsa.key_id()).send().await;
    assert_eq!(error_code(rotation), "UnsupportedOperationException");
    let agreement = kms
        .create_key()
        .key_spec(KeySpec::EccNistP521)
        .key_usage(KeyUsageType::KeyAgreement)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(agreement.key_agreement_algorithms(), [KeyAgreementAlgorithmSpec::Ecdh]);
    assert!(
        agreement.signing_algorithms().is_empty() && agreement.encryption_algorithms().is_empty()
    );
}

/// `openssl pkeyutl -encrypt` with OAEP and `md` (sha1 or sha256) to `pub.pem`.
fn openssl_oaep_encrypt(dir: &Path, md: &str, plaintext: &[u8]) -> Vec<u8> {
    write(dir, "pt", plaintext);
    let (oaep, mgf1) = (format!("rsa_oaep_md:{md}"), format!("rsa_mgf1_md:{md}"));
    openssl(
        dir,
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            &oaep,
            "-pkeyopt",
            &mgf1,
            "-in",
            "pt",
            "-out",
            "ct",
        ],
    );
    read(dir, "ct")
}

#[tokio::test]
async fn rsa_keys_decrypt_what_openssl_encrypts() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let key = create(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let public = kms.get_public_key().key_id(&key).send().await.unwrap();
    assert_eq!(
        public.encryption_algorithms(),
        [EncryptionAlgorithmSpec::RsaesOaepSha1, EncryptionAlgorithmSpec::RsaesOaepSha256]
    );
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    public_pem(dir, "pub", public.public_key().unwrap().as_ref());
    let decrypt =
        |ciphertext: Vec<u8>, algorithm: Option<EncryptionAlgorithmSpec>, key: Option<&str>| {
            kms.decrypt()
                .set_key_id(key.map(str::to_owned))
                .ciphertext_blob(Blob::new(ciphertext))
                .set_encryption_algorithm(algorithm)
                .send()
        };
    for (algorithm, md, max) in [
        (EncryptionAlgorithmSpec::RsaesOaepSha1, "sha1", 214),
        (EncryptionAlgorithmSpec::RsaesOaepSha256, "sha256", 190),
    ] {
        let plaintext: Vec<u8> = (0..max).map(|i| (i * 7 % 251) as u8).collect();
        let ciphertext = openssl_oaep_encrypt(dir, md, &plaintext);
        let opened =
            decrypt(ciphertext.clone(), Some(algorithm.clone()), Some(&key)).await.unwrap();
        assert_eq!(opened.plaintext().unwrap().as_ref(), plaintext, "{md}");
        assert_eq!(opened.encryption_algorithm(), Some(&algorithm));
        assert!(opened.key_id().unwrap().ends_with(&key));

        // KMS encrypts at the limit and not beyond; only KMS decrypts its ciphertext.
        let sealed = kms
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(plaintext.clone()))
            .encryption_algorithm(algorithm.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(sealed.encryption_algorithm(), Some(&algorithm));
        let blob = sealed.ciphertext_blob.unwrap().into_inner();
        assert_eq!(blob.len(), 256);
        let opened = decrypt(blob.clone(), Some(algorithm.clone()), Some(&key)).await.unwrap();
        assert_eq!(opened.plaintext().unwrap().as_ref(), plaintext);
        let mut longer = plaintext.clone();
        longer.push(0);
        let too_long = kms
            .encrypt()
            .key_id(&key)
            .plaintext(Blob::new(longer))
            .encryption_algorithm(algorithm.clone())
            .send()
            .await;
        assert_eq!(error_code(too_long), "ValidationException", "{md}");
        // No KeyId: the ciphertext does not name its key.
        assert_eq!(
            error_code(decrypt(blob.clone(), Some(algorithm.clone()), None).await),
            "ValidationException"
        );
        let mut tampered = blob;
        tampered[100] ^= 1;
        assert_eq!(
            error_code(decrypt(tampered, Some(algorithm.clone()), Some(&key)).await),
            "InvalidCiphertextException"
        );
    }
    let sha1 = openssl_oaep_encrypt(dir, "sha1", b"padding matters");
    assert_eq!(
        error_code(decrypt(sha1, Some(EncryptionAlgorithmSpec::RsaesOaepSha256), Some(&key)).await),
        "InvalidCiphertextException"
    );

    // EncryptionAlgorithm is required for RSA keys; context is for symmetric keys only.
    let default = kms.encrypt().key_id(&key).plaintext(Blob::new(MESSAGE)).send().await;
    assert_eq!(error_code(default), "InvalidKeyUsageException");
    let with_context = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(MESSAGE))
        .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
        .encryption_context("purpose", "test")
        .send()
        .await;
    assert_eq!(error_code(with_context), "ValidationException");
    let symmetric = sb.create_key(ACCOUNT_A).await;
    let rsa_on_symmetric = kms
        .encrypt()
        .key_id(&symmetric)
        .plaintext(Blob::new(MESSAGE))
        .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
        .send()
        .await;
    assert_eq!(error_code(rsa_on_symmetric), "InvalidKeyUsageException");
    let data_key = kms.generate_data_key().key_id(&key).number_of_bytes(32).send().await;
    assert_eq!(error_code(data_key), "InvalidKeyUsageException");
    let sign = kms
        .sign()
        .key_id(&key)
        .message(Blob::new(MESSAGE))
        .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
        .send()
        .await;
    assert_eq!(error_code(sign), "InvalidKeyUsageException");

    // ReEncrypt from the RSA key to a symmetric key and back.
    let ciphertext = openssl_oaep_encrypt(dir, "sha256", MESSAGE);
    let moved = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .source_key_id(&key)
        .source_encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
        .destination_key_id(&symmetric)
        .destination_encryption_context("moved", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(
        moved.source_encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::RsaesOaepSha256)
    );
    assert_eq!(
        moved.destination_encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::SymmetricDefault)
    );
    let back = kms
        .re_encrypt()
        .ciphertext_blob(moved.ciphertext_blob.unwrap())
        .source_encryption_context("moved", "yes")
        .destination_key_id(&key)
        .destination_encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha1)
        .send()
        .await
        .unwrap();
    let opened = decrypt(
        back.ciphertext_blob.unwrap().into_inner(),
        Some(EncryptionAlgorithmSpec::RsaesOaepSha1),
        Some(&key),
    )
    .await
    .unwrap();
    assert_eq!(opened.plaintext().unwrap().as_ref(), MESSAGE);
}

#[tokio::test]
async fn data_key_pairs_work_in_openssl_and_decrypt_through_kms() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let wrapping = sb.create_key(ACCOUNT_A).await;
    for spec in [DataKeyPairSpec::EccNistP256, DataKeyPairSpec::Rsa2048] {
        let pair = kms
            .generate_data_key_pair()
            .key_id(&wrapping)
            .key_pair_spec(spec.clone())
            .encryption_context("purpose", "e2e")
            .send()
            .await
            .unwrap();
        assert_eq!(pair.key_pair_spec(), Some(&spec));
        assert!(pair.key_id().unwrap().ends_with(&wrapping));
        let private = pair.private_key_plaintext().unwrap().as_ref().to_vec();
        let public = pair.public_key().unwrap().as_ref().to_vec();
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        // openssl reads the PKCS#8 DER private key, derives our public key, signs with it
        // and verifies with the public key.
        write(dir, "key.der", &private);
        openssl(dir, &["pkey", "-inform", "DER", "-in", "key.der", "-out", "key.pem"]);
        openssl(
            dir,
            &["pkey", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "derived.der"],
        );
        assert_eq!(read(dir, "derived.der"), public, "{spec:?}");
        public_pem(dir, "pub", &public);
        write(dir, "msg", MESSAGE);
        openssl(dir, &["dgst", "-sha256", "-sign", "key.pem", "-out", "sig", "msg"]);
        let verified =
            openssl(dir, &["dgst", "-sha256", "-verify", "pub.pem", "-signature", "sig", "msg"]);
        assert_eq!(verified.trim(), "Verified OK");

        // The encrypted copy decrypts, with the same context, to the same bytes.
        let encrypted = pair.private_key_ciphertext_blob().unwrap().clone();
        let opened = kms
            .decrypt()
            .ciphertext_blob(encrypted.clone())
            .encryption_context("purpose", "e2e")
            .send()
            .await
            .unwrap();
        assert_eq!(opened.plaintext().unwrap().as_ref(), private);
        let without_context = kms.decrypt().ciphertext_blob(encrypted).send().await;
        assert_eq!(error_code(without_context), "InvalidCiphertextException");
    }

    let without = kms
        .generate_data_key_pair_without_plaintext()
        .key_id(&wrapping)
        .key_pair_spec(DataKeyPairSpec::EccSecgP256K1)
        .send()
        .await
        .unwrap();
    let public = without.public_key().unwrap().as_ref().to_vec();
    let opened = kms
        .decrypt()
        .ciphertext_blob(without.private_key_ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "key.der", opened.plaintext().unwrap().as_ref());
    openssl(
        dir.path(),
        &[
            "pkey",
            "-inform",
            "DER",
            "-in",
            "key.der",
            "-pubout",
            "-outform",
            "DER",
            "-out",
            "derived.der",
        ],
    );
    assert_eq!(read(dir.path(), "derived.der"), public);

    // Only symmetric encryption keys wrap data key pairs; SM2 is not offered.
    let signing = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let refused = kms
        .generate_data_key_pair()
        .key_id(&signing)
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .send()
        .await;
    assert_eq!(error_code(refused), "InvalidKeyUsageException");
    let sm2 = kms
        .generate_data_key_pair()
        .key_id(&wrapping)
        .key_pair_spec(DataKeyPairSpec::Sm2)
        .send()
        .await;
    assert_eq!(error_code(sm2), "UnsupportedOperationException");
}

#[tokio::test]
async fn derived_secrets_match_openssl_and_the_audit_keeps_no_secret() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let mut secrets = Vec::new();
    for (spec, curve) in [
        (KeySpec::EccNistP256, "P-256"),
        (KeySpec::EccNistP384, "P-384"),
        (KeySpec::EccNistP521, "P-521"),
    ] {
        let key = create(&kms, spec.clone(), KeyUsageType::KeyAgreement).await;
        let public = kms.get_public_key().key_id(&key).send().await.unwrap();
        assert_eq!(public.key_agreement_algorithms(), [KeyAgreementAlgorithmSpec::Ecdh]);
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        public_pem(dir, "kms", public.public_key().unwrap().as_ref());
        let curve_opt = format!("ec_paramgen_curve:{curve}");
        openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", &curve_opt, "-out", "local.pem"]);
        openssl(
            dir,
            &["pkey", "-in", "local.pem", "-pubout", "-outform", "DER", "-out", "local.der"],
        );
        openssl(
            dir,
            &["pkeyutl", "-derive", "-inkey", "local.pem", "-peerkey", "kms.pem", "-out", "secret"],
        );
        let derived = kms
            .derive_shared_secret()
            .key_id(&key)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(read(dir, "local.der")))
            .send()
            .await
            .unwrap();
        assert_eq!(derived.key_origin(), Some(&OriginType::AwsKms));
        let secret = derived.shared_secret().unwrap().as_ref().to_vec();
        assert_eq!(secret, read(dir, "secret"), "{spec:?}");
        secrets.push(secret);
        let sign = kms
            .sign()
            .key_id(&key)
            .message(Blob::new(MESSAGE))
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await;
        assert_eq!(error_code(sign), "InvalidKeyUsageException");
    }
    // A peer key on another curve, or not a key at all.
    let p256 = create(&kms, KeySpec::EccNistP256, KeyUsageType::KeyAgreement).await;
    let other_curve =
        public_key(&kms, &create(&kms, KeySpec::EccNistP521, KeyUsageType::KeyAgreement).await)
            .await;
    for peer in [other_curve, b"not a key".to_vec()] {
        let refused = kms
            .derive_shared_secret()
            .key_id(&p256)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(peer))
            .send()
            .await;
        assert_eq!(error_code(refused), "ValidationException");
    }

    // What the audit trail keeps of a Sign, a Verify and a data key pair.
    let signer = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let secret_message = b"AUDIT-MUST-NOT-SEE-THIS-MESSAGE".to_vec();
    let signature =
        sign(&kms, &signer, &SigningAlgorithmSpec::EcdsaSha256, MessageType::Raw, &secret_message)
            .await;
    kms.verify()
        .key_id(&signer)
        .message(Blob::new(secret_message.clone()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .signature(Blob::new(signature.clone()))
        .send()
        .await
        .unwrap();
    let wrapping = sb.create_key(ACCOUNT_A).await;
    let pair = kms
        .generate_data_key_pair()
        .key_id(&wrapping)
        .key_pair_spec(DataKeyPairSpec::EccNistP256)
        .send()
        .await
        .unwrap();
    let events = sb.events(ACCOUNT_A).await;
    let by_name = |name: &str| {
        events.iter().find(|e| e["eventName"] == name).unwrap_or_else(|| panic!("{name} recorded"))
    };
    let signed = by_name("Sign");
    assert_eq!(signed["requestParameters"]["signingAlgorithm"], "ECDSA_SHA_256");
    assert_eq!(signed["requestParameters"]["messageType"], "RAW");
    assert_eq!(signed["requestParameters"]["keyId"], signer.as_str());
    assert!(signed["requestParameters"].get("message").is_none());
    assert_eq!(signed["readOnly"], true);
    assert!(by_name("Verify")["requestParameters"].get("signature").is_none());
    assert_eq!(by_name("GenerateDataKeyPair")["requestParameters"]["keyPairSpec"], "ECC_NIST_P256");
    let derive = by_name("DeriveSharedSecret");
    assert_eq!(derive["requestParameters"]["keyAgreementAlgorithm"], "ECDH");
    assert!(derive["requestParameters"].get("publicKey").is_none());
    let everything = serde_json::to_string(&events).unwrap();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let private = pair.private_key_plaintext().unwrap().as_ref();
    for secret in [secret_message.as_slice(), signature.as_slice(), private]
        .into_iter()
        .chain(secrets.iter().map(Vec::as_slice))
    {
        assert!(!everything.contains(&b64(secret)), "a secret in the audit log");
    }
    assert!(!everything.contains("AUDIT-MUST-NOT-SEE"));
}

/// CreateKey for a large RSA key. Without a spare ready, CreateKey waits a bounded time
/// for the key being generated and otherwise answers the retriable
/// DependencyTimeoutException; the SDKs' standard retry (disabled in the sandbox) then
/// takes that key, as this loop does.
async fn create_rsa(kms: &aws_sdk_kms::Client, spec: KeySpec, usage: KeyUsageType) -> String {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let created = kms.create_key().key_spec(spec.clone()).key_usage(usage.clone()).send().await;
        match created {
            Ok(created) => break created.key_metadata.unwrap().key_id,
            Err(e) if attempts < 10 => {
                assert_eq!(error_code::<(), _, _>(Err(e)), "DependencyTimeoutException");
            }
            Err(e) => panic!("{spec:?} CreateKey failed {attempts} times: {e:?}"),
        }
    }
}

/// RSA_3072: every signing algorithm verifies in openssl, and OAEP decrypts what openssl
/// encrypts at the key size's plaintext limits (342 bytes with SHA-1, 318 with SHA-256),
/// one byte more being refused.
#[tokio::test]
async fn rsa_3072_signs_and_decrypts_for_openssl() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let signer = create_rsa(&kms, KeySpec::Rsa3072, KeyUsageType::SignVerify).await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    public_pem(dir, "pub", &public_key(&kms, &signer).await);
    write(dir, "msg", MESSAGE);
    let described = kms.describe_key().key_id(&signer).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(described.key_spec(), Some(&KeySpec::Rsa3072));
    let algorithms = described.signing_algorithms().to_vec();
    assert_eq!(algorithms.len(), 6, "three PSS and three PKCS#1 v1.5 algorithms");
    for algorithm in &algorithms {
        let signature = sign(&kms, &signer, algorithm, MessageType::Raw, MESSAGE).await;
        assert_eq!(signature.len(), 384, "{algorithm:?}");
        write(dir, "sig", &signature);
        assert!(openssl_verifies(dir, algorithm), "openssl verifies {algorithm:?}");
    }

    let decrypter = create_rsa(&kms, KeySpec::Rsa3072, KeyUsageType::EncryptDecrypt).await;
    public_pem(dir, "pub", &public_key(&kms, &decrypter).await);
    for (algorithm, md, max) in [
        (EncryptionAlgorithmSpec::RsaesOaepSha1, "sha1", 342),
        (EncryptionAlgorithmSpec::RsaesOaepSha256, "sha256", 318),
    ] {
        let plaintext: Vec<u8> = (0..max).map(|i| (i * 13 % 251) as u8).collect();
        let ciphertext = openssl_oaep_encrypt(dir, md, &plaintext);
        assert_eq!(ciphertext.len(), 384);
        let opened = kms
            .decrypt()
            .key_id(&decrypter)
            .ciphertext_blob(Blob::new(ciphertext))
            .encryption_algorithm(algorithm.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(opened.plaintext().unwrap().as_ref(), plaintext, "{md}");
        let mut longer = plaintext;
        longer.push(0);
        let too_long = kms
            .encrypt()
            .key_id(&decrypter)
            .plaintext(Blob::new(longer))
            .encryption_algorithm(algorithm.clone())
            .send()
            .await;
        assert_eq!(error_code(too_long), "ValidationException", "{md}");
    }
}

/// The largest key, once (its generation takes seconds): a PKCS#1 v1.5 SHA-512 signature
/// that openssl verifies.
#[tokio::test]
async fn rsa_4096_signs_for_openssl() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let key = create_rsa(&kms, KeySpec::Rsa4096, KeyUsageType::SignVerify).await;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    public_pem(dir, "pub", &public_key(&kms, &key).await);
    write(dir, "msg", MESSAGE);
    let algorithm = SigningAlgorithmSpec::RsassaPkcs1V15Sha512;
    let signature = sign(&kms, &key, &algorithm, MessageType::Raw, MESSAGE).await;
    assert_eq!(signature.len(), 512);
    write(dir, "sig", &signature);
    assert!(openssl_verifies(dir, &algorithm));
}
