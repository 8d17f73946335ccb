use super::*;

const MESSAGE: &[u8] = b"the quick brown fox signs over the lazy dog";

fn rsa_specs() -> [AsymSpec; 3] {
    [AsymSpec::Rsa2048, AsymSpec::Rsa3072, AsymSpec::Rsa4096]
}

fn nist_curves() -> [AsymSpec; 3] {
    [AsymSpec::EccNistP256, AsymSpec::EccNistP384, AsymSpec::EccNistP521]
}

fn encryption_algorithms() -> [EncryptionAlgorithm; 2] {
    [EncryptionAlgorithm::RsaesOaepSha1, EncryptionAlgorithm::RsaesOaepSha256]
}

/// The message in the form `message_type` wants.
fn input(algorithm: SigningAlgorithm, message_type: MessageType) -> Vec<u8> {
    match message_type {
        MessageType::Raw => MESSAGE.to_vec(),
        MessageType::Digest => algorithm.hash().digest(MESSAGE),
    }
}

fn flip(bytes: &[u8], index: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[index] ^= 0x01;
    out
}

#[test]
fn sign_and_verify_every_spec_algorithm_and_message_type() {
    for spec in AsymSpec::ALL {
        let key = fixture(spec);
        let public = PublicKey::from_spki_der(spec, &public_key_der(key)).unwrap();
        for algorithm in SigningAlgorithm::for_spec(spec) {
            for message_type in [MessageType::Raw, MessageType::Digest] {
                let case =
                    format!("{} {} {}", spec.as_str(), algorithm.as_str(), message_type.as_str());
                let message = input(algorithm, message_type);
                let signature = sign(key, algorithm, message_type, &message).unwrap();
                match spec.rsa_bits() {
                    Some(bits) => assert_eq!(signature.len(), bits / 8, "{case}"),
                    None => assert_eq!(signature[0], 0x30, "{case}: a DER SEQUENCE"),
                }
                assert!(
                    verify(key, algorithm, message_type, &message, &signature).unwrap(),
                    "{case}"
                );
                assert!(
                    verify(&public, algorithm, message_type, &message, &signature).unwrap(),
                    "{case}"
                );
                // The message type need not match the one used to sign.
                for other_type in [MessageType::Raw, MessageType::Digest] {
                    let other = input(algorithm, other_type);
                    assert!(
                        verify(&public, algorithm, other_type, &other, &signature).unwrap(),
                        "{case}"
                    );
                }
                // A changed message or signature does not verify.
                let bad_message = flip(&message, message.len() / 2);
                assert!(
                    !verify(&public, algorithm, message_type, &bad_message, &signature).unwrap(),
                    "{case}"
                );
                for index in [0, signature.len() / 2, signature.len() - 1] {
                    let bad = flip(&signature, index);
                    assert!(
                        !verify(&public, algorithm, message_type, &message, &bad).unwrap(),
                        "{case} byte {index}"
                    );
                }
                let truncated = &signature[..signature.len() - 1];
                assert!(
                    !verify(&public, algorithm, message_type, &message, truncated).unwrap(),
                    "{case}"
                );
                let mut extended = signature.clone();
                extended.push(0);
                assert!(
                    !verify(&public, algorithm, message_type, &message, &extended).unwrap(),
                    "{case}"
                );
                assert!(
                    !verify(&public, algorithm, message_type, &message, &[]).unwrap(),
                    "{case}"
                );
            }
        }
    }
}

#[test]
fn a_signature_binds_its_algorithm_and_key() {
    let key = fixture(AsymSpec::Rsa2048);
    let pss = sign(key, SigningAlgorithm::RsassaPssSha256, MessageType::Raw, MESSAGE).unwrap();
    for other in SigningAlgorithm::for_spec(AsymSpec::Rsa2048) {
        let ok = verify(key, other, MessageType::Raw, MESSAGE, &pss).unwrap();
        assert_eq!(ok, other == SigningAlgorithm::RsassaPssSha256, "{}", other.as_str());
    }
    // Another key of the same spec does not verify it.
    let other_key = generate(AsymSpec::EccNistP256).unwrap();
    let ecdsa = sign(
        fixture(AsymSpec::EccNistP256),
        SigningAlgorithm::EcdsaSha256,
        MessageType::Raw,
        MESSAGE,
    )
    .unwrap();
    assert!(!verify(&other_key, SigningAlgorithm::EcdsaSha256, MessageType::Raw, MESSAGE, &ecdsa)
        .unwrap());
    // PSS and ECDSA are randomised, PKCS#1 v1.5 is deterministic.
    let pss2 = sign(key, SigningAlgorithm::RsassaPssSha256, MessageType::Raw, MESSAGE).unwrap();
    assert_ne!(pss, pss2);
    let v15 = |key| sign(key, SigningAlgorithm::RsassaPkcs1V15Sha256, MessageType::Raw, MESSAGE);
    assert_eq!(v15(key).unwrap(), v15(key).unwrap());
}

#[test]
fn ecdsa_verification_accepts_high_s() {
    // Other tools do not normalise s; standard ECDSA accepts both s and n - s.
    use k256::elliptic_curve::ops::Neg;
    let key = fixture(AsymSpec::EccSecgP256k1);
    let der = sign(key, SigningAlgorithm::EcdsaSha256, MessageType::Raw, MESSAGE).unwrap();
    let low = k256::ecdsa::Signature::from_der(&der).unwrap();
    let (r, s) = low.split_scalars();
    let high = k256::ecdsa::Signature::from_scalars(r.to_bytes(), s.neg().to_bytes()).unwrap();
    assert!(low.normalize_s().is_none(), "k256 signs with a low s");
    assert!(high.normalize_s().is_some());
    let high_der = high.to_der();
    assert!(verify(
        key,
        SigningAlgorithm::EcdsaSha256,
        MessageType::Raw,
        MESSAGE,
        high_der.as_bytes()
    )
    .unwrap());

    let key = fixture(AsymSpec::EccNistP256);
    let der = sign(key, SigningAlgorithm::EcdsaSha256, MessageType::Raw, MESSAGE).unwrap();
    let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
    let (r, s) = sig.split_scalars();
    let flipped = p256::ecdsa::Signature::from_scalars(r.to_bytes(), s.neg().to_bytes()).unwrap();
    let flipped_der = flipped.to_der();
    assert!(verify(
        key,
        SigningAlgorithm::EcdsaSha256,
        MessageType::Raw,
        MESSAGE,
        flipped_der.as_bytes()
    )
    .unwrap());
}

#[test]
fn message_and_digest_lengths_are_checked() {
    for spec in AsymSpec::ALL {
        let key = fixture(spec);
        for algorithm in SigningAlgorithm::for_spec(spec) {
            let want = algorithm.digest_len();
            let expected = AsymError::Validation(format!(
                "Digest is invalid length for algorithm {}.",
                algorithm.as_str()
            ));
            for len in [1, want - 1, want + 1, 2 * want, MAX_MESSAGE_LEN] {
                let digest = vec![7u8; len];
                assert_eq!(
                    sign(key, algorithm, MessageType::Digest, &digest),
                    Err(expected.clone())
                );
                assert_eq!(
                    verify(key, algorithm, MessageType::Digest, &digest, &[0x30]),
                    Err(expected.clone())
                );
            }
        }
    }
    let key = fixture(AsymSpec::EccNistP256);
    let alg = SigningAlgorithm::EcdsaSha256;
    let too_long = AsymError::Validation(
        "1 validation error detected: Value at 'message' failed to satisfy constraint: Member \
         must have length less than or equal to 4096"
            .into(),
    );
    let empty = AsymError::Validation(
        "1 validation error detected: Value at 'message' failed to satisfy constraint: Member \
         must have length greater than or equal to 1"
            .into(),
    );
    for message_type in [MessageType::Raw, MessageType::Digest] {
        assert_eq!(sign(key, alg, message_type, &[0u8; 4097]), Err(too_long.clone()));
        assert_eq!(sign(key, alg, message_type, &[]), Err(empty.clone()));
        assert_eq!(verify(key, alg, message_type, &[0u8; 4097], &[0x30]), Err(too_long.clone()));
    }
    let longest = vec![9u8; MAX_MESSAGE_LEN];
    let signature = sign(key, alg, MessageType::Raw, &longest).unwrap();
    assert!(verify(key, alg, MessageType::Raw, &longest, &signature).unwrap());
    assert!(sign(key, alg, MessageType::Raw, &[1]).is_ok());
}

#[test]
fn every_unsupported_pairing_is_invalid_key_usage() {
    let mut refused = 0;
    for spec in AsymSpec::ALL {
        let key = fixture(spec);
        for algorithm in SigningAlgorithm::ALL {
            if SigningAlgorithm::for_spec(spec).contains(&algorithm) {
                continue;
            }
            let expected = AsymError::InvalidKeyUsage(format!(
                "Algorithm {} is incompatible with key spec {}.",
                algorithm.as_str(),
                spec.as_str()
            ));
            let message = input(algorithm, MessageType::Digest);
            // Checked before the message, so even a bad digest length gets this answer.
            for message_type in [MessageType::Raw, MessageType::Digest] {
                assert_eq!(sign(key, algorithm, message_type, &message), Err(expected.clone()));
                assert_eq!(sign(key, algorithm, message_type, b"x"), Err(expected.clone()));
                assert_eq!(
                    verify(key, algorithm, message_type, &message, &[0x30]),
                    Err(expected.clone())
                );
            }
            refused += 1;
        }
        if !spec.is_rsa() {
            for algorithm in encryption_algorithms() {
                let expected = AsymError::InvalidKeyUsage(format!(
                    "Algorithm {} is incompatible with key spec {}.",
                    algorithm.as_str(),
                    spec.as_str()
                ));
                assert_eq!(rsa_encrypt(key, algorithm, b"x"), Err(expected.clone()));
                assert_eq!(rsa_decrypt(key, algorithm, &[0u8; 256]), Err(expected));
                refused += 1;
            }
        }
        if KeyAgreementAlgorithm::for_spec(spec).is_empty() {
            let peer = public_key_der(fixture(AsymSpec::EccNistP256));
            assert_eq!(
                derive_shared_secret(key, &peer),
                Err(AsymError::InvalidKeyUsage(format!(
                    "Algorithm ECDH is incompatible with key spec {}.",
                    spec.as_str()
                )))
            );
            refused += 1;
        }
    }
    // RSA: 3 ECDSA + no ECDH, x3. Curves: 8 of 9 signing algorithms, 2 encryption; secp256k1
    // also no ECDH.
    assert_eq!(refused, 3 * (3 + 1) + 4 * (8 + 2) + 1);
}

#[test]
fn rsa_encryption_round_trips_up_to_the_limit() {
    for spec in rsa_specs() {
        let key = fixture(spec);
        let public = PublicKey::from_spki_der(spec, key.public_key().spki_der()).unwrap();
        for algorithm in encryption_algorithms() {
            let case = format!("{} {}", spec.as_str(), algorithm.as_str());
            let max = algorithm.max_plaintext_len(spec).unwrap();
            for len in [0, 1, 32, max] {
                let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let ciphertext = rsa_encrypt(&public, algorithm, &plaintext).unwrap();
                assert_eq!(ciphertext.len(), spec.rsa_bits().unwrap() / 8, "{case}");
                assert_eq!(
                    rsa_decrypt(key, algorithm, &ciphertext).unwrap().as_slice(),
                    plaintext,
                    "{case}"
                );
            }
            let over = vec![0u8; max + 1];
            let expected = AsymError::Validation(format!(
                "Algorithm {} and key spec {} cannot encrypt data larger than {max} bytes.",
                algorithm.as_str(),
                spec.as_str()
            ));
            assert_eq!(rsa_encrypt(key, algorithm, &over), Err(expected.clone()), "{case}");
            assert_eq!(rsa_encrypt(&public, algorithm, &[0u8; 4096]), Err(expected), "{case}");

            // Every way a ciphertext can be wrong is the same InvalidCiphertext.
            let ciphertext = rsa_encrypt(key, algorithm, b"secret").unwrap();
            let other_alg = match algorithm {
                EncryptionAlgorithm::RsaesOaepSha1 => EncryptionAlgorithm::RsaesOaepSha256,
                EncryptionAlgorithm::RsaesOaepSha256 => EncryptionAlgorithm::RsaesOaepSha1,
            };
            let other_key = fixture(if spec == AsymSpec::Rsa2048 {
                AsymSpec::Rsa3072
            } else {
                AsymSpec::Rsa2048
            });
            let bad = [
                rsa_decrypt(key, other_alg, &ciphertext),
                rsa_decrypt(key, algorithm, &flip(&ciphertext, 0)),
                rsa_decrypt(key, algorithm, &flip(&ciphertext, ciphertext.len() - 1)),
                rsa_decrypt(key, algorithm, &ciphertext[1..]),
                rsa_decrypt(key, algorithm, &[]),
                rsa_decrypt(key, algorithm, &[0xff; 1024]),
                rsa_decrypt(other_key, algorithm, &ciphertext),
            ];
            for (i, result) in bad.into_iter().enumerate() {
                assert_eq!(result, Err(AsymError::InvalidCiphertext), "{case} #{i}");
            }
            // OAEP is randomised.
            assert_ne!(ciphertext, rsa_encrypt(key, algorithm, b"secret").unwrap());
        }
    }
}

#[test]
fn ecdh_both_sides_agree() {
    for spec in nist_curves() {
        let alice = fixture(spec);
        let bob = generate(spec).unwrap();
        let ab = derive_shared_secret(alice, &public_key_der(&bob)).unwrap();
        let ba = derive_shared_secret(&bob, &public_key_der(alice)).unwrap();
        assert_eq!(ab, ba, "{}", spec.as_str());
        let field_bytes = match spec {
            AsymSpec::EccNistP256 => 32,
            AsymSpec::EccNistP384 => 48,
            _ => 66,
        };
        assert_eq!(ab.len(), field_bytes);
        let carol = generate(spec).unwrap();
        assert_ne!(ab, derive_shared_secret(alice, &public_key_der(&carol)).unwrap());

        // A peer key of another curve or algorithm, or not a key at all, is refused.
        for other in AsymSpec::ALL {
            if other != spec {
                let peer = public_key_der(fixture(other));
                assert_eq!(
                    derive_shared_secret(alice, &peer),
                    Err(AsymError::InvalidPeerKey),
                    "{} with {}",
                    spec.as_str(),
                    other.as_str()
                );
            }
        }
        let spki = public_key_der(&bob);
        let garbage = [
            Vec::new(),
            b"not a key".to_vec(),
            spki[..spki.len() - 1].to_vec(),
            flip(&spki, spki.len() - 1), // the point is no longer on the curve
            bob.pkcs8_der().to_vec(),
        ];
        for (i, peer) in garbage.iter().enumerate() {
            assert_eq!(derive_shared_secret(alice, peer), Err(AsymError::InvalidPeerKey), "#{i}");
        }
    }
}

#[test]
fn pkcs8_and_spki_round_trip_and_refuse_other_specs() {
    for spec in AsymSpec::ALL {
        let key = fixture(spec);
        let back = PrivateKey::from_pkcs8_der(spec, key.pkcs8_der()).unwrap();
        assert_eq!(back.pkcs8_der(), key.pkcs8_der(), "{}", spec.as_str());
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(back.spec(), spec);
        let public = PublicKey::from_spki_der(spec, key.public_key().spki_der()).unwrap();
        assert_eq!(&public, key.public_key());
        assert_eq!(public.spec(), spec);
        // A signature by the re-read key verifies under the original.
        let alg = SigningAlgorithm::for_spec(spec)[0];
        let signature = sign(&back, alg, MessageType::Raw, MESSAGE).unwrap();
        assert!(verify(key, alg, MessageType::Raw, MESSAGE, &signature).unwrap());

        for other in AsymSpec::ALL {
            if other != spec {
                let case = format!("{} as {}", spec.as_str(), other.as_str());
                assert_eq!(
                    PrivateKey::from_pkcs8_der(other, key.pkcs8_der()).err(),
                    Some(AsymError::InvalidKeyMaterial),
                    "{case}"
                );
                assert_eq!(
                    PublicKey::from_spki_der(other, key.public_key().spki_der()).err(),
                    Some(AsymError::InvalidKeyMaterial),
                    "{case}"
                );
            }
        }
        let pkcs8 = key.pkcs8_der();
        for bad in [&[][..], b"junk", &pkcs8[..pkcs8.len() - 1], key.public_key().spki_der()] {
            assert_eq!(
                PrivateKey::from_pkcs8_der(spec, bad).err(),
                Some(AsymError::InvalidKeyMaterial)
            );
        }
        assert_eq!(
            PublicKey::from_spki_der(spec, pkcs8).err(),
            Some(AsymError::InvalidKeyMaterial)
        );
    }
}

#[test]
fn generated_rsa_keys_have_the_spec_size_and_f4() {
    use ::rsa::pkcs8::DecodePrivateKey;
    use ::rsa::traits::PublicKeyParts;
    for spec in rsa_specs() {
        let key = ::rsa::RsaPrivateKey::from_pkcs8_der(fixture(spec).pkcs8_der()).unwrap();
        assert_eq!(key.n().bits(), spec.rsa_bits().unwrap());
        assert_eq!(key.e(), &::rsa::BigUint::from(65_537u32));
    }
}

#[test]
fn nothing_secret_is_shown() {
    let key = fixture(AsymSpec::EccNistP256);
    assert_eq!(format!("{key:?}"), "PrivateKey(ECC_NIST_P256, <redacted>)");
    assert_eq!(format!("{:?}", key.public_key()), "PublicKey(ECC_NIST_P256, 91 bytes)");
    let errors = [
        rsa_encrypt(fixture(AsymSpec::Rsa2048), EncryptionAlgorithm::RsaesOaepSha256, &[0x41; 191]),
        rsa_decrypt(fixture(AsymSpec::Rsa2048), EncryptionAlgorithm::RsaesOaepSha256, &[0x41; 256])
            .map(|p| p.to_vec()),
        sign(key, SigningAlgorithm::EcdsaSha256, MessageType::Digest, &[0x41; 31]),
        derive_shared_secret(key, &[0x41; 91]).map(|s| s.to_vec()),
    ];
    for error in errors {
        let text = error.unwrap_err().to_string();
        assert!(!text.contains("AAAA") && !text.contains("41"), "{text}");
    }
}

/// Per curve: the curve crate's own ways to sign and verify, independent of `ecc`.
/// `crate_sign` is what `ecc::sign` did before it signed with the scalar directly: the
/// crate's `SigningKey` from the PKCS#8, `sign_prehash_with_rng`.
macro_rules! ecdsa_reference {
    ($name:ident, $module:ident, $krate:ident, $spec:ident) => {
        mod $name {
            use $krate::ecdsa::signature::hazmat::{PrehashVerifier, RandomizedPrehashSigner};
            use $krate::ecdsa::{Signature, SigningKey, VerifyingKey};
            use $krate::pkcs8::DecodePrivateKey;
            use $krate::SecretKey;

            pub(super) const SPEC: super::AsymSpec = super::AsymSpec::$spec;

            pub(super) fn new_sign(
                pkcs8: &[u8],
                prehash: &[u8],
                rng: &mut rand::rngs::StdRng,
            ) -> Result<Vec<u8>, super::AsymError> {
                super::ecc::$module::sign_with_rng(pkcs8, prehash, rng)
            }

            pub(super) fn production_sign(
                pkcs8: &[u8],
                prehash: &[u8],
            ) -> Result<Vec<u8>, super::AsymError> {
                super::ecc::$module::sign(pkcs8, prehash)
            }

            pub(super) fn crate_sign(
                pkcs8: &[u8],
                prehash: &[u8],
                rng: &mut (impl rand::CryptoRng + rand::RngCore),
            ) -> Option<Vec<u8>> {
                let secret = SecretKey::from_pkcs8_der(pkcs8).unwrap();
                let signer = SigningKey::from_bytes(&secret.to_bytes()).unwrap();
                let signature: Signature = signer.sign_prehash_with_rng(rng, prehash).ok()?;
                Some(signature.to_der().as_bytes().to_vec())
            }

            /// Verified with the public key derived from `pkcs8`, not with `ecc::verify`
            /// (and without its high-`s` normalisation).
            pub(super) fn crate_verify(pkcs8: &[u8], prehash: &[u8], der: &[u8]) -> bool {
                let public = SecretKey::from_pkcs8_der(pkcs8).unwrap().public_key();
                let verifier = VerifyingKey::from_affine(*public.as_affine()).unwrap();
                let signature = Signature::from_der(der).unwrap();
                verifier.verify_prehash(prehash, &signature).is_ok()
            }

            /// The scalar as `ecc` reads stored PKCS#8, and as the crate does (which also
            /// checks the embedded public point).
            pub(super) fn secret_scalars(
                pkcs8: &[u8],
            ) -> (Result<Vec<u8>, super::AsymError>, Option<Vec<u8>>) {
                let ours = super::ecc::$module::secret_key(pkcs8).map(|k| k.to_bytes().to_vec());
                let theirs = SecretKey::from_pkcs8_der(pkcs8).ok().map(|k| k.to_bytes().to_vec());
                (ours, theirs)
            }

            pub(super) fn is_low_s(der: &[u8]) -> bool {
                Signature::from_der(der).unwrap().normalize_s().is_none()
            }

            pub(super) const FIELD_BYTES: usize = core::mem::size_of::<$krate::FieldBytes>();
        }
    };
}

ecdsa_reference!(ref_p256, nist_p256, p256, EccNistP256);
ecdsa_reference!(ref_p384, nist_p384, p384, EccNistP384);
ecdsa_reference!(ref_p521, nist_p521, p521, EccNistP521);
ecdsa_reference!(ref_k256, secg_p256k1, k256, EccSecgP256k1);

type NewSign = fn(&[u8], &[u8], &mut rand::rngs::StdRng) -> Result<Vec<u8>, AsymError>;
type CrateSign = fn(&[u8], &[u8], &mut rand::rngs::StdRng) -> Option<Vec<u8>>;
type SecretScalars = fn(&[u8]) -> (Result<Vec<u8>, AsymError>, Option<Vec<u8>>);
type ProductionSign = fn(&[u8], &[u8]) -> Result<Vec<u8>, AsymError>;

struct EcdsaReference {
    spec: AsymSpec,
    field_bytes: usize,
    new_sign: NewSign,
    production_sign: ProductionSign,
    crate_sign: CrateSign,
    /// `crate_sign` with the operating system's randomness: the old `ecc::sign`.
    old_sign: fn(&[u8], &[u8]) -> Option<Vec<u8>>,
    crate_verify: fn(&[u8], &[u8], &[u8]) -> bool,
    is_low_s: fn(&[u8]) -> bool,
    secret_scalars: SecretScalars,
}

macro_rules! reference {
    ($name:ident) => {
        EcdsaReference {
            spec: $name::SPEC,
            field_bytes: $name::FIELD_BYTES,
            new_sign: $name::new_sign,
            production_sign: $name::production_sign,
            crate_sign: |pkcs8, prehash, rng| $name::crate_sign(pkcs8, prehash, rng),
            old_sign: |pkcs8, prehash| $name::crate_sign(pkcs8, prehash, &mut rand::rngs::OsRng),
            crate_verify: $name::crate_verify,
            is_low_s: $name::is_low_s,
            secret_scalars: $name::secret_scalars,
        }
    };
}

fn ecdsa_references() -> [EcdsaReference; 4] {
    [reference!(ref_p256), reference!(ref_p384), reference!(ref_p521), reference!(ref_k256)]
}

/// Digest lengths around every field size: too short (below half the field), SHA-1,
/// SHA-224/256/384/512, P-521's 66 bytes, longer than any field.
fn prehash_lengths(field_bytes: usize) -> Vec<usize> {
    let mut lengths = vec![1, field_bytes / 2 - 1, field_bytes / 2, field_bytes];
    lengths.extend([20, 28, 32, 48, 64, 66, 100, MAX_MESSAGE_LEN]);
    lengths
}

fn prehash(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(151).wrapping_add(len as u8) | 0x80).collect()
}

#[test]
fn ecdsa_signatures_verify_under_the_curve_crates_own_verifying_key() {
    for reference in ecdsa_references() {
        let key = fixture(reference.spec);
        for len in prehash_lengths(reference.field_bytes) {
            let case = format!("{} digest of {len} bytes", reference.spec.as_str());
            let digest = prehash(len);
            let signed = (reference.production_sign)(key.pkcs8_der(), &digest);
            if len < reference.field_bytes / 2 {
                assert_eq!(signed, Err(AsymError::Internal), "{case}");
                continue;
            }
            let der = signed.unwrap();
            assert!((reference.crate_verify)(key.pkcs8_der(), &digest, &der), "{case}");
            assert!(ecc::verify(reference.spec, &public_key_der(key), &digest, &der).unwrap());
            assert!(!(reference.crate_verify)(key.pkcs8_der(), &flip(&digest, 0), &der));
            if reference.spec == AsymSpec::EccSecgP256k1 {
                assert!((reference.is_low_s)(&der), "{case}: k256 signs with a low s");
            }
            // Fresh randomness each time: two signatures of one digest differ.
            let again = (reference.production_sign)(key.pkcs8_der(), &digest).unwrap();
            assert_ne!(der, again, "{case}");
        }
    }
}

#[test]
fn ecdsa_signing_matches_the_curve_crates_signing_key_with_the_same_randomness() {
    use rand::SeedableRng;
    let rng = |seed| rand::rngs::StdRng::seed_from_u64(seed);
    for reference in ecdsa_references() {
        let key = fixture(reference.spec);
        for len in prehash_lengths(reference.field_bytes) {
            let digest = prehash(len);
            for seed in 0..3 {
                let case =
                    format!("{} digest of {len} bytes, seed {seed}", reference.spec.as_str());
                let ours = (reference.new_sign)(key.pkcs8_der(), &digest, &mut rng(seed));
                let theirs = (reference.crate_sign)(key.pkcs8_der(), &digest, &mut rng(seed));
                match theirs {
                    Some(theirs) => assert_eq!(ours.unwrap(), theirs, "{case}"),
                    None => assert_eq!(ours, Err(AsymError::Internal), "{case}"),
                }
            }
            // The randomness is used: another seed, another signature.
            if len >= reference.field_bytes / 2 {
                let a = (reference.new_sign)(key.pkcs8_der(), &digest, &mut rng(7)).unwrap();
                let b = (reference.new_sign)(key.pkcs8_der(), &digest, &mut rng(8)).unwrap();
                assert_ne!(a, b, "{} digest of {len} bytes", reference.spec.as_str());
            }
        }
    }
}

/// Signs per second, the old `SigningKey` path against `ecc::sign`, alternating in one
/// sitting (the machine is shared): `cargo test --release -p kms-crypto-core --
/// --ignored ecdsa_sign_speed --nocapture`.
#[test]
#[ignore = "timing, run by hand in release mode"]
fn ecdsa_sign_speed() {
    use std::time::{Duration, Instant};
    const ROUNDS: usize = 5;
    const WINDOW: Duration = Duration::from_millis(600);
    fn rate(mut f: impl FnMut()) -> f64 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < WINDOW {
            f();
            n += 1;
        }
        n as f64 / start.elapsed().as_secs_f64()
    }
    for reference in ecdsa_references() {
        let key = fixture(reference.spec);
        let digest = prehash(SigningAlgorithm::for_spec(reference.spec)[0].digest_len());
        let (mut old, mut new) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            old.push(rate(|| {
                (reference.old_sign)(key.pkcs8_der(), &digest).unwrap();
            }));
            new.push(rate(|| {
                (reference.production_sign)(key.pkcs8_der(), &digest).unwrap();
            }));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        eprintln!(
            "{}: old {:.0} signs/s {:?}, new {:.0} signs/s {:?}",
            reference.spec.as_str(),
            median(&mut old),
            old.iter().map(|r| *r as u64).collect::<Vec<_>>(),
            median(&mut new),
            new.iter().map(|r| *r as u64).collect::<Vec<_>>(),
        );
    }
}

#[test]
fn stored_ecc_pkcs8_reads_as_the_crate_reads_it() {
    for reference in ecdsa_references() {
        let spec = reference.spec;
        let key = fixture(spec);
        let pkcs8 = key.pkcs8_der();
        let (ours, theirs) = (reference.secret_scalars)(pkcs8);
        assert_eq!(ours.unwrap(), theirs.unwrap(), "{}", spec.as_str());

        // Not PKCS#8 of this curve: an internal error, never a panic.
        let mut trailing = pkcs8.to_vec();
        trailing.push(0);
        let mut bad = vec![
            Vec::new(),
            b"junk".to_vec(),
            pkcs8[..pkcs8.len() - 1].to_vec(),
            trailing,
            public_key_der(key),
            fixture(AsymSpec::Rsa2048).pkcs8_der().to_vec(),
        ];
        for other in AsymSpec::ALL {
            if other != spec && !other.is_rsa() {
                bad.push(fixture(other).pkcs8_der().to_vec());
            }
        }
        for (i, der) in bad.iter().enumerate() {
            let (ours, theirs) = (reference.secret_scalars)(der);
            assert_eq!(ours, Err(AsymError::Internal), "{} #{i}", spec.as_str());
            assert_eq!(theirs, None, "{} #{i}", spec.as_str());
        }

        // Sign skips the check of the public point embedded in the PKCS#8, so the check
        // when a key is built must refuse a point that is not the scalar's.
        let point = |key: &PrivateKey| {
            let spki = public_key_der(key);
            let len = 1 + 2 * reference.field_bytes;
            spki[spki.len() - len..].to_vec()
        };
        let other = generate(spec).unwrap();
        let (mine, theirs) = (point(key), point(&other));
        let at = pkcs8.windows(mine.len()).position(|w| w == mine.as_slice()).unwrap();
        let mut swapped = pkcs8.to_vec();
        swapped[at..at + mine.len()].copy_from_slice(&theirs);
        assert_eq!(
            PrivateKey::from_pkcs8_der(spec, &swapped).err(),
            Some(AsymError::InvalidKeyMaterial),
            "{}",
            spec.as_str()
        );
    }
}
