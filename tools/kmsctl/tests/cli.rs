//! The `kmsctl` binary against a real audit service (real `nats-server`, the service's
//! gRPC API): `audit lookup` prints the records a filter selects as a table or as JSON,
//! and progress of an export reaches stderr only when asked for (stderr is no terminal
//! here).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a test failure with its message"
)]

use std::path::Path;
use std::time::Duration;

use kms_audit_log::{CloudTrailEvent, EventResource, UserIdentity};
use kms_auth::{CredentialStore, JwtAlgorithm, JwtIssuerEntry};
use kms_bus::Bus;

const A: &str = "111122223333";
const B: &str = "444455556666";
const ISSUER: &str = "https://issuer.test";
const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";
const PLATFORM: &str = "arn:aws:iam::000000000000:role/platform-auditor";

fn key_arn(account: &str) -> String {
    format!("arn:aws:kms:us-east-1:{account}:key/00000001-0000-4000-8000-000000000000")
}

/// Event `i`: accounts alternate A, B; names Encrypt, Decrypt; one Decrypt refused.
fn event(i: u32) -> CloudTrailEvent {
    let account = if i.is_multiple_of(2) { A } else { B };
    let name = if i % 4 < 2 { "Encrypt" } else { "Decrypt" };
    CloudTrailEvent {
        event_version: "1.08".into(),
        user_identity: UserIdentity {
            identity_type: Some("IAMUser".into()),
            arn: Some(format!("arn:aws:iam::{account}:user/alice")),
            account_id: Some(account.into()),
            user_name: Some("alice".into()),
            ..UserIdentity::default()
        },
        event_time: time::OffsetDateTime::now_utc() - time::Duration::seconds(60 - i64::from(i)),
        event_source: "kms.amazonaws.com".into(),
        event_name: name.into(),
        aws_region: "us-east-1".into(),
        source_ip_address: "192.0.2.7".into(),
        user_agent: "test".into(),
        error_code: (i == 2).then(|| "AccessDenied".into()),
        error_message: None,
        request_parameters: Some(serde_json::json!({"keyId": key_arn(account)})),
        response_elements: None,
        request_id: format!("req-{i}"),
        event_id: format!("00000000-0000-4000-8000-{i:012}"),
        read_only: true,
        resources: vec![EventResource::kms_key(account, key_arn(account))],
        event_type: "AwsApiCall".into(),
        management_event: true,
        recipient_account_id: account.into(),
        shared_event_id: None,
        service_event_details: None,
        event_category: "Management".into(),
        tls_details: None,
    }
}

fn platform_token() -> String {
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": "kms", "sub": PLATFORM, "account": "000000000000",
        "exp": time::OffsetDateTime::now_utc().unix_timestamp() + 600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn credentials(dir: &Path) -> std::path::PathBuf {
    let issuer = JwtIssuerEntry::hmac(
        ISSUER,
        "kms",
        JwtAlgorithm::HS256,
        zeroize::Zeroizing::new(SECRET.to_owned()),
    );
    let store = CredentialStore::new(vec![], vec![issuer], vec![PLATFORM.to_owned()]).unwrap();
    let path = dir.join("credentials.json");
    store.save(&path).unwrap();
    path
}

/// Runs the binary; returns (success, stdout, stderr).
async fn kmsctl(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kmsctl"))
        .args(["--endpoint", endpoint, "--token", &platform_token()])
        .args(args)
        .output()
        .await
        .expect("kmsctl runs");
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn lookup_prints_tables_and_json_and_export_shows_progress_on_request() {
    let nats = kms_testkit::NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = kms_audit::Config::for_test(dir.path().join("audit"));
    config.credentials_file = Some(credentials(dir.path()));
    config.digest_interval_secs = 0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let service_bus = Bus::connect(&nats.url(), Duration::from_secs(5)).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(kms_audit::run_with(config, service_bus, Some(listener), async {
        let _ = stopped.await;
    }));

    let bus = Bus::connect(&nats.url(), Duration::from_secs(5)).await.unwrap();
    kms_bus::ensure_audit_stream(&bus.jetstream(), &Default::default()).await.unwrap();
    for i in 0..8 {
        let e = event(i);
        kms_bus::publish_audit(
            &bus,
            &e.recipient_account_id,
            &e.event_id,
            e.to_json_bytes().unwrap(),
        )
        .await
        .unwrap();
    }

    // Wait until the service has stored all eight (and its API is up).
    let lookup_json = ["audit", "lookup", "--since", "1h", "--output", "json"];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let lines = loop {
        let (ok, stdout, _) = kmsctl(&endpoint, &lookup_json).await;
        if ok && stdout.lines().count() == 8 {
            break stdout;
        }
        assert!(tokio::time::Instant::now() < deadline, "8 events never appeared: {stdout}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let records: Vec<serde_json::Value> =
        lines.lines().map(|l| serde_json::from_str(l).expect("one JSON record a line")).collect();
    assert_eq!(records[0]["eventID"], "00000000-0000-4000-8000-000000000007", "newest first");

    // Filters and the table: account A's refused Decrypt, under a header.
    let (ok, stdout, _) = kmsctl(
        &endpoint,
        &[
            "audit",
            "lookup",
            "--account",
            A,
            "--event-name",
            "Decrypt",
            "--error-code",
            "AccessDenied",
            "--since",
            "24h",
        ],
    )
    .await;
    assert!(ok);
    let rows: Vec<Vec<&str>> = stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    assert_eq!(rows[0][..3], ["EVENT", "TIME", "USER"]);
    assert_eq!(
        rows[1][1..],
        ["alice", "Decrypt", key_arn(A).as_str(), "192.0.2.7", "AccessDenied"]
    );

    // A window that ends before the events selects none of them.
    let (ok, stdout, _) =
        kmsctl(&endpoint, &["audit", "lookup", "--until", "2h", "--output", "json"]).await;
    assert!(ok);
    assert_eq!(stdout, "");

    // Export: no progress without a terminal; with --progress, the counts.
    let out = dir.path().join("export");
    let (ok, _, quiet) =
        kmsctl(&endpoint, &["audit", "export", "--account", A, "--out", out.to_str().unwrap()])
            .await;
    assert!(ok);
    assert!(!quiet.contains("records"), "no progress unasked: {quiet}");
    let out2 = dir.path().join("export2");
    let (ok, stdout, progress) = kmsctl(
        &endpoint,
        &["audit", "export", "--account", A, "--out", out2.to_str().unwrap(), "--progress"],
    )
    .await;
    assert!(ok);
    assert!(stdout.starts_with("exported 4 records"), "{stdout}");
    assert!(progress.contains(&format!("reading {A}: 4 records, done")), "{progress}");
    assert!(progress.contains("writing 4 records to"), "{progress}");

    let _ = stop.send(());
    service.await.unwrap().unwrap();
}
