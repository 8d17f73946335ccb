//! The real services, each connected as its own NATS user with its own inbox prefix to a
//! different node of the cluster, do all they must: serve, answer their readiness probes,
//! keep the audit stream (replicated 3 ways) and its durable consumer; the gateway's and
//! the scheduler's calls, audit records and claims go through; a call outside the matrix
//! does not.

use std::net::SocketAddr;
use std::time::Duration;

use kms_bus::{AuditStreamConfig, CallContext};
use kms_deploy::Deployment;
use kms_health::{HealthArgs, Readiness};
use kms_proto::v1::{
    CallerContext, DeletePoliciesRequest, DestroyMaterialRequest, GenerateRandomRequest,
    ListKeysRequest, ListPoliciesRequest, LookupEventsRequest,
};
use tokio_util::sync::CancellationToken;

const ACCOUNT: &str = "111122223333";

fn caller() -> CallerContext {
    CallerContext {
        account: ACCOUNT.to_owned(),
        region: "us-east-1".to_owned(),
        principal: format!("arn:aws:iam::{ACCOUNT}:user/deploy-test"),
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

fn ctx() -> CallContext {
    CallContext { request_id: uuid::Uuid::new_v4().to_string() }
}

/// A CloudTrail record as the gateway or the scheduler writes one.
fn record(event_id: &str, event_name: &str) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let event_time = now.format(&time::format_description::well_known::Rfc3339).unwrap();
    serde_json::to_vec(&serde_json::json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "principalId": ACCOUNT,
                         "arn": format!("arn:aws:iam::{ACCOUNT}:user/deploy-test"),
                         "accountId": ACCOUNT, "userName": "deploy-test"},
        "eventTime": event_time,
        "eventSource": "kms.amazonaws.com",
        "eventName": event_name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "127.0.0.1",
        "userAgent": "kms-deploy-test",
        "requestParameters": null,
        "responseElements": null,
        "requestID": uuid::Uuid::new_v4().to_string(),
        "eventID": event_id,
        "readOnly": false,
        "resources": [],
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management"
    }))
    .unwrap()
}

async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
        return (0, String::new());
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

/// Serves `readiness` on a free port and waits until `/readyz` says ready.
async fn wait_ready(name: &str, readiness: Readiness) {
    let args = HealthArgs { health_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))) };
    let address = readiness.spawn(&args).await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(address, "/readyz").await;
        if status == 200 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} never became ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_run_under_their_own_users() {
    let d = Deployment::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    let shutdown = || {
        let stop = stop.clone();
        async move { stop.cancelled().await }
    };

    let policy_bus = d.bus("policy", 0).await.unwrap();
    let crypto_bus = d.bus("crypto", 1).await.unwrap();
    let metadata_bus = d.bus("metadata", 2).await.unwrap();
    let audit_bus = d.bus("audit", 0).await.unwrap();
    let gateway = d.bus("gateway", 1).await.unwrap();

    // The gateway declares the stream with three copies, as in the chart.
    kms_bus::ensure_audit_stream(&gateway.jetstream(), &AuditStreamConfig { replicas: 3 })
        .await
        .unwrap();
    let info = gateway
        .jetstream()
        .get_stream(kms_bus::AUDIT_STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.config.num_replicas, 3);

    let mut services = tokio::task::JoinSet::new();
    services.spawn(kms_policy::run(
        kms_policy::Config::for_test(dir.path().join("policy")),
        policy_bus.clone(),
        shutdown(),
    ));
    services.spawn(kms_crypto::run(
        kms_crypto::Config::for_test(dir.path().join("crypto"), "11".repeat(32)),
        crypto_bus.clone(),
        shutdown(),
    ));
    services.spawn(kms_metadata::run(
        kms_metadata::Config::for_test(dir.path().join("metadata")),
        metadata_bus.clone(),
        shutdown(),
    ));
    let mut audit_config = kms_audit::Config::for_test(dir.path().join("audit"));
    audit_config.stream_replicas = 3;
    services.spawn(kms_audit::run(audit_config, audit_bus.clone(), shutdown()));

    // Each readiness probe calls its own service as that service's user.
    wait_ready("policy", Readiness::new().nats(&policy_bus).policy_answers(&policy_bus)).await;
    wait_ready("crypto", Readiness::new().nats(&crypto_bus).crypto_answers(&crypto_bus)).await;
    wait_ready("metadata", Readiness::new().nats(&metadata_bus).metadata_answers(&metadata_bus))
        .await;
    wait_ready("audit", Readiness::new().nats(&audit_bus).audit_answers(&audit_bus)).await;
    wait_ready("gateway", Readiness::new().nats(&gateway).audit_stream(&gateway)).await;

    // The gateway's calls.
    let random = gateway
        .call::<kms_bus::crypto::GenerateRandom>(
            &ctx(),
            &GenerateRandomRequest { caller: Some(caller()), number_of_bytes: 32 },
        )
        .await
        .unwrap();
    assert_eq!(random.plaintext.len(), 32);
    gateway
        .call::<kms_bus::metadata::ListKeys>(
            &ctx(),
            &ListKeysRequest { caller: Some(caller()), limit: 10, marker: String::new() },
        )
        .await
        .unwrap();
    let key_id = uuid::Uuid::new_v4().to_string();
    gateway
        .call::<kms_bus::policy::ListPolicies>(
            &ctx(),
            &ListPoliciesRequest { caller: Some(caller()), key_id: key_id.clone() },
        )
        .await
        .ok();

    // The scheduler's calls, as the metadata user: answered (the key is unknown, so an
    // error may come back, but from the service, not a timeout).
    let destroyed = metadata_bus
        .call::<kms_bus::crypto::DestroyMaterial>(
            &ctx(),
            &DestroyMaterialRequest { caller: Some(caller()), key_id: key_id.clone() },
        )
        .await;
    assert!(
        !matches!(&destroyed, Err(e) if e.code == kms_core::ErrorCode::DependencyTimeout),
        "{destroyed:?}"
    );
    let deleted = metadata_bus
        .call::<kms_bus::policy::DeletePolicies>(
            &ctx(),
            &DeletePoliciesRequest { caller: Some(caller()), key_id: key_id.clone() },
        )
        .await;
    assert!(
        !matches!(&deleted, Err(e) if e.code == kms_core::ErrorCode::DependencyTimeout),
        "{deleted:?}"
    );

    // A call outside the matrix: the crypto service asking the metadata service.
    let refused = crypto_bus
        .call::<kms_bus::metadata::ListKeys>(
            &ctx(),
            &ListKeysRequest { caller: Some(caller()), limit: 1, marker: String::new() },
        )
        .await;
    assert!(
        matches!(&refused, Err(e) if e.code == kms_core::ErrorCode::DependencyTimeout),
        "{refused:?}"
    );

    // Audit records from the gateway and from the scheduler reach the audit store
    // through the stream and the audit service's durable consumer.
    let from_gateway = uuid::Uuid::new_v4().to_string();
    let from_scheduler = uuid::Uuid::new_v4().to_string();
    kms_bus::publish_audit(
        &gateway,
        ACCOUNT,
        &from_gateway,
        record(&from_gateway, "GenerateRandom"),
    )
    .await
    .unwrap();
    kms_bus::publish_audit(
        &metadata_bus,
        ACCOUNT,
        &from_scheduler,
        record(&from_scheduler, "DeleteKey"),
    )
    .await
    .unwrap();
    let found = gateway
        .call::<kms_bus::audit::LookupEvents>(
            &ctx(),
            &LookupEventsRequest { caller: Some(caller()), max_results: 50, ..Default::default() },
        )
        .await
        .unwrap();
    assert!(found.response_json.contains(&from_gateway), "{}", found.response_json);
    assert!(found.response_json.contains(&from_scheduler), "{}", found.response_json);

    // The crypto service cannot write the audit trail.
    assert!(kms_bus::publish_audit(&crypto_bus, ACCOUNT, "forged", record("forged", "Decrypt"))
        .await
        .is_err());

    // The scheduler's claims bucket: the running metadata service declared it, its user
    // claims and reads transitions there, and no other service may write a claim.
    let mut claims = None;
    for _ in 0..100 {
        if let Ok(kv) = metadata_bus.jetstream().get_key_value("KMS_SCHEDULER").await {
            claims = Some(kv);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let claims = claims.expect("the metadata service declares its claims bucket");
    claims.create("probe.deploy-test", "claimed".into()).await.unwrap();
    assert_eq!(
        claims.entry("probe.deploy-test").await.unwrap().unwrap().value.as_ref(),
        b"claimed"
    );
    let foreign = crypto_bus.jetstream().get_key_value("KMS_SCHEDULER").await;
    assert!(foreign.is_err(), "the crypto user may not open the claims bucket");

    stop.cancel();
    while let Some(result) = services.join_next().await {
        result.unwrap().unwrap();
    }
}
