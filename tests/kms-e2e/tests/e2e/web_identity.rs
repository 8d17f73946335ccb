//! Workload identity end to end: Kubernetes service-account tokens (minted here with the
//! test keys whose JWKS the gateway is given) exchanged through STS
//! `AssumeRoleWithWebIdentity` for role-session credentials, then used for KMS calls — by
//! the `aws` CLI configured only with `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`
//! (botocore makes the STS call itself), and by `aws-sdk-kms` with the session
//! credentials. Refusals are STS's XML errors; the session is the role for key policies,
//! identity policies and `aws:PrincipalArn`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_kms::config::Credentials;
use aws_sdk_kms::primitives::Blob;
use serde_json::{json, Value};

use crate::sandbox::{aws_cli, error_code, Sandbox, ACCOUNT_A, REGION};

const CLUSTER: &str = "https://kubernetes.default.svc.cluster.local";
const ROLE: &str = "arn:aws:iam::111122223333:role/payments-api";

fn test_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../libs/kms-auth/tests/data")
}

fn now() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs())
        .expect("time fits")
}

/// A projected service-account token of `namespace`/`name`, as the API server signs it.
fn sa_token(namespace: &str, name: &str, audience: &str, exp: i64) -> String {
    let claims = json!({
        "iss": CLUSTER, "aud": [audience], "exp": exp, "iat": now() - 10, "nbf": now() - 10,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": "7f1c"}},
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-1".to_owned());
    let pem = std::fs::read(test_data().join("rsa_private.pem")).expect("test key");
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("rsa key"),
    )
    .expect("token")
}

fn valid_token() -> String {
    sa_token("payments", "api", "kms", now() + 3600)
}

/// The system with one cluster issuer and `payments/api` bound to `ROLE`, whose identity
/// policy allows KMS.
async fn start() -> Sandbox {
    let jwks = test_data().join("jwks.json");
    let sb = Sandbox::start_with_workload_identity(json!({
        "issuers": [{"issuer": CLUSTER, "audience": "kms", "jwks_file": jwks}],
        "roles": [{"namespace": "payments", "service_account": "api", "role_arn": ROLE}]
    }))
    .await;
    sb.attach(
        ROLE,
        "kms-use",
        json!({"Version": "2012-10-17",
               "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}),
    )
    .await;
    sb
}

/// An STS query-protocol POST, unsigned as the SDKs send `AssumeRoleWithWebIdentity`.
async fn sts(endpoint: &str, params: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let body = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let authority = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(authority).await.expect("connect gateway");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

async fn assume(endpoint: &str, token: &str, session: &str) -> (u16, String) {
    sts(
        endpoint,
        &[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", ROLE),
            ("RoleSessionName", session),
            ("WebIdentityToken", token),
        ],
    )
    .await
}

/// The text of the first `<tag>` element.
fn xml(body: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = body.find(&open).unwrap_or_else(|| panic!("no <{tag}> in {body}")) + open.len();
    let end = body[start..].find(&format!("</{tag}>")).expect("closing tag") + start;
    body[start..end].to_owned()
}

struct SessionCredentials {
    access_key_id: String,
    secret: String,
    token: String,
}

fn kms_with_session(sb: &Sandbox, c: &SessionCredentials) -> aws_sdk_kms::Client {
    let config = sb
        .kms_config(sb.access_key(ACCOUNT_A), REGION)
        .credentials_provider(Credentials::new(
            &c.access_key_id,
            &c.secret,
            Some(c.token.clone()),
            None,
            "sts",
        ))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// Runs the `aws` CLI with nothing but the web-identity variables, the endpoint and the
/// region: no profile, no keys. Returns success, stdout and stderr.
async fn aws_with_web_identity(
    sb: &Sandbox,
    token_file: &std::path::Path,
    args: &[&str],
) -> (bool, String, String) {
    let home = tempfile::tempdir().expect("home");
    let output = tokio::process::Command::new(aws_cli())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("no-credentials"))
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", token_file)
        .env("AWS_ROLE_ARN", ROLE)
        .env("AWS_ROLE_SESSION_NAME", "cli-pod")
        .env("AWS_ENDPOINT_URL", &sb.endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .await
        .expect("run the aws CLI");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn web_identity_aws_cli_configured_only_by_token_file_and_role_arn() {
    let sb = start().await;
    let key_id = sb.create_key(ACCOUNT_A).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, valid_token()).expect("write token");

    let (ok, stdout, stderr) = aws_with_web_identity(
        &sb,
        &token_file,
        &["kms", "describe-key", "--key-id", &key_id, "--output", "json"],
    )
    .await;
    assert!(ok, "aws kms describe-key: {stderr}");
    let described: Value = serde_json::from_str(&stdout).expect("JSON output");
    assert_eq!(described["KeyMetadata"]["KeyId"], key_id.as_str());
    let (ok, stdout, stderr) = aws_with_web_identity(
        &sb,
        &token_file,
        &[
            "kms",
            "generate-data-key",
            "--key-id",
            &key_id,
            "--key-spec",
            "AES_256",
            "--output",
            "json",
        ],
    )
    .await;
    assert!(ok, "aws kms generate-data-key: {stderr}");
    let generated: Value = serde_json::from_str(&stdout).expect("JSON output");
    assert!(generated["KeyId"].as_str().expect("KeyId").ends_with(&key_id));

    // The calls are the role session's, in the audit log.
    let events = sb.events(ACCOUNT_A).await;
    let call = events
        .iter()
        .find(|e| e["eventName"] == "GenerateDataKey")
        .expect("GenerateDataKey recorded");
    assert_eq!(call["userIdentity"]["type"], "AssumedRole");
    assert_eq!(
        call["userIdentity"]["arn"],
        "arn:aws:sts::111122223333:assumed-role/payments-api/cli-pod"
    );
    assert!(call["userIdentity"]["accessKeyId"].as_str().expect("key id").starts_with("ASIA"));
    let issued = events
        .iter()
        .find(|e| e["eventName"] == "AssumeRoleWithWebIdentity" && e["errorCode"].is_null())
        .expect("AssumeRoleWithWebIdentity recorded");
    assert_eq!(issued["eventSource"], "sts.amazonaws.com");
    assert_eq!(issued["userIdentity"]["type"], "WebIdentityUser");
    assert_eq!(issued["requestParameters"]["roleSessionName"], "cli-pod");

    // A service account that is not bound to the role gets nothing.
    std::fs::write(&token_file, sa_token("payments", "worker", "kms", now() + 3600))
        .expect("write token");
    let (ok, _, stderr) =
        aws_with_web_identity(&sb, &token_file, &["kms", "list-keys", "--output", "json"]).await;
    assert!(!ok, "an unbound service account must be refused");
    assert!(stderr.contains("AccessDenied"), "{stderr}");
    assert!(stderr.contains("Not authorized to perform sts:AssumeRoleWithWebIdentity"), "{stderr}");
}

#[tokio::test]
async fn web_identity_session_is_the_role_for_policies() {
    let sb = start().await;
    let (status, body) = assume(&sb.endpoint, &valid_token(), "sdk-pod").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("<AssumeRoleWithWebIdentityResponse"), "{body}");
    let creds = SessionCredentials {
        access_key_id: xml(&body, "AccessKeyId"),
        secret: xml(&body, "SecretAccessKey"),
        token: xml(&body, "SessionToken"),
    };
    assert!(creds.access_key_id.starts_with("ASIA"));
    assert_eq!(xml(&body, "Arn"), "arn:aws:sts::111122223333:assumed-role/payments-api/sdk-pod");
    assert!(xml(&body, "AssumedRoleId").starts_with("AROA"));
    assert!(xml(&body, "AssumedRoleId").ends_with(":sdk-pod"));
    assert_eq!(xml(&body, "SubjectFromWebIdentityToken"), "system:serviceaccount:payments:api");
    assert_eq!(xml(&body, "Provider"), CLUSTER);
    let expiration = aws_smithy_types::DateTime::from_str(
        &xml(&body, "Expiration"),
        aws_smithy_types::date_time::Format::DateTime,
    )
    .expect("ISO 8601 expiration");
    let lifetime = expiration.secs() - now();
    assert!((3500..=3600).contains(&lifetime), "default DurationSeconds is 3600: {lifetime}");

    // A key policy that trusts the account but denies the role Decrypt by principal, and
    // GenerateDataKey by aws:PrincipalArn: both name the role, and bind its sessions.
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "NoDecrypt", "Effect": "Deny", "Principal": {"AWS": ROLE},
         "Action": "kms:Decrypt", "Resource": "*"},
        {"Sid": "NoDataKeys", "Effect": "Deny", "Principal": "*", "Action": "kms:GenerateDataKey",
         "Resource": "*", "Condition": {"ArnEquals": {"aws:PrincipalArn": ROLE}}}
    ]});
    let key_id = sb
        .kms(ACCOUNT_A)
        .create_key()
        .policy(policy.to_string())
        .send()
        .await
        .expect("create-key")
        .key_metadata
        .expect("metadata")
        .key_id;
    let kms = kms_with_session(&sb, &creds);
    let ciphertext = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"payroll".to_vec()))
        .send()
        .await
        .expect("the role's identity policy allows Encrypt")
        .ciphertext_blob
        .expect("ciphertext");
    let decrypt = kms.decrypt().ciphertext_blob(ciphertext.clone()).send().await;
    assert_eq!(error_code(decrypt), "AccessDeniedException");
    let data_key = kms.generate_data_key().key_id(&key_id).number_of_bytes(32).send().await;
    assert_eq!(error_code(data_key), "AccessDeniedException");
    // The account's user is not the role: both work for it.
    let dev = sb.kms(ACCOUNT_A);
    dev.decrypt().ciphertext_blob(ciphertext).send().await.expect("dev decrypts");
    dev.generate_data_key().key_id(&key_id).number_of_bytes(32).send().await.expect("dev data key");

    // Without the role's identity policy, the session may do nothing the account's root
    // delegates.
    let (status, body) = sb
        .admin("DeletePrincipalPolicy", json!({"PrincipalArn": ROLE, "PolicyName": "kms-use"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let encrypt = kms.encrypt().key_id(&key_id).plaintext(Blob::new(b"x".to_vec())).send().await;
    assert_eq!(error_code(encrypt), "AccessDeniedException");
}

#[tokio::test]
async fn web_identity_refusals() {
    let sb = start().await;
    let refused = |body: &str, code: &str| {
        assert!(body.starts_with("<ErrorResponse"), "{body}");
        assert_eq!(xml(body, "Code"), code, "{body}");
        assert_eq!(xml(body, "Type"), "Sender", "{body}");
        assert!(!xml(body, "RequestId").is_empty());
    };
    let wrong_audience = sa_token("payments", "api", "sts.amazonaws.com", now() + 3600);
    let (status, body) = assume(&sb.endpoint, &wrong_audience, "pod").await;
    assert_eq!(status, 400);
    refused(&body, "InvalidIdentityToken");
    assert_eq!(xml(&body, "Message"), "Incorrect token audience");

    let expired = sa_token("payments", "api", "kms", now() - 3600);
    let (status, body) = assume(&sb.endpoint, &expired, "pod").await;
    assert_eq!(status, 400);
    refused(&body, "ExpiredTokenException");
    assert!(!body.contains(&expired), "a token is never echoed");

    let unbound = sa_token("kube-system", "api", "kms", now() + 3600);
    let (status, body) = assume(&sb.endpoint, &unbound, "pod").await;
    assert_eq!(status, 403);
    refused(&body, "AccessDenied");
    assert_eq!(xml(&body, "Message"), "Not authorized to perform sts:AssumeRoleWithWebIdentity");

    let mut forged = valid_token();
    forged.push('A');
    let (status, body) = assume(&sb.endpoint, &forged, "pod").await;
    assert_eq!(status, 400);
    refused(&body, "InvalidIdentityToken");

    let (status, body) = assume(&sb.endpoint, &valid_token(), "has space").await;
    assert_eq!(status, 400);
    refused(&body, "ValidationError");
    let (status, body) = sts(
        &sb.endpoint,
        &[("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", ROLE)],
    )
    .await;
    assert_eq!(status, 400);
    refused(&body, "ValidationError");

    // Credentials work only with their own, untampered session token.
    let (status, body) = assume(&sb.endpoint, &valid_token(), "pod").await;
    assert_eq!(status, 200, "{body}");
    let good = SessionCredentials {
        access_key_id: xml(&body, "AccessKeyId"),
        secret: xml(&body, "SecretAccessKey"),
        token: xml(&body, "SessionToken"),
    };
    let key_id = sb.create_key(ACCOUNT_A).await;
    kms_with_session(&sb, &good).describe_key().key_id(&key_id).send().await.expect("works");
    let mut bytes = good.token.clone().into_bytes();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let tampered = SessionCredentials {
        token: String::from_utf8(bytes).expect("ascii"),
        access_key_id: good.access_key_id.clone(),
        secret: good.secret.clone(),
    };
    let call = kms_with_session(&sb, &tampered).describe_key().key_id(&key_id).send().await;
    assert_eq!(error_code(call), "UnrecognizedClientException");
    let (_, other) = assume(&sb.endpoint, &valid_token(), "other").await;
    let swapped = SessionCredentials { token: xml(&other, "SessionToken"), ..tampered };
    let call = kms_with_session(&sb, &swapped).describe_key().key_id(&key_id).send().await;
    assert_eq!(error_code(call), "UnrecognizedClientException");
    let wrong_secret = SessionCredentials {
        secret: "x".repeat(40),
        access_key_id: good.access_key_id.clone(),
        token: good.token.clone(),
    };
    let call = kms_with_session(&sb, &wrong_secret).describe_key().key_id(&key_id).send().await;
    assert_eq!(error_code(call), "InvalidSignatureException");

    // The audit log has the refused and the granted exchanges of known callers, and no
    // secret, session token or web identity token anywhere.
    let events = sb.events(ACCOUNT_A).await;
    let sts_events: Vec<&Value> =
        events.iter().filter(|e| e["eventName"] == "AssumeRoleWithWebIdentity").collect();
    assert!(sts_events.iter().any(|e| e["errorCode"] == "AccessDenied"));
    let granted = sts_events
        .iter()
        .find(|e| {
            e["responseElements"]["credentials"]["accessKeyId"] == good.access_key_id.as_str()
        })
        .expect("the granted exchange");
    assert_eq!(
        granted["responseElements"]["assumedRoleUser"]["arn"],
        "arn:aws:sts::111122223333:assumed-role/payments-api/pod"
    );
    let everything = serde_json::to_string(&events).expect("json");
    assert!(!everything.contains(&good.secret));
    assert!(!everything.contains(&good.token));
    assert!(!everything.contains(&valid_token()[..60]));
}
