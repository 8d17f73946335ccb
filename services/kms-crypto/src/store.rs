//! Wrapped key material in sled (`materials`: `<key id>/<version>` → account length,
//! account, wrapped bytes) and the cryptographic operations over it.

use std::collections::BTreeMap;
use std::path::Path;

use kms_core::{KmsError, KmsResult};
use kms_crypto_core::{self as cc, KeyMaterial, RootKey};
use kms_proto::v1 as wire;

pub(crate) struct CryptoStore {
    db: sled::Db,
    materials: sled::Tree,
    root: RootKey,
}

fn internal(e: impl std::fmt::Display) -> KmsError {
    tracing::error!(error = %e, "crypto store failure");
    KmsError::internal()
}

fn material_key(key_id: &str, version: u32) -> String {
    format!("{key_id}/{version:010}")
}

fn context(entries: Vec<wire::EncryptionContextEntry>) -> BTreeMap<String, String> {
    entries.into_iter().map(|e| (e.key, e.value)).collect()
}

fn check_length(n: u32) -> KmsResult<usize> {
    kms_core::validate::number_of_bytes(i64::from(n))?;
    usize::try_from(n).map_err(internal)
}

impl CryptoStore {
    pub(crate) fn open(dir: &Path, root: RootKey) -> anyhow::Result<Self> {
        let db = sled::open(dir)
            .map_err(|e| anyhow::anyhow!("opening crypto store at {}: {e}", dir.display()))?;
        Ok(Self { materials: db.open_tree("materials")?, db, root })
    }

    /// Creates one version of a key's material (1 for a new key, the next one for a
    /// rotation). Idempotent, so a retried CreateKey or rotation never replaces material
    /// that may already protect data.
    pub(crate) async fn create_material(
        &self,
        r: wire::CreateMaterialRequest,
    ) -> KmsResult<wire::CreateMaterialResponse> {
        let caller = r.caller.ok_or_else(|| KmsError::validation("missing caller context"))?;
        if uuid::Uuid::parse_str(&r.key_id).is_err() {
            return Err(KmsError::validation("key id must be a UUID"));
        }
        let version = r.material_version.max(1);
        let wrapped = self
            .root
            .wrap(&caller.account, &r.key_id, version, &KeyMaterial::generate())
            .map_err(internal)?;
        let mut record = Vec::with_capacity(1 + caller.account.len() + wrapped.len());
        record.push(u8::try_from(caller.account.len()).map_err(internal)?);
        record.extend_from_slice(caller.account.as_bytes());
        record.extend_from_slice(&wrapped);
        let key = material_key(&r.key_id, version);
        // Insert only if absent: never overwrite material.
        let _ = self
            .materials
            .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(record))
            .map_err(internal)?;
        self.db.flush_async().await.map_err(internal)?;
        Ok(wire::CreateMaterialResponse { material_version: version })
    }

    /// Unwraps one version of a key's material; `None` if there is no such material.
    fn material(&self, key_id: &str, version: u32) -> KmsResult<Option<KeyMaterial>> {
        let Some(record) = self.materials.get(material_key(key_id, version)).map_err(internal)?
        else {
            return Ok(None);
        };
        let account_len = usize::from(*record.first().ok_or_else(|| internal("empty record"))?);
        let account = record
            .get(1..1 + account_len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| internal("corrupt material record"))?;
        let wrapped = &record[1 + account_len..];
        self.root.unwrap(account, key_id, version, wrapped).map(Some).map_err(internal)
    }

    fn required_material(&self, key_id: &str, version: u32) -> KmsResult<KeyMaterial> {
        self.material(key_id, version)?.ok_or_else(|| internal("no material for a key in use"))
    }

    /// Destroys every version of a key's material: ciphertexts under it can never be
    /// decrypted again.
    pub(crate) async fn destroy_material(
        &self,
        r: wire::DestroyMaterialRequest,
    ) -> KmsResult<wire::DestroyMaterialResponse> {
        let prefix = format!("{}/", r.key_id);
        let mut destroyed = 0u32;
        for entry in self.materials.scan_prefix(prefix.as_bytes()) {
            let (k, _) = entry.map_err(internal)?;
            self.materials.remove(k).map_err(internal)?;
            destroyed += 1;
        }
        self.db.flush_async().await.map_err(internal)?;
        Ok(wire::DestroyMaterialResponse { versions_destroyed: destroyed })
    }

    pub(crate) fn encrypt(&self, r: wire::EncryptRequest) -> KmsResult<wire::EncryptResponse> {
        kms_core::validate::plaintext(r.plaintext.len())?;
        let plaintext = zeroize::Zeroizing::new(r.plaintext);
        let material = self.required_material(&r.key_id, r.material_version)?;
        let blob =
            cc::seal(&material, &r.key_id, r.material_version, &plaintext, &context(r.context))
                .map_err(internal)?;
        Ok(wire::EncryptResponse { ciphertext_blob: blob })
    }

    /// Opens a blob; every failure is `InvalidCiphertextException`, with nothing said
    /// about which check failed.
    fn open_blob(
        &self,
        blob: &[u8],
        ctx: &BTreeMap<String, String>,
    ) -> KmsResult<(String, zeroize::Zeroizing<Vec<u8>>)> {
        let header = cc::peek_header(blob).map_err(|_| KmsError::invalid_ciphertext())?;
        let material = self
            .material(&header.key_id, header.material_version)?
            .ok_or_else(KmsError::invalid_ciphertext)?;
        let plaintext =
            cc::open(&material, blob, ctx).map_err(|_| KmsError::invalid_ciphertext())?;
        Ok((header.key_id, plaintext))
    }

    pub(crate) fn decrypt(&self, r: wire::DecryptRequest) -> KmsResult<wire::DecryptResponse> {
        let (key_id, plaintext) = self.open_blob(&r.ciphertext_blob, &context(r.context))?;
        Ok(wire::DecryptResponse { plaintext: plaintext.to_vec(), key_id })
    }

    /// Decrypts and encrypts again without the plaintext ever leaving this service.
    pub(crate) fn re_encrypt(
        &self,
        r: wire::ReEncryptRequest,
    ) -> KmsResult<wire::ReEncryptResponse> {
        let (source_key_id, plaintext) =
            self.open_blob(&r.ciphertext_blob, &context(r.source_context))?;
        let material =
            self.required_material(&r.destination_key_id, r.destination_material_version)?;
        let blob = cc::seal(
            &material,
            &r.destination_key_id,
            r.destination_material_version,
            &plaintext,
            &context(r.destination_context),
        )
        .map_err(internal)?;
        Ok(wire::ReEncryptResponse { ciphertext_blob: blob, source_key_id })
    }

    pub(crate) fn generate_data_key(
        &self,
        r: wire::GenerateDataKeyRequest,
    ) -> KmsResult<wire::GenerateDataKeyResponse> {
        let n = check_length(r.number_of_bytes)?;
        let data_key = zeroize::Zeroizing::new(cc::random_bytes(n));
        let material = self.required_material(&r.key_id, r.material_version)?;
        let blob =
            cc::seal(&material, &r.key_id, r.material_version, &data_key, &context(r.context))
                .map_err(internal)?;
        let plaintext = if r.include_plaintext { data_key.to_vec() } else { Vec::new() };
        Ok(wire::GenerateDataKeyResponse { plaintext, ciphertext_blob: blob })
    }
}

pub(crate) fn generate_random(
    r: wire::GenerateRandomRequest,
) -> KmsResult<wire::GenerateRandomResponse> {
    let n = check_length(r.number_of_bytes)?;
    Ok(wire::GenerateRandomResponse { plaintext: cc::random_bytes(n) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kms_core::ErrorCode;

    const A: &str = "111122223333";

    fn caller() -> Option<wire::CallerContext> {
        Some(wire::CallerContext {
            account: A.into(),
            region: "us-east-1".into(),
            ..Default::default()
        })
    }

    fn root(hex: &str) -> RootKey {
        RootKey::from_hex(hex).unwrap()
    }

    fn ctx(pairs: &[(&str, &str)]) -> Vec<wire::EncryptionContextEntry> {
        pairs
            .iter()
            .map(|(k, v)| wire::EncryptionContextEntry { key: k.to_string(), value: v.to_string() })
            .collect()
    }

    async fn new_key(store: &CryptoStore) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let r = wire::CreateMaterialRequest {
            caller: caller(),
            key_id: id.clone(),
            key_spec: "SYMMETRIC_DEFAULT".into(),
            material_version: 1,
        };
        store.create_material(r).await.unwrap();
        id
    }

    fn encrypt(store: &CryptoStore, key: &str, text: &[u8], c: &[(&str, &str)]) -> Vec<u8> {
        store
            .encrypt(wire::EncryptRequest {
                caller: caller(),
                key_id: key.into(),
                material_version: 1,
                plaintext: text.to_vec(),
                context: ctx(c),
            })
            .unwrap()
            .ciphertext_blob
    }

    fn decrypt(store: &CryptoStore, blob: Vec<u8>, c: &[(&str, &str)]) -> KmsResult<Vec<u8>> {
        store
            .decrypt(wire::DecryptRequest {
                caller: caller(),
                ciphertext_blob: blob,
                context: ctx(c),
            })
            .map(|r| r.plaintext)
    }

    #[tokio::test]
    async fn material_survives_reopen_and_only_with_the_same_root_key() {
        let dir = tempfile::tempdir().unwrap();
        let hex = RootKey::generate_hex();
        let (key, blob);
        {
            let store = CryptoStore::open(dir.path(), root(&hex)).unwrap();
            key = new_key(&store).await;
            blob = encrypt(&store, &key, b"payload", &[("a", "1")]);
            // A retried CreateMaterial must not replace the material.
            let again = wire::CreateMaterialRequest {
                caller: caller(),
                key_id: key.clone(),
                key_spec: String::new(),
                material_version: 1,
            };
            store.create_material(again).await.unwrap();
        }
        {
            let store = CryptoStore::open(dir.path(), root(&hex)).unwrap();
            assert_eq!(decrypt(&store, blob.clone(), &[("a", "1")]).unwrap(), b"payload");
            let err = decrypt(&store, blob.clone(), &[("a", "2")]).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidCiphertext);
        }
        let store = CryptoStore::open(dir.path(), root(&RootKey::generate_hex())).unwrap();
        assert_eq!(decrypt(&store, blob, &[("a", "1")]).unwrap_err().code, ErrorCode::Internal);
    }

    #[tokio::test]
    async fn re_encrypt_and_data_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = CryptoStore::open(dir.path(), root(&RootKey::generate_hex())).unwrap();
        let (k1, k2) = (new_key(&store).await, new_key(&store).await);
        let blob = encrypt(&store, &k1, b"move me", &[]);
        let moved = store
            .re_encrypt(wire::ReEncryptRequest {
                caller: caller(),
                ciphertext_blob: blob,
                source_context: vec![],
                destination_key_id: k2.clone(),
                destination_material_version: 1,
                destination_context: ctx(&[("x", "y")]),
            })
            .unwrap();
        assert_eq!(moved.source_key_id, k1);
        let back = store
            .decrypt(wire::DecryptRequest {
                caller: caller(),
                ciphertext_blob: moved.ciphertext_blob,
                context: ctx(&[("x", "y")]),
            })
            .unwrap();
        assert_eq!(
            (back.plaintext.as_slice(), back.key_id.as_str()),
            (&b"move me"[..], k2.as_str())
        );

        let dk = |include| {
            store
                .generate_data_key(wire::GenerateDataKeyRequest {
                    caller: caller(),
                    key_id: k1.clone(),
                    material_version: 1,
                    number_of_bytes: 32,
                    context: vec![],
                    include_plaintext: include,
                })
                .unwrap()
        };
        let with = dk(true);
        assert_eq!(with.plaintext.len(), 32);
        assert_eq!(decrypt(&store, with.ciphertext_blob, &[]).unwrap(), with.plaintext);
        assert!(dk(false).plaintext.is_empty());
        assert_eq!(
            generate_random(wire::GenerateRandomRequest {
                caller: caller(),
                number_of_bytes: 1025
            })
            .unwrap_err()
            .code,
            ErrorCode::Validation
        );
        assert_eq!(
            generate_random(wire::GenerateRandomRequest { caller: caller(), number_of_bytes: 16 })
                .unwrap()
                .plaintext
                .len(),
            16
        );
    }

    #[tokio::test]
    async fn versions_decrypt_independently_and_destruction_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let store = CryptoStore::open(dir.path(), root(&RootKey::generate_hex())).unwrap();
        let key = new_key(&store).await;
        let v1 = encrypt(&store, &key, b"old", &[]);
        let r = wire::CreateMaterialRequest {
            caller: caller(),
            key_id: key.clone(),
            key_spec: String::new(),
            material_version: 2,
        };
        assert_eq!(store.create_material(r).await.unwrap().material_version, 2);
        let v2 = store
            .encrypt(wire::EncryptRequest {
                caller: caller(),
                key_id: key.clone(),
                material_version: 2,
                plaintext: b"new".to_vec(),
                context: vec![],
            })
            .unwrap()
            .ciphertext_blob;
        assert_ne!(v1[17..21], v2[17..21], "the blob names its version");
        assert_eq!(decrypt(&store, v1.clone(), &[]).unwrap(), b"old");
        assert_eq!(decrypt(&store, v2.clone(), &[]).unwrap(), b"new");
        let gone = store
            .destroy_material(wire::DestroyMaterialRequest {
                caller: caller(),
                key_id: key.clone(),
            })
            .await
            .unwrap();
        assert_eq!(gone.versions_destroyed, 2);
        for blob in [v1, v2] {
            assert_eq!(decrypt(&store, blob, &[]).unwrap_err().code, ErrorCode::InvalidCiphertext);
        }
    }

    #[tokio::test]
    async fn unknown_key_in_blob_is_invalid_ciphertext() {
        let dir = tempfile::tempdir().unwrap();
        let store = CryptoStore::open(dir.path(), root(&RootKey::generate_hex())).unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let other = CryptoStore::open(other_dir.path(), root(&RootKey::generate_hex())).unwrap();
        let k = new_key(&other).await;
        let blob = encrypt(&other, &k, b"x", &[]);
        assert_eq!(decrypt(&store, blob, &[]).unwrap_err().code, ErrorCode::InvalidCiphertext);
        assert_eq!(
            decrypt(&store, vec![1, 2, 3], &[]).unwrap_err().code,
            ErrorCode::InvalidCiphertext
        );
    }
}
