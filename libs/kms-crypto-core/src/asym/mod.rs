//! Asymmetric keys as AWS KMS offers them: RSA_2048/3072/4096 and the curves ECC_NIST_P256,
//! ECC_NIST_P384, ECC_NIST_P521 and ECC_SECG_P256K1 (SM2 is not offered). Generation,
//! the DER SubjectPublicKeyInfo GetPublicKey returns, Sign/Verify (RSASSA-PSS,
//! RSASSA-PKCS1-v1_5, ECDSA; RAW or DIGEST messages), RSAES-OAEP Encrypt/Decrypt and ECDH
//! DeriveSharedSecret, all pure functions over keys held as DER.
//!
//! A private key lives only inside [`PrivateKey`]: PKCS#8 DER, zeroized on drop, never
//! shown by `Debug`; it is parsed afresh for each operation, and the parsed form (`rsa`'s
//! and `elliptic-curve`'s key types) zeroizes itself too. The service stores the PKCS#8
//! bytes wrapped under the root key, like symmetric material, and GenerateDataKeyPair
//! hands them out as they are. Outputs are what AWS's are, so standard tools accept them:
//! ECDSA signatures are DER, PSS uses a salt as long as the digest, ECDH yields the raw
//! x-coordinate of the shared point.
//!
//! The library checks what depends on the key spec (which algorithms a spec supports, the
//! digest length of a DIGEST message, RSA's plaintext limits) with AWS's wording; the
//! service checks what depends on the key record (its `KeyUsage` and state) before calling.
//! Errors ([`AsymError`]) map onto AWS's exceptions and never carry key bytes, messages or
//! plaintext. A signature that does not verify is `Ok(false)`, not an error: the service
//! answers `KMSInvalidSignatureException` for it, and a malformed signature is just one
//! that does not verify.
//!
//! # RSA timing (RUSTSEC-2023-0071, the Marvin attack)
//!
//! The `rsa` 0.9 crate computes with `num-bigint-dig`, whose arithmetic is not constant
//! time: how long a private-key operation takes depends on secret values, and an attacker
//! who can time many decryptions or signatures over the network may recover the key
//! (Marvin, a Bleichenbacher-style timing oracle; the advisory has no fixed 0.9 release).
//! What this module does about it:
//!
//! - every private-key operation is blinded with fresh randomness from the operating system:
//!   `decrypt_blinded` for OAEP, `sign_with_rng` with `Pss::new_blinded` for PSS and with
//!   `Pkcs1v15Sign` (which blinds whenever given a generator) for PKCS#1 v1.5. Blinding
//!   randomises the value the secret exponent is applied to, so timing no longer correlates
//!   with the attacker's chosen input;
//! - decryption failures are one indistinguishable [`AsymError::InvalidCiphertext`], and
//!   only OAEP is offered for encryption (no PKCS#1 v1.5 decryption, the padding Marvin
//!   and Bleichenbacher oracles feed on).
//!
//! What remains exposed: blinding hides the input, not the arithmetic. The modular
//! exponentiation, the CRT recombination and the unblinding are still variable-time
//! bignum code; leakage that depends on the secret primes and exponents themselves (cache
//! or branch timing seen by a co-located process, or a statistical attack over very many
//! measurements) is mitigated, not removed, and the crate has no constant-time fix in the
//! 0.9 line. OAEP's unpadding compares with `subtle` (constant time), but the conversion of
//! the decrypted number to bytes before it is ordinary bignum code.
//!
//! The hardened alternatives, in order of strength: an HSM behind a PKCS#11 (or cloud
//! HSM) backend, so private keys never enter this process at all; RSA from aws-lc-rs or
//! BoringSSL, whose exponentiation is constant-time Montgomery arithmetic hardened against
//! exactly these attacks (AWS-LC also has a FIPS 140-3 validated module); or `rsa` 0.10,
//! which replaces `num-bigint-dig` with `crypto-bigint` for constant-time exponentiation
//! but belongs to the next RustCrypto generation (`signature` 3, `pkcs8` 0.11 and the
//! matching curve crates), so moving to it is one step for this whole crate, import
//! wrapping keys included. Until then deployments should rate-limit private-key operations
//! per key and keep the crypto service off hosts shared with untrusted code.
//!
//! ECC has no known advisory of this kind: the RustCrypto curve arithmetic is written to be
//! constant time, and ECDSA nonces are RFC 6979 (derived from key and digest) hedged with
//! fresh randomness, except on P-521, whose nonces are uniformly random scalars from the
//! operating system's generator (`p521` 0.13 has no RFC 6979; see `ecc`).

mod ecc;
mod rsa;
mod spec;

#[cfg(test)]
mod interop;

use zeroize::Zeroizing;

pub use spec::{
    AsymSpec, EncryptionAlgorithm, KeyAgreementAlgorithm, MessageType, SigningAlgorithm,
};

/// The longest `Message` Sign and Verify accept (botocore's `PlaintextType`, 1 to 4096).
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Why an asymmetric operation failed; each variant is one AWS exception. No message holds
/// key bytes, a message or plaintext: only AWS names and lengths.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsymError {
    /// `InvalidKeyUsageException`: the algorithm (or key agreement) is not one the key
    /// spec supports, e.g. "Algorithm ECDSA_SHA_384 is incompatible with key spec
    /// ECC_NIST_P256."
    #[error("{0}")]
    InvalidKeyUsage(String),
    /// `ValidationException`, with AWS's message (safe to show the caller).
    #[error("{0}")]
    Validation(String),
    /// `InvalidCiphertextException`: the ciphertext does not decrypt under this key and
    /// algorithm. Deliberately without detail.
    #[error("the ciphertext is invalid")]
    InvalidCiphertext,
    /// The peer public key of a key agreement is not a valid key on this key's curve
    /// (the service answers `ValidationException`).
    #[error("the public key is not a valid public key for the key spec")]
    InvalidPeerKey,
    /// Bytes presented as a key of a spec are not a valid key of that spec (a wrong
    /// algorithm, curve or modulus size, or not DER at all).
    #[error("the key is not a valid key of the key spec")]
    InvalidKeyMaterial,
    /// Something that cannot happen with well-formed stored keys (`KMSInternalException`).
    #[error("internal error in an asymmetric key operation")]
    Internal,
}

fn incompatible(algorithm: &str, spec: AsymSpec) -> AsymError {
    AsymError::InvalidKeyUsage(format!(
        "Algorithm {algorithm} is incompatible with key spec {}.",
        spec.as_str()
    ))
}

/// A public key: its spec and its DER SubjectPublicKeyInfo, checked to be a key of that
/// spec.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    spec: AsymSpec,
    spki: Vec<u8>,
}

impl PublicKey {
    /// Checks that `der` is a SubjectPublicKeyInfo of a key of `spec` (the right algorithm,
    /// curve or modulus size; a point on the curve) and keeps its canonical encoding.
    pub fn from_spki_der(spec: AsymSpec, der: &[u8]) -> Result<Self, AsymError> {
        let spki = match spec.rsa_bits() {
            Some(bits) => rsa::from_spki(der, bits)?,
            None => ecc::from_spki(spec, der)?,
        };
        Ok(Self { spec, spki })
    }

    pub fn spec(&self) -> AsymSpec {
        self.spec
    }

    /// DER SubjectPublicKeyInfo, what GetPublicKey returns.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }
}

impl AsRef<PublicKey> for PublicKey {
    fn as_ref(&self) -> &PublicKey {
        self
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({}, {} bytes)", self.spec.as_str(), self.spki.len())
    }
}

/// A private key: PKCS#8 DER of a key of its spec, zeroized on drop, never shown by
/// `Debug`; with its public key.
pub struct PrivateKey {
    spec: AsymSpec,
    pkcs8: Zeroizing<Vec<u8>>,
    public: PublicKey,
}

impl PrivateKey {
    /// Checks that `der` is a PKCS#8 private key of `spec` (RSA of exactly the spec's
    /// modulus size, or a key on the spec's curve) and keeps its canonical encoding.
    pub fn from_pkcs8_der(spec: AsymSpec, der: &[u8]) -> Result<Self, AsymError> {
        let (pkcs8, spki) = match spec.rsa_bits() {
            Some(bits) => rsa::from_pkcs8(der, bits)?,
            None => ecc::from_pkcs8(spec, der)?,
        };
        Ok(Self { spec, pkcs8, public: PublicKey { spec, spki } })
    }

    pub fn spec(&self) -> AsymSpec {
        self.spec
    }

    /// The PKCS#8 DER, to be wrapped for storage or returned by GenerateDataKeyPair.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
}

/// What the private-key operations (sign, RSA decrypt, ECDH) need: the spec and PKCS#8
/// DER of a key already checked to be one of that spec. A [`PrivateKey`] is; so is a
/// [`CheckedPkcs8`], which spares the check (and, for ECC, deriving the public point)
/// on every use of stored material.
pub trait PrivateMaterial {
    fn spec(&self) -> AsymSpec;
    fn pkcs8(&self) -> &[u8];
}

impl PrivateMaterial for PrivateKey {
    fn spec(&self) -> AsymSpec {
        self.spec
    }
    fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }
}

/// PKCS#8 DER that [`PrivateKey::from_pkcs8_der`] (or [`generate`]) accepted for `spec`
/// before it was stored where it cannot change unnoticed (sealed under the root key):
/// used as it is. A malformed one fails the operation as an internal error.
pub struct CheckedPkcs8<'a> {
    pub spec: AsymSpec,
    pub pkcs8: &'a [u8],
}

impl PrivateMaterial for CheckedPkcs8<'_> {
    fn spec(&self) -> AsymSpec {
        self.spec
    }
    fn pkcs8(&self) -> &[u8] {
        self.pkcs8
    }
}

impl AsRef<PublicKey> for PrivateKey {
    fn as_ref(&self) -> &PublicKey {
        &self.public
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.spec.as_str())
    }
}

/// A fresh key of `spec` from the operating system's generator (RSA with e = 65537). RSA
/// 4096 takes seconds: the service calls this off its async runtime.
pub fn generate(spec: AsymSpec) -> Result<PrivateKey, AsymError> {
    let (pkcs8, spki) = match spec.rsa_bits() {
        Some(bits) => rsa::generate(bits)?,
        None => ecc::generate(spec)?,
    };
    Ok(PrivateKey { spec, pkcs8, public: PublicKey { spec, spki } })
}

/// The DER SubjectPublicKeyInfo of `key` (GetPublicKey's `PublicKey`).
pub fn public_key_der(key: &PrivateKey) -> Vec<u8> {
    key.public.spki.clone()
}

/// The digest to sign or verify: the message hashed with the algorithm's hash (RAW), or
/// the message itself, which must be exactly as long as that hash (DIGEST).
fn digest_of(
    algorithm: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
) -> Result<Vec<u8>, AsymError> {
    let must = if message.is_empty() {
        Some("have length greater than or equal to 1")
    } else if message.len() > MAX_MESSAGE_LEN {
        Some("have length less than or equal to 4096")
    } else {
        None
    };
    if let Some(must) = must {
        return Err(AsymError::Validation(format!(
            "1 validation error detected: Value at 'message' failed to satisfy constraint: \
             Member must {must}"
        )));
    }
    match message_type {
        MessageType::Raw => Ok(algorithm.hash().digest(message)),
        MessageType::Digest if message.len() == algorithm.digest_len() => Ok(message.to_vec()),
        MessageType::Digest => Err(AsymError::Validation(format!(
            "Digest is invalid length for algorithm {}.",
            algorithm.as_str()
        ))),
    }
}

fn check_signing(spec: AsymSpec, algorithm: SigningAlgorithm) -> Result<(), AsymError> {
    if algorithm.supports(spec) {
        Ok(())
    } else {
        Err(incompatible(algorithm.as_str(), spec))
    }
}

/// Signs `message` (RAW: hashed here; DIGEST: already the digest). ECDSA signatures are
/// DER; RSA signatures are as long as the modulus.
pub fn sign(
    key: &impl PrivateMaterial,
    algorithm: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
) -> Result<Vec<u8>, AsymError> {
    check_signing(key.spec(), algorithm)?;
    let digest = digest_of(algorithm, message_type, message)?;
    match algorithm.rsa_padding() {
        Some(padding) => rsa::sign(key.pkcs8(), padding, algorithm.hash(), &digest),
        None => ecc::sign(key.spec(), key.pkcs8(), &digest),
    }
}

/// Whether `signature` is a valid signature of `message` under `key` (a [`PublicKey`] or a
/// [`PrivateKey`]). A wrong or malformed signature is `Ok(false)`. The message type need
/// not be the one used to sign: a RAW signature verifies as the DIGEST of its message.
pub fn verify(
    key: &impl AsRef<PublicKey>,
    algorithm: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, AsymError> {
    let key = key.as_ref();
    check_signing(key.spec, algorithm)?;
    let digest = digest_of(algorithm, message_type, message)?;
    match algorithm.rsa_padding() {
        Some(padding) => rsa::verify(&key.spki, padding, algorithm.hash(), &digest, signature),
        None => ecc::verify(key.spec, &key.spki, &digest, signature),
    }
}

fn check_encryption(spec: AsymSpec, algorithm: EncryptionAlgorithm) -> Result<usize, AsymError> {
    algorithm.max_plaintext_len(spec).ok_or_else(|| incompatible(algorithm.as_str(), spec))
}

/// RSAES-OAEP encryption to `key` (a [`PublicKey`] or a [`PrivateKey`]); the plaintext may
/// be at most [`EncryptionAlgorithm::max_plaintext_len`] bytes.
pub fn rsa_encrypt(
    key: &impl AsRef<PublicKey>,
    algorithm: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, AsymError> {
    let key = key.as_ref();
    let max = check_encryption(key.spec, algorithm)?;
    if plaintext.len() > max {
        return Err(AsymError::Validation(format!(
            "Algorithm {} and key spec {} cannot encrypt data larger than {max} bytes.",
            algorithm.as_str(),
            key.spec.as_str()
        )));
    }
    rsa::encrypt(&key.spki, algorithm, plaintext)
}

/// RSAES-OAEP decryption (blinded). Any failure is [`AsymError::InvalidCiphertext`].
pub fn rsa_decrypt(
    key: &impl PrivateMaterial,
    algorithm: EncryptionAlgorithm,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AsymError> {
    check_encryption(key.spec(), algorithm)?;
    rsa::decrypt(key.pkcs8(), algorithm, ciphertext)
}

/// ECDH between `key` and the peer's DER SubjectPublicKeyInfo: the raw shared secret (the
/// x-coordinate), as DeriveSharedSecret returns it. NIST curves only; the peer key must be
/// on the same curve.
pub fn derive_shared_secret(
    key: &impl PrivateMaterial,
    peer_public_spki_der: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AsymError> {
    if KeyAgreementAlgorithm::for_spec(key.spec()).is_empty() {
        return Err(incompatible(KeyAgreementAlgorithm::Ecdh.as_str(), key.spec()));
    }
    ecc::derive_shared_secret(key.spec(), key.pkcs8(), peer_public_spki_der)
}

/// One key of each spec per test binary: RSA 4096 generation takes seconds.
#[cfg(test)]
pub(crate) fn fixture(spec: AsymSpec) -> &'static PrivateKey {
    use std::sync::OnceLock;
    static KEYS: [OnceLock<PrivateKey>; 7] = [const { OnceLock::new() }; 7];
    let index = AsymSpec::ALL.iter().position(|s| *s == spec).unwrap();
    KEYS[index].get_or_init(|| generate(spec).unwrap())
}

#[cfg(test)]
mod tests;
