//! The symmetric ciphertext blob. Layout (big-endian):
//!
//! ```text
//! 0      1                17          21       33              len-16   len
//! | 0x01 | key uuid (16)  | version   | nonce  | ciphertext      | tag    |
//! ```
//!
//! The header (bytes 0..33) and the canonical encryption context together are the AES-GCM
//! additional authenticated data, so changing any byte of the blob, or decrypting with
//! another context, fails authentication. Decrypt needs no KeyId: the blob names its key.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use crate::context::canonical_context;
use crate::material::{random_bytes, KeyMaterial};

const FORMAT_V1: u8 = 0x01;
const HEADER_LEN: usize = 1 + 16 + 4 + 12;
const TAG_LEN: usize = 16;
/// Bytes a blob adds to its plaintext.
pub const BLOB_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Whatever is wrong with a ciphertext, the caller learns only that it is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ciphertext is invalid")]
pub struct InvalidCiphertext;

/// What a blob says about itself before it is authenticated. Untrusted until `open`
/// succeeds: use it only to find the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader {
    pub key_id: String,
    pub material_version: u32,
}

pub fn peek_header(blob: &[u8]) -> Result<BlobHeader, InvalidCiphertext> {
    if blob.len() < BLOB_OVERHEAD || blob[0] != FORMAT_V1 {
        return Err(InvalidCiphertext);
    }
    let uuid = uuid::Uuid::from_slice(&blob[1..17]).map_err(|_| InvalidCiphertext)?;
    let version = u32::from_be_bytes([blob[17], blob[18], blob[19], blob[20]]);
    Ok(BlobHeader { key_id: uuid.hyphenated().to_string(), material_version: version })
}

/// Encrypts `plaintext` under `material` (version `material_version` of key `key_id`).
pub fn seal(
    material: &KeyMaterial,
    key_id: &str,
    material_version: u32,
    plaintext: &[u8],
    context: &BTreeMap<String, String>,
) -> Result<Vec<u8>, InvalidCiphertext> {
    let uuid = uuid::Uuid::parse_str(key_id).map_err(|_| InvalidCiphertext)?;
    let nonce = random_bytes(12);
    let mut blob = Vec::with_capacity(BLOB_OVERHEAD + plaintext.len());
    blob.push(FORMAT_V1);
    blob.extend_from_slice(uuid.as_bytes());
    blob.extend_from_slice(&material_version.to_be_bytes());
    blob.extend_from_slice(&nonce);
    let aad = aad(&blob, context);
    let cipher = Aes256Gcm::new_from_slice(material.expose()).map_err(|_| InvalidCiphertext)?;
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: &aad })
        .map_err(|_| InvalidCiphertext)?;
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

/// Authenticates and decrypts a blob. The tag comparison is constant time (aes-gcm).
pub fn open(
    material: &KeyMaterial,
    blob: &[u8],
    context: &BTreeMap<String, String>,
) -> Result<Zeroizing<Vec<u8>>, InvalidCiphertext> {
    peek_header(blob)?;
    let (header, sealed) = blob.split_at(HEADER_LEN);
    let cipher = Aes256Gcm::new_from_slice(material.expose()).map_err(|_| InvalidCiphertext)?;
    let aad = aad(header, context);
    cipher
        .decrypt(Nonce::from_slice(&header[21..33]), Payload { msg: sealed, aad: &aad })
        .map(Zeroizing::new)
        .map_err(|_| InvalidCiphertext)
}

fn aad(header: &[u8], context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(&canonical_context(context));
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn round_trip_and_header() {
        let m = KeyMaterial::generate();
        let c = ctx(&[("Department", "Finance")]);
        let blob = seal(&m, KEY, 7, b"hello", &c).unwrap();
        assert_eq!(blob.len(), BLOB_OVERHEAD + 5);
        assert_eq!(
            peek_header(&blob).unwrap(),
            BlobHeader { key_id: KEY.into(), material_version: 7 }
        );
        assert_eq!(open(&m, &blob, &c).unwrap().as_slice(), b"hello");
    }

    #[test]
    fn every_tampered_byte_is_rejected() {
        let m = KeyMaterial::generate();
        let blob = seal(&m, KEY, 1, b"secret data", &ctx(&[])).unwrap();
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert_eq!(open(&m, &bad, &ctx(&[])), Err(InvalidCiphertext), "byte {i}");
        }
        assert_eq!(open(&m, &blob[..blob.len() - 1], &ctx(&[])), Err(InvalidCiphertext));
        assert_eq!(open(&m, &[], &ctx(&[])), Err(InvalidCiphertext));
    }

    #[test]
    fn context_must_match_exactly() {
        let m = KeyMaterial::generate();
        let c = ctx(&[("a", "1"), ("b", "2")]);
        let blob = seal(&m, KEY, 1, b"x", &c).unwrap();
        assert!(open(&m, &blob, &ctx(&[("b", "2"), ("a", "1")])).is_ok());
        for wrong in [ctx(&[]), ctx(&[("a", "1")]), ctx(&[("a", "1"), ("b", "3")])] {
            assert_eq!(open(&m, &blob, &wrong), Err(InvalidCiphertext), "{wrong:?}");
        }
    }

    #[test]
    fn other_material_is_rejected() {
        let blob = seal(&KeyMaterial::generate(), KEY, 1, b"x", &ctx(&[])).unwrap();
        assert_eq!(open(&KeyMaterial::generate(), &blob, &ctx(&[])), Err(InvalidCiphertext));
    }

    #[test]
    fn nonces_differ() {
        let m = KeyMaterial::generate();
        let a = seal(&m, KEY, 1, b"x", &ctx(&[])).unwrap();
        let b = seal(&m, KEY, 1, b"x", &ctx(&[])).unwrap();
        assert_ne!(a, b);
    }
}
