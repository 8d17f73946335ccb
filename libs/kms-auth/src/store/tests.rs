//! Credential store tests: the file format, validation, redaction, saving and key generation.

use super::*;

const RSA_PUBLIC: &str = include_str!("../../tests/data/rsa_public.pem");
const EC_PUBLIC: &str = include_str!("../../tests/data/ec_public.pem");
const KEY_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const HS_SECRET: &str = "an HS256 secret of at least 32 bytes";

fn example_json() -> String {
    json_with(
        r#"{"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "SECRET",
            "account_id": "111122223333", "principal_arn": "arn:aws:iam::111122223333:user/dev"}"#,
        r#"{"issuer": "https://issuer.example", "audience": "kms", "algorithm": "HS256", "secret": "HS"}"#,
    )
    .replace("SECRET", KEY_SECRET)
    .replace("\"HS\"", &format!("{HS_SECRET:?}"))
}

fn json_with(access_key: &str, issuer: &str) -> String {
    format!(
        r#"{{ "access_keys": [ {access_key} ],
              "jwt_issuers": [ {issuer},
                  {{"issuer": "https://rsa.example", "audience": "kms", "algorithm": "RS256",
                   "public_key_pem": {RSA_PUBLIC:?}, "account_claim": "acct",
                   "principal_claim": "email", "region_claim": "zone"}},
                  {{"issuer": "https://ec.example", "audience": "kms", "algorithm": "ES256",
                   "public_key_pem": {EC_PUBLIC:?}}} ],
              "admin_principals": ["arn:aws:iam::000000000000:role/kms-operator"] }}"#
    )
}

#[test]
fn loads_the_documented_format() {
    let store = CredentialStore::from_json(&example_json()).unwrap();
    let key = store.access_key("AKIAIOSFODNN7EXAMPLE").unwrap();
    assert_eq!(key.secret_access_key.as_str(), KEY_SECRET);
    assert_eq!(key.account_id, "111122223333");
    assert_eq!(key.principal_arn, "arn:aws:iam::111122223333:user/dev");
    assert!(store.access_key("AKIAOTHER").is_none());
    assert_eq!(store.access_keys().len(), 1);

    let hs = &store.issuer("https://issuer.example").unwrap().entry;
    assert_eq!(hs.algorithm, JwtAlgorithm::HS256);
    assert_eq!(
        (hs.account_claim.as_str(), hs.principal_claim.as_str(), hs.region_claim.as_str()),
        ("account", "sub", "region")
    );
    let rs = &store.issuer("https://rsa.example").unwrap().entry;
    assert_eq!(
        (rs.account_claim.as_str(), rs.principal_claim.as_str(), rs.region_claim.as_str()),
        ("acct", "email", "zone")
    );
    assert!(store.issuer("https://ec.example").is_some());
    assert!(store.issuer("https://unknown.example").is_none());

    assert!(store.is_admin("arn:aws:iam::000000000000:role/kms-operator"));
    assert!(!store.is_admin("arn:aws:iam::111122223333:user/dev"));
}

#[test]
fn empty_file_is_an_empty_store() {
    let store = CredentialStore::from_json("{}").unwrap();
    assert!(store.access_keys().is_empty());
}

fn key_json(id: &str, account: &str, arn: &str, secret: &str) -> String {
    format!(
        r#"{{"access_key_id": {id:?}, "secret_access_key": {secret:?}, "account_id": {account:?}, "principal_arn": {arn:?}}}"#
    )
}

const HS_ISSUER_JSON: &str = r#"{"issuer": "https://issuer.example", "audience": "kms", "algorithm": "HS256", "secret": "an HS256 secret of at least 32 bytes"}"#;
const DEV_ARN: &str = "arn:aws:iam::111122223333:user/dev";

/// Loads `json`, expecting a refusal whose message contains `fragment`.
fn check_refused(name: &str, json: &str, fragment: &str) {
    match CredentialStore::from_json(json) {
        Ok(_) => panic!("{name}: accepted"),
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains(fragment), "{name}: {message:?} lacks {fragment:?}");
            assert!(!message.contains(KEY_SECRET), "{name}: {message}");
            assert!(!message.contains(HS_SECRET), "{name}: {message}");
        }
    }
}

#[test]
fn validation_refusals() {
    let key = |id: &str, account: &str, arn: &str| key_json(id, account, arn, KEY_SECRET);
    let good_key = key("AKIA1", "111122223333", DEV_ARN);
    let cases: Vec<(&str, String, &str)> = vec![
        ("not json", "{".to_owned(), "not valid"),
        ("unknown top-level field", r#"{"users": []}"#.to_owned(), "unknown field"),
        (
            "account id too short",
            json_with(&key("AKIA1", "11112222333", DEV_ARN), HS_ISSUER_JSON),
            "account id must be 12 digits",
        ),
        (
            "account id not digits",
            json_with(&key("AKIA1", "11112222333x", DEV_ARN), HS_ISSUER_JSON),
            "account id must be 12 digits",
        ),
        (
            "principal in another account",
            json_with(
                &key("AKIA1", "111122223333", "arn:aws:iam::999999999999:user/dev"),
                HS_ISSUER_JSON,
            ),
            "not the entry's account_id",
        ),
        (
            "principal not an IAM ARN",
            json_with(&key("AKIA1", "111122223333", "dev"), HS_ISSUER_JSON),
            "arn:aws:iam::",
        ),
        (
            "empty access key id",
            json_with(&key("", "111122223333", DEV_ARN), HS_ISSUER_JSON),
            "access key id must be",
        ),
        (
            "access key id with a slash",
            json_with(&key("AKIA/1", "111122223333", DEV_ARN), HS_ISSUER_JSON),
            "access key id must be",
        ),
        (
            "empty secret",
            json_with(&key_json("AKIA1", "111122223333", DEV_ARN, ""), HS_ISSUER_JSON),
            "secret access key must not be empty",
        ),
        (
            "duplicate access key",
            json_with(&format!("{good_key}, {good_key}"), HS_ISSUER_JSON),
            "\"AKIA1\" appears more than once",
        ),
        (
            "unknown access key field",
            json_with(
                &good_key.replace("\"account_id\"", "\"role\": \"x\", \"account_id\""),
                HS_ISSUER_JSON,
            ),
            "unknown field `role`",
        ),
        (
            "duplicate issuer",
            json_with(&good_key, &format!("{HS_ISSUER_JSON}, {HS_ISSUER_JSON}")),
            "appears more than once",
        ),
        (
            "HS256 without secret",
            json_with(&good_key, r#"{"issuer": "i", "audience": "kms", "algorithm": "HS256"}"#),
            "HS256 needs `secret`",
        ),
        (
            "HS256 short secret",
            json_with(
                &good_key,
                r#"{"issuer": "i", "audience": "kms", "algorithm": "HS256", "secret": "short"}"#,
            ),
            "at least 32 bytes",
        ),
        (
            "HS256 with a public key",
            json_with(
                &good_key,
                &format!(
                    r#"{{"issuer": "i", "audience": "kms", "algorithm": "HS256", "secret": {HS_SECRET:?}, "public_key_pem": "x"}}"#
                ),
            ),
            "not `public_key_pem`",
        ),
        (
            "RS256 without a key",
            json_with(&good_key, r#"{"issuer": "i", "audience": "kms", "algorithm": "RS256"}"#),
            "RS256 needs `public_key_pem`",
        ),
        (
            "RS256 with a secret",
            json_with(
                &good_key,
                &format!(
                    r#"{{"issuer": "i", "audience": "kms", "algorithm": "RS256", "secret": {HS_SECRET:?}, "public_key_pem": {RSA_PUBLIC:?}}}"#
                ),
            ),
            "not `secret`",
        ),
        (
            "RS256 bad PEM",
            json_with(
                &good_key,
                r#"{"issuer": "i", "audience": "kms", "algorithm": "RS256", "public_key_pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}"#,
            ),
            "cannot be parsed",
        ),
        (
            "ES256 given an RSA key",
            json_with(
                &good_key,
                &format!(
                    r#"{{"issuer": "i", "audience": "kms", "algorithm": "ES256", "public_key_pem": {RSA_PUBLIC:?}}}"#
                ),
            ),
            "cannot be parsed",
        ),
        (
            "unsupported algorithm",
            json_with(&good_key, r#"{"issuer": "i", "audience": "kms", "algorithm": "none"}"#),
            "unknown variant `none`",
        ),
        (
            "empty audience",
            json_with(
                &good_key,
                &format!(
                    r#"{{"issuer": "i", "audience": "", "algorithm": "HS256", "secret": {HS_SECRET:?}}}"#
                ),
            ),
            "audience must not be empty",
        ),
        (
            "bad admin principal",
            r#"{"admin_principals": ["kms-operator"]}"#.to_owned(),
            "admin_principals",
        ),
    ];
    for (name, json, fragment) in &cases {
        check_refused(name, json, fragment);
    }
}

#[test]
fn debug_redacts_secrets() {
    let store = CredentialStore::from_json(&example_json()).unwrap();
    let text = format!("{store:?}");
    assert!(!text.contains(KEY_SECRET), "{text}");
    assert!(!text.contains(HS_SECRET), "{text}");
    assert!(text.contains("AKIAIOSFODNN7EXAMPLE"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
    let entry = generate_dev_credentials("111122223333", DEV_ARN);
    let text = format!("{entry:?}");
    assert!(!text.contains(entry.secret_access_key.as_str()), "{text}");
}

#[test]
fn json_round_trip() {
    let store = CredentialStore::from_json(&example_json()).unwrap();
    let text = store.to_json_pretty().unwrap();
    assert!(text.contains("\n  \"access_keys\": ["), "{}", text.as_str());
    let again = CredentialStore::from_json(&text).unwrap();
    assert_eq!(format!("{store:?}"), format!("{again:?}"));
    assert_eq!(
        again.access_key("AKIAIOSFODNN7EXAMPLE").unwrap().secret_access_key.as_str(),
        KEY_SECRET
    );
    assert_eq!(
        again.issuer("https://issuer.example").unwrap().entry.secret.as_deref().map(String::as_str),
        Some(HS_SECRET)
    );
    assert!(!text.contains("\"secret\": null"));
}

#[test]
fn save_and_load() {
    let dir = std::env::temp_dir().join(format!(
        "kms-auth-store-test-{}-{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("credentials.json");

    let mut store = CredentialStore::from_json(&example_json()).unwrap();
    let entry = generate_dev_credentials("111122223333", "arn:aws:iam::111122223333:user/ci");
    let id = entry.access_key_id.clone();
    store.add_access_key(entry).unwrap();
    store.save(&path).unwrap();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let loaded = CredentialStore::load(&path).unwrap();
    assert_eq!(loaded.access_keys().len(), 2);
    assert_eq!(loaded.access_key(&id).unwrap().principal_arn, "arn:aws:iam::111122223333:user/ci");

    let missing = CredentialStore::load(dir.join("missing.json")).unwrap_err();
    assert!(matches!(missing, StoreError::Io { .. }), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn generated_dev_credentials() {
    let a = generate_dev_credentials("111122223333", DEV_ARN);
    let b = generate_dev_credentials("111122223333", DEV_ARN);
    for entry in [&a, &b] {
        let id = &entry.access_key_id;
        assert_eq!(id.len(), 20, "{id}");
        assert!(id.starts_with("AKIA"), "{id}");
        assert!(id[4..].bytes().all(|c| KEY_ID_ALPHABET.contains(&c)), "{id}");
        assert_eq!(entry.secret_access_key.len(), 40);
        assert!(entry.secret_access_key.bytes().all(|c| SECRET_ALPHABET.contains(&c)));
        assert_eq!(entry.account_id, "111122223333");
        assert_eq!(entry.principal_arn, DEV_ARN);
    }
    assert_ne!(a.access_key_id, b.access_key_id);
    assert_ne!(a.secret_access_key, b.secret_access_key);

    let mut store = CredentialStore::new(vec![a.clone()], vec![], vec![]).unwrap();
    assert!(matches!(store.add_access_key(a.clone()), Err(StoreError::DuplicateAccessKey(_))));
    store.add_access_key(b).unwrap();
    assert!(matches!(
        store.add_access_key(generate_dev_credentials(
            "111122223333",
            "arn:aws:iam::444455556666:user/x"
        )),
        Err(StoreError::InvalidPrincipalArn { .. })
    ));
    assert_eq!(store.access_keys().len(), 2);
}
