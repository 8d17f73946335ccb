//! End-to-end tests of `Authenticator` with KMS-shaped requests, signed by a small
//! test-only signer written independently of the verifier's canonicalization code.

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Method, Uri};
use sha2::{Digest, Sha256};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::*;
use crate::store::JwtAlgorithm;
use crate::JwtIssuerEntry;

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const NOW: OffsetDateTime = datetime!(2024-05-01 10:00:00 UTC);
const HOST: &str = "kms.local:4566";
const BODY: &[u8] = br#"{"KeyId":"alias/app","Plaintext":"aGVsbG8="}"#;
const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef";

fn store() -> CredentialStore {
    CredentialStore::new(
        vec![AccessKeyEntry {
            access_key_id: KEY_ID.to_owned(),
            secret_access_key: Zeroizing::new(SECRET.to_owned()),
            account_id: "111122223333".to_owned(),
            principal_arn: "arn:aws:iam::111122223333:user/dev".to_owned(),
            tags: Default::default(),
        }],
        vec![JwtIssuerEntry::hmac(
            "https://issuer.example",
            "kms",
            JwtAlgorithm::HS256,
            Zeroizing::new(JWT_SECRET.to_owned()),
        )],
        vec!["arn:aws:iam::000000000000:role/kms-operator".to_owned()],
    )
    .unwrap()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Test-only signer for exactly this request shape:
/// `POST /` with content-type, host, x-amz-date and x-amz-target signed.
fn kms_authorization(
    key_id: &str,
    secret: &str,
    at: OffsetDateTime,
    service: &str,
    body: &[u8],
) -> (String, String) {
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let day = &amz_date[..8];
    let canonical = format!(
        "POST\n/\n\ncontent-type:application/x-amz-json-1.1\nhost:{HOST}\nx-amz-date:{amz_date}\nx-amz-target:TrentService.Encrypt\n\ncontent-type;host;x-amz-date;x-amz-target\n{}",
        hex::encode(Sha256::digest(body))
    );
    let scope = format!("{day}/eu-west-1/{service}/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), day);
    let k_region = hmac(&k_date, "eu-west-1");
    let k_service = hmac(&k_region, service);
    let k_signing = hmac(&k_service, "aws4_request");
    let signature = hex::encode(hmac(&k_signing, &to_sign));
    (
        format!(
            "AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={signature}"
        ),
        amz_date,
    )
}

fn kms_headers(authorization: Option<&str>, amz_date: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.1"));
    headers.insert("host", HeaderValue::from_static(HOST));
    headers.insert("x-amz-date", HeaderValue::from_str(amz_date).unwrap());
    headers.insert("x-amz-target", HeaderValue::from_static("TrentService.Encrypt"));
    if let Some(authorization) = authorization {
        headers.insert("authorization", HeaderValue::from_str(authorization).unwrap());
    }
    headers
}

/// Signs at `signed_at` with `key_id`, then authenticates `body` at `NOW`.
fn run(key_id: &str, signed_at: OffsetDateTime, body: &[u8]) -> Result<Identity, AuthFailure> {
    let (authorization, amz_date) = kms_authorization(key_id, SECRET, signed_at, "kms", BODY);
    let headers = kms_headers(Some(&authorization), &amz_date);
    Authenticator::new(store()).authenticate(
        &Method::POST,
        &Uri::from_static("/"),
        &headers,
        body,
        NOW,
    )
}

fn dev_identity(service: &str) -> Identity {
    Identity {
        account_id: "111122223333".to_owned(),
        principal_arn: "arn:aws:iam::111122223333:user/dev".to_owned(),
        user_name: "dev".to_owned(),
        identity_type: "IAMUser".to_owned(),
        access_key_id: Some(KEY_ID.to_owned()),
        region: Some("eu-west-1".to_owned()),
        service: Some(service.to_owned()),
        method: AuthMethod::SigV4,
        principal_tags: Default::default(),
        session: None,
    }
}

#[test]
fn kms_request_valid() {
    assert_eq!(run(KEY_ID, NOW, BODY), Ok(dev_identity("kms")));
    // Within the 5-minute window either way.
    assert!(run(KEY_ID, NOW - Duration::minutes(5), BODY).is_ok());
    assert!(run(KEY_ID, NOW + Duration::minutes(5), BODY).is_ok());
}

#[test]
fn kms_request_body_byte_changed() {
    let mut body = BODY.to_vec();
    body[10] ^= 1;
    let failure = run(KEY_ID, NOW, &body).unwrap_err();
    assert_eq!(failure.error, AuthError::signature_mismatch());
    assert_eq!(failure.error.aws_code(), "InvalidSignatureException");
    assert_eq!(failure.error.http_status(), 400);
    assert_eq!(failure.error.message(), crate::error::SIGNATURE_MISMATCH);
    // Who it claimed to be is kept for the audit trail.
    assert_eq!(failure.identity.as_deref(), Some(&dev_identity("kms")));
}

#[test]
fn kms_request_unknown_key() {
    let failure = run("AKIAUNKNOWNKEY000000", NOW, BODY).unwrap_err();
    assert_eq!(failure.error, AuthError::UnrecognizedClient);
    assert_eq!(failure.error.aws_code(), "UnrecognizedClientException");
    assert_eq!(failure.error.message(), "The security token included in the request is invalid.");
    assert_eq!(failure.identity, None);
}

#[test]
fn kms_request_without_authorization() {
    let headers = kms_headers(None, "20240501T100000Z");
    let failure = Authenticator::new(store())
        .authenticate(&Method::POST, &Uri::from_static("/"), &headers, BODY, NOW)
        .unwrap_err();
    assert_eq!(failure.error, AuthError::MissingAuthenticationToken);
    assert_eq!(failure.error.aws_code(), "MissingAuthenticationTokenException");
    assert_eq!(failure.error.http_status(), 403);
    assert_eq!(failure.error.message(), "Missing Authentication Token");
}

#[test]
fn kms_request_stale_and_future() {
    let failure = run(KEY_ID, NOW - Duration::minutes(10), BODY).unwrap_err();
    assert_eq!(
        failure.error,
        AuthError::InvalidSignature(
            "Signature expired: 20240501T095000Z is now earlier than 20240501T095500Z (20240501T100000Z - 5 min.)".to_owned()
        )
    );
    assert_eq!(failure.error.aws_code(), "InvalidSignatureException");
    assert_eq!(failure.identity.as_deref(), Some(&dev_identity("kms")));

    let failure = run(KEY_ID, NOW + Duration::seconds(301), BODY).unwrap_err();
    assert_eq!(
        failure.error,
        AuthError::InvalidSignature(
            "Signature not yet current: 20240501T100501Z is still later than 20240501T100500Z (20240501T100000Z + 5 min.)".to_owned()
        )
    );
}

#[test]
fn kms_request_wrong_secret() {
    let (authorization, amz_date) = kms_authorization(KEY_ID, "not-the-secret", NOW, "kms", BODY);
    let headers = kms_headers(Some(&authorization), &amz_date);
    let failure = Authenticator::new(store())
        .authenticate(&Method::POST, &Uri::from_static("/"), &headers, BODY, NOW)
        .unwrap_err();
    assert_eq!(failure.error, AuthError::signature_mismatch());
}

#[test]
fn scope_service_is_returned_for_the_gateway_to_check() {
    let (authorization, amz_date) = kms_authorization(KEY_ID, SECRET, NOW, "cloudtrail", BODY);
    let headers = kms_headers(Some(&authorization), &amz_date);
    let identity = Authenticator::new(store())
        .authenticate(&Method::POST, &Uri::from_static("/"), &headers, BODY, NOW)
        .unwrap();
    assert_eq!(identity, dev_identity("cloudtrail"));
}

#[test]
fn http2_style_request_without_host_header() {
    let (authorization, amz_date) = kms_authorization(KEY_ID, SECRET, NOW, "kms", BODY);
    let mut headers = kms_headers(Some(&authorization), &amz_date);
    headers.remove("host");
    let uri: Uri = format!("https://{HOST}/").parse().unwrap();
    let identity =
        Authenticator::new(store()).authenticate(&Method::POST, &uri, &headers, BODY, NOW).unwrap();
    assert_eq!(identity, dev_identity("kms"));
}

fn with_authorization(values: &[&str], uri: &'static str) -> Result<Identity, AuthFailure> {
    let mut headers = kms_headers(None, "20240501T100000Z");
    for value in values {
        headers.append("authorization", HeaderValue::from_str(value).unwrap());
    }
    Authenticator::new(store()).authenticate(
        &Method::POST,
        &Uri::from_static(uri),
        &headers,
        BODY,
        NOW,
    )
}

#[test]
fn authorization_header_dispatch() {
    let incomplete = |r: Result<Identity, AuthFailure>| match r {
        Err(AuthFailure { error: AuthError::IncompleteSignature(message), identity: None }) => {
            message
        }
        other => panic!("{other:?}"),
    };
    for (values, uri, fragment) in [
        (&["Basic dXNlcjpwYXNz"][..], "/", "Unsupported Authorization scheme"),
        (&["AWS4-HMAC-SHA256"][..], "/", "Unsupported signing algorithm"),
        (&["AWS4-ECDSA-P256-SHA256 Credential=x"][..], "/", "Unsupported signing algorithm"),
        (
            &["AWS4-HMAC-SHA256 Credential=AKID/20240501/eu-west-1/kms/aws4_request"][..],
            "/",
            "requires 'Signature' parameter",
        ),
        (&["Bearer a", "Bearer b"][..], "/", "more than one Authorization header"),
        (
            &[][..],
            "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=x&X-Amz-Signature=y",
            "presigned",
        ),
    ] {
        let message = incomplete(with_authorization(values, uri));
        assert!(message.contains(fragment), "{values:?}: {message}");
    }
    assert_eq!(
        with_authorization(&["  "], "/").unwrap_err().error,
        AuthError::MissingAuthenticationToken
    );
    assert_eq!(
        with_authorization(&[], "/?Action=Encrypt").unwrap_err().error,
        AuthError::MissingAuthenticationToken
    );
}

#[test]
fn bearer_tokens_are_routed_to_jwt() {
    let claims = serde_json::json!({
        "iss": "https://issuer.example",
        "aud": "kms",
        "exp": NOW.unix_timestamp() + 600,
        "sub": "alice",
        "account": "111122223333",
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let identity = with_authorization(&[&format!("{scheme} {token}")], "/").unwrap();
        assert_eq!(identity.principal_arn, "arn:aws:iam::111122223333:user/alice");
        assert_eq!(
            identity.method,
            AuthMethod::Jwt { issuer: "https://issuer.example".to_owned() }
        );
    }
    let failure = with_authorization(&["Bearer not.a.jwt"], "/").unwrap_err();
    assert!(matches!(failure.error, AuthError::InvalidToken(_)));
}

#[test]
fn admin_principals() {
    let auth = Authenticator::new(store());
    assert!(auth.is_admin("arn:aws:iam::000000000000:role/kms-operator"));
    assert!(!auth.is_admin("arn:aws:iam::111122223333:user/dev"));
    assert!(!auth.is_admin("arn:aws:iam::000000000000:role/kms-operator/"));
    assert!(!auth.is_admin(""));
}

#[test]
fn error_codes_and_statuses() {
    let cases = [
        (AuthError::MissingAuthenticationToken, "MissingAuthenticationTokenException", 403),
        (AuthError::IncompleteSignature("m".into()), "IncompleteSignatureException", 400),
        (AuthError::InvalidSignature("m".into()), "InvalidSignatureException", 400),
        (AuthError::UnrecognizedClient, "UnrecognizedClientException", 400),
        (AuthError::ExpiredToken("m".into()), "ExpiredTokenException", 400),
        (AuthError::InvalidToken("m".into()), "UnrecognizedClientException", 400),
    ];
    for (error, code, status) in cases {
        assert_eq!(error.aws_code(), code, "{error:?}");
        assert_eq!(error.http_status(), status, "{error:?}");
        assert_eq!(error.message(), error.to_string());
    }
}

#[test]
fn debug_output_has_no_secrets() {
    let (authorization, amz_date) = kms_authorization(KEY_ID, SECRET, NOW, "kms", BODY);
    let headers = kms_headers(Some(&authorization), &amz_date);
    let auth = Authenticator::new(store());
    let mut body = BODY.to_vec();
    body[0] = b' ';
    let failure =
        auth.authenticate(&Method::POST, &Uri::from_static("/"), &headers, &body, NOW).unwrap_err();
    for text in [format!("{auth:?}"), format!("{failure:?}"), failure.to_string()] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains(JWT_SECRET), "{text}");
    }
}
