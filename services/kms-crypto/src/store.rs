//! Wrapped key material in sled (`materials`: `<key id>/<version>` → account length,
//! account, wrapped bytes; asymmetric keys in `asym_keys`, see `asym`) and the
//! cryptographic operations over it.

mod asym;

use std::collections::BTreeMap;
use std::path::Path;

use kms_core::{ErrorCode, KmsError, KmsResult};
use kms_crypto_core::{self as cc, KeyMaterial, RootKey};
use kms_proto::v1 as wire;
use prost::Message;

pub(crate) struct CryptoStore {
    db: sled::Db,
    materials: sled::Tree,
    /// Import token → `ImportTokenRecord`.
    import_tokens: sled::Tree,
    /// Key id → keyed fingerprint of the material it imported, kept after the material
    /// is deleted so that only the same material can come back.
    fingerprints: sled::Tree,
    /// `<key id>/<version>` → `AsymKeyRecord` (RSA and ECC keys).
    asym_keys: sled::Tree,
    /// Pre-generated RSA keys (see `asym`).
    rsa_spares: std::sync::Arc<asym::RsaSpares>,
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

/// Imported key material once checked against the key's spec.
enum Imported {
    /// Symmetric encryption or HMAC material.
    Secret(KeyMaterial),
    /// An asymmetric private key (PKCS#8).
    Private(cc::asym::PrivateKey),
}

impl Imported {
    /// The keyed fingerprint that recognises the same material when it is imported again.
    fn fingerprint(&self, root: &RootKey, key_id: &str) -> Vec<u8> {
        match self {
            Self::Secret(material) => root.fingerprint(key_id, material),
            Self::Private(private) => root.fingerprint_secret(key_id, private.pkcs8_der()),
        }
    }
}

/// Checks unwrapped material against the key spec, as AWS does: 256 bits for a symmetric
/// encryption key, AWS's lengths for an HMAC key, a PKCS#8 private key of exactly the
/// key's spec (RSA modulus size or curve) for an asymmetric key.
async fn imported_material(key_spec: &str, plain: &[u8]) -> KmsResult<Imported> {
    if key_spec.is_empty() || key_spec == "SYMMETRIC_DEFAULT" {
        return KeyMaterial::from_bytes(plain).map(Imported::Secret).ok_or_else(|| {
            KmsError::validation("Imported key material for a symmetric key must be 256 bits.")
        });
    }
    if let Some(algorithm) = cc::MacAlgorithm::for_key_spec(key_spec) {
        return KeyMaterial::from_imported_hmac(algorithm, plain).map(Imported::Secret).ok_or_else(
            || {
                let range = algorithm.import_len();
                KmsError::validation(format!(
                    "Imported key material for a {key_spec} key must be {} to {} bytes.",
                    range.start(),
                    range.end()
                ))
            },
        );
    }
    let spec = cc::asym::AsymSpec::parse(key_spec).ok_or_else(|| {
        KmsError::validation(format!("{key_spec} keys cannot hold imported material"))
    })?;
    let der = zeroize::Zeroizing::new(plain.to_vec());
    tokio::task::spawn_blocking(move || cc::asym::PrivateKey::from_pkcs8_der(spec, &der))
        .await
        .map_err(internal)?
        .map(Imported::Private)
        .map_err(|_| {
            KmsError::validation(format!(
                "The imported key material is not a PKCS#8 DER private key of key spec {key_spec}."
            ))
        })
}

impl CryptoStore {
    pub(crate) fn open(dir: &Path, root: RootKey) -> anyhow::Result<Self> {
        let db = kms_sled_guard::open(dir)
            .map_err(|e| anyhow::anyhow!("opening crypto store at {}: {e}", dir.display()))?;
        Ok(Self {
            materials: db.open_tree("materials")?,
            import_tokens: db.open_tree("import_tokens")?,
            fingerprints: db.open_tree("fingerprints")?,
            asym_keys: db.open_tree("asym_keys")?,
            rsa_spares: std::sync::Arc::default(),
            db,
            root,
        })
    }

    fn store_material(
        &self,
        account: &str,
        key_id: &str,
        version: u32,
        material: &KeyMaterial,
    ) -> KmsResult<Vec<u8>> {
        let wrapped = self.root.wrap(account, key_id, version, material).map_err(internal)?;
        let mut record = Vec::with_capacity(1 + account.len() + wrapped.len());
        record.push(u8::try_from(account.len()).map_err(internal)?);
        record.extend_from_slice(account.as_bytes());
        record.extend_from_slice(&wrapped);
        Ok(record)
    }

    /// A wrapping key and import token for `key_id` (GetParametersForImport).
    pub(crate) async fn get_import_parameters(
        &self,
        r: wire::GetImportParametersRequest,
    ) -> KmsResult<wire::GetImportParametersResponse> {
        let caller = r.caller.ok_or_else(|| KmsError::validation("missing caller context"))?;
        let algorithm = cc::WrappingAlgorithm::parse(&r.wrapping_algorithm)
            .ok_or_else(|| KmsError::validation("unsupported wrapping algorithm"))?;
        let bits = cc::wrapping_key_bits(&r.wrapping_key_spec)
            .ok_or_else(|| KmsError::validation("unsupported wrapping key spec"))?;
        let (private, public) =
            tokio::task::spawn_blocking(move || cc::generate_wrapping_key(bits))
                .await
                .map_err(internal)?
                .map_err(internal)?;
        let label = format!("import-token|{}", r.key_id);
        let record = wire::ImportTokenRecord {
            key_id: r.key_id,
            account: caller.account,
            wrapping_algorithm: algorithm.as_str().to_owned(),
            sealed_private_key: self.root.seal_bytes(&label, &private).map_err(internal)?,
            valid_to_ms: r.valid_to_ms,
        };
        let token = cc::random_bytes(32);
        self.import_tokens.insert(token.as_slice(), record.encode_to_vec()).map_err(internal)?;
        kms_sled_guard::flush_async(&self.db).await.map_err(internal)?;
        Ok(wire::GetImportParametersResponse { import_token: token, public_key: public })
    }

    /// Unwraps imported material and makes it version 1 (ImportKeyMaterial).
    pub(crate) async fn import_material(
        &self,
        r: wire::ImportMaterialRequest,
    ) -> KmsResult<wire::ImportMaterialResponse> {
        let invalid_token = || {
            KmsError::new(
                ErrorCode::InvalidImportToken,
                "The import token is not valid for this key.",
            )
        };
        let stored =
            self.import_tokens.get(&r.import_token).map_err(internal)?.ok_or_else(invalid_token)?;
        let token = wire::ImportTokenRecord::decode(stored.as_ref()).map_err(internal)?;
        if token.key_id != r.key_id {
            return Err(invalid_token());
        }
        if r.now_ms > token.valid_to_ms {
            return Err(KmsError::new(
                ErrorCode::ExpiredImportToken,
                "The import token has expired.",
            ));
        }
        let algorithm =
            cc::WrappingAlgorithm::parse(&token.wrapping_algorithm).ok_or_else(invalid_token)?;
        let private = self
            .root
            .open_bytes(&format!("import-token|{}", token.key_id), &token.sealed_private_key)
            .map_err(internal)?;
        let encrypted = r.encrypted_key_material;
        let plain = tokio::task::spawn_blocking(move || {
            cc::unwrap_imported(algorithm, &private, &encrypted)
        })
        .await
        .map_err(internal)?
        .map_err(|_| KmsError::invalid_ciphertext())?;
        let imported = imported_material(&r.key_spec, &plain).await?;
        let fingerprint = imported.fingerprint(&self.root, &token.key_id);
        if let Some(previous) = self.fingerprints.get(token.key_id.as_bytes()).map_err(internal)? {
            if !bool::from(subtle::ConstantTimeEq::ct_eq(previous.as_ref(), fingerprint.as_slice()))
            {
                return Err(KmsError::new(
                    ErrorCode::IncorrectKeyMaterial,
                    "The key material is not the material previously imported into this key.",
                ));
            }
        }
        let (tree, record) = match &imported {
            Imported::Secret(material) => {
                (&self.materials, self.store_material(&token.account, &token.key_id, 1, material)?)
            }
            Imported::Private(private) => (
                &self.asym_keys,
                self.asym_key_record(&token.account, &token.key_id, 1, private)?.encode_to_vec(),
            ),
        };
        self.fingerprints.insert(token.key_id.as_bytes(), fingerprint).map_err(internal)?;
        tree.insert(material_key(&token.key_id, 1).as_bytes(), record).map_err(internal)?;
        kms_sled_guard::flush_async(&self.db).await.map_err(internal)?;
        Ok(wire::ImportMaterialResponse {})
    }

    /// Deletes imported material (DeleteImportedKeyMaterial, or its expiry); the
    /// fingerprint stays.
    pub(crate) async fn delete_imported_material(
        &self,
        r: wire::DeleteImportedMaterialRequest,
    ) -> KmsResult<wire::DeleteImportedMaterialResponse> {
        for tree in [&self.materials, &self.asym_keys] {
            tree.remove(material_key(&r.key_id, 1).as_bytes()).map_err(internal)?;
        }
        kms_sled_guard::flush_async(&self.db).await.map_err(internal)?;
        Ok(wire::DeleteImportedMaterialResponse {})
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
        if let Some(spec) = cc::asym::AsymSpec::parse(&r.key_spec) {
            self.create_asym_material(&caller.account, &r.key_id, version, spec).await?;
            return Ok(wire::CreateMaterialResponse { material_version: version });
        }
        // HMAC keys hold material of their digest's length; encryption keys 256 bits.
        let material = cc::MacAlgorithm::for_key_spec(&r.key_spec)
            .map_or_else(KeyMaterial::generate, |alg| KeyMaterial::generate_len(alg.key_len()));
        let record = self.store_material(&caller.account, &r.key_id, version, &material)?;
        let key = material_key(&r.key_id, version);
        // Insert only if absent: never overwrite material.
        let _ = self
            .materials
            .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(record))
            .map_err(internal)?;
        kms_sled_guard::flush_async(&self.db).await.map_err(internal)?;
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
        for tree in [&self.materials, &self.asym_keys] {
            for entry in tree.scan_prefix(prefix.as_bytes()) {
                let (k, _) = entry.map_err(internal)?;
                tree.remove(k).map_err(internal)?;
                destroyed += 1;
            }
        }
        self.fingerprints.remove(r.key_id.as_bytes()).map_err(internal)?;
        kms_sled_guard::flush_async(&self.db).await.map_err(internal)?;
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

    /// Decrypts and encrypts again without the plaintext ever leaving this service. Either
    /// side may be an RSA key (RSA-OAEP, named by the request) or symmetric (the blob).
    pub(crate) async fn re_encrypt(
        &self,
        r: wire::ReEncryptRequest,
    ) -> KmsResult<wire::ReEncryptResponse> {
        let (source_key_id, plaintext) = if r.source_encryption_algorithm.is_empty() {
            self.open_blob(&r.ciphertext_blob, &context(r.source_context))?
        } else {
            let algorithm = asym::encryption_algorithm(&r.source_encryption_algorithm)?;
            let plaintext = self
                .rsa_decrypt(
                    &r.source_key_id,
                    r.source_material_version,
                    algorithm,
                    r.ciphertext_blob,
                )
                .await?;
            (r.source_key_id, plaintext)
        };
        let blob = if r.destination_encryption_algorithm.is_empty() {
            let material =
                self.required_material(&r.destination_key_id, r.destination_material_version)?;
            cc::seal(
                &material,
                &r.destination_key_id,
                r.destination_material_version,
                &plaintext,
                &context(r.destination_context),
            )
            .map_err(internal)?
        } else {
            let algorithm = asym::encryption_algorithm(&r.destination_encryption_algorithm)?;
            self.rsa_encrypt(
                &r.destination_key_id,
                r.destination_material_version,
                algorithm,
                &plaintext,
            )?
        };
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

impl CryptoStore {
    pub(crate) fn generate_mac(
        &self,
        r: wire::GenerateMacRequest,
    ) -> KmsResult<wire::GenerateMacResponse> {
        let alg = cc::MacAlgorithm::parse(&r.mac_algorithm)
            .ok_or_else(|| KmsError::validation("unknown MAC algorithm"))?;
        let material = self.required_material(&r.key_id, r.material_version)?;
        let mac = cc::generate_mac(&material, alg, &r.message)
            .ok_or_else(|| internal("HMAC key rejected"))?;
        Ok(wire::GenerateMacResponse { mac })
    }

    /// A MAC that does not verify is KMSInvalidMacException, as in AWS.
    pub(crate) fn verify_mac(
        &self,
        r: wire::VerifyMacRequest,
    ) -> KmsResult<wire::VerifyMacResponse> {
        let alg = cc::MacAlgorithm::parse(&r.mac_algorithm)
            .ok_or_else(|| KmsError::validation("unknown MAC algorithm"))?;
        let material = self.required_material(&r.key_id, r.material_version)?;
        if cc::verify_mac(&material, alg, &r.message, &r.mac) {
            Ok(wire::VerifyMacResponse { mac_valid: true })
        } else {
            Err(KmsError::new(ErrorCode::InvalidMac, ""))
        }
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
                ..Default::default()
            })
            .await
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

    async fn import_params(
        store: &CryptoStore,
        key: &str,
        valid_to_ms: i64,
    ) -> (Vec<u8>, rsa::RsaPublicKey) {
        use rsa::pkcs8::DecodePublicKey;
        let p = store
            .get_import_parameters(wire::GetImportParametersRequest {
                caller: caller(),
                key_id: key.into(),
                wrapping_algorithm: "RSAES_OAEP_SHA_256".into(),
                wrapping_key_spec: "RSA_2048".into(),
                valid_to_ms,
                now_ms: 0,
            })
            .await
            .unwrap();
        (p.import_token, rsa::RsaPublicKey::from_public_key_der(&p.public_key).unwrap())
    }

    fn wrap(public: &rsa::RsaPublicKey, material: &[u8]) -> Vec<u8> {
        public.encrypt(&mut rand::rngs::OsRng, rsa::Oaep::new::<sha2::Sha256>(), material).unwrap()
    }

    #[tokio::test]
    async fn imported_material_rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = CryptoStore::open(dir.path(), root(&RootKey::generate_hex())).unwrap();
        let key = uuid::Uuid::new_v4().to_string();
        let import = |token: Vec<u8>, encrypted: Vec<u8>, now_ms| wire::ImportMaterialRequest {
            caller: caller(),
            key_id: key.clone(),
            import_token: token,
            encrypted_key_material: encrypted,
            now_ms,
            key_spec: "SYMMETRIC_DEFAULT".to_owned(),
        };
        let (token, public) = import_params(&store, &key, 1_000).await;
        let material = [9u8; 32];
        let code = |r: KmsResult<wire::ImportMaterialResponse>| r.unwrap_err().code;
        assert_eq!(
            code(
                store.import_material(import(token.clone(), wrap(&public, &material), 1_001)).await
            ),
            ErrorCode::ExpiredImportToken
        );
        assert_eq!(
            code(store.import_material(import(vec![1; 32], wrap(&public, &material), 0)).await),
            ErrorCode::InvalidImportToken
        );
        assert_eq!(
            code(store.import_material(import(token.clone(), vec![0; 256], 0)).await),
            ErrorCode::InvalidCiphertext
        );
        assert_eq!(
            code(store.import_material(import(token.clone(), wrap(&public, &[1u8; 16]), 0)).await),
            ErrorCode::Validation
        );
        store.import_material(import(token.clone(), wrap(&public, &material), 0)).await.unwrap();
        let blob = encrypt(&store, &key, b"byok", &[]);
        assert_eq!(decrypt(&store, blob.clone(), &[]).unwrap(), b"byok");

        store
            .delete_imported_material(wire::DeleteImportedMaterialRequest {
                caller: caller(),
                key_id: key.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            decrypt(&store, blob.clone(), &[]).unwrap_err().code,
            ErrorCode::InvalidCiphertext
        );
        assert_eq!(
            code(store.import_material(import(token.clone(), wrap(&public, &[8u8; 32]), 0)).await),
            ErrorCode::IncorrectKeyMaterial
        );
        store.import_material(import(token.clone(), wrap(&public, &material), 0)).await.unwrap();
        assert_eq!(
            decrypt(&store, blob, &[]).unwrap(),
            b"byok",
            "the same material brings old ciphertexts back"
        );

        let other = uuid::Uuid::new_v4().to_string();
        let foreign = wire::ImportMaterialRequest {
            caller: caller(),
            key_id: other,
            import_token: token,
            encrypted_key_material: wrap(&public, &material),
            now_ms: 0,
            key_spec: String::new(),
        };
        assert_eq!(
            code(store.import_material(foreign).await),
            ErrorCode::InvalidImportToken,
            "tokens are bound to their key"
        );
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
