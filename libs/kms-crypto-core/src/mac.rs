//! HMAC keys: generating and verifying message authentication codes with the four
//! algorithms AWS KMS offers. Verification compares in constant time (`hmac`'s
//! `verify_slice`).

use hmac::{Hmac, Mac};

use crate::KeyMaterial;

/// A MAC algorithm, tied to the HMAC key spec it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlgorithm {
    HmacSha224,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl MacAlgorithm {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HMAC_SHA_224" => Some(Self::HmacSha224),
            "HMAC_SHA_256" => Some(Self::HmacSha256),
            "HMAC_SHA_384" => Some(Self::HmacSha384),
            "HMAC_SHA_512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha224 => "HMAC_SHA_224",
            Self::HmacSha256 => "HMAC_SHA_256",
            Self::HmacSha384 => "HMAC_SHA_384",
            Self::HmacSha512 => "HMAC_SHA_512",
        }
    }

    /// The algorithm of an HMAC key spec (`HMAC_256` → `HMAC_SHA_256`).
    pub fn for_key_spec(spec: &str) -> Option<Self> {
        match spec {
            "HMAC_224" => Some(Self::HmacSha224),
            "HMAC_256" => Some(Self::HmacSha256),
            "HMAC_384" => Some(Self::HmacSha384),
            "HMAC_512" => Some(Self::HmacSha512),
            _ => None,
        }
    }

    /// Bytes of key material a key of this algorithm holds.
    pub fn key_len(self) -> usize {
        match self {
            Self::HmacSha224 => 28,
            Self::HmacSha256 => 32,
            Self::HmacSha384 => 48,
            Self::HmacSha512 => 64,
        }
    }

    /// Lengths, in bytes, of key material AWS accepts when it is imported into a key of
    /// this algorithm: from the digest size up to the hash's block size (or, for the
    /// SHA-384/512 family, its 128-byte block).
    pub fn import_len(self) -> std::ops::RangeInclusive<usize> {
        match self {
            Self::HmacSha224 => 28..=64,
            Self::HmacSha256 => 32..=64,
            Self::HmacSha384 => 48..=128,
            Self::HmacSha512 => 64..=128,
        }
    }
}

macro_rules! with_mac {
    ($alg:expr, $key:expr, |$mac:ident| $body:expr) => {
        match $alg {
            MacAlgorithm::HmacSha224 => {
                let mut $mac = <Hmac<sha2::Sha224> as Mac>::new_from_slice($key).ok()?;
                $body
            }
            MacAlgorithm::HmacSha256 => {
                let mut $mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice($key).ok()?;
                $body
            }
            MacAlgorithm::HmacSha384 => {
                let mut $mac = <Hmac<sha2::Sha384> as Mac>::new_from_slice($key).ok()?;
                $body
            }
            MacAlgorithm::HmacSha512 => {
                let mut $mac = <Hmac<sha2::Sha512> as Mac>::new_from_slice($key).ok()?;
                $body
            }
        }
    };
}

/// The MAC of `message`; `None` only if the material cannot key HMAC (never for stored
/// material).
pub fn generate_mac(
    material: &KeyMaterial,
    algorithm: MacAlgorithm,
    message: &[u8],
) -> Option<Vec<u8>> {
    with_mac!(algorithm, material.expose(), |mac| {
        mac.update(message);
        Some(mac.finalize().into_bytes().to_vec())
    })
}

/// Whether `tag` is the MAC of `message`, compared in constant time.
pub fn verify_mac(
    material: &KeyMaterial,
    algorithm: MacAlgorithm,
    message: &[u8],
    tag: &[u8],
) -> bool {
    verify(material, algorithm, message, tag).unwrap_or(false)
}

fn verify(
    material: &KeyMaterial,
    algorithm: MacAlgorithm,
    message: &[u8],
    tag: &[u8],
) -> Option<bool> {
    with_mac!(algorithm, material.expose(), |mac| {
        mac.update(message);
        Some(mac.verify_slice(tag).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_test_case_2() {
        // Key "Jefe", data "what do ya want for nothing?" (RFC 4231, test case 2).
        let key = KeyMaterial::from_stored_for_test(b"Jefe");
        let msg = b"what do ya want for nothing?";
        let cases = [
            (MacAlgorithm::HmacSha224, "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44"),
            (MacAlgorithm::HmacSha256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (
                MacAlgorithm::HmacSha512,
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
        ];
        for (alg, expected) in cases {
            let mac = generate_mac(&key, alg, msg).unwrap();
            assert_eq!(hex::encode(&mac), expected, "{alg:?}");
            assert!(verify_mac(&key, alg, msg, &mac));
            let mut bad = mac.clone();
            bad[0] ^= 1;
            assert!(!verify_mac(&key, alg, msg, &bad));
            assert!(!verify_mac(&key, alg, b"other message", &mac));
            assert!(!verify_mac(&key, alg, msg, &mac[..mac.len() - 1]));
        }
    }

    #[test]
    fn names_specs_and_lengths() {
        for alg in [
            MacAlgorithm::HmacSha224,
            MacAlgorithm::HmacSha256,
            MacAlgorithm::HmacSha384,
            MacAlgorithm::HmacSha512,
        ] {
            assert_eq!(MacAlgorithm::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(MacAlgorithm::for_key_spec("HMAC_384").map(MacAlgorithm::key_len), Some(48));
        assert_eq!(MacAlgorithm::for_key_spec("SYMMETRIC_DEFAULT"), None);
    }

    #[test]
    fn imported_hmac_material_lengths_follow_aws() {
        let ok = |alg, len| KeyMaterial::from_imported_hmac(alg, &vec![7u8; len]).is_some();
        assert!(!ok(MacAlgorithm::HmacSha224, 27) && ok(MacAlgorithm::HmacSha224, 28));
        assert!(ok(MacAlgorithm::HmacSha224, 64) && !ok(MacAlgorithm::HmacSha224, 65));
        assert!(!ok(MacAlgorithm::HmacSha256, 31) && ok(MacAlgorithm::HmacSha256, 32));
        assert!(ok(MacAlgorithm::HmacSha384, 128) && !ok(MacAlgorithm::HmacSha384, 47));
        assert!(!ok(MacAlgorithm::HmacSha512, 63) && !ok(MacAlgorithm::HmacSha512, 129));
    }
}
