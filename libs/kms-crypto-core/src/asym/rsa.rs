//! RSA with the `rsa` crate: key generation (e = 65537), RSASSA-PSS (salt length = digest
//! length) and RSASSA-PKCS1-v1_5 signatures over a digest, and RSAES-OAEP.
//!
//! Every private-key operation passes the operating system's generator so the crate
//! blinds the exponentiation (`sign_with_rng` with `Pss::new_blinded` / `Pkcs1v15Sign`,
//! `decrypt_blinded`); the unblinded `sign` / `decrypt` are never called. What blinding
//! leaves exposed is written down in the parent module.

use rand::rngs::OsRng;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Oaep, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use zeroize::Zeroizing;

use super::spec::{EncryptionAlgorithm, Hash, RsaPadding};
use super::AsymError;

/// The public exponent of every generated key (F4, as AWS and OpenSSL use).
const PUBLIC_EXPONENT: u32 = 65_537;

/// A fresh key of `bits`: (PKCS#8 DER, SubjectPublicKeyInfo DER).
pub(super) fn generate(bits: usize) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), AsymError> {
    let key = RsaPrivateKey::new_with_exp(&mut OsRng, bits, &BigUint::from(PUBLIC_EXPONENT))
        .map_err(|_| AsymError::Internal)?;
    encode(&key, bits).map_err(|_| AsymError::Internal)
}

/// Checks that `der` is an RSA private key of exactly `bits` and re-encodes it
/// canonically: (PKCS#8 DER, SubjectPublicKeyInfo DER).
pub(super) fn from_pkcs8(
    der: &[u8],
    bits: usize,
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), AsymError> {
    let key = RsaPrivateKey::from_pkcs8_der(der).map_err(|_| AsymError::InvalidKeyMaterial)?;
    encode(&key, bits)
}

fn encode(key: &RsaPrivateKey, bits: usize) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), AsymError> {
    if key.n().bits() != bits {
        return Err(AsymError::InvalidKeyMaterial);
    }
    let private = key.to_pkcs8_der().map_err(|_| AsymError::Internal)?;
    let public = key.to_public_key().to_public_key_der().map_err(|_| AsymError::Internal)?;
    Ok((Zeroizing::new(private.as_bytes().to_vec()), public.into_vec()))
}

/// Checks that `der` is an RSA public key of exactly `bits`; its canonical SPKI DER.
pub(super) fn from_spki(der: &[u8], bits: usize) -> Result<Vec<u8>, AsymError> {
    let key = public_key(der)?;
    if key.n().bits() != bits {
        return Err(AsymError::InvalidKeyMaterial);
    }
    key.to_public_key_der().map(|d| d.into_vec()).map_err(|_| AsymError::Internal)
}

fn private_key(pkcs8: &[u8]) -> Result<RsaPrivateKey, AsymError> {
    // The bytes were checked when the `PrivateKey` was built: failing here is internal.
    RsaPrivateKey::from_pkcs8_der(pkcs8).map_err(|_| AsymError::Internal)
}

fn public_key(spki: &[u8]) -> Result<RsaPublicKey, AsymError> {
    RsaPublicKey::from_public_key_der(spki).map_err(|_| AsymError::InvalidKeyMaterial)
}

/// Signs `digest` (already of `hash`'s length), with blinding.
pub(super) fn sign(
    pkcs8: &[u8],
    padding: RsaPadding,
    hash: Hash,
    digest: &[u8],
) -> Result<Vec<u8>, AsymError> {
    let key = private_key(pkcs8)?;
    let mut rng = OsRng;
    let signed = match (padding, hash) {
        // `new_blinded` makes the PSS signer pass the generator on to the private-key
        // operation (plain `Pss::new` uses it for the salt only); salt length = digest length.
        (RsaPadding::Pss, Hash::Sha256) => {
            key.sign_with_rng(&mut rng, Pss::new_blinded::<sha2::Sha256>(), digest)
        }
        (RsaPadding::Pss, Hash::Sha384) => {
            key.sign_with_rng(&mut rng, Pss::new_blinded::<sha2::Sha384>(), digest)
        }
        (RsaPadding::Pss, Hash::Sha512) => {
            key.sign_with_rng(&mut rng, Pss::new_blinded::<sha2::Sha512>(), digest)
        }
        // PKCS#1 v1.5 blinds whenever a generator is passed.
        (RsaPadding::Pkcs1V15, Hash::Sha256) => {
            key.sign_with_rng(&mut rng, Pkcs1v15Sign::new::<sha2::Sha256>(), digest)
        }
        (RsaPadding::Pkcs1V15, Hash::Sha384) => {
            key.sign_with_rng(&mut rng, Pkcs1v15Sign::new::<sha2::Sha384>(), digest)
        }
        (RsaPadding::Pkcs1V15, Hash::Sha512) => {
            key.sign_with_rng(&mut rng, Pkcs1v15Sign::new::<sha2::Sha512>(), digest)
        }
    };
    signed.map_err(|_| AsymError::Internal)
}

/// Whether `signature` signs `digest`; any malformed signature is simply not valid.
pub(super) fn verify(
    spki: &[u8],
    padding: RsaPadding,
    hash: Hash,
    digest: &[u8],
    signature: &[u8],
) -> Result<bool, AsymError> {
    let key = public_key(spki).map_err(|_| AsymError::Internal)?;
    let verified = match (padding, hash) {
        (RsaPadding::Pss, Hash::Sha256) => {
            key.verify(Pss::new::<sha2::Sha256>(), digest, signature)
        }
        (RsaPadding::Pss, Hash::Sha384) => {
            key.verify(Pss::new::<sha2::Sha384>(), digest, signature)
        }
        (RsaPadding::Pss, Hash::Sha512) => {
            key.verify(Pss::new::<sha2::Sha512>(), digest, signature)
        }
        (RsaPadding::Pkcs1V15, Hash::Sha256) => {
            key.verify(Pkcs1v15Sign::new::<sha2::Sha256>(), digest, signature)
        }
        (RsaPadding::Pkcs1V15, Hash::Sha384) => {
            key.verify(Pkcs1v15Sign::new::<sha2::Sha384>(), digest, signature)
        }
        (RsaPadding::Pkcs1V15, Hash::Sha512) => {
            key.verify(Pkcs1v15Sign::new::<sha2::Sha512>(), digest, signature)
        }
    };
    Ok(verified.is_ok())
}

fn oaep(algorithm: EncryptionAlgorithm) -> Oaep {
    match algorithm {
        EncryptionAlgorithm::RsaesOaepSha1 => Oaep::new::<sha1::Sha1>(),
        EncryptionAlgorithm::RsaesOaepSha256 => Oaep::new::<sha2::Sha256>(),
    }
}

/// RSAES-OAEP encryption; the caller has checked the plaintext length.
pub(super) fn encrypt(
    spki: &[u8],
    algorithm: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, AsymError> {
    let key = public_key(spki).map_err(|_| AsymError::Internal)?;
    key.encrypt(&mut OsRng, oaep(algorithm), plaintext).map_err(|_| AsymError::Internal)
}

/// RSAES-OAEP decryption, blinded. Every failure is the same `InvalidCiphertext`, so a
/// caller learns nothing about where the padding check failed.
pub(super) fn decrypt(
    pkcs8: &[u8],
    algorithm: EncryptionAlgorithm,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AsymError> {
    let key = private_key(pkcs8)?;
    key.decrypt_blinded(&mut OsRng, oaep(algorithm), ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| AsymError::InvalidCiphertext)
}
