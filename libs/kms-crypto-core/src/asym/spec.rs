//! The names AWS KMS gives asymmetric keys and their algorithms (botocore's `KeySpec`,
//! `SigningAlgorithmSpec`, `EncryptionAlgorithmSpec`, `KeyAgreementAlgorithmSpec` and
//! `MessageType`), and which algorithm goes with which key spec. The pairing tables here
//! are the single place the service learns them from: DescribeKey and GetPublicKey list
//! them, and every operation refuses an algorithm outside them.

/// An asymmetric key spec (also a `KeyPairSpec` of GenerateDataKeyPair). SM2 is not
/// offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsymSpec {
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EccNistP256,
    EccNistP384,
    EccNistP521,
    EccSecgP256k1,
}

impl AsymSpec {
    /// Every spec, in AWS's order.
    pub const ALL: [AsymSpec; 7] = [
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
        Self::EccNistP256,
        Self::EccNistP384,
        Self::EccNistP521,
        Self::EccSecgP256k1,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RSA_2048" => Some(Self::Rsa2048),
            "RSA_3072" => Some(Self::Rsa3072),
            "RSA_4096" => Some(Self::Rsa4096),
            "ECC_NIST_P256" => Some(Self::EccNistP256),
            "ECC_NIST_P384" => Some(Self::EccNistP384),
            "ECC_NIST_P521" => Some(Self::EccNistP521),
            "ECC_SECG_P256K1" => Some(Self::EccSecgP256k1),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa2048 => "RSA_2048",
            Self::Rsa3072 => "RSA_3072",
            Self::Rsa4096 => "RSA_4096",
            Self::EccNistP256 => "ECC_NIST_P256",
            Self::EccNistP384 => "ECC_NIST_P384",
            Self::EccNistP521 => "ECC_NIST_P521",
            Self::EccSecgP256k1 => "ECC_SECG_P256K1",
        }
    }

    /// Modulus bits of an RSA spec; `None` for the curves.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            Self::Rsa2048 => Some(2048),
            Self::Rsa3072 => Some(3072),
            Self::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    pub fn is_rsa(self) -> bool {
        self.rsa_bits().is_some()
    }

    /// The `KeyUsage` values CreateKey accepts for this spec.
    pub fn key_usages(self) -> &'static [&'static str] {
        match self {
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => &["ENCRYPT_DECRYPT", "SIGN_VERIFY"],
            Self::EccNistP256 | Self::EccNistP384 | Self::EccNistP521 => {
                &["SIGN_VERIFY", "KEY_AGREEMENT"]
            }
            Self::EccSecgP256k1 => &["SIGN_VERIFY"],
        }
    }
}

/// The hash a signing algorithm applies to a RAW message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub(crate) fn len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    pub(crate) fn digest(self, message: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            Self::Sha256 => sha2::Sha256::digest(message).to_vec(),
            Self::Sha384 => sha2::Sha384::digest(message).to_vec(),
            Self::Sha512 => sha2::Sha512::digest(message).to_vec(),
        }
    }
}

/// A signing algorithm (`SigningAlgorithmSpec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    RsassaPssSha256,
    RsassaPssSha384,
    RsassaPssSha512,
    RsassaPkcs1V15Sha256,
    RsassaPkcs1V15Sha384,
    RsassaPkcs1V15Sha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

/// How an RSA signature pads the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RsaPadding {
    Pss,
    Pkcs1V15,
}

impl SigningAlgorithm {
    /// Every algorithm, in AWS's order.
    pub const ALL: [SigningAlgorithm; 9] = [
        Self::RsassaPssSha256,
        Self::RsassaPssSha384,
        Self::RsassaPssSha512,
        Self::RsassaPkcs1V15Sha256,
        Self::RsassaPkcs1V15Sha384,
        Self::RsassaPkcs1V15Sha512,
        Self::EcdsaSha256,
        Self::EcdsaSha384,
        Self::EcdsaSha512,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RsassaPssSha256 => "RSASSA_PSS_SHA_256",
            Self::RsassaPssSha384 => "RSASSA_PSS_SHA_384",
            Self::RsassaPssSha512 => "RSASSA_PSS_SHA_512",
            Self::RsassaPkcs1V15Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
            Self::RsassaPkcs1V15Sha384 => "RSASSA_PKCS1_V1_5_SHA_384",
            Self::RsassaPkcs1V15Sha512 => "RSASSA_PKCS1_V1_5_SHA_512",
            Self::EcdsaSha256 => "ECDSA_SHA_256",
            Self::EcdsaSha384 => "ECDSA_SHA_384",
            Self::EcdsaSha512 => "ECDSA_SHA_512",
        }
    }

    /// The algorithms a key of `spec` signs with, as AWS pairs them: every RSA spec takes
    /// all six RSASSA algorithms; each curve takes the one ECDSA hash of its size
    /// (secp256k1 takes SHA-256).
    pub fn for_spec(spec: AsymSpec) -> Vec<SigningAlgorithm> {
        match spec {
            AsymSpec::Rsa2048 | AsymSpec::Rsa3072 | AsymSpec::Rsa4096 => vec![
                Self::RsassaPssSha256,
                Self::RsassaPssSha384,
                Self::RsassaPssSha512,
                Self::RsassaPkcs1V15Sha256,
                Self::RsassaPkcs1V15Sha384,
                Self::RsassaPkcs1V15Sha512,
            ],
            AsymSpec::EccNistP256 | AsymSpec::EccSecgP256k1 => vec![Self::EcdsaSha256],
            AsymSpec::EccNistP384 => vec![Self::EcdsaSha384],
            AsymSpec::EccNistP521 => vec![Self::EcdsaSha512],
        }
    }

    pub fn supports(self, spec: AsymSpec) -> bool {
        Self::for_spec(spec).contains(&self)
    }

    /// Length in bytes of the digest a DIGEST message must have.
    pub fn digest_len(self) -> usize {
        self.hash().len()
    }

    pub(crate) fn hash(self) -> Hash {
        match self {
            Self::RsassaPssSha256 | Self::RsassaPkcs1V15Sha256 | Self::EcdsaSha256 => Hash::Sha256,
            Self::RsassaPssSha384 | Self::RsassaPkcs1V15Sha384 | Self::EcdsaSha384 => Hash::Sha384,
            Self::RsassaPssSha512 | Self::RsassaPkcs1V15Sha512 | Self::EcdsaSha512 => Hash::Sha512,
        }
    }

    /// The RSA padding, `None` for ECDSA.
    pub(crate) fn rsa_padding(self) -> Option<RsaPadding> {
        match self {
            Self::RsassaPssSha256 | Self::RsassaPssSha384 | Self::RsassaPssSha512 => {
                Some(RsaPadding::Pss)
            }
            Self::RsassaPkcs1V15Sha256
            | Self::RsassaPkcs1V15Sha384
            | Self::RsassaPkcs1V15Sha512 => Some(RsaPadding::Pkcs1V15),
            Self::EcdsaSha256 | Self::EcdsaSha384 | Self::EcdsaSha512 => None,
        }
    }
}

/// What the `Message` of Sign and Verify is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// The message itself (1 to 4096 bytes); it is hashed with the algorithm's digest.
    Raw,
    /// The message's digest, already computed by the caller; it is signed as it is.
    Digest,
}

impl MessageType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RAW" => Some(Self::Raw),
            "DIGEST" => Some(Self::Digest),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "RAW",
            Self::Digest => "DIGEST",
        }
    }
}

/// An RSA encryption algorithm (`EncryptionAlgorithmSpec`; SYMMETRIC_DEFAULT is the
/// symmetric blob's and not handled here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncryptionAlgorithm {
    RsaesOaepSha1,
    RsaesOaepSha256,
}

impl EncryptionAlgorithm {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RSAES_OAEP_SHA_1" => Some(Self::RsaesOaepSha1),
            "RSAES_OAEP_SHA_256" => Some(Self::RsaesOaepSha256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
            Self::RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
        }
    }

    /// The algorithms a key of `spec` encrypts with: both for RSA, none for the curves.
    pub fn for_spec(spec: AsymSpec) -> Vec<EncryptionAlgorithm> {
        if spec.is_rsa() {
            vec![Self::RsaesOaepSha1, Self::RsaesOaepSha256]
        } else {
            Vec::new()
        }
    }

    /// The largest plaintext a key of `spec` encrypts with this algorithm, in bytes:
    /// `modulus bytes - 2 * hash bytes - 2` (RFC 8017, 7.1.1), which gives AWS's
    /// documented 214 / 190 (RSA_2048), 342 / 318 (RSA_3072) and 470 / 446 (RSA_4096).
    /// `None` for a spec that does not encrypt.
    pub fn max_plaintext_len(self, spec: AsymSpec) -> Option<usize> {
        let modulus_bytes = spec.rsa_bits()? / 8;
        Some(modulus_bytes - 2 * self.hash_len() - 2)
    }

    pub(crate) fn hash_len(self) -> usize {
        match self {
            Self::RsaesOaepSha1 => 20,
            Self::RsaesOaepSha256 => 32,
        }
    }
}

/// A key agreement algorithm (`KeyAgreementAlgorithmSpec`): AWS offers ECDH only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAgreementAlgorithm {
    Ecdh,
}

impl KeyAgreementAlgorithm {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ECDH" => Some(Self::Ecdh),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ecdh => "ECDH",
        }
    }

    /// ECDH for the NIST curves; nothing for RSA or secp256k1.
    pub fn for_spec(spec: AsymSpec) -> Vec<KeyAgreementAlgorithm> {
        match spec {
            AsymSpec::EccNistP256 | AsymSpec::EccNistP384 | AsymSpec::EccNistP521 => {
                vec![Self::Ecdh]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for spec in AsymSpec::ALL {
            assert_eq!(AsymSpec::parse(spec.as_str()), Some(spec));
        }
        for alg in SigningAlgorithm::ALL {
            assert_eq!(SigningAlgorithm::parse(alg.as_str()), Some(alg));
        }
        for alg in [EncryptionAlgorithm::RsaesOaepSha1, EncryptionAlgorithm::RsaesOaepSha256] {
            assert_eq!(EncryptionAlgorithm::parse(alg.as_str()), Some(alg));
        }
        for t in [MessageType::Raw, MessageType::Digest] {
            assert_eq!(MessageType::parse(t.as_str()), Some(t));
        }
        assert_eq!(KeyAgreementAlgorithm::parse("ECDH"), Some(KeyAgreementAlgorithm::Ecdh));
        for bad in ["", "rsa_2048", "RSA_1024", "SM2", "HMAC_256", "SYMMETRIC_DEFAULT"] {
            assert_eq!(AsymSpec::parse(bad), None, "{bad}");
        }
        assert_eq!(SigningAlgorithm::parse("SM2DSA"), None);
        assert_eq!(SigningAlgorithm::parse("ECDSA_SHA_1"), None);
        assert_eq!(EncryptionAlgorithm::parse("SYMMETRIC_DEFAULT"), None);
        assert_eq!(MessageType::parse("EXTERNAL_MU"), None);
        assert_eq!(KeyAgreementAlgorithm::parse("ecdh"), None);
    }

    #[test]
    fn pairings_are_aws_s() {
        use SigningAlgorithm as S;
        let names = |spec| -> Vec<&str> {
            S::for_spec(spec).into_iter().map(S::as_str).collect::<Vec<_>>()
        };
        for spec in [AsymSpec::Rsa2048, AsymSpec::Rsa3072, AsymSpec::Rsa4096] {
            assert_eq!(
                names(spec),
                [
                    "RSASSA_PSS_SHA_256",
                    "RSASSA_PSS_SHA_384",
                    "RSASSA_PSS_SHA_512",
                    "RSASSA_PKCS1_V1_5_SHA_256",
                    "RSASSA_PKCS1_V1_5_SHA_384",
                    "RSASSA_PKCS1_V1_5_SHA_512"
                ]
            );
            assert_eq!(EncryptionAlgorithm::for_spec(spec).len(), 2);
            assert!(KeyAgreementAlgorithm::for_spec(spec).is_empty());
        }
        assert_eq!(names(AsymSpec::EccNistP256), ["ECDSA_SHA_256"]);
        assert_eq!(names(AsymSpec::EccNistP384), ["ECDSA_SHA_384"]);
        assert_eq!(names(AsymSpec::EccNistP521), ["ECDSA_SHA_512"]);
        assert_eq!(names(AsymSpec::EccSecgP256k1), ["ECDSA_SHA_256"]);
        for spec in [AsymSpec::EccNistP256, AsymSpec::EccNistP384, AsymSpec::EccNistP521] {
            assert_eq!(KeyAgreementAlgorithm::for_spec(spec), [KeyAgreementAlgorithm::Ecdh]);
            assert!(EncryptionAlgorithm::for_spec(spec).is_empty());
            assert_eq!(spec.key_usages(), ["SIGN_VERIFY", "KEY_AGREEMENT"]);
        }
        assert!(KeyAgreementAlgorithm::for_spec(AsymSpec::EccSecgP256k1).is_empty());
        assert!(EncryptionAlgorithm::for_spec(AsymSpec::EccSecgP256k1).is_empty());
        assert_eq!(AsymSpec::EccSecgP256k1.key_usages(), ["SIGN_VERIFY"]);
        assert_eq!(AsymSpec::Rsa3072.key_usages(), ["ENCRYPT_DECRYPT", "SIGN_VERIFY"]);
        assert!(S::EcdsaSha256.supports(AsymSpec::EccSecgP256k1));
        assert!(!S::EcdsaSha384.supports(AsymSpec::EccNistP256));
    }

    #[test]
    fn lengths() {
        use EncryptionAlgorithm::*;
        let limits = [
            (AsymSpec::Rsa2048, 214, 190),
            (AsymSpec::Rsa3072, 342, 318),
            (AsymSpec::Rsa4096, 470, 446),
        ];
        for (spec, sha1, sha256) in limits {
            assert_eq!(RsaesOaepSha1.max_plaintext_len(spec), Some(sha1));
            assert_eq!(RsaesOaepSha256.max_plaintext_len(spec), Some(sha256));
        }
        assert_eq!(RsaesOaepSha256.max_plaintext_len(AsymSpec::EccNistP256), None);
        let digest_lens: Vec<usize> =
            SigningAlgorithm::ALL.into_iter().map(SigningAlgorithm::digest_len).collect();
        assert_eq!(digest_lens, [32, 48, 64, 32, 48, 64, 32, 48, 64]);
        assert_eq!(Hash::Sha384.digest(b"abc").len(), 48);
        assert_eq!(
            hex::encode(Hash::Sha256.digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
