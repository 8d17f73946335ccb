//! Observability of the real services: a service's health server renders the
//! Prometheus counters and latency histogram of the bus calls it served (scraped over
//! HTTP, as Prometheus does), and an API call through the gateway is one OpenTelemetry
//! trace across the gateway and every service it reaches, exported over OTLP/gRPC to a
//! receiver this test runs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kms_bus::{Bus, CallContext};
use kms_health::{HealthArgs, Readiness};
use kms_proto::v1::{CallerContext, GenerateRandomRequest};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

pub(crate) const ACCOUNT: &str = "111122223333";

/// Sends one HTTP/1.1 request and reads the whole answer: (status, body).
pub(crate) async fn http(address: SocketAddr, request: String) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

async fn scrape(address: SocketAddr) -> String {
    let (status, body) =
        http(address, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into()).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample `series` (name and labels exactly as rendered), 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.parse().unwrap())
}

fn caller() -> CallerContext {
    CallerContext {
        account: ACCOUNT.to_owned(),
        region: "us-east-1".to_owned(),
        principal: format!("arn:aws:iam::{ACCOUNT}:user/metrics-test"),
        request_id: uuid::Uuid::new_v4().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_serves_its_bus_metrics() {
    let nats = kms_testkit::NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::connect(&nats.url(), Duration::from_secs(5)).await.unwrap();
    let stop = CancellationToken::new();
    let service = tokio::spawn(kms_crypto::run(
        kms_crypto::Config::for_test(dir.path().join("crypto"), "22".repeat(32)),
        bus.clone(),
        stop.clone().cancelled_owned(),
    ));
    let readiness = Readiness::new().nats(&bus).crypto_answers(&bus);
    let args = HealthArgs { health_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))) };
    let health = readiness.spawn(&args).await.unwrap().unwrap();

    let ok = r#"kms_bus_server_requests_total{operation="GenerateRandom",outcome="ok",service="crypto"}"#;
    let failed = r#"kms_bus_server_errors_total{code="ValidationException",operation="GenerateRandom",service="crypto"}"#;
    let count = r#"kms_bus_server_request_duration_seconds_count{operation="GenerateRandom",service="crypto"}"#;
    let inf = r#"kms_bus_server_request_duration_seconds_bucket{operation="GenerateRandom",service="crypto",le="+Inf"}"#;
    let called = r#"kms_bus_client_requests_total{operation="GenerateRandom",outcome="ok",service="crypto"}"#;
    let round_trip = r#"kms_bus_client_request_duration_seconds_count{operation="GenerateRandom",service="crypto"}"#;
    let before = scrape(health).await;

    // Answered once the service is up (the probe's own calls count too, and other tests
    // of this binary share the registry: only increases are asserted).
    let ctx = CallContext { request_id: uuid::Uuid::new_v4().to_string() };
    let request = GenerateRandomRequest { caller: Some(caller()), number_of_bytes: 16 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while bus.call::<kms_bus::crypto::GenerateRandom>(&ctx, &request).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "crypto never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let too_many = GenerateRandomRequest { caller: Some(caller()), number_of_bytes: 1025 };
    let refused = bus.call::<kms_bus::crypto::GenerateRandom>(&ctx, &too_many).await;
    assert_eq!(refused.unwrap_err().code, kms_core::ErrorCode::Validation);

    let after = scrape(health).await;
    for series in [ok, failed, count, inf, called, round_trip] {
        assert!(sample(&after, series) > sample(&before, series), "{series} did not grow\n{after}");
    }
    assert!(after.contains("# TYPE kms_bus_server_request_duration_seconds histogram"));
    assert_eq!(sample(&after, count), sample(&after, inf), "every request in a bucket");
    assert!(after.lines().all(|l| !l.contains(&ctx.request_id)), "no request ids as labels");

    stop.cancel();
    service.await.unwrap().unwrap();
}

/// An OTLP/gRPC trace receiver: keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Receiver {
    async fn start(self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(self))
                .serve_with_incoming(incoming),
        );
        address
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            V::StringValue(s) => Some(s.clone()),
            V::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

const ISSUER: &str = "https://issuer.kms-deploy.test";
const SECRET: &str = "observability-test-secret-observability-test-secret";

/// Credentials of the development set-up plus a JWT issuer; the bearer token of the
/// development principal of `ACCOUNT`.
pub(crate) fn credentials(file: &std::path::Path) -> String {
    let mut store: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    let principal = store["access_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["account_id"] == ACCOUNT)
        .map(|k| k["principal_arn"].as_str().unwrap().to_owned())
        .unwrap();
    let issuers = store["jwt_issuers"].as_array().cloned().unwrap_or_default();
    let mut issuers = issuers;
    issuers
        .push(json!({"issuer": ISSUER, "audience": "kms", "algorithm": "HS256", "secret": SECRET}));
    store["jwt_issuers"] = Value::Array(issuers);
    std::fs::write(file, serde_json::to_vec(&store).unwrap()).unwrap();
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 600;
    let claims =
        json!({"iss": ISSUER, "aud": "kms", "sub": principal, "account": ACCOUNT, "exp": exp});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

pub(crate) async fn api(
    gateway: SocketAddr,
    token: &str,
    operation: &str,
    body: &Value,
) -> (u16, Value) {
    let body = body.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: kms\r\nConnection: close\r\n\
         Content-Type: application/x-amz-json-1.1\r\nX-Amz-Target: TrentService.{operation}\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, body) = http(gateway, request).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_api_call_is_one_trace_across_the_services() {
    let receiver = Receiver::default();
    let endpoint = receiver.clone().start().await;
    let telemetry = Arc::new(kms_telemetry::install(kms_telemetry::Settings {
        service: "kms-deploy-test".to_owned(),
        log_format: kms_telemetry::LogFormat::Text,
        log_filter: Some("warn".to_owned()),
        otlp_endpoint: Some(format!("http://{endpoint}")),
    }));
    assert!(telemetry.exports_traces(), "the first subscriber of this test binary");

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
    let system = tokio::spawn(kms_server::run_all(config, bus, listener, clock, stop.clone()));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let key_id = loop {
        let (status, body) = api(gateway, &token, "CreateKey", &json!({})).await;
        if status == 200 {
            break body["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "CreateKey: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (status, body) = api(
        gateway,
        &token,
        "Encrypt",
        &json!({"KeyId": key_id, "Plaintext": "c2VjcmV0", "EncryptionContext": {"dept": "obs"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The Encrypt trace: the gateway's span, and the crypto service's, in one trace.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (root, trace) = loop {
        // Flushing blocks on the exporter, which these async workers drive.
        let flushing = telemetry.clone();
        tokio::task::spawn_blocking(move || flushing.flush()).await.unwrap();
        let spans = receiver.spans();
        let root = spans.iter().find(|s| s.name == "Encrypt" && s.kind == SpanKind::Server as i32);
        if let Some(root) = root {
            let trace: Vec<Span> =
                spans.iter().filter(|s| s.trace_id == root.trace_id).cloned().collect();
            if trace
                .iter()
                .any(|s| s.name == "kms.v1.crypto.Encrypt" && s.kind == SpanKind::Server as i32)
            {
                break (root.clone(), trace);
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no Encrypt trace: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(root.parent_span_id.is_empty(), "the gateway's span is the root");
    assert_eq!(attribute(&root, "http.response.status_code").as_deref(), Some("200"));

    // Every span but the root has its parent in the trace: the links are intact, from
    // each service's server span through the bus client span up to the gateway.
    let by_id = |id: &[u8]| trace.iter().find(|s| s.span_id == id);
    for span in &trace {
        if span.span_id != root.span_id {
            assert!(by_id(&span.parent_span_id).is_some(), "orphan {span:#?} in {trace:#?}");
        }
    }
    let served = trace
        .iter()
        .find(|s| s.name == "kms.v1.crypto.Encrypt" && s.kind == SpanKind::Server as i32)
        .unwrap();
    assert_eq!(attribute(served, "service").as_deref(), Some("crypto"));
    let client = by_id(&served.parent_span_id).unwrap();
    assert_eq!(client.kind, SpanKind::Client as i32, "{client:#?}");
    assert_eq!(client.name, "kms.v1.crypto.Encrypt");
    let mut ancestor = client;
    while ancestor.span_id != root.span_id {
        ancestor = by_id(&ancestor.parent_span_id).unwrap();
    }
    let services: std::collections::BTreeSet<String> = trace
        .iter()
        .filter(|s| s.kind == SpanKind::Server as i32)
        .filter_map(|s| attribute(s, "service"))
        .collect();
    for service in ["metadata", "crypto"] {
        assert!(services.contains(service), "{service} is not in the trace: {services:?}");
    }
    // No secret travels as an attribute: neither the plaintext nor its base64.
    for span in &trace {
        for a in &span.attributes {
            let text = format!("{:?}", a.value);
            assert!(!text.contains("c2VjcmV0") && !text.contains("secret"), "{a:?}");
        }
    }

    stop.cancel();
    system.await.unwrap().unwrap();
}
