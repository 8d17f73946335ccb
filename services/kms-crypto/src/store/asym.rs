//! Asymmetric keys in the store (`asym_keys`: `<key id>/<version>` → `AsymKeyRecord`) and
//! the operations over them: Sign, Verify, GetPublicKey, RSA-OAEP encryption and
//! decryption, ECDH, and data key pairs sealed under a symmetric key.
//!
//! The PKCS#8 private key and the SubjectPublicKeyInfo are both sealed under the root key
//! with a label binding account, key id, version and spec, so neither can be swapped or
//! altered at rest; public-key operations open only the public key. Every RSA private-key
//! operation (and every key generation) runs on the blocking pool, off the async runtime:
//! RSA 4096 generation takes seconds and a signature tens of milliseconds. Once a size of
//! RSA key has been asked for, one spare of that size is kept generated in the background
//! (`RsaSpares`), so the next CreateKey or GenerateDataKeyPair of that size need not wait
//! for prime generation. A request that finds no spare waits a bounded time for the one
//! being generated and otherwise answers the retriable DependencyTimeoutException: the
//! generation goes on and the SDK's retry takes its key, where a request held past the
//! bus deadline would only have started over. A spare is handed out once and lives only
//! in memory, zeroized on drop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use kms_core::{ErrorCode, KmsError, KmsResult};
use kms_crypto_core::asym::{
    self, AsymError, AsymSpec, CheckedPkcs8, EncryptionAlgorithm, KeyAgreementAlgorithm,
    MessageType, PrivateKey, PublicKey, SigningAlgorithm,
};
use kms_proto::v1 as wire;
use prost::Message;
use zeroize::Zeroizing;

use super::{context, internal, material_key, CryptoStore};

/// An asymmetric failure as AWS's exception. No message carries key bytes, a message or
/// plaintext (the library's messages hold only AWS names and lengths).
fn asym_error(e: AsymError) -> KmsError {
    match e {
        AsymError::InvalidKeyUsage(message) => KmsError::new(ErrorCode::InvalidKeyUsage, message),
        AsymError::Validation(message) => KmsError::validation(message),
        AsymError::InvalidCiphertext => KmsError::invalid_ciphertext(),
        AsymError::InvalidPeerKey => KmsError::validation(
            "The public key is not a valid DER-encoded SubjectPublicKeyInfo of a key on the \
             curve of the KMS key.",
        ),
        // Stored keys are checked when made: a stored key that does not parse is ours.
        e @ (AsymError::InvalidKeyMaterial | AsymError::Internal) => internal(e),
    }
}

/// The seal label of one half of an asymmetric key.
fn label(part: &str, spec: AsymSpec, account: &str, key_id: &str, version: u32) -> String {
    format!("kms-asym-material-v1|{part}|{}|{account}|{key_id}|{version}", spec.as_str())
}

fn spec_of(name: &str) -> KmsResult<AsymSpec> {
    AsymSpec::parse(name).ok_or_else(|| internal("not an asymmetric key spec"))
}

fn signing(name: &str, message_type: &str) -> KmsResult<(SigningAlgorithm, MessageType)> {
    let algorithm = SigningAlgorithm::parse(name)
        .ok_or_else(|| KmsError::validation("unsupported signing algorithm"))?;
    let message_type = match message_type {
        "" => MessageType::Raw,
        other => MessageType::parse(other)
            .ok_or_else(|| KmsError::validation("unsupported message type"))?,
    };
    Ok((algorithm, message_type))
}

pub(super) fn encryption_algorithm(name: &str) -> KmsResult<EncryptionAlgorithm> {
    EncryptionAlgorithm::parse(name)
        .ok_or_else(|| KmsError::validation("unsupported encryption algorithm"))
}

/// Runs `f` on the blocking pool (key generation, RSA private-key operations).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AsymError> + Send + 'static,
) -> KmsResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?.map_err(asym_error)
}

/// How long a request waits for an RSA key being generated before it answers the
/// retriable `DependencyTimeoutException` (the generation goes on, and the retry takes
/// its key): well inside the gateway's five-second bus deadline.
const RSA_WAIT: Duration = Duration::from_millis(3500);

/// RSA keys generated ahead of need, per size. A size is generated only once it has been
/// asked for; one generation per size runs at a time, on the blocking pool, and keeps
/// going until every waiting request has a key and one spare is ready.
#[derive(Default)]
pub(super) struct RsaSpares {
    slots: Mutex<HashMap<AsymSpec, Slot>>,
    generated: Notify,
}

#[derive(Default)]
struct Slot {
    ready: Vec<PrivateKey>,
    waiting: usize,
    generating: bool,
}

impl RsaSpares {
    /// A fresh key of `spec`. ECC keys are made at once; RSA keys come from the spares,
    /// waiting at most `RSA_WAIT` for one being generated.
    async fn generate(self: &Arc<Self>, spec: AsymSpec) -> KmsResult<PrivateKey> {
        if !spec.is_rsa() {
            return blocking(move || asym::generate(spec)).await;
        }
        let deadline = tokio::time::Instant::now() + RSA_WAIT;
        let mut counted = false;
        let outcome = loop {
            // Registered before the check, so a key stored in between still wakes us.
            let generated = self.generated.notified();
            {
                let mut slots = self.slots.lock().map_err(internal)?;
                let slot = slots.entry(spec).or_default();
                if let Some(key) = slot.ready.pop() {
                    if counted {
                        slot.waiting -= 1;
                    }
                    self.keep_generating(slot, spec);
                    break Ok(key);
                }
                if !counted {
                    slot.waiting += 1;
                    counted = true;
                }
                self.keep_generating(slot, spec);
            }
            if tokio::time::timeout_at(deadline, generated).await.is_err() {
                break Err(KmsError::new(
                    ErrorCode::DependencyTimeout,
                    format!(
                        "The {} key pair is still being generated. Retry the request.",
                        spec.as_str()
                    ),
                ));
            }
        };
        if outcome.is_err() {
            if let Ok(mut slots) = self.slots.lock() {
                let slot = slots.entry(spec).or_default();
                slot.waiting = slot.waiting.saturating_sub(1);
            }
        }
        outcome
    }

    /// Starts the generation task of `spec` unless it runs.
    fn keep_generating(self: &Arc<Self>, slot: &mut Slot, spec: AsymSpec) {
        if slot.generating {
            return;
        }
        slot.generating = true;
        let spares = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let generated = tokio::task::spawn_blocking(move || asym::generate(spec)).await;
                let Ok(mut slots) = spares.slots.lock() else { return };
                let slot = slots.entry(spec).or_default();
                let failed = match generated {
                    Ok(Ok(key)) => {
                        slot.ready.push(key);
                        false
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "RSA key generation failed");
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "RSA key generation failed");
                        true
                    }
                };
                spares.generated.notify_waiters();
                // Done when every waiter has a key and a spare is left; after a failure,
                // the next request starts over.
                if failed || slot.ready.len() > slot.waiting {
                    slot.generating = false;
                    return;
                }
            }
        });
    }
}

/// A key's stored private key: its spec and PKCS#8 DER, parsed only where it is used.
struct SealedPrivate {
    spec: AsymSpec,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl SealedPrivate {
    /// The key as the private-key operations take it: checked when it was stored, and
    /// sealed since, so not parsed again here (for ECC that would derive the public point,
    /// a scalar multiplication per call).
    fn checked(&self) -> CheckedPkcs8<'_> {
        CheckedPkcs8 { spec: self.spec, pkcs8: &self.pkcs8 }
    }
}

impl CryptoStore {
    /// Generates and stores an asymmetric key pair as one version of a key's material,
    /// unless that version exists (a retried CreateKey never replaces a key).
    pub(super) async fn create_asym_material(
        &self,
        account: &str,
        key_id: &str,
        version: u32,
        spec: AsymSpec,
    ) -> KmsResult<()> {
        let key = material_key(key_id, version);
        if self.asym_keys.contains_key(key.as_bytes()).map_err(internal)? {
            return Ok(());
        }
        let private = self.rsa_spares.generate(spec).await?;
        let record = self.asym_key_record(account, key_id, version, &private)?;
        // Insert only if absent: a concurrent retry may have stored its own key first.
        let _ = self
            .asym_keys
            .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(record.encode_to_vec()))
            .map_err(internal)?;
        kms_sled_guard::flush_async(&self.db).await.map_err(internal)?;
        Ok(())
    }

    /// The stored form of one version's private key: both halves sealed under the root
    /// key, bound to the account, key, version and spec.
    pub(super) fn asym_key_record(
        &self,
        account: &str,
        key_id: &str,
        version: u32,
        private: &PrivateKey,
    ) -> KmsResult<wire::AsymKeyRecord> {
        let spec = private.spec();
        Ok(wire::AsymKeyRecord {
            account: account.to_owned(),
            key_spec: spec.as_str().to_owned(),
            sealed_private_key: self
                .root
                .seal_bytes(&label("private", spec, account, key_id, version), private.pkcs8_der())
                .map_err(internal)?,
            sealed_public_key: self
                .root
                .seal_bytes(
                    &label("public", spec, account, key_id, version),
                    private.public_key().spki_der(),
                )
                .map_err(internal)?,
        })
    }

    fn asym_record(
        &self,
        key_id: &str,
        version: u32,
    ) -> KmsResult<(AsymSpec, wire::AsymKeyRecord)> {
        let stored = self
            .asym_keys
            .get(material_key(key_id, version.max(1)).as_bytes())
            .map_err(internal)?
            .ok_or_else(|| internal("no asymmetric key for a key in use"))?;
        let record = wire::AsymKeyRecord::decode(stored.as_ref()).map_err(internal)?;
        Ok((spec_of(&record.key_spec)?, record))
    }

    fn public_key(&self, key_id: &str, version: u32) -> KmsResult<PublicKey> {
        let version = version.max(1);
        let (spec, record) = self.asym_record(key_id, version)?;
        let spki = self
            .root
            .open_bytes(
                &label("public", spec, &record.account, key_id, version),
                &record.sealed_public_key,
            )
            .map_err(internal)?;
        PublicKey::from_spki_der(spec, &spki).map_err(asym_error)
    }

    fn private_key(&self, key_id: &str, version: u32) -> KmsResult<SealedPrivate> {
        let version = version.max(1);
        let (spec, record) = self.asym_record(key_id, version)?;
        let pkcs8 = self
            .root
            .open_bytes(
                &label("private", spec, &record.account, key_id, version),
                &record.sealed_private_key,
            )
            .map_err(internal)?;
        Ok(SealedPrivate { spec, pkcs8 })
    }

    pub(crate) async fn sign(&self, r: wire::SignRequest) -> KmsResult<wire::SignResponse> {
        let (algorithm, message_type) = signing(&r.signing_algorithm, &r.message_type)?;
        let private = self.private_key(&r.key_id, r.material_version)?;
        let message = Zeroizing::new(r.message);
        let signature =
            blocking(move || asym::sign(&private.checked(), algorithm, message_type, &message))
                .await?;
        Ok(wire::SignResponse { signature })
    }

    /// A signature that does not verify is KMSInvalidSignatureException, as in AWS.
    pub(crate) fn verify(&self, r: wire::VerifyRequest) -> KmsResult<wire::VerifyResponse> {
        let (algorithm, message_type) = signing(&r.signing_algorithm, &r.message_type)?;
        let public = self.public_key(&r.key_id, r.material_version)?;
        if asym::verify(&public, algorithm, message_type, &r.message, &r.signature)
            .map_err(asym_error)?
        {
            Ok(wire::VerifyResponse { signature_valid: true })
        } else {
            Err(KmsError::new(ErrorCode::InvalidSignature, ""))
        }
    }

    pub(crate) fn get_public_key(
        &self,
        r: wire::GetPublicKeyRequest,
    ) -> KmsResult<wire::GetPublicKeyResponse> {
        let public = self.public_key(&r.key_id, r.material_version)?;
        Ok(wire::GetPublicKeyResponse {
            public_key: public.spki_der().to_vec(),
            key_spec: public.spec().as_str().to_owned(),
        })
    }

    pub(crate) fn asym_encrypt(
        &self,
        r: wire::AsymEncryptRequest,
    ) -> KmsResult<wire::AsymEncryptResponse> {
        let algorithm = encryption_algorithm(&r.encryption_algorithm)?;
        let plaintext = Zeroizing::new(r.plaintext);
        let ciphertext_blob =
            self.rsa_encrypt(&r.key_id, r.material_version, algorithm, &plaintext)?;
        Ok(wire::AsymEncryptResponse { ciphertext_blob })
    }

    pub(super) fn rsa_encrypt(
        &self,
        key_id: &str,
        version: u32,
        algorithm: EncryptionAlgorithm,
        plaintext: &[u8],
    ) -> KmsResult<Vec<u8>> {
        let public = self.public_key(key_id, version)?;
        asym::rsa_encrypt(&public, algorithm, plaintext).map_err(asym_error)
    }

    pub(crate) async fn asym_decrypt(
        &self,
        r: wire::AsymDecryptRequest,
    ) -> KmsResult<wire::AsymDecryptResponse> {
        let algorithm = encryption_algorithm(&r.encryption_algorithm)?;
        let plaintext =
            self.rsa_decrypt(&r.key_id, r.material_version, algorithm, r.ciphertext_blob).await?;
        Ok(wire::AsymDecryptResponse { plaintext: plaintext.to_vec() })
    }

    /// RSA-OAEP decryption with blinding, on the blocking pool.
    pub(super) async fn rsa_decrypt(
        &self,
        key_id: &str,
        version: u32,
        algorithm: EncryptionAlgorithm,
        ciphertext: Vec<u8>,
    ) -> KmsResult<Zeroizing<Vec<u8>>> {
        let private = self.private_key(key_id, version)?;
        blocking(move || asym::rsa_decrypt(&private.checked(), algorithm, &ciphertext)).await
    }

    /// A fresh key pair; the private key sealed as a symmetric blob under `key_id` with the
    /// encryption context, so Decrypt returns exactly its PKCS#8 DER.
    pub(crate) async fn generate_data_key_pair(
        &self,
        r: wire::GenerateDataKeyPairRequest,
    ) -> KmsResult<wire::GenerateDataKeyPairResponse> {
        let spec = AsymSpec::parse(&r.key_pair_spec)
            .ok_or_else(|| KmsError::validation("unsupported key pair spec"))?;
        let material = self.required_material(&r.key_id, r.material_version)?;
        let pair = self.rsa_spares.generate(spec).await?;
        let blob = kms_crypto_core::seal(
            &material,
            &r.key_id,
            r.material_version,
            pair.pkcs8_der(),
            &context(r.context),
        )
        .map_err(internal)?;
        let private_key_plaintext =
            if r.include_plaintext { pair.pkcs8_der().to_vec() } else { Vec::new() };
        Ok(wire::GenerateDataKeyPairResponse {
            private_key_plaintext,
            private_key_ciphertext_blob: blob,
            public_key: pair.public_key().spki_der().to_vec(),
        })
    }

    pub(crate) fn derive_shared_secret(
        &self,
        r: wire::DeriveSharedSecretRequest,
    ) -> KmsResult<wire::DeriveSharedSecretResponse> {
        if KeyAgreementAlgorithm::parse(&r.key_agreement_algorithm).is_none() {
            return Err(KmsError::validation("unsupported key agreement algorithm"));
        }
        let private = self.private_key(&r.key_id, r.material_version)?;
        // ECDH only (the library refuses RSA keys): constant-time curve arithmetic, cheap.
        let secret =
            asym::derive_shared_secret(&private.checked(), &r.public_key).map_err(asym_error)?;
        Ok(wire::DeriveSharedSecretResponse { shared_secret: secret.to_vec() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_crypto_core::RootKey;

    fn caller() -> Option<wire::CallerContext> {
        Some(wire::CallerContext {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            ..Default::default()
        })
    }

    fn store(dir: &std::path::Path) -> CryptoStore {
        CryptoStore::open(dir, RootKey::from_hex(&RootKey::generate_hex()).unwrap()).unwrap()
    }

    async fn new_key(store: &CryptoStore, spec: &str) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        store
            .create_material(wire::CreateMaterialRequest {
                caller: caller(),
                key_id: id.clone(),
                key_spec: spec.into(),
                material_version: 1,
            })
            .await
            .unwrap();
        id
    }

    fn public(store: &CryptoStore, key: &str) -> Vec<u8> {
        store
            .get_public_key(wire::GetPublicKeyRequest {
                caller: caller(),
                key_id: key.into(),
                material_version: 1,
            })
            .unwrap()
            .public_key
    }

    async fn sign(store: &CryptoStore, key: &str, alg: &str, message: &[u8]) -> Vec<u8> {
        store
            .sign(wire::SignRequest {
                caller: caller(),
                key_id: key.into(),
                material_version: 1,
                message: message.to_vec(),
                message_type: "RAW".into(),
                signing_algorithm: alg.into(),
            })
            .await
            .unwrap()
            .signature
    }

    fn verify(
        store: &CryptoStore,
        key: &str,
        alg: &str,
        message: &[u8],
        signature: &[u8],
    ) -> KmsResult<bool> {
        store
            .verify(wire::VerifyRequest {
                caller: caller(),
                key_id: key.into(),
                material_version: 1,
                message: message.to_vec(),
                message_type: String::new(),
                signing_algorithm: alg.into(),
                signature: signature.to_vec(),
            })
            .map(|r| r.signature_valid)
    }

    #[tokio::test]
    async fn signing_keys_sign_verify_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let hex = RootKey::generate_hex();
        let open = || CryptoStore::open(dir.path(), RootKey::from_hex(&hex).unwrap()).unwrap();
        let (ec, spki, signature);
        {
            let store = open();
            ec = new_key(&store, "ECC_NIST_P256").await;
            spki = public(&store, &ec);
            // A retried CreateMaterial keeps the key.
            new_key_again(&store, &ec, "ECC_NIST_P256").await;
            assert_eq!(public(&store, &ec), spki);
            signature = sign(&store, &ec, "ECDSA_SHA_256", b"message").await;
        }
        let store = open();
        let public_key = PublicKey::from_spki_der(AsymSpec::EccNistP256, &spki).unwrap();
        assert!(asym::verify(
            &public_key,
            SigningAlgorithm::EcdsaSha256,
            MessageType::Raw,
            b"message",
            &signature
        )
        .unwrap());
        assert!(verify(&store, &ec, "ECDSA_SHA_256", b"message", &signature).unwrap());
        let bad = verify(&store, &ec, "ECDSA_SHA_256", b"another", &signature).unwrap_err();
        assert_eq!(bad.code, ErrorCode::InvalidSignature);
        assert!(bad.message.is_empty(), "nothing about the signature in the error");
        let wrong = verify(&store, &ec, "ECDSA_SHA_384", b"message", &signature).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::InvalidKeyUsage);

        // Another root key opens nothing.
        drop(store);
        let other = store_with_other_root(dir.path());
        assert_eq!(
            other
                .get_public_key(wire::GetPublicKeyRequest {
                    caller: caller(),
                    key_id: ec.clone(),
                    material_version: 1
                })
                .unwrap_err()
                .code,
            ErrorCode::Internal
        );
    }

    fn store_with_other_root(dir: &std::path::Path) -> CryptoStore {
        store(dir)
    }

    async fn new_key_again(store: &CryptoStore, id: &str, spec: &str) {
        store
            .create_material(wire::CreateMaterialRequest {
                caller: caller(),
                key_id: id.into(),
                key_spec: spec.into(),
                material_version: 1,
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn rsa_keys_encrypt_decrypt_and_re_encrypt_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let rsa = new_key(&store, "RSA_2048").await;
        let symmetric = new_key(&store, "SYMMETRIC_DEFAULT").await;
        let encrypt = |plaintext: &[u8], alg: &str| {
            store.asym_encrypt(wire::AsymEncryptRequest {
                caller: caller(),
                key_id: rsa.clone(),
                material_version: 1,
                plaintext: plaintext.to_vec(),
                encryption_algorithm: alg.into(),
            })
        };
        let ciphertext = encrypt(b"secret", "RSAES_OAEP_SHA_256").unwrap().ciphertext_blob;
        assert_eq!(ciphertext.len(), 256);
        let decrypt = |ciphertext: Vec<u8>, alg: &str| {
            store.asym_decrypt(wire::AsymDecryptRequest {
                caller: caller(),
                key_id: rsa.clone(),
                material_version: 1,
                ciphertext_blob: ciphertext,
                encryption_algorithm: alg.into(),
            })
        };
        assert_eq!(
            decrypt(ciphertext.clone(), "RSAES_OAEP_SHA_256").await.unwrap().plaintext,
            b"secret"
        );
        assert_eq!(
            decrypt(ciphertext.clone(), "RSAES_OAEP_SHA_1").await.unwrap_err().code,
            ErrorCode::InvalidCiphertext
        );
        let too_long = encrypt(&[7u8; 191], "RSAES_OAEP_SHA_256").unwrap_err();
        assert_eq!(too_long.code, ErrorCode::Validation);
        assert_eq!(
            too_long.message,
            "Algorithm RSAES_OAEP_SHA_256 and key spec RSA_2048 cannot encrypt data larger than 190 bytes."
        );
        assert!(encrypt(&[7u8; 214], "RSAES_OAEP_SHA_1").is_ok());

        // RSA → symmetric → RSA.
        let to_symmetric = store
            .re_encrypt(wire::ReEncryptRequest {
                caller: caller(),
                ciphertext_blob: ciphertext,
                destination_key_id: symmetric.clone(),
                destination_material_version: 1,
                destination_context: vec![wire::EncryptionContextEntry {
                    key: "a".into(),
                    value: "b".into(),
                }],
                source_key_id: rsa.clone(),
                source_material_version: 1,
                source_encryption_algorithm: "RSAES_OAEP_SHA_256".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(to_symmetric.source_key_id, rsa);
        let back = store
            .re_encrypt(wire::ReEncryptRequest {
                caller: caller(),
                ciphertext_blob: to_symmetric.ciphertext_blob,
                source_context: vec![wire::EncryptionContextEntry {
                    key: "a".into(),
                    value: "b".into(),
                }],
                destination_key_id: rsa.clone(),
                destination_material_version: 1,
                destination_encryption_algorithm: "RSAES_OAEP_SHA_1".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(back.source_key_id, symmetric);
        assert_eq!(
            decrypt(back.ciphertext_blob, "RSAES_OAEP_SHA_1").await.unwrap().plaintext,
            b"secret"
        );

        // A symmetric blob naming an asymmetric key is just invalid.
        let forged = kms_crypto_core::seal(
            &kms_crypto_core::KeyMaterial::generate(),
            &rsa,
            1,
            b"x",
            &Default::default(),
        )
        .unwrap();
        let refused = store
            .decrypt(wire::DecryptRequest {
                caller: caller(),
                ciphertext_blob: forged,
                context: vec![],
            })
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::InvalidCiphertext);

        // Destruction takes asymmetric keys too.
        let gone = store
            .destroy_material(wire::DestroyMaterialRequest {
                caller: caller(),
                key_id: rsa.clone(),
            })
            .await
            .unwrap();
        assert_eq!(gone.versions_destroyed, 1);
        assert_eq!(encrypt(b"x", "RSAES_OAEP_SHA_1").unwrap_err().code, ErrorCode::Internal);
    }

    #[tokio::test]
    async fn data_key_pairs_and_key_agreement() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let symmetric = new_key(&store, "SYMMETRIC_DEFAULT").await;
        let context =
            vec![wire::EncryptionContextEntry { key: "purpose".into(), value: "test".into() }];
        let pair = |include| {
            store.generate_data_key_pair(wire::GenerateDataKeyPairRequest {
                caller: caller(),
                key_id: symmetric.clone(),
                material_version: 1,
                key_pair_spec: "ECC_NIST_P384".into(),
                context: context.clone(),
                include_plaintext: include,
            })
        };
        let with = pair(true).await.unwrap();
        let private =
            PrivateKey::from_pkcs8_der(AsymSpec::EccNistP384, &with.private_key_plaintext).unwrap();
        assert_eq!(private.public_key().spki_der(), with.public_key.as_slice());
        let opened = store
            .decrypt(wire::DecryptRequest {
                caller: caller(),
                ciphertext_blob: with.private_key_ciphertext_blob,
                context: context.clone(),
            })
            .unwrap();
        assert_eq!(opened.plaintext, with.private_key_plaintext);
        let without = pair(false).await.unwrap();
        assert!(without.private_key_plaintext.is_empty());
        assert!(!without.private_key_ciphertext_blob.is_empty());

        let ours = new_key(&store, "ECC_NIST_P256").await;
        let peer = asym::generate(AsymSpec::EccNistP256).unwrap();
        let derive = |peer_spki: Vec<u8>| {
            store.derive_shared_secret(wire::DeriveSharedSecretRequest {
                caller: caller(),
                key_id: ours.clone(),
                material_version: 1,
                public_key: peer_spki,
                key_agreement_algorithm: "ECDH".into(),
            })
        };
        let secret = derive(peer.public_key().spki_der().to_vec()).unwrap().shared_secret;
        let theirs = asym::derive_shared_secret(&peer, &public(&store, &ours)).unwrap();
        assert_eq!(secret, theirs.as_slice());
        let p384 = asym::generate(AsymSpec::EccNistP384).unwrap();
        assert_eq!(
            derive(p384.public_key().spki_der().to_vec()).unwrap_err().code,
            ErrorCode::Validation
        );
        assert_eq!(derive(vec![1, 2, 3]).unwrap_err().code, ErrorCode::Validation);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rsa_spares_serve_every_waiter_once_and_keep_one_ready() {
        let spares = Arc::new(RsaSpares::default());
        let take = || {
            let spares = Arc::clone(&spares);
            async move {
                // A busy machine may need the retry the SDKs would make.
                for _ in 0..10 {
                    match spares.generate(AsymSpec::Rsa2048).await {
                        Ok(key) => return key,
                        Err(e) => assert_eq!(e.code, ErrorCode::DependencyTimeout),
                    }
                }
                panic!("no RSA key after ten tries");
            }
        };
        let (a, b, c) = tokio::join!(take(), take(), take());
        let spki = |k: &PrivateKey| k.public_key().spki_der().to_vec();
        assert!(spki(&a) != spki(&b) && spki(&b) != spki(&c) && spki(&a) != spki(&c));
        let ready = || {
            let slots = spares.slots.lock().unwrap();
            slots.get(&AsymSpec::Rsa2048).map_or(0, |slot| slot.ready.len())
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while ready() == 0 {
            assert!(std::time::Instant::now() < deadline, "a spare is generated");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let spare = spki(&spares.generate(AsymSpec::Rsa2048).await.unwrap());
        assert!(![spki(&a), spki(&b), spki(&c)].contains(&spare), "a spare is handed out once");
        // ECC keys are never pooled.
        assert!(spares.generate(AsymSpec::EccNistP256).await.is_ok());
        assert!(spares.slots.lock().unwrap().get(&AsymSpec::EccNistP256).is_none());
    }
}
