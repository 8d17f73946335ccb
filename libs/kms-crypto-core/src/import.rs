//! Importing key material (BYOK): the RSA wrapping key a caller encrypts its material
//! to, and unwrapping what arrives, with the algorithms AWS offers:
//! RSAES_OAEP_SHA_1 / RSAES_OAEP_SHA_256 (the material itself under RSA-OAEP) and
//! RSA_AES_KEY_WRAP_SHA_1 / _SHA_256 (an ephemeral AES-256 key under RSA-OAEP, followed by
//! the material under that key with AES key wrap with padding, RFC 5649).

use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::{Oaep, RsaPrivateKey};
use zeroize::Zeroizing;

/// How the caller wraps its material.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrappingAlgorithm {
    RsaesOaepSha1,
    RsaesOaepSha256,
    RsaAesKeyWrapSha1,
    RsaAesKeyWrapSha256,
}

impl WrappingAlgorithm {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RSAES_OAEP_SHA_1" => Some(Self::RsaesOaepSha1),
            "RSAES_OAEP_SHA_256" => Some(Self::RsaesOaepSha256),
            "RSA_AES_KEY_WRAP_SHA_1" => Some(Self::RsaAesKeyWrapSha1),
            "RSA_AES_KEY_WRAP_SHA_256" => Some(Self::RsaAesKeyWrapSha256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
            Self::RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
            Self::RsaAesKeyWrapSha1 => "RSA_AES_KEY_WRAP_SHA_1",
            Self::RsaAesKeyWrapSha256 => "RSA_AES_KEY_WRAP_SHA_256",
        }
    }

    fn oaep(self) -> Oaep {
        match self {
            Self::RsaesOaepSha1 | Self::RsaAesKeyWrapSha1 => Oaep::new::<sha1::Sha1>(),
            Self::RsaesOaepSha256 | Self::RsaAesKeyWrapSha256 => Oaep::new::<sha2::Sha256>(),
        }
    }
}

/// `WrappingKeySpec`: RSA_2048, RSA_3072 or RSA_4096, as modulus bits.
pub fn wrapping_key_bits(spec: &str) -> Option<usize> {
    match spec {
        "RSA_2048" => Some(2048),
        "RSA_3072" => Some(3072),
        "RSA_4096" => Some(4096),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the wrapping key could not be generated")]
    KeyGeneration,
    #[error("the encrypted key material could not be decrypted with the import parameters")]
    Unwrap,
}

/// A fresh RSA wrapping key: (private key as PKCS#8 DER, public key as DER
/// SubjectPublicKeyInfo — what GetParametersForImport returns).
pub fn generate_wrapping_key(bits: usize) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), ImportError> {
    let private =
        RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).map_err(|_| ImportError::KeyGeneration)?;
    let private_der = private.to_pkcs8_der().map_err(|_| ImportError::KeyGeneration)?;
    let public_der =
        private.to_public_key().to_public_key_der().map_err(|_| ImportError::KeyGeneration)?;
    Ok((Zeroizing::new(private_der.as_bytes().to_vec()), public_der.as_bytes().to_vec()))
}

/// Recovers the caller's key material from what it encrypted to the wrapping key.
pub fn unwrap_imported(
    algorithm: WrappingAlgorithm,
    private_pkcs8_der: &[u8],
    encrypted: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ImportError> {
    let private =
        RsaPrivateKey::from_pkcs8_der(private_pkcs8_der).map_err(|_| ImportError::Unwrap)?;
    match algorithm {
        WrappingAlgorithm::RsaesOaepSha1 | WrappingAlgorithm::RsaesOaepSha256 => private
            .decrypt(algorithm.oaep(), encrypted)
            .map(Zeroizing::new)
            .map_err(|_| ImportError::Unwrap),
        WrappingAlgorithm::RsaAesKeyWrapSha1 | WrappingAlgorithm::RsaAesKeyWrapSha256 => {
            let split = rsa::traits::PublicKeyParts::size(&private);
            if encrypted.len() <= split {
                return Err(ImportError::Unwrap);
            }
            let (wrapped_key, wrapped_material) = encrypted.split_at(split);
            let aes_key = Zeroizing::new(
                private.decrypt(algorithm.oaep(), wrapped_key).map_err(|_| ImportError::Unwrap)?,
            );
            let kek: [u8; 32] = aes_key.as_slice().try_into().map_err(|_| ImportError::Unwrap)?;
            let kek = Zeroizing::new(kek);
            aes_kw::KekAes256::from(*kek)
                .unwrap_with_padding_vec(wrapped_material)
                .map(Zeroizing::new)
                .map_err(|_| ImportError::Unwrap)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::RsaPublicKey;

    fn wrap(alg: WrappingAlgorithm, public_der: &[u8], material: &[u8]) -> Vec<u8> {
        let public = RsaPublicKey::from_public_key_der(public_der).unwrap();
        let mut rng = rand::rngs::OsRng;
        match alg {
            WrappingAlgorithm::RsaesOaepSha1 | WrappingAlgorithm::RsaesOaepSha256 => {
                public.encrypt(&mut rng, alg.oaep(), material).unwrap()
            }
            _ => {
                let aes_key = [7u8; 32];
                let mut out = public.encrypt(&mut rng, alg.oaep(), &aes_key).unwrap();
                out.extend(
                    aes_kw::KekAes256::from(aes_key).wrap_with_padding_vec(material).unwrap(),
                );
                out
            }
        }
    }

    #[test]
    fn every_algorithm_round_trips_and_mismatches_fail() {
        let (private, public) = generate_wrapping_key(2048).unwrap();
        let material = [42u8; 32];
        for alg in [
            WrappingAlgorithm::RsaesOaepSha1,
            WrappingAlgorithm::RsaesOaepSha256,
            WrappingAlgorithm::RsaAesKeyWrapSha1,
            WrappingAlgorithm::RsaAesKeyWrapSha256,
        ] {
            assert_eq!(WrappingAlgorithm::parse(alg.as_str()), Some(alg));
            let wrapped = wrap(alg, &public, &material);
            assert_eq!(
                unwrap_imported(alg, &private, &wrapped).unwrap().as_slice(),
                material,
                "{alg:?}"
            );
            let mut tampered = wrapped.clone();
            let last = tampered.len() - 1;
            tampered[last] ^= 1;
            assert_eq!(
                unwrap_imported(alg, &private, &tampered),
                Err(ImportError::Unwrap),
                "{alg:?}"
            );
        }
        let sha1 = wrap(WrappingAlgorithm::RsaesOaepSha1, &public, &material);
        assert!(unwrap_imported(WrappingAlgorithm::RsaesOaepSha256, &private, &sha1).is_err());
        let (other, _) = generate_wrapping_key(2048).unwrap();
        let good = wrap(WrappingAlgorithm::RsaesOaepSha256, &public, &material);
        assert!(unwrap_imported(WrappingAlgorithm::RsaesOaepSha256, &other, &good).is_err());
        assert_eq!(wrapping_key_bits("RSA_3072"), Some(3072));
        assert_eq!(wrapping_key_bits("RSA_1024"), None);
    }
}
