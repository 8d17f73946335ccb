//! Interoperability with OpenSSL, a tool nobody here wrote: it reads our PKCS#8 and SPKI
//! DER, verifies our signatures (every RSA padding and hash, every curve, RAW and DIGEST),
//! signs what we verify, encrypts with OAEP what we decrypt (and the reverse), derives the
//! same ECDH secret, and generates keys we accept.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

const OPENSSL: &str = "/usr/bin/openssl";
const MESSAGE: &[u8] = b"interoperability: a message signed by kms-crypto-core";

/// Runs openssl in `dir`; fails the test with its stderr unless it succeeds.
fn openssl(dir: &Path, args: &[&str]) -> String {
    assert!(Path::new(OPENSSL).exists(), "{OPENSSL} is needed by the interoperability tests");
    let output = Command::new(OPENSSL).args(args).current_dir(dir).output().unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Writes `key`'s PKCS#8 DER and SPKI DER and has openssl turn them into PEM files
/// (`key.pem`, `pub.pem`): openssl must read both DER forms.
fn export(dir: &Path, key: &PrivateKey) {
    write(dir, "key.der", key.pkcs8_der());
    write(dir, "pub.der", &public_key_der(key));
    openssl(dir, &["pkey", "-inform", "DER", "-in", "key.der", "-out", "key.pem"]);
    openssl(dir, &["pkey", "-pubin", "-inform", "DER", "-in", "pub.der", "-out", "pub.pem"]);
}

fn dgst_flag(algorithm: SigningAlgorithm) -> &'static str {
    match algorithm.digest_len() {
        32 => "-sha256",
        48 => "-sha384",
        _ => "-sha512",
    }
}

/// `openssl dgst` options for the algorithm's padding (PSS: salt length = digest length).
fn sigopts(algorithm: SigningAlgorithm) -> Vec<&'static str> {
    match algorithm.rsa_padding() {
        Some(spec::RsaPadding::Pss) => {
            vec!["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
        }
        Some(spec::RsaPadding::Pkcs1V15) => vec!["-sigopt", "rsa_padding_mode:pkcs1"],
        None => Vec::new(),
    }
}

#[test]
fn openssl_reads_our_keys_and_verifies_our_signatures() {
    let mut verified = 0;
    for spec in AsymSpec::ALL {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let key = fixture(spec);
        export(dir, key);
        // The public key openssl derives from our private key is our SPKI, byte for byte.
        openssl(
            dir,
            &["pkey", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "derived.der"],
        );
        assert_eq!(std::fs::read(dir.join("derived.der")).unwrap(), public_key_der(key));
        write(dir, "msg", MESSAGE);
        for algorithm in SigningAlgorithm::for_spec(spec) {
            for message_type in [MessageType::Raw, MessageType::Digest] {
                let message = match message_type {
                    MessageType::Raw => MESSAGE.to_vec(),
                    MessageType::Digest => algorithm.hash().digest(MESSAGE),
                };
                let signature = sign(key, algorithm, message_type, &message).unwrap();
                write(dir, "sig", &signature);
                let mut args = vec!["dgst", dgst_flag(algorithm), "-verify", "pub.pem"];
                args.extend(sigopts(algorithm));
                args.extend(["-signature", "sig", "msg"]);
                let out = openssl(dir, &args);
                assert_eq!(
                    out.trim(),
                    "Verified OK",
                    "{} {} {}",
                    spec.as_str(),
                    algorithm.as_str(),
                    message_type.as_str()
                );
                verified += 1;
            }
        }
    }
    assert_eq!(verified, 3 * 6 * 2 + 4 * 2);
}

#[test]
fn we_verify_openssl_signatures() {
    let specs = [
        AsymSpec::Rsa2048,
        AsymSpec::EccNistP256,
        AsymSpec::EccNistP384,
        AsymSpec::EccNistP521,
        AsymSpec::EccSecgP256k1,
    ];
    for spec in specs {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let key = fixture(spec);
        export(dir, key);
        write(dir, "msg", MESSAGE);
        for algorithm in SigningAlgorithm::for_spec(spec) {
            // Several signatures: openssl's ECDSA has a high s half the time, which we accept.
            for _ in 0..4 {
                let mut args = vec!["dgst", dgst_flag(algorithm), "-sign", "key.pem"];
                args.extend(sigopts(algorithm));
                args.extend(["-out", "sig", "msg"]);
                openssl(dir, &args);
                let signature = std::fs::read(dir.join("sig")).unwrap();
                let case = format!("{} {}", spec.as_str(), algorithm.as_str());
                assert!(
                    verify(key, algorithm, MessageType::Raw, MESSAGE, &signature).unwrap(),
                    "{case}"
                );
                let digest = algorithm.hash().digest(MESSAGE);
                assert!(
                    verify(key, algorithm, MessageType::Digest, &digest, &signature).unwrap(),
                    "{case}"
                );
                assert!(!verify(key, algorithm, MessageType::Raw, b"another message", &signature)
                    .unwrap());
            }
        }
    }
}

#[test]
fn oaep_interoperates_both_ways() {
    for spec in [AsymSpec::Rsa2048, AsymSpec::Rsa3072, AsymSpec::Rsa4096] {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let key = fixture(spec);
        export(dir, key);
        for (algorithm, md) in [
            (EncryptionAlgorithm::RsaesOaepSha1, "sha1"),
            (EncryptionAlgorithm::RsaesOaepSha256, "sha256"),
        ] {
            let case = format!("{} {}", spec.as_str(), algorithm.as_str());
            let oaep_md = format!("rsa_oaep_md:{md}");
            let mgf1_md = format!("rsa_mgf1_md:{md}");
            let max = algorithm.max_plaintext_len(spec).unwrap();
            let plaintext: Vec<u8> = (0..max).map(|i| (i * 7) as u8).collect();
            write(dir, "pt", &plaintext);

            // openssl encrypts with the public key, we decrypt.
            openssl(
                dir,
                &[
                    "pkeyutl",
                    "-encrypt",
                    "-pubin",
                    "-inkey",
                    "pub.pem",
                    "-pkeyopt",
                    "rsa_padding_mode:oaep",
                    "-pkeyopt",
                    &oaep_md,
                    "-pkeyopt",
                    &mgf1_md,
                    "-in",
                    "pt",
                    "-out",
                    "ct",
                ],
            );
            let ciphertext = std::fs::read(dir.join("ct")).unwrap();
            assert_eq!(
                rsa_decrypt(key, algorithm, &ciphertext).unwrap().as_slice(),
                plaintext,
                "{case}"
            );

            // We encrypt, openssl decrypts with our private key.
            write(dir, "ct2", &rsa_encrypt(key, algorithm, &plaintext).unwrap());
            openssl(
                dir,
                &[
                    "pkeyutl",
                    "-decrypt",
                    "-inkey",
                    "key.pem",
                    "-pkeyopt",
                    "rsa_padding_mode:oaep",
                    "-pkeyopt",
                    &oaep_md,
                    "-pkeyopt",
                    &mgf1_md,
                    "-in",
                    "ct2",
                    "-out",
                    "pt2",
                ],
            );
            assert_eq!(std::fs::read(dir.join("pt2")).unwrap(), plaintext, "{case}");
        }
    }
}

#[test]
fn ecdh_agrees_with_openssl() {
    for (spec, curve) in [
        (AsymSpec::EccNistP256, "P-256"),
        (AsymSpec::EccNistP384, "P-384"),
        (AsymSpec::EccNistP521, "P-521"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let key = fixture(spec);
        export(dir, key);
        let curve_opt = format!("ec_paramgen_curve:{curve}");
        openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", &curve_opt, "-out", "peer.pem"]);
        openssl(
            dir,
            &["pkey", "-in", "peer.pem", "-pubout", "-outform", "DER", "-out", "peer.der"],
        );
        openssl(
            dir,
            &["pkeyutl", "-derive", "-inkey", "peer.pem", "-peerkey", "pub.pem", "-out", "secret"],
        );
        let peer = std::fs::read(dir.join("peer.der")).unwrap();
        let theirs = std::fs::read(dir.join("secret")).unwrap();
        let ours = derive_shared_secret(key, &peer).unwrap();
        assert_eq!(ours.as_slice(), theirs, "{}", spec.as_str());
    }
}

#[test]
fn we_accept_keys_openssl_generates() {
    let cases: [(AsymSpec, &[&str]); 5] = [
        (AsymSpec::Rsa2048, &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        (AsymSpec::EccNistP256, &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        (AsymSpec::EccNistP384, &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
        (AsymSpec::EccNistP521, &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"]),
        (AsymSpec::EccSecgP256k1, &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"]),
    ];
    for (spec, options) in cases {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let mut args = vec!["genpkey"];
        args.extend_from_slice(options);
        args.extend(["-out", "key.pem"]);
        openssl(dir, &args);
        // `pkcs8 -topk8` writes PKCS#8 DER (OpenSSL 3.0's `genpkey`/`pkey -outform DER`
        // write the traditional PKCS#1 / SEC1 form for these keys, which is refused).
        openssl(
            dir,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out",
                "key.der",
            ],
        );
        openssl(
            dir,
            &["pkey", "-in", "key.pem", "-traditional", "-outform", "DER", "-out", "old.der"],
        );
        openssl(dir, &["pkey", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "pub.der"]);
        let der = std::fs::read(dir.join("key.der")).unwrap();
        let key = PrivateKey::from_pkcs8_der(spec, &der)
            .unwrap_or_else(|e| panic!("{}: {e}", spec.as_str()));
        let traditional = std::fs::read(dir.join("old.der")).unwrap();
        assert_eq!(
            PrivateKey::from_pkcs8_der(spec, &traditional).err(),
            Some(AsymError::InvalidKeyMaterial)
        );
        assert_eq!(
            public_key_der(&key),
            std::fs::read(dir.join("pub.der")).unwrap(),
            "{}",
            spec.as_str()
        );
        let alg = SigningAlgorithm::for_spec(spec)[0];
        let signature = sign(&key, alg, MessageType::Raw, MESSAGE).unwrap();
        assert!(verify(key.public_key(), alg, MessageType::Raw, MESSAGE, &signature).unwrap());
        for other in AsymSpec::ALL {
            if other != spec {
                assert!(PrivateKey::from_pkcs8_der(other, &der).is_err());
            }
        }
    }
}
