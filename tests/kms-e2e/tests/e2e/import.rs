//! Bring your own key, through aws-sdk-kms with the wrapping done by tools nobody here
//! wrote: `openssl pkeyutl` (the seed's procedure) for RSAES_OAEP_SHA_256, the `rsa`
//! and `aes-kw` crates for the other algorithms. Covers the PendingImport state, wrong
//! material, deletion and re-import, tokens bound to their key, and expiry on the clock.

use std::time::Duration;

use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, KeyState, OriginType, WrappingKeySpec,
};
use rsa::pkcs8::DecodePublicKey;

use crate::sandbox::{error_code, openssl, Sandbox, ACCOUNT_A};

struct Params {
    token: Blob,
    public_der: Vec<u8>,
}

async fn params(kms: &aws_sdk_kms::Client, key: &str, algorithm: AlgorithmSpec) -> Params {
    let out = kms
        .get_parameters_for_import()
        .key_id(key)
        .wrapping_algorithm(algorithm)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .unwrap();
    assert!(out.parameters_valid_to().is_some());
    Params { token: out.import_token.unwrap(), public_der: out.public_key.unwrap().into_inner() }
}

/// The seed's step 4: `openssl pkeyutl -encrypt ... -pkeyopt rsa_padding_mode:oaep
/// -pkeyopt rsa_oaep_md:sha256` with the DER public key.
fn openssl_wrap(public_der: &[u8], material: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (key, input, output) = (
        dir.path().join("wrapping-key.bin"),
        dir.path().join("key-material.bin"),
        dir.path().join("encrypted.bin"),
    );
    std::fs::write(&key, public_der).unwrap();
    std::fs::write(&input, material).unwrap();
    let status = std::process::Command::new("openssl")
        .args(["pkeyutl", "-encrypt", "-in"])
        .arg(&input)
        .arg("-out")
        .arg(&output)
        .arg("-inkey")
        .arg(&key)
        .args([
            "-keyform",
            "DER",
            "-pubin",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
        ])
        .status()
        .expect("openssl runs");
    assert!(status.success());
    std::fs::read(output).unwrap()
}

fn rsa_aes_key_wrap_sha1(public_der: &[u8], material: &[u8]) -> Vec<u8> {
    let public = rsa::RsaPublicKey::from_public_key_der(public_der).unwrap();
    let aes_key: [u8; 32] = rand::random();
    let mut out =
        public.encrypt(&mut rand::rngs::OsRng, rsa::Oaep::new::<sha1::Sha1>(), &aes_key).unwrap();
    out.extend(aes_kw::KekAes256::from(aes_key).wrap_with_padding_vec(material).unwrap());
    out
}

async fn state(kms: &aws_sdk_kms::Client, key: &str) -> KeyState {
    kms.describe_key().key_id(key).send().await.unwrap().key_metadata.unwrap().key_state.unwrap()
}

#[tokio::test]
async fn byok_with_openssl_then_delete_and_reimport() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let created = kms
        .create_key()
        .description("Key with imported material")
        .origin(OriginType::External)
        .send()
        .await
        .unwrap();
    let meta = created.key_metadata.unwrap();
    let key = meta.key_id().to_owned();
    assert_eq!(meta.origin(), Some(&OriginType::External));
    assert_eq!(meta.key_state(), Some(&KeyState::PendingImport));
    assert_eq!(
        error_code(kms.encrypt().key_id(&key).plaintext(Blob::new(b"x".to_vec())).send().await),
        "KMSInvalidStateException"
    );

    let material: [u8; 32] = rand::random();
    let p = params(&kms, &key, AlgorithmSpec::RsaesOaepSha256).await;
    kms.import_key_material()
        .key_id(&key)
        .import_token(p.token.clone())
        .encrypted_key_material(Blob::new(openssl_wrap(&p.public_der, &material)))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .unwrap();
    assert_eq!(state(&kms, &key).await, KeyState::Enabled);
    let blob = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"my own key".to_vec()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob
        .unwrap();
    let back = kms.decrypt().ciphertext_blob(blob.clone()).send().await.unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), b"my own key");

    let other: [u8; 32] = rand::random();
    assert_eq!(
        error_code(
            kms.import_key_material()
                .key_id(&key)
                .import_token(p.token.clone())
                .encrypted_key_material(Blob::new(openssl_wrap(&p.public_der, &other)))
                .send()
                .await
        ),
        "IncorrectKeyMaterialException"
    );

    kms.delete_imported_key_material().key_id(&key).send().await.unwrap();
    assert_eq!(state(&kms, &key).await, KeyState::PendingImport);
    assert_eq!(
        error_code(kms.decrypt().ciphertext_blob(blob.clone()).send().await),
        "KMSInvalidStateException"
    );
    let again = params(&kms, &key, AlgorithmSpec::RsaAesKeyWrapSha1).await;
    kms.import_key_material()
        .key_id(&key)
        .import_token(again.token)
        .encrypted_key_material(Blob::new(rsa_aes_key_wrap_sha1(&again.public_der, &material)))
        .send()
        .await
        .unwrap();
    let back = kms.decrypt().ciphertext_blob(blob).send().await.unwrap();
    assert_eq!(
        back.plaintext().unwrap().as_ref(),
        b"my own key",
        "the same material brings old ciphertexts back"
    );
}

#[tokio::test]
async fn import_refusals() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let native = sb.create_key(ACCOUNT_A).await;
    assert_eq!(
        error_code(
            kms.get_parameters_for_import()
                .key_id(&native)
                .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
                .wrapping_key_spec(WrappingKeySpec::Rsa2048)
                .send()
                .await
        ),
        "UnsupportedOperationException"
    );
    let a = kms
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let b = kms
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    assert_eq!(
        error_code(kms.enable_key_rotation().key_id(&a).send().await),
        "UnsupportedOperationException"
    );
    let p = params(&kms, &a, AlgorithmSpec::RsaesOaepSha256).await;
    let material: [u8; 32] = rand::random();
    let wrapped = openssl_wrap(&p.public_der, &material);
    let import = |key: &str, token: Blob, wrapped: Vec<u8>| {
        kms.import_key_material()
            .key_id(key)
            .import_token(token)
            .encrypted_key_material(Blob::new(wrapped))
            .send()
    };
    assert_eq!(
        error_code(import(&b, p.token.clone(), wrapped.clone()).await),
        "InvalidImportTokenException"
    );
    assert_eq!(
        error_code(import(&a, Blob::new(vec![7u8; 32]), wrapped.clone()).await),
        "InvalidImportTokenException"
    );
    assert_eq!(
        error_code(import(&a, p.token.clone(), vec![1u8; 256]).await),
        "InvalidCiphertextException"
    );
    assert_eq!(
        error_code(
            kms.import_key_material()
                .key_id(&a)
                .import_token(p.token.clone())
                .encrypted_key_material(Blob::new(wrapped.clone()))
                .expiration_model(ExpirationModelType::KeyMaterialExpires)
                .send()
                .await
        ),
        "ValidationException",
        "KEY_MATERIAL_EXPIRES needs ValidTo"
    );
    import(&a, p.token, wrapped).await.unwrap();
    assert_eq!(
        error_code(kms.enable_key_rotation().key_id(&a).send().await),
        "UnsupportedOperationException"
    );
}

#[tokio::test]
async fn imported_material_expires_on_the_clock() {
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let key = kms
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap()
        .key_id;
    let p = params(&kms, &key, AlgorithmSpec::RsaesOaepSha256).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
        as i64;
    let material: [u8; 32] = rand::random();
    kms.import_key_material()
        .key_id(&key)
        .import_token(p.token)
        .encrypted_key_material(Blob::new(openssl_wrap(&p.public_der, &material)))
        .expiration_model(ExpirationModelType::KeyMaterialExpires)
        .valid_to(DateTime::from_secs(now + 3600))
        .send()
        .await
        .unwrap();
    let meta = kms.describe_key().key_id(&key).send().await.unwrap().key_metadata.unwrap();
    assert_eq!(meta.expiration_model(), Some(&ExpirationModelType::KeyMaterialExpires));
    assert_eq!(meta.valid_to().map(|t| t.secs()), Some(now + 3600));
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));

    sb.clock.advance_ms(2 * 3600 * 1000);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while state(&kms, &key).await != KeyState::PendingImport {
        assert!(tokio::time::Instant::now() < deadline, "material did not expire");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        error_code(kms.encrypt().key_id(&key).plaintext(Blob::new(b"x".to_vec())).send().await),
        "KMSInvalidStateException"
    );
    let events = sb.events(ACCOUNT_A).await;
    assert!(events.iter().any(
        |e| e["eventName"] == "DeleteExpiredKeyMaterial" && e["eventType"] == "AwsServiceEvent"
    ));
}

async fn create_external(
    kms: &aws_sdk_kms::Client,
    spec: aws_sdk_kms::types::KeySpec,
    usage: aws_sdk_kms::types::KeyUsageType,
) -> String {
    let meta = kms
        .create_key()
        .origin(OriginType::External)
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .unwrap()
        .key_metadata
        .unwrap();
    assert_eq!(meta.key_state(), Some(&KeyState::PendingImport));
    meta.key_id
}

/// Imports `material` wrapped with RSA_AES_KEY_WRAP_SHA_1 (large enough for private keys).
async fn import(kms: &aws_sdk_kms::Client, key: &str, material: &[u8]) -> Result<(), String> {
    let p = params(kms, key, AlgorithmSpec::RsaAesKeyWrapSha1).await;
    kms.import_key_material()
        .key_id(key)
        .import_token(p.token)
        .encrypted_key_material(Blob::new(rsa_aes_key_wrap_sha1(&p.public_der, material)))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| error_code::<(), _, _>(Err(e)))
}

/// HMAC keys take imported material of AWS's lengths and then MAC exactly as openssl does
/// with the same key bytes.
#[tokio::test]
async fn hmac_keys_take_imported_material_and_match_openssl() {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType, MacAlgorithmSpec};
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let dir = tempfile::tempdir().unwrap();
    let message = b"The quick brown fox jumps over the lazy dog".to_vec();
    std::fs::write(dir.path().join("msg"), &message).unwrap();
    for (spec, algorithm, md, len) in [
        (KeySpec::Hmac224, MacAlgorithmSpec::HmacSha224, "sha224", 28),
        (KeySpec::Hmac256, MacAlgorithmSpec::HmacSha256, "sha256", 64),
        (KeySpec::Hmac384, MacAlgorithmSpec::HmacSha384, "sha384", 100),
        (KeySpec::Hmac512, MacAlgorithmSpec::HmacSha512, "sha512", 128),
    ] {
        let key = create_external(&kms, spec.clone(), KeyUsageType::GenerateVerifyMac).await;
        let mac = || {
            kms.generate_mac()
                .key_id(&key)
                .mac_algorithm(algorithm.clone())
                .message(Blob::new(message.clone()))
                .send()
        };
        assert_eq!(error_code(mac().await), "KMSInvalidStateException", "{spec:?}");
        let material: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
        import(&kms, &key, &material).await.unwrap();
        let tag = mac().await.unwrap().mac.unwrap().into_inner();
        let hex: String = material.iter().map(|b| format!("{b:02x}")).collect();
        let hexkey = format!("hexkey:{hex}");
        let expected = openssl(
            dir.path(),
            &["dgst", &format!("-{md}"), "-mac", "HMAC", "-macopt", &hexkey, "-binary", "msg"],
        );
        assert_eq!(tag, expected, "{spec:?} MAC equals openssl's under the same key");
        let verified = kms
            .verify_mac()
            .key_id(&key)
            .mac_algorithm(algorithm.clone())
            .message(Blob::new(message.clone()))
            .mac(Blob::new(tag))
            .send()
            .await
            .unwrap();
        assert!(verified.mac_valid());
    }
    // Material outside AWS's lengths for the spec is refused and the key stays waiting.
    for (spec, len) in [(KeySpec::Hmac256, 31), (KeySpec::Hmac256, 65), (KeySpec::Hmac512, 63)] {
        let key = create_external(&kms, spec.clone(), KeyUsageType::GenerateVerifyMac).await;
        assert_eq!(
            import(&kms, &key, &vec![9u8; len]).await.unwrap_err(),
            "ValidationException",
            "{spec:?} with {len} bytes"
        );
        assert_eq!(state(&kms, &key).await, KeyState::PendingImport);
    }
}

/// Asymmetric keys take a PKCS#8 private key made by openssl: the public key KMS then
/// hands out is openssl's, KMS's signatures verify in openssl, KMS decrypts what openssl
/// encrypts; a key of another spec is refused and only the same key may come back.
#[tokio::test]
async fn asymmetric_keys_take_imported_pkcs8_private_keys() {
    use aws_sdk_kms::types::{
        EncryptionAlgorithmSpec, KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec,
    };
    let sb = Sandbox::start().await;
    let kms = sb.kms(ACCOUNT_A);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pkcs8 = |name: &str, genpkey: &[&str]| -> (Vec<u8>, Vec<u8>) {
        let pem = format!("{name}.pem");
        let mut args = vec!["genpkey"];
        args.extend_from_slice(genpkey);
        args.extend(["-out", &pem]);
        openssl(d, &args);
        let der = openssl(d, &["pkcs8", "-topk8", "-nocrypt", "-in", &pem, "-outform", "DER"]);
        let public = openssl(d, &["pkey", "-in", &pem, "-pubout", "-outform", "DER"]);
        (der, public)
    };

    // ECC_NIST_P256 signing key.
    let (ec_private, ec_public) =
        pkcs8("ec", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    let signer = create_external(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    assert_eq!(
        error_code(kms.get_public_key().key_id(&signer).send().await),
        "KMSInvalidStateException"
    );
    let (p384_private, _) =
        pkcs8("p384", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]);
    assert_eq!(import(&kms, &signer, &p384_private).await.unwrap_err(), "ValidationException");
    assert_eq!(
        import(&kms, &signer, b"not a private key").await.unwrap_err(),
        "ValidationException"
    );
    import(&kms, &signer, &ec_private).await.unwrap();
    let public = kms.get_public_key().key_id(&signer).send().await.unwrap();
    assert_eq!(public.public_key().unwrap().as_ref(), ec_public, "KMS serves openssl's public key");
    std::fs::write(d.join("msg"), b"signed with an imported key").unwrap();
    let signature = kms
        .sign()
        .key_id(&signer)
        .message(Blob::new(b"signed with an imported key".to_vec()))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .unwrap()
        .signature
        .unwrap()
        .into_inner();
    std::fs::write(d.join("sig"), signature).unwrap();
    let verified =
        openssl(d, &["dgst", "-sha256", "-prverify", "ec.pem", "-signature", "sig", "msg"]);
    assert!(String::from_utf8_lossy(&verified).contains("Verified OK"));
    // After deletion only the same private key may return.
    kms.delete_imported_key_material().key_id(&signer).send().await.unwrap();
    assert_eq!(state(&kms, &signer).await, KeyState::PendingImport);
    let (other, _) = pkcs8("other", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    assert_eq!(import(&kms, &signer, &other).await.unwrap_err(), "IncorrectKeyMaterialException");
    import(&kms, &signer, &ec_private).await.unwrap();
    assert_eq!(state(&kms, &signer).await, KeyState::Enabled);

    // RSA_2048 decryption key: openssl encrypts to its own public key, KMS decrypts.
    let (rsa_private, rsa_public) =
        pkcs8("rsa", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
    let decrypter = create_external(&kms, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    import(&kms, &decrypter, &rsa_private).await.unwrap();
    let served = kms.get_public_key().key_id(&decrypter).send().await.unwrap();
    assert_eq!(served.public_key().unwrap().as_ref(), rsa_public);
    std::fs::write(d.join("pt"), b"for the imported RSA key").unwrap();
    let ciphertext = openssl(
        d,
        &[
            "pkeyutl",
            "-encrypt",
            "-inkey",
            "rsa.pem",
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
            "-in",
            "pt",
        ],
    );
    let opened = kms
        .decrypt()
        .key_id(&decrypter)
        .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
        .ciphertext_blob(Blob::new(ciphertext))
        .send()
        .await
        .unwrap();
    assert_eq!(opened.plaintext().unwrap().as_ref(), b"for the imported RSA key");
}
