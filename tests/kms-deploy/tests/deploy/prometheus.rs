//! A real Prometheus (Debian's package) scrapes the system's `/metrics` and evaluates the
//! alerting rules of `deploy/prometheus/kms-rules.yaml`, and the test reads back through
//! its query API what the calls it made must show: as many GenerateDataKey requests at
//! the gateway and at the crypto service as it made, the audit stream's lag drained, and
//! a key pending deletion still in use firing its alert, for that operation only.
//!
//! The services run in this process, as `kms-server run` runs them: one registry, one
//! `/metrics`. Other tests of this binary share that registry; none of them calls
//! GenerateDataKey or GenerateDataKeyWithoutPlaintext, so those counts are this test's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kms_bus::Bus;
use kms_health::{HealthArgs, Readiness};
use kms_testkit::Prometheus;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::observability::{api, credentials};

/// Waits until `promql` yields exactly `expected` (one `(label value, sample)` per
/// series, `label` naming the series), failing with what Prometheus last said.
async fn wait_for(prometheus: &Prometheus, promql: &str, label: &str, expected: &[(&str, f64)]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let samples = prometheus.query(promql).await.unwrap();
        let mut got: Vec<(String, f64)> = samples
            .iter()
            .map(|s| {
                let name = s.labels.get(label).and_then(|v| v.as_str()).unwrap_or_default();
                (name.to_owned(), s.value)
            })
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let want: Vec<(String, f64)> =
            expected.iter().map(|(l, v)| ((*l).to_owned(), *v)).collect();
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{promql}: {got:?}, expected {want:?}\n{}",
            prometheus.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_reads_the_counters_and_fires_the_alerts() {
    let nats = kms_testkit::NatsServer::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let setup = kms_server::dev_init(data.path(), "http://127.0.0.1:0", "us-east-1").unwrap();
    let token = credentials(&setup.credentials_file);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    let config = kms_server::AllConfig::under(
        data.path(),
        setup.root_key_file.clone(),
        setup.credentials_file.clone(),
    );
    let bus = Bus::connect(&nats.url(), Duration::from_secs(5)).await.unwrap();
    let stop = CancellationToken::new();
    let clock = Arc::new(kms_core::SystemClock);
    let system =
        tokio::spawn(kms_server::run_all(config, bus.clone(), listener, clock, stop.clone()));
    // The health server and the audit lag gauge, as `kms-server run` starts them.
    let args = HealthArgs { health_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))) };
    let health = Readiness::new().nats(&bus).spawn(&args).await.unwrap().unwrap();
    kms_health::spawn_audit_lag(&bus);

    let rules = kms_deploy::repo_root().join("deploy/prometheus/kms-rules.yaml");
    let prometheus = Prometheus::start(&[health], &[rules]).await.unwrap();
    wait_for(&prometheus, r#"up{job="kms"}"#, "job", &[("kms", 1.0)]).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let create = || async {
        loop {
            let (status, body) = api(gateway, &token, "CreateKey", &json!({})).await;
            if status == 200 {
                break body["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
            }
            assert!(tokio::time::Instant::now() < deadline, "CreateKey: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let key = create().await;
    const CALLS: usize = 7;
    for _ in 0..CALLS {
        let request = json!({"KeyId": key, "KeySpec": "AES_256"});
        let (status, body) = api(gateway, &token, "GenerateDataKey", &request).await;
        assert_eq!(status, 200, "{body}");
    }

    // A key scheduled for deletion that an application still asks for data keys.
    let doomed = create().await;
    let schedule = json!({"KeyId": doomed, "PendingWindowInDays": 7});
    let (status, body) = api(gateway, &token, "ScheduleKeyDeletion", &schedule).await;
    assert_eq!(status, 200, "{body}");
    let request = json!({"KeyId": doomed, "KeySpec": "AES_256"});
    let (status, body) = api(gateway, &token, "GenerateDataKeyWithoutPlaintext", &request).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["__type"], "KMSInvalidStateException", "{body}");

    let calls = CALLS as f64;
    wait_for(
        &prometheus,
        r#"sum by (status) (kms_gateway_http_requests_total{operation="GenerateDataKey"})"#,
        "status",
        &[("200", calls)],
    )
    .await;
    wait_for(
        &prometheus,
        r#"sum by (outcome) (kms_bus_server_requests_total{service="crypto",operation="GenerateDataKey"})"#,
        "outcome",
        &[("ok", calls)],
    )
    .await;
    wait_for(
        &prometheus,
        r#"sum by (code) (kms_gateway_http_errors_total{operation="GenerateDataKeyWithoutPlaintext"})"#,
        "code",
        &[("KMSInvalidStateException", 1.0)],
    )
    .await;
    // The refusal is counted under its operation; the other cryptographic operations'
    // series are there at 0.
    wait_for(
        &prometheus,
        r#"kms_gateway_pending_deletion_key_requests_total{operation=~"GenerateDataKeyWithoutPlaintext|Sign"}"#,
        "operation",
        &[("GenerateDataKeyWithoutPlaintext", 1.0), ("Sign", 0.0)],
    )
    .await;
    // The rule file's alert fires, for that operation only.
    wait_for(
        &prometheus,
        r#"ALERTS{alertname="KmsKeyPendingDeletionInUse",alertstate="firing"}"#,
        "operation",
        &[("GenerateDataKeyWithoutPlaintext", 1.0)],
    )
    .await;
    // Every record reached the audit store: the stream holds them (two CreateKey, the
    // GenerateDataKey calls, ScheduleKeyDeletion, the refused call) and the lag is 0.
    let records = CALLS + 4;
    wait_for(
        &prometheus,
        &format!("count(kms_audit_stream_messages >= {records})"),
        "",
        &[("", 1.0)],
    )
    .await;
    wait_for(&prometheus, "kms_audit_stream_lag_messages", "job", &[("kms", 0.0)]).await;
    // No other alert fires: the failed call is no spike, the lag none.
    wait_for(
        &prometheus,
        r#"count by (alertname) (ALERTS{alertstate="firing"})"#,
        "alertname",
        &[("KmsKeyPendingDeletionInUse", 1.0)],
    )
    .await;

    stop.cancel();
    system.await.unwrap().unwrap();
}
