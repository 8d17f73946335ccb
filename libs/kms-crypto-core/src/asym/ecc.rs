//! Elliptic curves with the RustCrypto crates (`p256`, `p384`, `p521`, `k256`): key
//! generation, ECDSA over a digest with DER signatures (what AWS returns), and ECDH for the
//! NIST curves.
//!
//! Every curve gets the same functions from one macro, so the four cannot drift apart.
//! Signing is prehash signing: the caller hands over the digest (its own for DIGEST, ours
//! of the message for RAW). It signs with the secret scalar through `ecdsa`'s hazmat
//! primitives, exactly as the curve crates' `SigningKey::sign_prehash_with_rng` does but
//! without deriving the public point first (a scalar multiplication per Sign): the digest
//! becomes a field element with `bits2field` (at least half the field size; a longer one
//! is truncated, a shorter one left-padded), and the nonce is RFC 6979 hedged with a field
//! size of fresh randomness, except on P-521, where `p521` 0.13 draws the nonce uniformly
//! at random (it has no RFC 6979 for P-521) and so do we. `k256` normalises `s` to the low
//! half when it signs; the others leave it as computed.
//! Verification accepts both `s` and `n - s`: standard ECDSA does, and so must we for
//! signatures made by other tools (`k256` alone refuses a high `s`, a Bitcoin rule, so the
//! signature is normalised first).

use zeroize::Zeroizing;

use super::spec::AsymSpec;
use super::AsymError;

/// (PKCS#8 DER, SubjectPublicKeyInfo DER).
pub(super) type KeyPairDer = (Zeroizing<Vec<u8>>, Vec<u8>);

/// The ECDSA nonce of `d`'s signature of `z`, drawn from `rng` as the curve crate's
/// `SigningKey::sign_prehash_with_rng` draws it. `rfc6979`: RFC 6979 with the curve's
/// digest and a field size of `rng` output as additional data. `random`: a uniformly random
/// scalar (`p521` 0.13).
macro_rules! sign_scalar {
    (rfc6979, $krate:ident, $curve:ident, $d:expr, $z:expr, $rng:expr) => {{
        let mut ad = Zeroizing::new($krate::FieldBytes::default());
        $rng.fill_bytes(&mut ad);
        type Digest = <$krate::$curve as ecdsa::hazmat::DigestPrimitive>::Digest;
        ecdsa::hazmat::SignPrimitive::<$krate::$curve>::try_sign_prehashed_rfc6979::<Digest>(
            $d,
            $z,
            &ad[..],
        )
        .map(|(signature, _)| signature)
    }};
    (random, $krate:ident, $curve:ident, $d:expr, $z:expr, $rng:expr) => {{
        use ecdsa::elliptic_curve::Field;
        let k = Zeroizing::new($krate::Scalar::random(&mut *$rng));
        ecdsa::hazmat::sign_prehashed::<$krate::$curve, $krate::Scalar>($d, *k, $z)
            .map(|(signature, _)| signature)
    }};
}

macro_rules! curve {
    ($module:ident, $krate:ident, $curve:ident, $nonce:ident) => {
        pub(super) mod $module {
            use rand::rngs::OsRng;
            use rand::CryptoRng;
            use rand::RngCore;
            use zeroize::Zeroizing;
            use $krate::ecdsa::signature::hazmat::PrehashVerifier;
            use $krate::ecdsa::{Signature, VerifyingKey};
            use $krate::pkcs8::{
                DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
            };
            use $krate::{$curve, PublicKey, Scalar, SecretKey};

            use super::KeyPairDer;
            use crate::asym::AsymError;

            pub(in crate::asym) fn generate() -> Result<KeyPairDer, AsymError> {
                encode(&SecretKey::random(&mut OsRng)).map_err(|_| AsymError::Internal)
            }

            /// Checks that `der` is a private key on this curve; canonical re-encoding.
            pub(in crate::asym) fn from_pkcs8(der: &[u8]) -> Result<KeyPairDer, AsymError> {
                let secret =
                    SecretKey::from_pkcs8_der(der).map_err(|_| AsymError::InvalidKeyMaterial)?;
                encode(&secret)
            }

            fn encode(secret: &SecretKey) -> Result<KeyPairDer, AsymError> {
                let private = secret.to_pkcs8_der().map_err(|_| AsymError::Internal)?;
                let public =
                    secret.public_key().to_public_key_der().map_err(|_| AsymError::Internal)?;
                Ok((Zeroizing::new(private.as_bytes().to_vec()), public.into_vec()))
            }

            /// Checks that `der` is a public key on this curve (a valid point, not the
            /// identity); canonical SPKI DER with the uncompressed point.
            pub(in crate::asym) fn from_spki(der: &[u8]) -> Result<Vec<u8>, AsymError> {
                let public = public_key(der)?;
                public.to_public_key_der().map(|d| d.into_vec()).map_err(|_| AsymError::Internal)
            }

            pub(in crate::asym) fn public_key(der: &[u8]) -> Result<PublicKey, AsymError> {
                PublicKey::from_public_key_der(der).map_err(|_| AsymError::InvalidKeyMaterial)
            }

            /// A DER-encoded ECDSA signature of `prehash`, hedged with the operating
            /// system's randomness.
            pub(in crate::asym) fn sign(
                pkcs8: &[u8],
                prehash: &[u8],
            ) -> Result<Vec<u8>, AsymError> {
                sign_with_rng(pkcs8, prehash, &mut OsRng)
            }

            /// The secret key of PKCS#8 DER checked when the `PrivateKey` was built, for
            /// Sign and ECDH: the curve's OIDs and the SEC1 `ECPrivateKey` are read as
            /// [`SecretKey::from_pkcs8_der`] reads them, but the public point the
            /// `ECPrivateKey` embeds is not compared with one derived from the scalar (a
            /// scalar multiplication that `from_pkcs8_der` does on every call; the check was
            /// made when the key was built). A malformed key is an internal error.
            pub(in crate::asym) fn secret_key(pkcs8: &[u8]) -> Result<SecretKey, AsymError> {
                use $krate::pkcs8::{AssociatedOid, PrivateKeyInfo};
                let info = PrivateKeyInfo::try_from(pkcs8).map_err(|_| AsymError::Internal)?;
                info.algorithm
                    .assert_oids(ecdsa::elliptic_curve::ALGORITHM_OID, $curve::OID)
                    .map_err(|_| AsymError::Internal)?;
                let sec1 = sec1::EcPrivateKey::try_from(info.private_key)
                    .map_err(|_| AsymError::Internal)?;
                SecretKey::from_slice(sec1.private_key).map_err(|_| AsymError::Internal)
            }

            /// [`sign`] with the randomness from `rng` (tests inject a fixed one). A
            /// digest shorter than half the field size is an internal error, as it was
            /// with `SigningKey` (the caller checks digest lengths first).
            pub(in crate::asym) fn sign_with_rng(
                pkcs8: &[u8],
                prehash: &[u8],
                rng: &mut (impl CryptoRng + RngCore),
            ) -> Result<Vec<u8>, AsymError> {
                let secret = secret_key(pkcs8)?;
                // `SecretKey` zeroizes on drop; this copy of its scalar too.
                let d: Zeroizing<Scalar> = Zeroizing::new(*secret.to_nonzero_scalar());
                let z = ecdsa::hazmat::bits2field::<$curve>(prehash)
                    .map_err(|_| AsymError::Internal)?;
                let signature: Signature = sign_scalar!($nonce, $krate, $curve, &*d, &z, rng)
                    .map_err(|_| AsymError::Internal)?;
                Ok(signature.to_der().as_bytes().to_vec())
            }

            /// Whether the DER `signature` signs `prehash`; a malformed one is not valid.
            pub(in crate::asym) fn verify(
                spki: &[u8],
                prehash: &[u8],
                signature: &[u8],
            ) -> Result<bool, AsymError> {
                let public = public_key(spki).map_err(|_| AsymError::Internal)?;
                let verifier = VerifyingKey::from_affine(*public.as_affine())
                    .map_err(|_| AsymError::Internal)?;
                let Ok(signature) = Signature::from_der(signature) else {
                    return Ok(false);
                };
                let signature = signature.normalize_s().unwrap_or(signature);
                Ok(verifier.verify_prehash(prehash, &signature).is_ok())
            }
        }
    };
}

curve!(nist_p256, p256, NistP256, rfc6979);
curve!(nist_p384, p384, NistP384, rfc6979);
curve!(nist_p521, p521, NistP521, random);
curve!(secg_p256k1, k256, Secp256k1, rfc6979);

/// ECDH: the x-coordinate of the shared point (what AWS DeriveSharedSecret returns, the
/// "raw" secret, no KDF applied). The peer key must be a valid point on the same curve.
macro_rules! ecdh {
    ($module:ident, $krate:ident, $pkcs8:expr, $peer:expr) => {{
        let secret = $module::secret_key($pkcs8)?;
        let peer = $module::public_key($peer).map_err(|_| AsymError::InvalidPeerKey)?;
        let shared = $krate::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
        Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
    }};
}

/// Calls `$f` of the curve module of `$spec`; an RSA spec is an internal error (the
/// caller dispatches on the spec first).
macro_rules! by_curve {
    ($spec:expr, $f:ident ( $($arg:expr),* )) => {
        match $spec {
            AsymSpec::EccNistP256 => nist_p256::$f($($arg),*),
            AsymSpec::EccNistP384 => nist_p384::$f($($arg),*),
            AsymSpec::EccNistP521 => nist_p521::$f($($arg),*),
            AsymSpec::EccSecgP256k1 => secg_p256k1::$f($($arg),*),
            AsymSpec::Rsa2048 | AsymSpec::Rsa3072 | AsymSpec::Rsa4096 => Err(AsymError::Internal),
        }
    };
}

pub(super) fn generate(spec: AsymSpec) -> Result<KeyPairDer, AsymError> {
    by_curve!(spec, generate())
}

pub(super) fn from_pkcs8(spec: AsymSpec, der: &[u8]) -> Result<KeyPairDer, AsymError> {
    by_curve!(spec, from_pkcs8(der))
}

pub(super) fn from_spki(spec: AsymSpec, der: &[u8]) -> Result<Vec<u8>, AsymError> {
    by_curve!(spec, from_spki(der))
}

pub(super) fn sign(spec: AsymSpec, pkcs8: &[u8], prehash: &[u8]) -> Result<Vec<u8>, AsymError> {
    by_curve!(spec, sign(pkcs8, prehash))
}

pub(super) fn verify(
    spec: AsymSpec,
    spki: &[u8],
    prehash: &[u8],
    signature: &[u8],
) -> Result<bool, AsymError> {
    by_curve!(spec, verify(spki, prehash, signature))
}

/// ECDH for the NIST curves; the caller has refused other specs.
pub(super) fn derive_shared_secret(
    spec: AsymSpec,
    pkcs8: &[u8],
    peer_spki: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AsymError> {
    match spec {
        AsymSpec::EccNistP256 => ecdh!(nist_p256, p256, pkcs8, peer_spki),
        AsymSpec::EccNistP384 => ecdh!(nist_p384, p384, pkcs8, peer_spki),
        AsymSpec::EccNistP521 => ecdh!(nist_p521, p521, pkcs8, peer_spki),
        AsymSpec::EccSecgP256k1 | AsymSpec::Rsa2048 | AsymSpec::Rsa3072 | AsymSpec::Rsa4096 => {
            Err(AsymError::Internal)
        }
    }
}
