//! Key material and the root key that wraps it at rest. Material exists in plaintext only
//! inside `KeyMaterial`, which zeroizes on drop and has no `Debug` that shows it.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

/// Secret key material: 256 bits for symmetric encryption keys, 224 to 512 bits for HMAC
/// keys. Zeroized on drop; never shown by `Debug`.
pub struct KeyMaterial(Zeroizing<Vec<u8>>);

impl KeyMaterial {
    /// 256 bits of fresh symmetric material.
    pub fn generate() -> Self {
        Self::generate_len(32)
    }

    /// `len` bytes of fresh material.
    pub fn generate_len(len: usize) -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; len]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut_slice());
        Self(bytes)
    }

    /// Exactly 256 bits (symmetric encryption material, the root key).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == 32).then(|| Self(Zeroizing::new(bytes.to_vec())))
    }

    /// Imported HMAC material, if its length is one AWS accepts for `algorithm`.
    pub fn from_imported_hmac(algorithm: crate::MacAlgorithm, bytes: &[u8]) -> Option<Self> {
        algorithm.import_len().contains(&bytes.len()).then(|| Self(Zeroizing::new(bytes.to_vec())))
    }

    /// Material of any non-empty length, as stored.
    fn from_stored(bytes: &[u8]) -> Option<Self> {
        (!bytes.is_empty()).then(|| Self(Zeroizing::new(bytes.to_vec())))
    }

    pub(crate) fn expose(&self) -> &[u8] {
        self.0.as_slice()
    }

    #[cfg(test)]
    pub(crate) fn from_stored_for_test(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// The `KeyMaterialId` AWS shows for one version of a key's material: 64 hex digits that
/// name the version without revealing anything of the material (a hash of the key id and
/// version number only), stable across restarts and replicas.
pub fn key_material_id(key_id: &str, version: u32) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("kms-key-material-id|{key_id}|{version}").as_bytes()))
}

/// Random bytes from the operating system's generator.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut out);
    out
}

#[derive(Debug, thiserror::Error)]
pub enum RootKeyError {
    #[error("the root key must be 64 hex characters (32 bytes)")]
    BadFormat,
}

/// Material could not be wrapped or unwrapped: for unwrapping, a wrong root key, or the
/// stored bytes or their binding (account, key, version) were altered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("key material could not be wrapped or unwrapped")]
pub struct UnwrapError;

/// The key-encryption key that protects all material at rest (AES-256-GCM, the AAD binds
/// account, key id and version so wrapped material cannot be swapped between keys).
pub struct RootKey(KeyMaterial);

impl RootKey {
    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, RootKeyError> {
        let bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| RootKeyError::BadFormat)?);
        KeyMaterial::from_bytes(&bytes).map(Self).ok_or(RootKeyError::BadFormat)
    }

    /// A fresh random root key as hex, for development setups.
    pub fn generate_hex() -> Zeroizing<String> {
        Zeroizing::new(hex::encode(KeyMaterial::generate().expose()))
    }

    pub fn wrap(
        &self,
        account: &str,
        key_id: &str,
        version: u32,
        material: &KeyMaterial,
    ) -> Result<Vec<u8>, UnwrapError> {
        let nonce = random_bytes(12);
        let aad = wrap_aad(account, key_id, version);
        let cipher = Aes256Gcm::new_from_slice(self.0.expose()).map_err(|_| UnwrapError)?;
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: material.expose(), aad: &aad })
            .map_err(|_| UnwrapError)?;
        let mut out = nonce;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn unwrap(
        &self,
        account: &str,
        key_id: &str,
        version: u32,
        wrapped: &[u8],
    ) -> Result<KeyMaterial, UnwrapError> {
        if wrapped.len() < 12 + 16 {
            return Err(UnwrapError);
        }
        let (nonce, sealed) = wrapped.split_at(12);
        let aad = wrap_aad(account, key_id, version);
        let cipher = Aes256Gcm::new_from_slice(self.0.expose()).map_err(|_| UnwrapError)?;
        let plain = Zeroizing::new(
            cipher
                .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
                .map_err(|_| UnwrapError)?,
        );
        KeyMaterial::from_stored(&plain).ok_or(UnwrapError)
    }
}

impl RootKey {
    /// Seals any secret bytes at rest (import wrapping keys), bound to `label`.
    pub fn seal_bytes(&self, label: &str, bytes: &[u8]) -> Result<Vec<u8>, UnwrapError> {
        let nonce = random_bytes(12);
        let cipher = Aes256Gcm::new_from_slice(self.0.expose()).map_err(|_| UnwrapError)?;
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: bytes, aad: label.as_bytes() })
            .map_err(|_| UnwrapError)?;
        let mut out = nonce;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open_bytes(
        &self,
        label: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, UnwrapError> {
        if sealed.len() < 12 + 16 {
            return Err(UnwrapError);
        }
        let (nonce, body) = sealed.split_at(12);
        let cipher = Aes256Gcm::new_from_slice(self.0.expose()).map_err(|_| UnwrapError)?;
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: label.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| UnwrapError)
    }

    /// A keyed fingerprint of material (HMAC-SHA-256 under a key derived from the root
    /// key): lets the service recognise re-imported material without keeping it.
    pub fn fingerprint(&self, key_id: &str, material: &KeyMaterial) -> Vec<u8> {
        self.fingerprint_secret(key_id, material.expose())
    }

    /// The same fingerprint of any secret bytes (an imported private key's PKCS#8).
    pub fn fingerprint_secret(&self, key_id: &str, secret: &[u8]) -> Vec<u8> {
        use hmac::{Hmac, Mac};
        let derive = |data: &[u8], key: &[u8]| -> Vec<u8> {
            match <Hmac<sha2::Sha256> as Mac>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                Err(_) => Vec::new(),
            }
        };
        let fingerprint_key = Zeroizing::new(derive(b"kms-import-fingerprint-v1", self.0.expose()));
        let input = Zeroizing::new([key_id.as_bytes(), b"|", secret].concat());
        derive(&input, &fingerprint_key)
    }
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

fn wrap_aad(account: &str, key_id: &str, version: u32) -> Vec<u8> {
    format!("kms-material-v1|{account}|{key_id}|{version}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_material_ids_name_versions() {
        let a = key_material_id("k", 1);
        assert_eq!(a.len(), 64);
        assert_eq!(a, key_material_id("k", 1));
        assert_ne!(a, key_material_id("k", 2));
        assert_ne!(a, key_material_id("j", 1));
    }

    #[test]
    fn wrap_round_trip_and_binding() {
        let root = RootKey::from_hex(&RootKey::generate_hex()).unwrap();
        let m = KeyMaterial::generate();
        let wrapped = root.wrap("111122223333", "k1", 1, &m).unwrap();
        let back = root.unwrap("111122223333", "k1", 1, &wrapped).unwrap();
        assert_eq!(back.expose(), m.expose());
        assert!(root.unwrap("444455556666", "k1", 1, &wrapped).is_err());
        assert!(root.unwrap("111122223333", "k2", 1, &wrapped).is_err());
        assert!(root.unwrap("111122223333", "k1", 2, &wrapped).is_err());
        let other = RootKey::from_hex(&RootKey::generate_hex()).unwrap();
        assert!(other.unwrap("111122223333", "k1", 1, &wrapped).is_err());
        let mut tampered = wrapped.clone();
        tampered[20] ^= 1;
        assert!(root.unwrap("111122223333", "k1", 1, &tampered).is_err());
    }

    #[test]
    fn root_key_parsing_and_redaction() {
        assert!(RootKey::from_hex("zz").is_err());
        assert!(RootKey::from_hex(&"ab".repeat(31)).is_err());
        let hex = "ab".repeat(32);
        let root = RootKey::from_hex(&format!(" {hex}\n")).unwrap();
        assert_eq!(format!("{root:?}"), "RootKey(<redacted>)");
        assert_eq!(format!("{:?}", KeyMaterial::generate()), "KeyMaterial(<redacted>)");
    }
}
