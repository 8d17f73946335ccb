//! JWT bearer-token tests: HS256, RS256 and ES256 issuers, and every refusal.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use time::macros::datetime;
use zeroize::Zeroizing;

use super::*;
use crate::store::{JwtAlgorithm, JwtIssuerEntry};

const NOW: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);
const HS_ISSUER: &str = "https://issuer.example";
const HS_SECRET: &str = "an HS256 secret of at least 32 bytes";
const RS_ISSUER: &str = "https://rsa.example";
const ES_ISSUER: &str = "https://ec.example";
const CUSTOM_ISSUER: &str = "https://custom.example";
const RSA_PRIVATE: &str = include_str!("../../tests/data/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("../../tests/data/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("../../tests/data/ec_private.pem");
const EC_PUBLIC: &str = include_str!("../../tests/data/ec_public.pem");

fn store() -> CredentialStore {
    let mut custom = JwtIssuerEntry::hmac(
        CUSTOM_ISSUER,
        "kms-custom",
        JwtAlgorithm::HS512,
        Zeroizing::new(HS_SECRET.to_owned()),
    );
    custom.account_claim = "custom:account".to_owned();
    custom.principal_claim = "email".to_owned();
    custom.region_claim = "zone".to_owned();
    CredentialStore::new(
        vec![],
        vec![
            JwtIssuerEntry::hmac(
                HS_ISSUER,
                "kms",
                JwtAlgorithm::HS256,
                Zeroizing::new(HS_SECRET.to_owned()),
            ),
            JwtIssuerEntry::public_key(RS_ISSUER, "kms", JwtAlgorithm::RS256, RSA_PUBLIC),
            JwtIssuerEntry::public_key(ES_ISSUER, "kms", JwtAlgorithm::ES256, EC_PUBLIC),
            custom,
        ],
        vec![],
    )
    .unwrap()
}

fn claims(extra: Value) -> Value {
    let mut base = json!({
        "iss": HS_ISSUER,
        "aud": "kms",
        "exp": NOW.unix_timestamp() + 300,
        "sub": "alice",
        "account": "111122223333",
    });
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        for (k, v) in extra {
            if v.is_null() {
                base.remove(&k);
            } else {
                base.insert(k, v);
            }
        }
    }
    base
}

fn hs256(claims: &Value) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(HS_SECRET.as_bytes()))
        .unwrap()
}

fn alice(issuer: &str, region: Option<&str>) -> Identity {
    Identity {
        account_id: "111122223333".to_owned(),
        principal_arn: "arn:aws:iam::111122223333:user/alice".to_owned(),
        user_name: "alice".to_owned(),
        identity_type: "WebIdentityUser".to_owned(),
        access_key_id: None,
        region: region.map(str::to_owned),
        service: None,
        method: AuthMethod::Jwt { issuer: issuer.to_owned() },
        principal_tags: Default::default(),
        session: None,
    }
}

/// What a case should give: the identity, or the error kind with a message fragment.
enum Expect {
    Ok(Box<Identity>),
    Invalid(&'static str),
    Expired,
    Unrecognized,
}

fn check(name: &str, token: &str, expected: Expect) {
    let got = verify(&store(), token, NOW);
    match (expected, got) {
        (Expect::Ok(identity), Ok(got)) => assert_eq!(got, *identity, "{name}"),
        (Expect::Invalid(fragment), Err(AuthFailure { error: AuthError::InvalidToken(m), .. })) => {
            assert!(m.contains(fragment), "{name}: {m:?} lacks {fragment:?}");
        }
        (Expect::Expired, Err(AuthFailure { error: AuthError::ExpiredToken(m), .. })) => {
            assert_eq!(m, "The security token included in the request is expired", "{name}");
        }
        (
            Expect::Unrecognized,
            Err(AuthFailure { error: AuthError::UnrecognizedClient, identity: None }),
        ) => {}
        (_, got) => panic!("{name}: unexpected {got:?}"),
    }
}

#[test]
fn hs256_cases() {
    let now = NOW.unix_timestamp();
    check("valid", &hs256(&claims(json!({}))), Expect::Ok(Box::new(alice(HS_ISSUER, None))));
    check(
        "valid with region",
        &hs256(&claims(json!({"region": "eu-west-1"}))),
        Expect::Ok(Box::new(alice(HS_ISSUER, Some("eu-west-1")))),
    );
    check(
        "audience list containing ours",
        &hs256(&claims(json!({"aud": ["other", "kms"]}))),
        Expect::Ok(Box::new(alice(HS_ISSUER, None))),
    );
    check(
        "principal already an ARN",
        &hs256(&claims(json!({"sub": "arn:aws:iam::111122223333:role/team/app"}))),
        Expect::Ok(Box::new(Identity {
            principal_arn: "arn:aws:iam::111122223333:role/team/app".to_owned(),
            user_name: "app".to_owned(),
            ..alice(HS_ISSUER, None)
        })),
    );
    check(
        "expired within leeway",
        &hs256(&claims(json!({"exp": now - 60}))),
        Expect::Ok(Box::new(alice(HS_ISSUER, None))),
    );
    check("expired", &hs256(&claims(json!({"exp": now - 61}))), Expect::Expired);
    check(
        "nbf within leeway",
        &hs256(&claims(json!({"nbf": now + 60}))),
        Expect::Ok(Box::new(alice(HS_ISSUER, None))),
    );
    check(
        "nbf in the future",
        &hs256(&claims(json!({"nbf": now + 61}))),
        Expect::Invalid("not yet valid"),
    );
    check(
        "wrong secret",
        &encode(
            &Header::new(Algorithm::HS256),
            &claims(json!({})),
            &EncodingKey::from_secret(b"another secret of at least 32 bytes!"),
        )
        .unwrap(),
        Expect::Invalid("signature does not verify"),
    );
    check("wrong audience", &hs256(&claims(json!({"aud": "s3"}))), Expect::Invalid("audience"));
    check("no audience", &hs256(&claims(json!({"aud": null}))), Expect::Invalid("'aud'"));
    check(
        "unknown issuer",
        &hs256(&claims(json!({"iss": "https://evil.example"}))),
        Expect::Unrecognized,
    );
    check("no issuer", &hs256(&claims(json!({"iss": null}))), Expect::Invalid("'iss'"));
    check("no exp", &hs256(&claims(json!({"exp": null}))), Expect::Invalid("'exp'"));
    check(
        "missing account claim",
        &hs256(&claims(json!({"account": null}))),
        Expect::Invalid("no 'account' claim"),
    );
    check(
        "account not 12 digits",
        &hs256(&claims(json!({"account": "12345"}))),
        Expect::Invalid("12-digit"),
    );
    check(
        "account as a number",
        &hs256(&claims(json!({"account": 111122223333_u64}))),
        Expect::Invalid("not a string"),
    );
    check(
        "missing principal",
        &hs256(&claims(json!({"sub": null}))),
        Expect::Invalid("no 'sub' claim"),
    );
    check(
        "principal not an IAM name",
        &hs256(&claims(json!({"sub": "alice smith"}))),
        Expect::Invalid("IAM user name"),
    );
    check(
        "principal ARN in another account",
        &hs256(&claims(json!({"sub": "arn:aws:iam::999999999999:user/alice"}))),
        Expect::Invalid("not in the token's account"),
    );
    check(
        "principal malformed ARN",
        &hs256(&claims(json!({"sub": "arn:aws:s3:::bucket"}))),
        Expect::Invalid("principal ARN"),
    );
    check(
        "region not a string",
        &hs256(&claims(json!({"region": 7}))),
        Expect::Invalid("'region' claim is not a string"),
    );
    check(
        "other HMAC algorithm",
        &encode(
            &Header::new(Algorithm::HS512),
            &claims(json!({})),
            &EncodingKey::from_secret(HS_SECRET.as_bytes()),
        )
        .unwrap(),
        Expect::Invalid("algorithm"),
    );
    check("garbage", "not-a-jwt", Expect::Invalid("well-formed"));
    check("empty", "", Expect::Invalid("well-formed"));
}

#[test]
fn principal_tags_come_from_their_claim() {
    let mut tagged = alice(HS_ISSUER, None);
    tagged.principal_tags.insert("team".to_owned(), "payments".to_owned());
    check(
        "principal_tags",
        &hs256(&claims(json!({"principal_tags": {"team": "payments"}}))),
        Expect::Ok(Box::new(tagged)),
    );
    check(
        "principal_tags not an object",
        &hs256(&claims(json!({"principal_tags": "team=payments"}))),
        Expect::Invalid("'principal_tags' claim is not an object"),
    );
    check(
        "principal_tags value not a string",
        &hs256(&claims(json!({"principal_tags": {"team": 1}}))),
        Expect::Invalid("'principal_tags' values must be strings"),
    );
}

#[test]
fn expired_token_still_names_its_subject() {
    let token = hs256(&claims(json!({"exp": NOW.unix_timestamp() - 3600})));
    let failure = verify(&store(), &token, NOW).unwrap_err();
    assert_eq!(failure.error.aws_code(), "ExpiredTokenException");
    assert_eq!(failure.identity.as_deref(), Some(&alice(HS_ISSUER, None)));
}

#[test]
fn rs256_issuer() {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let token =
        encode(&Header::new(Algorithm::RS256), &claims(json!({"iss": RS_ISSUER})), &key).unwrap();
    check("rs256 valid", &token, Expect::Ok(Box::new(alice(RS_ISSUER, None))));

    // Algorithm confusion: HS256 keyed with the public key must not pass.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims(json!({"iss": RS_ISSUER})),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .unwrap();
    check("rs256 alg confusion", &confused, Expect::Invalid("algorithm"));

    // A token signed by the RSA key but claiming the HS256 issuer.
    let cross = encode(&Header::new(Algorithm::RS256), &claims(json!({})), &key).unwrap();
    check("rs256 for hs issuer", &cross, Expect::Invalid("algorithm"));
}

#[test]
fn es256_issuer() {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let token =
        encode(&Header::new(Algorithm::ES256), &claims(json!({"iss": ES_ISSUER})), &key).unwrap();
    check("es256 valid", &token, Expect::Ok(Box::new(alice(ES_ISSUER, None))));
    let mut tampered = token.clone();
    let payload_start = tampered.find('.').unwrap() + 1;
    let other = claims(json!({"iss": ES_ISSUER, "sub": "mallory"}));
    let other_payload =
        encode(&Header::new(Algorithm::HS256), &other, &EncodingKey::from_secret(b"x"))
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .to_owned();
    let payload_end = payload_start + tampered[payload_start..].find('.').unwrap();
    tampered.replace_range(payload_start..payload_end, &other_payload);
    check("es256 tampered payload", &tampered, Expect::Invalid("signature"));
}

#[test]
fn custom_claim_names() {
    let token = encode(
        &Header::new(Algorithm::HS512),
        &json!({
            "iss": CUSTOM_ISSUER,
            "aud": "kms-custom",
            "exp": NOW.unix_timestamp() + 60,
            "email": "alice@example.com",
            "custom:account": "444455556666",
            "zone": "ap-south-1",
            "region": "ignored",
        }),
        &EncodingKey::from_secret(HS_SECRET.as_bytes()),
    )
    .unwrap();
    check(
        "custom claims",
        &token,
        Expect::Ok(Box::new(Identity {
            account_id: "444455556666".to_owned(),
            principal_arn: "arn:aws:iam::444455556666:user/alice@example.com".to_owned(),
            user_name: "alice@example.com".to_owned(),
            identity_type: "WebIdentityUser".to_owned(),
            access_key_id: None,
            region: Some("ap-south-1".to_owned()),
            service: None,
            method: AuthMethod::Jwt { issuer: CUSTOM_ISSUER.to_owned() },
            principal_tags: Default::default(),
            session: None,
        })),
    );
}

#[test]
fn errors_never_echo_the_token() {
    let token = hs256(&claims(json!({"aud": "s3"})));
    let failure = verify(&store(), &token, NOW).unwrap_err();
    for text in [failure.to_string(), format!("{failure:?}"), failure.error.message()] {
        assert!(!text.contains(&token), "{text}");
        assert!(!text.contains(HS_SECRET), "{text}");
    }
}
