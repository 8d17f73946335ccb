//! Authentication on every request: SigV4 from the SDK (bad secret, unknown key, stale
//! clock), no credentials at all, JWT bearer tokens from a configured issuer, and unknown
//! operations — each with the error AWS gives.

use std::time::{Duration, SystemTime};

use aws_sdk_kms::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_kms::config::{Intercept, RuntimeComponents};
use aws_smithy_types::config_bag::ConfigBag;

use crate::sandbox::{error_code, error_message, raw_post, AccessKey, Sandbox, ACCOUNT_A, REGION};

#[tokio::test]
async fn sigv4_failures() {
    let sb = Sandbox::start().await;
    let good = sb.access_key(ACCOUNT_A);
    let wrong_secret = AccessKey { secret: "x".repeat(40), ..good.clone() };
    let unknown = AccessKey { id: "AKIAUNKNOWNKEY000000".into(), ..good.clone() };
    assert_eq!(
        error_code(sb.kms_with(wrong_secret, REGION).list_keys().send().await),
        "InvalidSignatureException"
    );
    assert_eq!(
        error_code(sb.kms_with(unknown, REGION).list_keys().send().await),
        "UnrecognizedClientException"
    );

    // A client whose clock is 10 minutes slow signs a stale request.
    let stale = sb.kms_config(good.clone(), REGION).time_source(
        aws_smithy_async::time::StaticTimeSource::new(SystemTime::now() - Duration::from_secs(600)),
    );
    let client = aws_sdk_kms::Client::from_conf(stale.build());
    let message = error_message(client.list_keys().send().await);
    assert!(message.starts_with("Signature expired"), "{message}");

    let (status, body) = raw_post(&sb.endpoint, "TrentService.ListKeys", &[], "{}").await;
    assert_eq!(status, 403);
    assert!(body.contains("MissingAuthenticationTokenException"), "{body}");
}

/// Rewrites the target header before signing, so the SDK sends a correctly signed call
/// of an operation that does not exist.
#[derive(Debug)]
struct UnknownTarget;

impl Intercept for UnknownTarget {
    fn name(&self) -> &'static str {
        "UnknownTarget"
    }
    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_kms::error::BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-amz-target", "TrentService.DestroyEverything");
        Ok(())
    }
}

#[tokio::test]
async fn unknown_operation() {
    let sb = Sandbox::start().await;
    let config = sb.kms_config(sb.access_key(ACCOUNT_A), REGION).interceptor(UnknownTarget);
    let client = aws_sdk_kms::Client::from_conf(config.build());
    assert_eq!(error_code(client.list_keys().send().await), "UnknownOperationException");
    let events = sb.events(ACCOUNT_A).await;
    assert!(
        events.iter().any(|e| e["eventName"] == "DestroyEverything"
            && e["errorCode"] == "UnknownOperationException"),
        "the unknown call is audited"
    );
}

#[tokio::test]
async fn jwt_bearer_tokens() {
    const ISSUER: &str = "https://issuer.test";
    const SECRET: &str = "a-test-hmac-secret-of-at-least-32-bytes!";
    let sb = Sandbox::start_with(|store| {
        let issuer = kms_auth::JwtIssuerEntry::hmac(
            ISSUER,
            "kms",
            kms_auth::JwtAlgorithm::HS256,
            zeroize::Zeroizing::new(SECRET.to_owned()),
        );
        kms_auth::CredentialStore::new(
            store.access_keys().to_vec(),
            vec![issuer],
            vec!["arn:aws:iam::999988887777:role/kms-operator".to_owned()],
        )
        .unwrap()
    })
    .await;
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let token = |claims: serde_json::Value, secret: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let claims = |sub: &str, account: &str, exp: u64| serde_json::json!({"iss": ISSUER, "aud": "kms", "sub": sub, "account": account, "exp": exp});
    let bearer = |t: &str| vec![("authorization".to_owned(), format!("Bearer {t}"))];

    // A token's principal is a user like any other: it needs an identity policy.
    let valid = token(claims("payments", ACCOUNT_A, now + 300), SECRET);
    let (status, body) =
        raw_post(&sb.endpoint, "TrentService.CreateKey", &bearer(&valid), "{}").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("AccessDeniedException") && body.contains("user/payments"), "{body}");
    let operator = token(
        claims("arn:aws:iam::999988887777:role/kms-operator", "999988887777", now + 300),
        SECRET,
    );
    let attach = serde_json::json!({
        "PrincipalArn": format!("arn:aws:iam::{ACCOUNT_A}:user/payments"),
        "PolicyName": "kms",
        "PolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
    });
    let (status, body) = raw_post(
        &sb.endpoint,
        "KmsAdmin_20261101.PutPrincipalPolicy",
        &bearer(&operator),
        &attach.to_string(),
    )
    .await;
    assert_eq!(status, 200, "the platform operator attaches policies: {body}");
    let (status, body) = raw_post(
        &sb.endpoint,
        "TrentService.CreateKey",
        &bearer(&valid),
        r#"{"Description":"via jwt"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    let key_id = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    assert_eq!(created["KeyMetadata"]["AWSAccountId"], ACCOUNT_A);
    // The key belongs to the account the token names: the SigV4 user of that account sees it.
    let seen = sb.kms(ACCOUNT_A).describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(seen.key_metadata().unwrap().description(), Some("via jwt"));

    for bad in [
        token(claims("payments", ACCOUNT_A, now - 3600), SECRET),
        token(claims("payments", ACCOUNT_A, now + 300), "another-secret-that-is-32-bytes-long!!"),
        token(
            serde_json::json!({"iss": ISSUER, "aud": "other", "sub": "p", "account": ACCOUNT_A, "exp": now + 300}),
            SECRET,
        ),
        "not.a.jwt".to_owned(),
    ] {
        let (status, body) =
            raw_post(&sb.endpoint, "TrentService.ListKeys", &bearer(&bad), "{}").await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("Exception"), "{body}");
    }

    // The operator principal sees every account's audit events.
    sb.create_key(crate::sandbox::ACCOUNT_B).await;
    let (status, body) = raw_post(
        &sb.endpoint,
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        &bearer(&operator),
        r#"{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"CreateKey"}]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let found: serde_json::Value = serde_json::from_str(&body).unwrap();
    let accounts: std::collections::BTreeSet<String> = found["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let record: serde_json::Value =
                serde_json::from_str(e["CloudTrailEvent"].as_str().unwrap()).unwrap();
            record["recipientAccountId"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(
        accounts.contains(ACCOUNT_A) && accounts.contains(crate::sandbox::ACCOUNT_B),
        "{accounts:?}"
    );
    // A tenant's JWT caller does not.
    let (_, tenant_view) = raw_post(
        &sb.endpoint,
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
        &bearer(&valid),
        "{}",
    )
    .await;
    assert!(!tenant_view.contains(crate::sandbox::ACCOUNT_B), "a tenant sees only its own account");
}
