//! Workload identity tests: service-account tokens minted here with the test keys of
//! `tests/data` (RS256 kid `rsa-1`, ES256 kid `ec-1`), checked against their JWKS.

use std::path::PathBuf;

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use time::macros::datetime;

use super::*;

const NOW: OffsetDateTime = datetime!(2025-06-01 12:00:00 UTC);
const CLUSTER: &str = "https://kubernetes.default.svc.cluster.local";
const OTHER_CLUSTER: &str = "https://other.cluster.example";
const ROLE: &str = "arn:aws:iam::111122223333:role/payments-api";
const RSA_PRIVATE: &str = include_str!("../../tests/data/rsa_private.pem");
const EC_PRIVATE: &str = include_str!("../../tests/data/ec_private.pem");

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn config() -> Value {
    json!({
        "issuers": [
            {"issuer": CLUSTER, "audience": "kms", "jwks_file": "jwks.json"},
            {"issuer": OTHER_CLUSTER, "audience": "sts.amazonaws.com", "jwks_file": "jwks.json"}
        ],
        "roles": [
            {"namespace": "payments", "service_account": "api", "role_arn": ROLE},
            {"namespace": "batch", "service_account": "*",
             "role_arn": "arn:aws:iam::444455556666:role/batch"},
            {"issuer": OTHER_CLUSTER, "namespace": "edge", "service_account": "proxy",
             "role_arn": "arn:aws:iam::111122223333:role/edge"}
        ],
        "max_session_duration_seconds": 7200
    })
}

fn workload() -> WorkloadIdentity {
    WorkloadIdentity::from_json(&config().to_string(), &data_dir(), SessionKeys::generate())
        .unwrap()
}

fn sa_claims(ns: &str, sa: &str) -> Value {
    json!({
        "iss": CLUSTER,
        "aud": ["kms"],
        "sub": format!("system:serviceaccount:{ns}:{sa}"),
        "exp": NOW.unix_timestamp() + 3600,
        "iat": NOW.unix_timestamp() - 60,
        "nbf": NOW.unix_timestamp() - 60,
        "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": "0c9d"}},
    })
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

fn rs256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".to_owned());
    encode(&header, claims, &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap()).unwrap()
}

fn es256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec-1".to_owned());
    encode(&header, claims, &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap()).unwrap()
}

fn request(role: &str, token: &str) -> AssumeRoleRequest {
    AssumeRoleRequest {
        role_arn: Some(role.to_owned()),
        role_session_name: Some("pod-1".to_owned()),
        web_identity_token: Some(Zeroizing::new(token.to_owned())),
        duration_seconds: None,
    }
}

/// The outcome's error code, or `ok:<assumed role ARN>`.
fn check(request: &AssumeRoleRequest, expected: &str) {
    let got = match workload().assume_role(request, NOW) {
        Ok(c) => format!("ok:{}", c.assumed_role_arn),
        Err(e) => e.error.code().to_owned(),
    };
    assert_eq!(got, expected, "{request:?}");
}

#[test]
fn issues_sealed_session_credentials() {
    let w = workload();
    let creds = w.assume_role(&request(ROLE, &rs256(&sa_claims("payments", "api"))), NOW).unwrap();
    assert!(creds.access_key_id.starts_with("ASIA") && creds.access_key_id.len() == 20);
    assert_eq!(creds.secret_access_key.len(), 40);
    assert_eq!(creds.expiration_epoch_s, NOW.unix_timestamp() + 3600);
    assert_eq!(creds.assumed_role_arn, "arn:aws:sts::111122223333:assumed-role/payments-api/pod-1");
    assert!(creds.assumed_role_id.starts_with("AROA"));
    assert!(creds.assumed_role_id.ends_with(":pod-1"));
    assert_eq!(creds.assumed_role_id.len(), "AROA".len() + 17 + ":pod-1".len());
    assert_eq!(creds.account_id, "111122223333");
    assert_eq!(creds.service_account.subject, "system:serviceaccount:payments:api");
    assert_eq!(creds.service_account.audience, "kms");
    assert!(!format!("{creds:?}").contains(creds.secret_access_key.as_str()));
    let session = w.session_keys().open(&creds.session_token).unwrap();
    assert_eq!(session.access_key_id, creds.access_key_id);
    assert_eq!(*session.secret_access_key, *creds.secret_access_key);
    assert_eq!(session.role_arn, ROLE);
    assert_eq!(session.session_name, "pod-1");
    assert_eq!(session.provider, CLUSTER);
    // Same role, same id; another role, another id.
    assert_eq!(role_id(ROLE), role_id(ROLE));
    assert_ne!(role_id(ROLE), role_id("arn:aws:iam::111122223333:role/other"));
}

#[test]
fn duration_seconds() {
    let token = rs256(&sa_claims("payments", "api"));
    let with_duration = |d: &str| AssumeRoleRequest {
        duration_seconds: Some(d.to_owned()),
        ..request(ROLE, &token)
    };
    let w = workload();
    let c = w.assume_role(&with_duration("900"), NOW).unwrap();
    assert_eq!(c.expiration_epoch_s, NOW.unix_timestamp() + 900);
    let c = w.assume_role(&with_duration("7200"), NOW).unwrap();
    assert_eq!(c.expiration_epoch_s, NOW.unix_timestamp() + 7200);
    for bad in ["899", "43201", "7201", "ten", "-1"] {
        check(&with_duration(bad), "ValidationError");
    }
}

#[test]
fn accepted_tokens() {
    let ok = "ok:arn:aws:sts::111122223333:assumed-role/payments-api/pod-1";
    // ES256, and each way of naming the service account.
    check(&request(ROLE, &es256(&sa_claims("payments", "api"))), ok);
    let sub_only = with(sa_claims("payments", "api"), json!({"kubernetes.io": null}));
    check(&request(ROLE, &rs256(&sub_only)), ok);
    let claim_only = with(sa_claims("payments", "api"), json!({"sub": "0c9d"}));
    check(&request(ROLE, &rs256(&claim_only)), ok);
    // A single-string audience, and a token expired within the 60 s leeway.
    check(&request(ROLE, &rs256(&with(sa_claims("payments", "api"), json!({"aud": "kms"})))), ok);
    let just = with(sa_claims("payments", "api"), json!({"exp": NOW.unix_timestamp() - 30}));
    check(&request(ROLE, &rs256(&just)), ok);
    // A wildcard binding, and a binding pinned to the other cluster.
    check(
        &request("arn:aws:iam::444455556666:role/batch", &rs256(&sa_claims("batch", "nightly"))),
        "ok:arn:aws:sts::444455556666:assumed-role/batch/pod-1",
    );
    let edge = with(
        sa_claims("edge", "proxy"),
        json!({"iss": OTHER_CLUSTER, "aud": ["sts.amazonaws.com"]}),
    );
    check(
        &request("arn:aws:iam::111122223333:role/edge", &es256(&edge)),
        "ok:arn:aws:sts::111122223333:assumed-role/edge/pod-1",
    );
}

#[test]
fn refused_tokens() {
    let claims = sa_claims("payments", "api");
    let bad = |changes: Value| rs256(&with(claims.clone(), changes));
    let cases: Vec<(String, &str)> = vec![
        (bad(json!({"aud": ["sts.amazonaws.com"]})), "InvalidIdentityToken"),
        (bad(json!({"aud": null})), "InvalidIdentityToken"),
        (bad(json!({"iss": "https://unknown.example"})), "InvalidIdentityToken"),
        (bad(json!({"exp": NOW.unix_timestamp() - 3600})), "ExpiredTokenException"),
        (bad(json!({"exp": null})), "InvalidIdentityToken"),
        (bad(json!({"nbf": NOW.unix_timestamp() + 600})), "InvalidIdentityToken"),
        (bad(json!({"sub": "system:serviceaccount:payments"})), "InvalidIdentityToken"),
        (bad(json!({"sub": "system:serviceaccount:payments:other"})), "InvalidIdentityToken"),
        (bad(json!({"sub": "alice", "kubernetes.io": null})), "InvalidIdentityToken"),
        (bad(json!({"kubernetes.io": {"namespace": "payments"}})), "InvalidIdentityToken"),
        ("not-a-jwt".to_owned(), "InvalidIdentityToken"),
        (
            encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"guess"))
                .unwrap(),
            "InvalidIdentityToken",
        ),
    ];
    for (token, expected) in cases {
        check(&request(ROLE, &token), expected);
    }
    // A signature from another key, an unknown kid, a changed payload.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-2".to_owned());
    let unknown_kid =
        encode(&header, &claims, &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap())
            .unwrap();
    check(&request(ROLE, &unknown_kid), "InvalidIdentityToken");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("rsa-1".to_owned());
    let wrong_key =
        encode(&header, &claims, &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap())
            .unwrap();
    check(&request(ROLE, &wrong_key), "InvalidIdentityToken");
    let token = rs256(&claims);
    let other = rs256(&sa_claims("payments", "admin"));
    let (head, rest) = token.split_once('.').unwrap();
    let sig = rest.split_once('.').unwrap().1;
    let payload = other.split('.').nth(1).unwrap();
    check(&request(ROLE, &format!("{head}.{payload}.{sig}")), "InvalidIdentityToken");
    // The audience message is STS's.
    let err = workload()
        .assume_role(&request(ROLE, &bad(json!({"aud": ["sts.amazonaws.com"]}))), NOW)
        .unwrap_err()
        .error;
    assert_eq!(err.to_string(), "Incorrect token audience");
    assert_eq!((err.http_status(), err.fault()), (400, "Sender"));
}

#[test]
fn bindings_decide_who_may_assume_what() {
    let denied = "AccessDenied";
    // Unbound service account, other namespace, a role bound to someone else.
    check(&request(ROLE, &rs256(&sa_claims("payments", "worker"))), denied);
    check(&request(ROLE, &rs256(&sa_claims("default", "api"))), denied);
    check(
        &request("arn:aws:iam::444455556666:role/batch", &rs256(&sa_claims("payments", "api"))),
        denied,
    );
    // A binding pinned to the other cluster refuses this cluster's token.
    check(
        &request("arn:aws:iam::111122223333:role/edge", &rs256(&sa_claims("edge", "proxy"))),
        denied,
    );
    // Not a role / not bound at all.
    check(
        &request(
            "arn:aws:iam::111122223333:user/payments-api",
            &rs256(&sa_claims("payments", "api")),
        ),
        denied,
    );
    check(
        &request("arn:aws:iam::111122223333:role/nobody", &rs256(&sa_claims("payments", "api"))),
        denied,
    );
    let err = workload()
        .assume_role(&request(ROLE, &rs256(&sa_claims("payments", "worker"))), NOW)
        .unwrap_err();
    assert_eq!(err.caller.as_ref().map(|c| c.name.as_str()), Some("worker"));
    let err = err.error;
    assert_eq!(err.to_string(), "Not authorized to perform sts:AssumeRoleWithWebIdentity");
    assert_eq!(err.http_status(), 403);
}

#[test]
fn parameters_are_validated_first() {
    let token = rs256(&sa_claims("payments", "api"));
    let base = request(ROLE, &token);
    let cases = [
        AssumeRoleRequest { role_arn: None, ..base.clone() },
        AssumeRoleRequest { role_session_name: None, ..base.clone() },
        AssumeRoleRequest { web_identity_token: None, ..base.clone() },
        AssumeRoleRequest { role_session_name: Some("a".to_owned()), ..base.clone() },
        AssumeRoleRequest { role_session_name: Some("has space".to_owned()), ..base.clone() },
        AssumeRoleRequest { role_session_name: Some("x".repeat(65)), ..base.clone() },
        AssumeRoleRequest { role_arn: Some("role/payments-api-xxxxxx".to_owned()), ..base.clone() },
        AssumeRoleRequest { role_arn: Some("arn:short".to_owned()), ..base.clone() },
        AssumeRoleRequest {
            web_identity_token: Some(Zeroizing::new("abc".to_owned())),
            ..base.clone()
        },
    ];
    for case in &cases {
        check(case, "ValidationError");
    }
    // A validation message never echoes the token.
    let long = AssumeRoleRequest {
        web_identity_token: Some(Zeroizing::new(format!("{token}{}", "x".repeat(20_000)))),
        ..base
    };
    let err = workload().assume_role(&long, NOW).unwrap_err();
    assert!(!err.to_string().contains(&token[..40]));
}

#[test]
fn configuration_errors() {
    let load = |config: Value| {
        WorkloadIdentity::from_json(&config.to_string(), &data_dir(), SessionKeys::generate())
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(load(config()), Ok(()));
    let role = |role: Value| with(config(), json!({"roles": [role]}));
    let bad = [
        role(json!({"namespace": "a", "service_account": "b",
                    "role_arn": "arn:aws:iam::111122223333:role/path/name"})),
        role(json!({"namespace": "a", "service_account": "b",
                    "role_arn": "arn:aws:iam::111122223333:user/name"})),
        role(json!({"namespace": "", "service_account": "b", "role_arn": ROLE})),
        role(json!({"issuer": "https://nope", "namespace": "a", "service_account": "b",
                    "role_arn": ROLE})),
        with(config(), json!({"issuers": []})),
        with(
            config(),
            json!({"issuers": [{"issuer": CLUSTER, "audience": "kms",
                                            "jwks_file": "missing.json"}]}),
        ),
        with(
            config(),
            json!({"issuers": [{"issuer": CLUSTER, "audience": "kms",
                                            "jwks_file": "rsa_public.pem"}]}),
        ),
        with(
            config(),
            json!({"issuers": [
            {"issuer": CLUSTER, "audience": "kms", "jwks_file": "jwks.json"},
            {"issuer": CLUSTER, "audience": "x", "jwks_file": "jwks.json"}]}),
        ),
        with(config(), json!({"max_session_duration_seconds": 43201})),
        with(config(), json!({"unknown": 1})),
    ];
    for config in bad {
        assert!(load(config.clone()).is_err(), "{config}");
    }
}

#[test]
fn sessions_authenticate_sigv4_requests() {
    use http::{HeaderMap, HeaderValue, Method, Uri};

    use crate::sigv4;
    use crate::{AuthMethod, Authenticator, CredentialStore};

    let w = workload();
    let creds = w.assume_role(&request(ROLE, &rs256(&sa_claims("payments", "api"))), NOW).unwrap();
    let auth = Authenticator::new(CredentialStore::new(vec![], vec![], vec![]).unwrap())
        .with_session_keys(w.session_keys().clone());
    let body = br#"{"KeyId":"alias/app"}"#;
    let sign = |key_id: &str, secret: &str, token: &str, at: OffsetDateTime| {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("kms.local"));
        headers.insert("x-amz-date", HeaderValue::from_str(&sigv4::format_amz(at)).unwrap());
        headers.insert("x-amz-security-token", HeaderValue::from_str(token).unwrap());
        let scope = format!("{}/us-east-1/kms/aws4_request", &sigv4::format_amz(at)[..8]);
        let signed =
            vec!["host".to_owned(), "x-amz-date".to_owned(), "x-amz-security-token".to_owned()];
        let parts = sigv4::RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            authority: None,
            body,
        };
        let creq = sigv4::canonical_request(&parts, &signed).unwrap();
        let to_sign = sigv4::string_to_sign(&sigv4::format_amz(at), &scope, &creq);
        let key =
            sigv4::signing_key(secret, &sigv4::format_amz(at)[..8], "us-east-1", "kms").unwrap();
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key.as_ref()).unwrap();
        hmac::Mac::update(&mut mac, to_sign.as_bytes());
        let signature = hex::encode(hmac::Mac::finalize(mac).into_bytes());
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!(
                "AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature={signature}"
            ))
            .unwrap(),
        );
        headers
    };
    let run = |headers: &HeaderMap, now: OffsetDateTime| {
        auth.authenticate(&Method::POST, &Uri::from_static("/"), headers, body, now)
    };
    let token = creds.session_token.as_str();
    let identity =
        run(&sign(&creds.access_key_id, &creds.secret_access_key, token, NOW), NOW).unwrap();
    assert_eq!(identity.identity_type, "AssumedRole");
    assert_eq!(identity.principal_arn, "arn:aws:sts::111122223333:assumed-role/payments-api/pod-1");
    assert_eq!(identity.account_id, "111122223333");
    assert_eq!(identity.access_key_id.as_deref(), Some(creds.access_key_id.as_str()));
    assert_eq!(identity.method, AuthMethod::SigV4);
    let session = identity.session.unwrap();
    assert_eq!(session.issuer_arn, ROLE);
    assert_eq!(session.issuer_name, "payments-api");
    assert_eq!(session.issuer_account_id, "111122223333");
    assert_eq!(session.created_at_epoch_s, NOW.unix_timestamp());
    assert_eq!(session.federated_provider.as_deref(), Some(CLUSTER));

    let code = |r: Result<crate::Identity, crate::AuthFailure>| r.unwrap_err().error.aws_code();
    // Expired session (signed at the time, arriving then).
    let later = NOW + time::Duration::seconds(3600);
    assert_eq!(
        code(run(&sign(&creds.access_key_id, &creds.secret_access_key, token, later), later)),
        "ExpiredTokenException"
    );
    // A wrong secret, a token of another session, a tampered token, no session keys.
    assert_eq!(
        code(run(&sign(&creds.access_key_id, "wrong-secret", token, NOW), NOW)),
        "InvalidSignatureException"
    );
    let other = w.assume_role(&request(ROLE, &rs256(&sa_claims("payments", "api"))), NOW).unwrap();
    assert_eq!(
        code(run(
            &sign(&creds.access_key_id, &creds.secret_access_key, &other.session_token, NOW),
            NOW
        )),
        "UnrecognizedClientException"
    );
    let mut tampered = token.to_owned().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        code(run(&sign(&creds.access_key_id, &creds.secret_access_key, &tampered, NOW), NOW)),
        "UnrecognizedClientException"
    );
    let no_keys = Authenticator::new(CredentialStore::new(vec![], vec![], vec![]).unwrap());
    let headers = sign(&creds.access_key_id, &creds.secret_access_key, token, NOW);
    assert_eq!(
        no_keys
            .authenticate(&Method::POST, &Uri::from_static("/"), &headers, body, NOW)
            .unwrap_err()
            .error
            .aws_code(),
        "UnrecognizedClientException"
    );
}
