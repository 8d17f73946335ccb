//! Signed digests, modelled on CloudTrail's digest files: per account, each digest lists
//! the hash of every record of that account appended since the account's previous digest,
//! links that digest by hash and signature, and is signed SHA256withRSA over CloudTrail's
//! string to sign (`end time \n object \n sha256(digest bytes) \n previous signature`).
//!
//! The private key never leaves [`DigestSigner`] (no `Debug`, never serialized); its
//! public half is published as [`DigestPublicKey`] and named in every digest by its
//! fingerprint (hex SHA-256 of the SubjectPublicKeyInfo DER).

use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// `digestSignatureAlgorithm`.
pub const DIGEST_SIGNATURE_ALGORITHM: &str = "SHA256withRSA";
/// `hashAlgorithm` of record and previous-digest hashes.
pub const DIGEST_HASH_ALGORITHM: &str = "SHA-256";
/// `digestS3Bucket`: the logical bucket digests and exports are named under.
pub const DIGEST_BUCKET: &str = "kms-audit";
/// Size of generated digest keys.
pub const DIGEST_KEY_BITS: usize = 2048;

/// Failure to load, generate or use a digest key.
#[derive(Debug, thiserror::Error)]
pub enum DigestKeyError {
    #[error("the digest key is not an RSA PKCS#8 PEM private key")]
    BadPrivateKey,
    #[error("the digest public key is not an RSA SubjectPublicKeyInfo PEM")]
    BadPublicKey,
    #[error("generating the digest key failed")]
    Generate,
    #[error("signing the digest failed")]
    Sign,
}

/// The private key that signs digests. Deliberately without `Debug` or `Clone`.
pub struct DigestSigner {
    key: SigningKey<Sha256>,
    public: DigestPublicKey,
}

impl std::fmt::Debug for DigestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestSigner").field("fingerprint", &self.public.fingerprint).finish()
    }
}

impl DigestSigner {
    /// Loads an RSA private key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, DigestKeyError> {
        let private =
            RsaPrivateKey::from_pkcs8_pem(pem).map_err(|_| DigestKeyError::BadPrivateKey)?;
        Self::from_key(private)
    }

    /// Generates a new key; returns the signer and the key's PKCS#8 PEM to persist.
    pub fn generate(bits: usize) -> Result<(Self, Zeroizing<String>), DigestKeyError> {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), bits)
            .map_err(|_| DigestKeyError::Generate)?;
        let pem = private.to_pkcs8_pem(LineEnding::LF).map_err(|_| DigestKeyError::Generate)?;
        Ok((Self::from_key(private)?, pem))
    }

    fn from_key(private: RsaPrivateKey) -> Result<Self, DigestKeyError> {
        let public = DigestPublicKey::from_key(RsaPublicKey::from(&private))?;
        Ok(Self { key: SigningKey::<Sha256>::new(private), public })
    }

    /// The public half, to publish.
    pub fn public_key(&self) -> &DigestPublicKey {
        &self.public
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DigestKeyError> {
        self.key.try_sign(message).map(|s| s.to_vec()).map_err(|_| DigestKeyError::Sign)
    }
}

/// A published digest verification key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestPublicKey {
    /// Hex SHA-256 of the SubjectPublicKeyInfo DER; digests name their key by it.
    pub fingerprint: String,
    /// `-----BEGIN PUBLIC KEY-----` PEM.
    pub pem: String,
}

impl DigestPublicKey {
    /// Parses a SubjectPublicKeyInfo PEM and computes its fingerprint.
    pub fn from_pem(pem: &str) -> Result<Self, DigestKeyError> {
        let key =
            RsaPublicKey::from_public_key_pem(pem).map_err(|_| DigestKeyError::BadPublicKey)?;
        Self::from_key(key)
    }

    fn from_key(key: RsaPublicKey) -> Result<Self, DigestKeyError> {
        let der = key.to_public_key_der().map_err(|_| DigestKeyError::BadPublicKey)?;
        let pem =
            key.to_public_key_pem(LineEnding::LF).map_err(|_| DigestKeyError::BadPublicKey)?;
        Ok(Self { fingerprint: hex::encode(Sha256::digest(der.as_bytes())), pem })
    }

    /// True when `signature` is this key's SHA256withRSA signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(key) = RsaPublicKey::from_public_key_pem(&self.pem) else { return false };
        let Ok(signature) = Signature::try_from(signature) else { return false };
        VerifyingKey::<Sha256>::new(key).verify(message, &signature).is_ok()
    }
}

/// One record as a digest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestRecord {
    /// The record's store sequence number when the digest was written.
    pub seq: u64,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub event_time: String,
    /// Hex SHA-256 of the record's bytes as stored.
    pub hash_value: String,
}

/// Store sequence numbers `from..=to`: every record of the account in that range is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    pub from: u64,
    pub to: u64,
}

impl SeqRange {
    pub fn contains(&self, seq: u64) -> bool {
        (self.from..=self.to).contains(&seq)
    }
}

/// A digest file's content (CloudTrail's field names where they exist, plus the record
/// list and coverage that locate tampering to a single record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DigestFile {
    pub aws_account_id: String,
    pub digest_start_time: String,
    pub digest_end_time: String,
    #[serde(rename = "digestS3Bucket")]
    pub digest_s3_bucket: String,
    #[serde(rename = "digestS3Object")]
    pub digest_s3_object: String,
    pub digest_public_key_fingerprint: String,
    pub digest_signature_algorithm: String,
    pub newest_event_time: Option<String>,
    pub oldest_event_time: Option<String>,
    #[serde(rename = "previousDigestS3Bucket")]
    pub previous_digest_s3_bucket: Option<String>,
    #[serde(rename = "previousDigestS3Object")]
    pub previous_digest_s3_object: Option<String>,
    pub previous_digest_hash_value: Option<String>,
    pub previous_digest_hash_algorithm: Option<String>,
    pub previous_digest_signature: Option<String>,
    /// 1, 2, 3, … per account.
    pub digest_sequence: u64,
    pub covered_seqs: SeqRange,
    pub records: Vec<DigestRecord>,
}

impl DigestFile {
    /// `AWSLogs/<account>/CloudTrail-Digest/kms/<yyyy>/<mm>/<dd>/<account>_CloudTrail-Digest_kms_<n>_<end>.json.gz`
    pub(crate) fn object_name(account: &str, sequence: u64, end_time: &str) -> String {
        let date = end_time.get(..10).unwrap_or("0000-00-00").replace('-', "/");
        let stamp: String = end_time.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        format!(
            "AWSLogs/{account}/CloudTrail-Digest/kms/{date}/{account}_CloudTrail-Digest_kms_{sequence:010}_{stamp}.json.gz"
        )
    }
}

/// A digest as written: its exact bytes and their signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDigest {
    /// The digest file's JSON text, byte for byte as signed.
    pub body: Vec<u8>,
    pub signature: Vec<u8>,
}

impl SignedDigest {
    /// Parses the body.
    pub fn file(&self) -> Result<DigestFile, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Hex SHA-256 of the body (`previousDigestHashValue` of the next digest).
    pub fn hash_hex(&self) -> String {
        hex::encode(Sha256::digest(&self.body))
    }

    /// `u32 body length (BE) | body | signature`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.body.len() + self.signature.len());
        let len = u32::try_from(self.body.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.signature);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let body = bytes.get(4..4usize.checked_add(len)?)?.to_vec();
        let signature = bytes.get(4 + len..)?.to_vec();
        Some(Self { body, signature })
    }
}

/// CloudTrail's string to sign: `digestEndTime \n bucket/object \n hex sha256(body) \n
/// previous signature (hex, or "null" for the first digest)`.
pub(crate) fn string_to_sign(file: &DigestFile, body: &[u8]) -> Vec<u8> {
    format!(
        "{}\n{}/{}\n{}\n{}",
        file.digest_end_time,
        file.digest_s3_bucket,
        file.digest_s3_object,
        hex::encode(Sha256::digest(body)),
        file.previous_digest_signature.as_deref().unwrap_or("null"),
    )
    .into_bytes()
}

/// Hex SHA-256 of a record's bytes, as digests list it.
pub(crate) fn record_hash_hex(event: &[u8]) -> String {
    hex::encode(Sha256::digest(event))
}

/// Builds and signs the next digest of `account`.
pub(crate) struct DigestDraft<'a> {
    pub(crate) account: &'a str,
    pub(crate) previous: Option<&'a SignedDigest>,
    pub(crate) start_time: String,
    pub(crate) end_time: String,
    pub(crate) covered: SeqRange,
    pub(crate) records: Vec<DigestRecord>,
    /// `(oldest, newest)` event time.
    pub(crate) event_times: Option<(String, String)>,
}

impl DigestDraft<'_> {
    pub(crate) fn sign(self, signer: &DigestSigner) -> Result<SignedDigest, DigestSignError> {
        let previous_file = self.previous.map(SignedDigest::file).transpose()?;
        let sequence = previous_file.as_ref().map_or(1, |p| p.digest_sequence + 1);
        let file = DigestFile {
            aws_account_id: self.account.to_owned(),
            digest_start_time: self.start_time,
            digest_s3_bucket: DIGEST_BUCKET.to_owned(),
            digest_s3_object: DigestFile::object_name(self.account, sequence, &self.end_time),
            digest_end_time: self.end_time,
            digest_public_key_fingerprint: signer.public_key().fingerprint.clone(),
            digest_signature_algorithm: DIGEST_SIGNATURE_ALGORITHM.to_owned(),
            oldest_event_time: self.event_times.as_ref().map(|t| t.0.clone()),
            newest_event_time: self.event_times.map(|t| t.1),
            previous_digest_s3_bucket: previous_file.as_ref().map(|p| p.digest_s3_bucket.clone()),
            previous_digest_s3_object: previous_file.as_ref().map(|p| p.digest_s3_object.clone()),
            previous_digest_hash_value: self.previous.map(SignedDigest::hash_hex),
            previous_digest_hash_algorithm: self.previous.map(|_| DIGEST_HASH_ALGORITHM.to_owned()),
            previous_digest_signature: self.previous.map(|p| hex::encode(&p.signature)),
            digest_sequence: sequence,
            covered_seqs: self.covered,
            records: self.records,
        };
        let body = serde_json::to_vec(&file)?;
        let signature = signer.sign(&string_to_sign(&file, &body))?;
        Ok(SignedDigest { body, signature })
    }
}

/// Why a digest could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DigestSignError {
    #[error("a stored digest is unreadable: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Key(#[from] DigestKeyError),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// One key per test binary: generating RSA keys is slow.
    pub(crate) fn signer() -> &'static DigestSigner {
        static KEY: OnceLock<DigestSigner> = OnceLock::new();
        KEY.get_or_init(|| DigestSigner::generate(DIGEST_KEY_BITS).unwrap().0)
    }

    pub(crate) fn other_signer() -> &'static DigestSigner {
        static KEY: OnceLock<DigestSigner> = OnceLock::new();
        KEY.get_or_init(|| DigestSigner::generate(DIGEST_KEY_BITS).unwrap().0)
    }

    #[test]
    fn keys_round_trip_through_pem_and_sign() {
        let (signer, pem) = DigestSigner::generate(DIGEST_KEY_BITS).unwrap();
        let again = DigestSigner::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.public_key(), signer.public_key());
        assert_eq!(signer.public_key().fingerprint.len(), 64);
        let sig = signer.sign(b"message").unwrap();
        assert!(signer.public_key().verifies(b"message", &sig));
        assert!(!signer.public_key().verifies(b"messagf", &sig));
        assert!(!other_signer().public_key().verifies(b"message", &sig));
        assert!(!signer.public_key().verifies(b"message", b"short"));
        let public = DigestPublicKey::from_pem(&signer.public_key().pem).unwrap();
        assert_eq!(&public, signer.public_key());
        assert!(DigestSigner::from_pkcs8_pem("not a key").is_err());
        assert!(DigestPublicKey::from_pem("not a key").is_err());
        // The signer's Debug names only the fingerprint.
        let shown = format!("{signer:?}");
        assert!(shown.contains(&signer.public_key().fingerprint) && !shown.contains("PRIVATE"));
    }

    #[test]
    fn signed_digest_codec_round_trips() {
        let d = SignedDigest { body: b"{\"a\":1}".to_vec(), signature: vec![1, 2, 3] };
        assert_eq!(SignedDigest::decode(&d.encode()), Some(d));
        assert_eq!(SignedDigest::decode(&[0, 0, 0, 9, 1]), None);
        assert_eq!(SignedDigest::decode(&[0]), None);
    }

    #[test]
    fn object_names_follow_cloudtrail_layout() {
        assert_eq!(
            DigestFile::object_name("111122223333", 7, "2026-11-23T10:00:00Z"),
            "AWSLogs/111122223333/CloudTrail-Digest/kms/2026/11/23/111122223333_CloudTrail-Digest_kms_0000000007_20261123T100000Z.json.gz"
        );
    }
}
