//! Temporary credentials of role sessions (what STS `AssumeRoleWithWebIdentity` returns),
//! verifiable by any gateway replica without shared state.
//!
//! The session token *is* the session: its fields (role, session name, times, the access
//! key id and the secret access key) sealed with AES-256-GCM under a session key every
//! gateway is configured with. A request signed with the temporary credentials carries the
//! token in `X-Amz-Security-Token`; the gateway opens it, checks that it names the
//! request's access key id and is not expired, and verifies the SigV4 signature with the
//! secret found inside. Nothing is stored, so replicas need only the same key, and a
//! session cannot outlive its `Expiration` (there is no revocation before that, as with
//! AWS's own session credentials short of a role-wide deny).
//!
//! The key file holds one or more keys (64 hex characters per line): the first seals,
//! all open, so a key can be rotated by prepending the new one and dropping the old one
//! after the longest session duration has passed.
//!
//! Token layout: `base64(0x01 | key index hint (1) | nonce (12) | ciphertext | tag (16))`,
//! AAD `kms-sts-session-v1`; the plaintext is JSON, held in zeroized buffers.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::StoreError;

const VERSION: u8 = 1;
const AAD: &[u8] = b"kms-sts-session-v1";
const NONCE_LEN: usize = 12;
/// Characters of a generated access key id after `ASIA` (base32, as AWS uses).
const KEY_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The keys that seal and open session tokens. The first seals; every one opens.
#[derive(Clone)]
pub struct SessionKeys {
    keys: Vec<Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKeys({} keys, <redacted>)", self.keys.len())
    }
}

impl SessionKeys {
    /// Keys from text: one key of 64 hex characters per line; blank lines and lines
    /// starting with `#` are skipped.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let mut keys = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut key = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(line, key.as_mut_slice()).map_err(|_| {
                StoreError::InvalidSessionKey("each key must be 64 hex characters".to_owned())
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(StoreError::InvalidSessionKey("the file holds no key".to_owned()));
        }
        Ok(SessionKeys { keys })
    }

    /// Reads a key file (see [`SessionKeys::parse`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|source| StoreError::Io { path: path.to_owned(), source })?,
        );
        Self::parse(&text)
    }

    /// One fresh random key, for tests and development.
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(key.as_mut_slice());
        SessionKeys { keys: vec![key] }
    }

    /// A fresh random key as a key-file line (64 hex characters and a newline).
    pub fn generate_hex() -> Zeroizing<String> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::thread_rng().fill_bytes(key.as_mut_slice());
        let mut text = Zeroizing::new(hex::encode(key.as_slice()));
        text.push('\n');
        text
    }

    /// Seals `session` into a session token.
    pub(crate) fn seal(&self, session: &Session) -> Result<String, SealError> {
        let key = self.keys.first().ok_or(SealError)?;
        let plaintext = Zeroizing::new(serde_json::to_vec(session).map_err(|_| SealError)?);
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new_from_slice(key.as_slice()).map_err(|_| SealError)?;
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plaintext, aad: AAD })
            .map_err(|_| SealError)?;
        let mut blob = Vec::with_capacity(2 + NONCE_LEN + sealed.len());
        blob.push(VERSION);
        blob.push(0);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        Ok(base64::engine::general_purpose::STANDARD.encode(blob))
    }

    /// Opens a session token; `None` when it is not one of ours or was altered.
    pub(crate) fn open(&self, token: &str) -> Option<Session> {
        let blob = base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()?;
        let (&version, rest) = blob.split_first()?;
        if version != VERSION || rest.len() < 1 + NONCE_LEN + 16 {
            return None;
        }
        let (nonce, sealed) = rest[1..].split_at(NONCE_LEN);
        self.keys.iter().find_map(|key| {
            let cipher = Aes256Gcm::new_from_slice(key.as_slice()).ok()?;
            let plaintext = Zeroizing::new(
                cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: AAD }).ok()?,
            );
            serde_json::from_slice(&plaintext).ok()
        })
    }
}

/// Sealing failed (an AEAD or serialization error that does not happen in practice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session could not be sealed")]
pub struct SealError;

/// What a session token holds.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    /// The temporary access key id (`ASIA...`).
    pub(crate) access_key_id: String,
    /// The temporary secret access key.
    #[serde(with = "secret")]
    pub(crate) secret_access_key: Zeroizing<String>,
    /// The role's account.
    pub(crate) account_id: String,
    /// `arn:aws:iam::<account>:role/<name>`.
    pub(crate) role_arn: String,
    pub(crate) session_name: String,
    /// Issue and expiry, seconds since the Unix epoch.
    pub(crate) issued_at: i64,
    pub(crate) expires_at: i64,
    /// The web identity token's issuer.
    pub(crate) provider: String,
    /// The web identity token's subject.
    pub(crate) subject: String,
}

mod secret {
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub(super) fn serialize<S: Serializer>(v: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Zeroizing<String>, D::Error> {
        String::deserialize(d).map(Zeroizing::new)
    }
}

/// `ASIA` + 16 characters of `[A-Z2-7]`, and a 40-character secret, as AWS makes them.
pub(crate) fn generate_temporary_key() -> (String, Zeroizing<String>) {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(20);
    id.push_str("ASIA");
    for _ in 0..16 {
        id.push(char::from(KEY_ID_ALPHABET[rng.gen_range(0..KEY_ID_ALPHABET.len())]));
    }
    let mut secret = Zeroizing::new(String::with_capacity(40));
    for _ in 0..40 {
        secret.push(char::from(SECRET_ALPHABET[rng.gen_range(0..SECRET_ALPHABET.len())]));
    }
    (id, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let (access_key_id, secret_access_key) = generate_temporary_key();
        Session {
            access_key_id,
            secret_access_key,
            account_id: "111122223333".to_owned(),
            role_arn: "arn:aws:iam::111122223333:role/app".to_owned(),
            session_name: "s1".to_owned(),
            issued_at: 1_700_000_000,
            expires_at: 1_700_003_600,
            provider: "https://k8s.example".to_owned(),
            subject: "system:serviceaccount:ns:sa".to_owned(),
        }
    }

    #[test]
    fn seal_open_round_trip_and_tampering() {
        let keys = SessionKeys::generate();
        let s = session();
        let token = keys.seal(&s).unwrap();
        assert!(!token.contains(s.secret_access_key.as_str()), "the secret is sealed");
        let opened = keys.open(&token).unwrap();
        assert_eq!(opened.access_key_id, s.access_key_id);
        assert_eq!(*opened.secret_access_key, *s.secret_access_key);
        assert_eq!(opened.role_arn, s.role_arn);

        // Any flipped byte, another key, garbage: not a session.
        let mut blob = base64::engine::general_purpose::STANDARD.decode(&token).unwrap();
        for i in [0, 2, 20, blob.len() - 1] {
            blob[i] ^= 1;
            let bad = base64::engine::general_purpose::STANDARD.encode(&blob);
            assert!(keys.open(&bad).is_none(), "byte {i} flipped");
            blob[i] ^= 1;
        }
        assert!(SessionKeys::generate().open(&token).is_none());
        assert!(keys.open("not base64 !").is_none());
        assert!(keys.open("").is_none());
    }

    #[test]
    fn rotation_old_keys_still_open() {
        let old = SessionKeys::parse(&"11".repeat(32)).unwrap();
        let token = old.seal(&session()).unwrap();
        let rotated =
            SessionKeys::parse(&format!("{}\n# old\n{}\n", "22".repeat(32), "11".repeat(32)))
                .unwrap();
        assert!(rotated.open(&token).is_some());
        let fresh = rotated.seal(&session()).unwrap();
        assert!(old.open(&fresh).is_none(), "the first key seals");
    }

    #[test]
    fn key_files() {
        for bad in ["", "# nothing\n", "abc", &"zz".repeat(32), &"11".repeat(31)] {
            assert!(SessionKeys::parse(bad).is_err(), "{bad:?}");
        }
        let generated = SessionKeys::generate_hex();
        assert!(SessionKeys::parse(&generated).is_ok());
        assert!(!format!("{:?}", SessionKeys::parse(&generated).unwrap()).contains(&generated[..8]));
    }

    #[test]
    fn temporary_keys_look_like_aws() {
        let (id, secret) = generate_temporary_key();
        assert!(id.starts_with("ASIA") && id.len() == 20);
        assert_eq!(secret.len(), 40);
    }
}
